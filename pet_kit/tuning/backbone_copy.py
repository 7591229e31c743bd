"""What the methods that train a private copy of the backbone share (``"lora"``,
``"full"``): the learning-rate field, and the saved part ``backbone.*`` (the weights the
method trains: what differs from the shared backbone, which keeps its fingerprint).

The copy itself is made by :func:`pet_kit.model.backbone_tuning.tuned_backbone`, which
calls the method's :meth:`~pet_kit.tuning.base.TuningMethod.adapt` and
:meth:`~pet_kit.tuning.base.TuningMethod.trainable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import SavedPromptError
from .base import Field, Tuned, TuningMethod

if TYPE_CHECKING:
    import torch

__all__ = ["LEARNING_RATE", "PREFIX", "BackboneCopy"]

#: Key prefix of the trained backbone weights in a saved prompt.
PREFIX = "backbone."

LEARNING_RATE = Field(
    "learning_rate",
    None,
    "float | None",
    "float, optional",
    'AdamW learning rate of the backbone weights (``"lora"`` / ``"full"``); finite,\n'
    "> 0. ``None``: the mode's default (5e-4 for LoRA, 3e-5 for full), see\n"
    ":attr:`backbone_learning_rate`.",
    ok=lambda v: v > 0,
    what="> 0 (or None)",
    optional=True,
)


class BackboneCopy(TuningMethod):
    """A method that trains weights of a private backbone copy (with the slots)."""

    copies_backbone = True

    def prepare(self, model: Tuned, fitted: Tuned | None) -> None:
        model.use_backbone_copy(fitted.backbone_delta() if fitted is not None else None)

    def trainable(self, network: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        return list(network.named_parameters())  # tied weights appear once

    def saved(self, model: Tuned) -> dict[str, torch.Tensor]:
        delta = model.backbone_delta() or {}
        return {PREFIX + k: v.detach().float().contiguous().clone() for k, v in delta.items()}

    def load(self, model: Tuned, tensors: Mapping[str, torch.Tensor], tensor_file: str) -> None:
        cut = len(PREFIX)
        delta = {k[cut:]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        if not delta:
            raise SavedPromptError(
                f"{tensor_file}: params.tuning is {self.name!r} but the file holds no"
                " backbone weights; the file was edited. Save the prompt again"
            )
        model.use_backbone_copy(delta, tensor_file)
