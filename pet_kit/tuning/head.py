"""The soft verbalizer: ``tuning="prompt+head"`` and ``tuning="head"``.

A soft verbalizer is a :class:`~pet_kit.model.scorer.LabelHead`: trainable copies of the
label words' rows of the MLM decoder (which the scorer reads instead of the frozen
rows). ``"prompt+head"`` trains it with the slots; ``"head"`` trains it alone, the slots
keeping their initial vectors. Saved as the tensors ``label_head.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import SavedPromptError
from .base import Tuned, TuningMethod

if TYPE_CHECKING:
    import torch

__all__ = ["HEAD", "PREFIX", "PROMPT_HEAD", "SoftVerbalizer"]

#: Key prefix of the soft verbalizer's tensors in a saved prompt.
PREFIX = "label_head."


class SoftVerbalizer(TuningMethod):
    """Trains a soft verbalizer (with the slots, unless ``trains_slots`` is off)."""

    name = "prompt+head"
    summary = "also a soft verbalizer (trainable copies of the label\nwords' MLM decoder rows)."

    def prepare(self, model: Tuned, fitted: Tuned | None) -> None:
        state = None
        if fitted is not None and fitted.label_head is not None:
            state = fitted.label_head.state_dict()
        model.add_label_head(state)

    def saved(self, model: Tuned) -> dict[str, torch.Tensor]:
        head = model.label_head
        if head is None:
            return {}
        return {PREFIX + k: v.detach().float() for k, v in head.state_dict().items()}

    def load(self, model: Tuned, tensors: Mapping[str, torch.Tensor], tensor_file: str) -> None:
        head = model.add_label_head()
        cut = len(PREFIX)
        state = {k[cut:]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        expected = head.state_dict()
        shapes_ok = set(state) == set(expected) and all(
            tuple(state[k].shape) == tuple(expected[k].shape) for k in expected
        )
        if not shapes_ok or not all(bool(v.isfinite().all()) for v in state.values()):
            raise SavedPromptError(
                f"{tensor_file}: tuning has a label head ('prompt+head' / 'head') but its"
                f" tensors are missing, damaged or of the wrong shape (expected"
                f" {sorted(expected)}); save the prompt again"
            )
        head.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
        head.eval()


class HeadOnly(SoftVerbalizer):
    """The soft verbalizer alone: a readout trained on the untrained prompt."""

    name = "head"
    summary = (
        "the soft verbalizer only; the slots keep their initial vectors\n"
        "(a readout trained on the untrained prompt)."
    )
    trains_slots = False


PROMPT_HEAD = SoftVerbalizer()
HEAD = HeadOnly()
