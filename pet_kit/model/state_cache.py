"""Class scores from cached encoder states at the mask.

When training leaves every input of the frozen encoder unchanged — ``tuning="head"``: the
slots keep their vectors and only the label-word rows of the MLM head train — the hidden
states at the mask are the same in every epoch. :class:`CachedStates` computes them once
per example and scores from them, so such a fit costs one encoder pass per example instead
of one per example and epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InputError
from .encoding import Encoded
from .scorer import ClozeScorer

__all__ = ["CachedStates"]


class CachedStates:
    """A :class:`~pet_kit.model.scorer.ClozeScorer` stand-in for training whose encoder
    inputs never change.

    Parameters
    ----------
    scorer : ClozeScorer
        Its split head (``scorer.head``) and current label head are used for the scores.
    slots : Tensor or None
        The (fixed) slot vectors every state is taken with.
    batch_size : int
        Examples per encoder pass when filling the cache.

    Notes
    -----
    States are keyed by the :class:`~pet_kit.model.encoding.Encoded` object, which the
    cache keeps alive, so use one instance per fit. Scores differ from
    ``scorer.class_scores`` only by the padding of the batch a state was taken in (float
    rounding). The label head's gradients flow as usual: the states are constants.
    """

    def __init__(
        self, scorer: ClozeScorer, slots: torch.Tensor | None, batch_size: int = 32
    ) -> None:
        if scorer.head is None:
            raise InputError(
                f"{type(scorer.model).__name__}: pet_kit cannot split its MLM head into"
                " transform + decoder, so the hidden states at the mask cannot be cached"
            )
        self.scorer = scorer
        self.device = scorer.device
        self.n_labels = scorer.n_labels
        self.batch_size = max(1, int(batch_size))
        self._slots = None if slots is None else slots.detach()
        self._states: dict[int, tuple[Encoded, list[torch.Tensor]]] = {}

    def _fill(self, batch: Sequence[Encoded]) -> None:
        """Take the states of the examples in ``batch`` not cached yet."""
        missing: dict[int, Encoded] = {}
        for e in batch:
            if id(e) not in self._states:
                missing[id(e)] = e
        todo = list(missing.values())
        # plain tensors even when called under inference mode (validation), so the
        # training steps can build graphs on top of them
        with torch.inference_mode(False), torch.no_grad():
            for start in range(0, len(todo), self.batch_size):
                part = todo[start : start + self.batch_size]
                groups = [
                    self.scorer.group_states(part, gi, self._slots) for gi in self.scorer.groups
                ]
                for i, e in enumerate(part):
                    self._states[id(e)] = (e, [g[i].clone() for g in groups])

    def class_scores(
        self, batch: Sequence[Encoded], slots: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Class scores ``(B, n_labels)``, as ``ClozeScorer.class_scores`` gives them.

        ``slots`` is accepted for the same call signature and not used: the states were
        taken with the slots given at construction.
        """
        self._fill(batch)
        words = []
        for gi in self.scorer.groups:
            states = torch.stack([self._states[id(e)][1][gi.index] for e in batch])
            words.append(self.scorer.words_from_hidden(states, gi))
        return self.scorer.aggregate_words(torch.cat(words, dim=1))
