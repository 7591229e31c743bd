"""The training guard: keep the untrained prompt unless the examples show that training
helps.

With few examples, training a soft prompt can end *below* the prompt it started from
(measured: ``benchmarks/never_worse.py``). ``fit``'s ``guard`` checks on the labelled
examples themselves, before the real training: they are split (:func:`splits`:
``"holdout"``, a seeded, stratified :data:`HOLDOUT_FRACTION` held out; ``"2fold"``, two
stratified halves, each held out in turn; ``"4fold"``, four stratified folds, each held out
in turn), a probe trains on each training part with the
same settings from the same start, and the held-out examples score the start (the
untrained prompt) and the probe. Training goes ahead on *all* the examples only when
:func:`training_helps`; otherwise the prompt stays at its start. The trainer
(:func:`pet_kit.train.trainer.check_training`) runs the probes; this module holds the
splits, the scores, the rule and what is recorded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

__all__ = [
    "FOLDS",
    "HOLDOUT_FRACTION",
    "MIN_PER_CLASS",
    "PROBE_STEPS",
    "Check",
    "beat_text",
    "comparison",
    "held_out_scores",
    "holdout_indices",
    "splits",
    "training_helps",
]

#: The share of the labelled examples held out (at least one per class).
HOLDOUT_FRACTION = 0.25
#: Fewest examples a class needs for the hold-out (one held out, one to train on).
MIN_PER_CLASS = 2
#: The folds of each k-fold guard mode (fewer when the smallest class has fewer examples).
FOLDS = {"2fold": 2, "4fold": 4}
#: How long a probe trains when ``max_steps`` is not set: ``"epochs"``, the fit's epochs
#: over its training part (so fewer optimizer steps than the fit, on fewer examples), or
#: ``"fit"``, as many optimizer steps as the fit on all the examples will take.
PROBE_STEPS = "epochs"


def holdout_indices(
    y: np.ndarray, rs: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray] | str:
    """The training and held-out example indices (each sorted), or why there are none.

    Parameters
    ----------
    y : ndarray of int
        Each example's label index (for soft labels, its most probable class).
    rs : RandomState
        Seeds the split.

    Returns
    -------
    (ndarray, ndarray) or str
        ``round(HOLDOUT_FRACTION * n)`` examples held out, at least one of every class
        present and stratified by class; or, when a class has fewer than
        :data:`MIN_PER_CLASS` examples, the reason no hold-out is possible.
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < MIN_PER_CLASS:
        return (
            f"a class has {int(counts.min())} example(s); holding out needs at least"
            f" {MIN_PER_CLASS} of every class"
        )
    n = len(y)
    n_held = max(len(classes), round(HOLDOUT_FRACTION * n))
    train, held = train_test_split(np.arange(n), test_size=n_held, stratify=y, random_state=rs)
    return np.sort(train), np.sort(held)


def splits(
    y: np.ndarray, mode: str, rs: np.random.RandomState
) -> list[tuple[np.ndarray, np.ndarray]] | str:
    """The guard's (training, held-out) index pairs for ``mode``, or why there are none.

    Parameters
    ----------
    y : ndarray of int
        Each example's label index (for soft labels, its most probable class).
    mode : {"holdout", "2fold", "4fold"}
        ``"holdout"``: one pair (:func:`holdout_indices`). ``"2fold"``: two stratified
        halves, each held out once, so every example is scored by a probe that did not
        train on it. ``"4fold"``: the same with four stratified folds (probes train on
        three quarters of the examples), or as many as the smallest class has examples
        (at least two).
    rs : RandomState
        Seeds the split.

    Returns
    -------
    list of (ndarray, ndarray) or str
        Sorted index arrays; or, when a class has fewer than :data:`MIN_PER_CLASS`
        examples, the reason no split is possible.
    """
    if mode == "holdout":
        pair = holdout_indices(y, rs)
        return pair if isinstance(pair, str) else [pair]
    y = np.asarray(y)
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < MIN_PER_CLASS:
        return (
            f"a class has {smallest} example(s); holding out needs at least"
            f" {MIN_PER_CLASS} of every class"
        )
    n_splits = min(FOLDS[mode], smallest)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=rs).split(
        np.zeros(len(y)), y
    )
    return [(np.sort(train), np.sort(held)) for train, held in folds]


def held_out_scores(
    probs: np.ndarray, y: np.ndarray, targets: np.ndarray, weights: np.ndarray | None
) -> dict[str, float]:
    """Accuracy, log-loss and Brier score of predicted probabilities on held-out examples.

    Parameters
    ----------
    probs : ndarray of shape (n, n_classes)
        Predicted class probabilities (calibrated as predictions would be).
    y : ndarray of shape (n,)
        Label indices (soft labels: their most probable class).
    targets : ndarray
        ``y``, or soft labels of shape ``(n, n_classes)``.
    weights : ndarray or None
        One weight per example (``None``: equal).

    Returns
    -------
    dict
        ``accuracy``, ``log_loss`` (mean cross-entropy against ``targets``) and ``brier``
        (mean squared distance of the probabilities to ``targets`` as one-hot or soft
        rows, summed over classes: 0 to 2, bounded where the log-loss of one confident
        mistake is not), each weighted by ``weights``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    targets = np.asarray(targets)
    if targets.ndim == 2:
        rows = targets.astype(np.float64)
    else:
        rows = np.eye(probs.shape[1])[np.asarray(y)]
    losses = -(rows * logp).sum(1)
    correct = (logp.argmax(1) == np.asarray(y)).astype(np.float64)
    return {
        "accuracy": float(np.average(correct, weights=weights)),
        "log_loss": float(np.average(losses, weights=weights)),
        "brier": float(np.average(((probs - rows) ** 2).sum(1), weights=weights)),
    }


def training_helps(untrained: dict[str, float], trained: dict[str, float]) -> bool:
    """The rule: the trained probe must have a strictly lower held-out Brier score than the
    untrained prompt *and* at least its held-out accuracy; a tie keeps the untrained
    prompt.

    The Brier score, not the log-loss: on a handful of held-out examples one confidently
    wrong probe prediction can outweigh the log-loss of every other example, and a probe
    trained 20 epochs on a few examples is often confident, so the log-loss kept the
    untrained prompt where training helped most (measured on two backbones:
    ``benchmarks/never_worse.py``; docs/training.md)."""
    return trained["brier"] < untrained["brier"] and trained["accuracy"] >= untrained["accuracy"]


def comparison(untrained: dict[str, float], trained: dict[str, float]) -> str:
    """``Brier a -> b, log-loss c -> d, accuracy e -> f`` (untrained -> trained); the
    Brier part only where both recorded it."""
    u, t = untrained, trained
    brier = f"Brier {u['brier']:.3f} -> {t['brier']:.3f}, " if "brier" in u and "brier" in t else ""
    return (
        f"{brier}log-loss {u['log_loss']:.3f} -> {t['log_loss']:.3f}, accuracy"
        f" {u['accuracy']:.3f} -> {t['accuracy']:.3f}"
    )


def beat_text(n_held_out: Any, scores: str) -> str:
    """``guard: training beat the untrained prompt on N held-out examples (SCORES)``: the
    sentence of a check that let training go ahead (``scores``: its :func:`comparison`)."""
    return f"guard: training beat the untrained prompt on {n_held_out} held-out examples ({scores})"


@dataclasses.dataclass
class Check:
    """What the guard found (recorded as ``history_["guard"]``).

    Attributes
    ----------
    mode : str
        The ``guard`` setting (``"holdout"``, ``"2fold"``, ``"4fold"``).
    helps : bool
        Training goes ahead (also when the check was skipped).
    skipped : str or None
        Why there was no hold-out (then training goes ahead, unchecked).
    n_train : list of int
        The training examples of each probe.
    n_held_out : int
        The held-out examples scored (over all probes).
    untrained, trained : dict or None
        Held-out ``accuracy``, ``log_loss`` and ``brier`` of the start and of the probes.
    probe_steps : int
        The probes' optimizer steps, in all.
    seconds : float
        Time the check took (the probes' training and the scorings).
    interrupted : bool
        Ctrl-C stopped the probe (the prompt stays at its start).
    """

    mode: str
    helps: bool = True
    skipped: str | None = None
    n_train: list[int] = dataclasses.field(default_factory=list)
    n_held_out: int = 0
    untrained: dict[str, float] | None = None
    trained: dict[str, float] | None = None
    probe_steps: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def kept_untrained(self) -> bool:
        """Whether the prompt stays at its start because of the check."""
        return not self.helps

    def record(self) -> dict[str, Any]:
        """JSON-ready form, with ``kept_untrained``."""
        return {**dataclasses.asdict(self), "kept_untrained": self.kept_untrained}

    def comparison(self) -> str:
        """:func:`comparison` of the held-out scores, or ``""`` when there are none."""
        if self.untrained is None or self.trained is None:
            return ""
        return comparison(self.untrained, self.trained)

    def text(self) -> str:
        """One sentence for the fit summary."""
        if self.interrupted:
            return (
                "interrupted while the guard's probe trained: the prompt is the untrained"
                " one (nothing else trained)"
            )
        if self.skipped is not None:
            return f"guard skipped ({self.skipped}): trained without the check"
        if self.kept_untrained:
            probes = "a probe" if len(self.n_train) == 1 else f"{len(self.n_train)} probes"
            return (
                f"kept the untrained prompt: {probes} trained on"
                f" {' / '.join(map(str, self.n_train))} examples ({self.probe_steps} steps)"
                f" did not beat it on the {self.n_held_out} held out ({self.comparison()});"
                " nothing else trained (guard=None trains regardless)"
            )
        return beat_text(self.n_held_out, self.comparison())
