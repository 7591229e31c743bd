"""Backbone tuning modes beyond the prompt: LoRA adapters and full fine-tuning.

Both work on a private *copy* of the shared backbone, so the model other estimators
(or the caller) use is never changed. The copy keeps the shared backbone's identity
(fingerprint): a saved LoRA or full-tuning prompt stores only what differs from that
backbone and is loaded on top of it.

* ``"lora"``: low-rank adapters (``peft``) on the attention query/value projections;
  only the adapters train. Saved: the adapter matrices (a few hundred KB).
* ``"full"``: every weight of the masked LM trains (PET's original set-up), optionally
  with PET's auxiliary MLM loss on unlabeled text. Saved: the whole model.

Dropout stays off in every mode (the model runs in eval mode, as in prompt tuning).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import torch
from torch import nn

from ..config.settings import BACKBONE_TUNINGS, DEFAULT_BACKBONE_LR, HEAD_TUNINGS, TUNINGS
from ..errors import InputError, SavedPromptError
from .backbone import Backbone
from .encoding import tokenize_plain

__all__ = [
    "BACKBONE_TUNINGS",
    "DEFAULT_BACKBONE_LR",
    "HEAD_TUNINGS",
    "LORA_TARGETS",
    "TUNINGS",
    "backbone_delta",
    "mlm_loss_fn",
    "trainable_backbone_params",
    "training_params",
    "tuned_backbone",
]

log = logging.getLogger(__name__)

#: Attention projections LoRA adapts, per ``config.model_type``.
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "albert": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
}


def _lora_config(model: nn.Module, rank: int, alpha: float):
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise InputError(
            "tuning='lora' needs the peft library: pip install 'pet_kit[lora]' (or pip install"
            " peft)"
        ) from exc
    model_type = getattr(model.config, "model_type", None)
    targets = LORA_TARGETS.get(str(model_type))
    if targets is None:
        raise InputError(
            f"tuning='lora' does not know the attention layers of model_type {model_type!r};"
            f" supported: {sorted(LORA_TARGETS)}. Use tuning='prompt' or 'full'"
        )
    return LoraConfig(
        r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, target_modules=targets
    )


def tuned_backbone(
    backbone: Backbone,
    tuning: str,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    delta: dict[str, torch.Tensor] | None = None,
    where: str = "",
) -> Backbone:
    """A private copy of ``backbone`` prepared for ``tuning`` ("lora" or "full").

    Parameters
    ----------
    backbone : Backbone
        The shared backbone (never modified).
    tuning : {"lora", "full"}
    lora_rank, lora_alpha : int, float
        LoRA rank and scaling (``alpha / rank``).
    delta : dict, optional
        Weights from :func:`backbone_delta` (a saved or warm-started model) to load into
        the copy; every key must exist with the same shape.
    where : str
        File the delta came from (for error messages).

    Returns
    -------
    Backbone
        The copy, frozen (``requires_grad=False``, eval mode), with the shared
        backbone's name and fingerprint.
    """
    if tuning not in BACKBONE_TUNINGS:
        raise ValueError(f"tuned_backbone is for {BACKBONE_TUNINGS}, got {tuning!r}")
    model = copy.deepcopy(backbone.model)
    if tuning == "lora":
        config = _lora_config(model, lora_rank, lora_alpha)  # checks peft is installed
        from peft import inject_adapter_in_model

        model = inject_adapter_in_model(config, model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if delta is not None:
        _load_delta(model, tuning, delta, where)
    return replace(backbone, model=model, owned=True, _fingerprint=backbone.fingerprint)


def _is_lora(name: str) -> bool:
    return ".lora_" in name or name.startswith("lora_")


def trainable_backbone_params(model: nn.Module, tuning: str) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs ``tuning`` trains: the adapters, or every weight."""
    named = list(model.named_parameters())  # tied weights appear once
    if tuning == "lora":
        return [(n, p) for n, p in named if _is_lora(n)]
    return named


@contextlib.contextmanager
def training_params(named: Sequence[tuple[str, nn.Parameter]]) -> Iterator[None]:
    """Turn gradients on for ``named`` (inside :func:`~pet_kit.model.backbone.frozen`);
    off after."""
    for _, p in named:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for _, p in named:
            p.requires_grad_(False)


def backbone_delta(model: nn.Module, tuning: str) -> dict[str, torch.Tensor]:
    """What a tuned copy holds beyond the shared backbone (tensors share its memory)."""
    return {n: p.detach() for n, p in trainable_backbone_params(model, tuning)}


def _load_delta(model: nn.Module, tuning: str, delta: dict[str, torch.Tensor], where: str) -> None:
    expected = dict(trainable_backbone_params(model, tuning))
    missing = sorted(set(expected) - set(delta))
    unknown = sorted(set(delta) - set(expected))
    bad_shape = sorted(
        n for n in set(expected) & set(delta) if tuple(delta[n].shape) != tuple(expected[n].shape)
    )
    if missing or unknown or bad_shape:
        parts = []
        for what, names in (
            ("missing", missing),
            ("unexpected", unknown),
            ("wrong shape", bad_shape),
        ):
            if names:
                more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
                parts.append(f"{what}: {names[:3]}{more}")
        raise SavedPromptError(
            f"{where or 'backbone weights'}: the tuning={tuning!r} weights do not fit this"
            f" backbone ({'; '.join(parts)}); the prompt was saved for another architecture or"
            " LoRA rank, or the file was edited"
        )
    if not all(bool(torch.isfinite(t).all()) for t in delta.values()):
        raise SavedPromptError(
            f"{where or 'backbone weights'}: the tuning={tuning!r} weights hold NaN or"
            " infinite values (a diverged training run?); retrain with a lower"
            " tuning.learning_rate (the backbone's learning rate)"
        )
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(delta[name].to(param.dtype))


def mlm_loss_fn(
    backbone: Backbone,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    generator: torch.Generator,
    mlm_probability: float = 0.15,
) -> Callable[[], torch.Tensor]:
    """PET's auxiliary language-modelling loss: each call masks a random batch of
    ``texts`` (BERT's 80/10/10 scheme) and returns the model's MLM loss on it."""
    from transformers import DataCollatorForLanguageModeling

    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise InputError(
            "tuning='full' with tuning.mlm_loss_weight > 0 needs texts for the auxiliary MLM"
            " loss: pass fit(X, y, X_unlabeled=texts) or training texts, or turn it off with"
            " tuning=Tuning('full', mlm_loss_weight=0)"
        )
    tok = backbone.tokenizer
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=mlm_probability)
    # user texts: special-token strings in them are plain characters, never [MASK]/[SEP]
    encoded = [
        tokenize_plain(tok, t, add_special_tokens=True, truncation=True, max_length=max_length)
        for t in texts
    ]

    def loss() -> torch.Tensor:
        idx = torch.randint(len(encoded), (min(batch_size, len(encoded)),), generator=generator)
        features = [{"input_ids": encoded[i]["input_ids"]} for i in idx.tolist()]
        with torch.random.fork_rng(devices=[]):  # the collator draws from torch's global RNG
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            batch = collator(features)
        batch = {k: v.to(backbone.device) for k, v in batch.items()}
        if not bool((batch["labels"] != -100).any()):  # nothing masked (short texts): no loss
            return torch.zeros((), device=backbone.device)
        return backbone.model(**batch).loss

    return loss
