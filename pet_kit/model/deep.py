"""Deep prompts (P-tuning v2 / prefix tuning, in hidden-state form) on masked LMs.

``deep_prompt=P`` puts ``P`` soft slots at the start of the pattern (right after the
start token) and gives them trainable states at the input of *every* layer, not only the
embedding layer: before layer ``l`` runs, the hidden states of those ``P`` positions are
replaced by trainable vectors ``D[l]``. Every later token then attends, at every layer,
to keys and values computed from trainable states — the deep prompt of P-tuning v2 /
prefix tuning, parameterised by states instead of per-layer key/value pairs (the keys and
values are the layer's own projections of the states; the backbone stays frozen).
Optionally the states are reparameterised by a residual MLP during training.

Layers are found per architecture (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA: ``encoder.
layer``; DistilBERT: ``transformer.layer``; ALBERT: its shared layer, called once per
layer). The replacement is done by forward pre-hooks that exist only during a pet_kit
forward pass and act only in the thread that attached them, so the shared backbone is
unchanged for everyone else, including other threads running it at the same time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..config.settings import DEEP_ENCODERS
from ..errors import InputError

__all__ = ["DEEP_ENCODERS", "DeepStates", "initial_states", "layer_hooks_spec", "with_deep_prefix"]


def layer_hooks_spec(model: nn.Module) -> tuple[list[nn.Module], int]:
    """(modules to hook, layers per forward pass): the modules whose successive calls
    during one forward pass are the layers 0..L-1, in order."""
    base = getattr(model, "base_model", model)
    n_layers = int(
        getattr(model.config, "num_hidden_layers", 0) or getattr(model.config, "n_layers", 0)
    )
    encoder = getattr(base, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer"):
        return list(encoder.layer), n_layers
    transformer = getattr(base, "transformer", None)
    if transformer is not None and hasattr(transformer, "layer"):
        return list(transformer.layer), n_layers
    if encoder is not None and hasattr(encoder, "albert_layer_groups"):
        layers = [lay for g in encoder.albert_layer_groups for lay in g.albert_layers]
        return layers, n_layers
    raise InputError(
        f"deep_prompt is not available for {type(model).__name__}: pet_kit does not know its"
        " layers. Use deep_prompt=0 (input-layer slots) with this backbone"
    )


def with_deep_prefix(pvp: Any, length: int) -> Any:
    """``pvp`` with ``length`` soft slots in front of its pattern (slot ids 0..P-1)."""
    import dataclasses

    from ..config.pattern import parse_pattern

    pattern = parse_pattern(f"[SOFT*{int(length)}] " + pvp.pattern.text, source=pvp.source)
    return dataclasses.replace(pvp, pattern=pattern)


class DeepStates(nn.Module):
    """Trainable states ``(n_layers - 1, P, hidden)`` for layers 1..L-1 (layer 0's input
    is the embedding of the ``P`` soft slots themselves).

    Parameters
    ----------
    init : Tensor
        Initial states ``(n_layers - 1, P, hidden)``.
    encoder : {None, "mlp"}
        ``"mlp"``: states = ``init_raw + MLP(init_raw)`` while training (the MLP starts
        near zero); the final states are what is saved.
    """

    def __init__(self, init: torch.Tensor, encoder: str | None = None) -> None:
        super().__init__()
        self.raw = nn.Parameter(init.detach().clone().float())
        self.mlp = None
        if encoder == "mlp":
            hidden = init.shape[-1]
            self.mlp = nn.Sequential(
                nn.Linear(hidden, hidden // 2), nn.Tanh(), nn.Linear(hidden // 2, hidden)
            )
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    @property
    def length(self) -> int:
        """Deep prompt length ``P``."""
        return int(self.raw.shape[1])

    def states(self) -> torch.Tensor:
        """The per-layer states ``(n_layers - 1, P, hidden)``."""
        return self.raw if self.mlp is None else self.raw + self.mlp(self.raw)

    @contextlib.contextmanager
    def attached(self, model: nn.Module, soft_index: torch.Tensor) -> Iterator[None]:
        """Hooks that replace the deep positions' states before layers 1..L-1.

        The hooks are registered on the shared backbone's layers but act only on forward
        passes of the calling thread: another thread using the same backbone meanwhile
        (another task's prompt, a bank, a server worker) sees the plain model.
        """
        modules, n_layers = layer_hooks_spec(model)
        states = self.states()
        is_deep = (soft_index >= 0) & (soft_index < self.length)
        where = is_deep.unsqueeze(-1)
        idx = soft_index.clamp(min=0, max=self.length - 1)
        calls = {"n": 0}
        owner = threading.get_ident()

        def hook(_module: nn.Module, args: tuple, kwargs: dict | None = None) -> Any:
            # torch registers a with_kwargs hook in two dict writes (and removes it in two):
            # a forward pass in another thread in between calls it without ``kwargs``
            if threading.get_ident() != owner:
                return None
            layer = calls["n"] % n_layers
            calls["n"] += 1
            if layer == 0:
                return None
            if args or kwargs is None:
                hs = args[0]
            else:
                key = next(k for k in ("hidden_states", "x", "hidden_state") if k in kwargs)
                hs = kwargs[key]
            new = torch.where(where, states[layer - 1][idx].to(hs.dtype), hs)
            if kwargs is None:  # called as a plain pre-hook: return the new args only
                return (new, *args[1:])
            if args:
                return (new, *args[1:]), kwargs
            return args, {**kwargs, key: new}

        handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def initial_states(scorer: Any, example: Any, slots: torch.Tensor, length: int) -> torch.Tensor:
    """Natural starting states: the hidden states the ``length`` deep positions get at the
    input of layers 1..L-1 when the model reads ``example`` with the initial slot
    vectors (so an untrained deep prompt barely changes the model); ``(L - 1, P, H)``."""
    batch = {k: v.to(scorer.device) for k, v in scorer.encoder.collate([example], 1).items()}
    emb = scorer.embed(batch, slots)
    with torch.no_grad():
        out = scorer.model.base_model(
            inputs_embeds=emb, attention_mask=batch["attention_mask"], output_hidden_states=True
        )
    hidden = out.hidden_states  # [embedding output, output of layer 0, ...]
    deep = (batch["soft_index"][0] >= 0) & (batch["soft_index"][0] < length)
    order = batch["soft_index"][0][deep].argsort()
    n_layers = len(hidden) - 1
    return torch.stack([hidden[lay][0][deep][order] for lay in range(1, n_layers)]).float()
