"""The private backbone copy that the backbone-tuning methods train (``"lora"``,
``"full"``: :mod:`pet_kit.tuning`), and PET's auxiliary MLM loss.

The copy is private, so the model other estimators (or the caller) use is never changed.
It keeps the shared backbone's identity (fingerprint): a saved LoRA or full-tuning prompt
stores only what the method trains, and is loaded on top of the shared backbone.

Dropout stays off in every mode (the model runs in eval mode, as in prompt tuning).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..errors import InputError, SavedPromptError
from ..tuning import TuningMethod
from .backbone import Backbone
from .encoding import tokenize_plain

__all__ = [
    "backbone_delta",
    "mlm_loss_fn",
    "training_params",
    "tuned_backbone",
]

log = logging.getLogger(__name__)


def tuned_backbone(
    backbone: Backbone,
    method: TuningMethod,
    settings: Mapping[str, Any],
    delta: dict[str, torch.Tensor] | None = None,
    where: str = "",
) -> Backbone:
    """A private copy of ``backbone`` prepared for ``method`` (one that copies it).

    Parameters
    ----------
    backbone : Backbone
        The shared backbone (never modified).
    method : TuningMethod
        Adapts the copy (:meth:`~pet_kit.tuning.base.TuningMethod.adapt`: LoRA's
        adapters) and names the weights it trains.
    settings : mapping
        The method's fields (``rank``, ``alpha``...).
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
    if not method.copies_backbone:
        raise ValueError(f"tuned_backbone is for methods that copy the backbone, not {method}")
    model = method.adapt(copy.deepcopy(backbone.model), settings)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if delta is not None:
        _load_delta(model, method, delta, where)
    return replace(backbone, model=model, owned=True, _fingerprint=backbone.fingerprint)


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


def backbone_delta(model: nn.Module, method: TuningMethod) -> dict[str, torch.Tensor]:
    """What a tuned copy holds beyond the shared backbone: the weights ``method`` trains
    (tensors share their memory)."""
    return {n: p.detach() for n, p in method.trainable(model)}


def _load_delta(
    model: nn.Module, method: TuningMethod, delta: dict[str, torch.Tensor], where: str
) -> None:
    tuning = method.name
    expected = dict(method.trainable(model))
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
