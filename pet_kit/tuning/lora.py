"""``tuning="lora"``: low-rank adapters (``peft``) on the attention query/value
projections of a private backbone copy; only the adapters train (with the slots).
Saved: the adapter matrices (a few hundred KB)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .backbone_copy import LEARNING_RATE, BackboneCopy
from .base import Field

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LORA", "LORA_TARGETS", "LoraTuning"]

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

RANK = Field(
    "rank",
    8,
    "int",
    "int, default=8",
    'LoRA rank ``r``; an integer >= 1 (``"lora"`` only).',
    minimum=1,
)
ALPHA = Field(
    "alpha",
    16.0,
    "float",
    "float, default=16.0",
    "LoRA scaling numerator (updates are scaled by ``alpha / rank``); finite, > 0.",
    ok=lambda v: v > 0,
    what="> 0",
)


def _lora_config(network: nn.Module, rank: int, alpha: float) -> Any:
    _check_rank(network, int(rank))
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise InputError(
            "tuning='lora' needs the peft library: pip install 'pet_kit[lora]' (or pip install"
            " peft)"
        ) from exc
    model_type = getattr(network.config, "model_type", None)
    targets = LORA_TARGETS.get(str(model_type))
    if targets is None:
        raise InputError(
            f"tuning='lora' does not know the attention layers of model_type {model_type!r};"
            f" supported: {sorted(LORA_TARGETS)}. Use tuning='prompt' or 'full'"
        )
    return LoraConfig(
        r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, target_modules=targets
    )


def _check_rank(network: nn.Module, rank: int) -> None:
    """Refuse a rank above the width of the projections LoRA adapts (its matrices would
    be larger than the layer they adapt; a huge rank would exhaust memory).

    Raises
    ------
    InputError
    """
    cfg = network.config
    width = getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None)
    if isinstance(width, int) and rank > width:
        raise InputError(
            f"tuning.rank={rank} is larger than the width of the attention projections"
            f" LoRA adapts ({width} for this backbone); use a rank from 1 to {width}"
            " (4 to 16 is usual)"
        )


def _is_lora(name: str) -> bool:
    return ".lora_" in name or name.startswith("lora_")


class LoraTuning(BackboneCopy):
    """LoRA: adapters on the attention projections; the rest of the copy stays frozen."""

    name = "lora"
    summary = "also LoRA adapters on a private copy of the backbone."
    fields = (RANK, ALPHA, LEARNING_RATE)
    learning_rate = 5e-4

    def adapt(self, network: nn.Module, settings: Mapping[str, Any]) -> nn.Module:
        config = _lora_config(network, settings["rank"], settings["alpha"])  # checks peft
        from peft import inject_adapter_in_model

        return inject_adapter_in_model(config, network)

    def trainable(self, network: nn.Module) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in network.named_parameters() if _is_lora(n)]


LORA = LoraTuning()
