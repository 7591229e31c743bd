"""Several tasks training one shared soft prompt: their examples mixed into one training
set, each scored by its own task's PVP (:func:`~pet_kit.train.trainer.fit` with several
tasks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..model.encoding import Encoded
from ..model.scorer import Scorer

__all__ = ["MixedScorer", "mix"]

#: Score given to the classes a task does not have (the tasks' label counts differ).
ABSENT = -1e4


class MixedScorer:
    """A :class:`~pet_kit.model.scorer.Scorer` over examples of several tasks: each example
    is scored by its own task's scorer; scores are padded to the largest label count with
    a score no class of that task can lose to.

    Parameters
    ----------
    scorers : sequence of Scorer
        One per task.
    task_of : dict of int to int
        ``id(example)`` -> its task's index.
    """

    def __init__(self, scorers: Sequence[Scorer], task_of: dict[int, int]) -> None:
        self.scorers = list(scorers)
        self.task_of = task_of
        self.n_labels = max(s.n_labels for s in self.scorers)
        self.device = self.scorers[0].device

    def class_scores(self, batch: Sequence[Encoded], slots: torch.Tensor | None) -> torch.Tensor:
        """Class scores ``(B, n_labels)``, each row by its example's task."""
        tasks = [self.task_of[id(e)] for e in batch]
        out: torch.Tensor | None = None
        for t in sorted(set(tasks)):
            rows = [i for i, k in enumerate(tasks) if k == t]
            scores = self.scorers[t].class_scores([batch[i] for i in rows], slots)
            if out is None:
                out = scores.new_full((len(batch), self.n_labels), ABSENT)
            out[rows, : scores.shape[1]] = scores
        assert out is not None  # batches are never empty
        return out


def mix(
    examples: list[list[Encoded]], targets: list[np.ndarray], weights: list[float] | None
) -> tuple[list[Encoded], np.ndarray]:
    """All tasks' examples in one list; with ``weights``, each task's examples are
    repeated (cycled) so that its share of the list follows its weight."""
    if weights is None:
        counts = [len(e) for e in examples]
    else:
        total = sum(len(e) for e in examples)
        share = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        counts = [max(1, round(total * s)) for s in share]
    mixed: list[Encoded] = []
    y: list[np.ndarray] = []
    for ex, tg, n in zip(examples, targets, counts, strict=True):
        idx = [i % len(ex) for i in range(n)]
        mixed += [ex[i] for i in idx]
        y.append(tg[idx])
    return mixed, np.concatenate(y)
