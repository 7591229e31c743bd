"""``tuning="full"``: every weight of a private copy of the masked LM trains (PET's
original set-up), with PET's auxiliary MLM loss on unlabeled text. Saved: the whole
model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .backbone_copy import LEARNING_RATE, BackboneCopy
from .base import Field

__all__ = ["FULL", "FullTuning"]

MLM_LOSS_WEIGHT = Field(
    "mlm_loss_weight",
    1e-4,
    "float",
    "float, default=1e-4",
    '``"full"`` only: weight ``w`` of PET\'s auxiliary masked-LM loss,\n'
    "``(1 - w) * task_loss + w * mlm_loss``; in [0, 1), 0 turns it off.",
    ok=lambda v: 0 <= v < 1,
    what="in [0, 1)",
)


class FullTuning(BackboneCopy):
    """Full fine-tuning of the copy (every weight), with the auxiliary MLM loss."""

    name = "full"
    summary = "every weight of a private copy of the masked LM, with PET's\nauxiliary MLM loss."
    fields = (LEARNING_RATE, MLM_LOSS_WEIGHT)
    learning_rate = 3e-5

    def aux_loss_weight(self, settings: Mapping[str, Any]) -> float:
        return float(settings["mlm_loss_weight"])


FULL = FullTuning()
