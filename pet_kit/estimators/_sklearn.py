"""What every estimator shares to keep scikit-learn's classifier contract: the shape of
``decision_function`` and the handling of ``sample_weight`` in ``fit``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.inputs import check_sample_weight

__all__ = ["decision_scores", "fit_weights", "no_weight_without_data", "weights_per_example"]

log = logging.getLogger(__name__)


def decision_scores(scores: np.ndarray) -> np.ndarray:
    """Class scores ``(n, n_classes)`` in scikit-learn's ``decision_function`` shape.

    Two classes: one score per example, shape ``(n,)``, the second class's score minus
    the first's (positive means ``classes_[1]``; its sigmoid is ``predict_proba[:, 1]``
    when the probabilities are the softmax of the scores). More classes: unchanged.
    """
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1] - scores[:, 0]
    return scores


def no_weight_without_data(sample_weight: Any) -> None:
    """Refuse a non-empty ``sample_weight`` given with no training data (``fit(None)``).

    Raises
    ------
    InputError
    """
    if sample_weight is not None and np.size(np.asarray(sample_weight, dtype=object)) > 0:
        raise InputError(
            "sample_weight was given without training data; pass fit(X, y,"
            " sample_weight=w), or leave sample_weight out for zero-shot (fit(None))"
        )


def fit_weights(
    sample_weight: Any, y: np.ndarray, labels: Sequence[Any], hard: bool = True
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The examples to train on and their weights, from ``fit``'s ``sample_weight``.

    Parameters
    ----------
    sample_weight : array-like or None
        As given to ``fit`` (checked by :func:`~pet_kit.io.inputs.check_sample_weight`).
    y : ndarray
        Label indices of the examples (for soft labels: their row-wise argmax).
    labels : sequence
        The class labels ``y`` indexes (for messages).
    hard : bool, default=True
        ``y`` are hard labels: positive weight must then fall on two classes at least,
        as training needs two classes (when ``y`` has two).

    Returns
    -------
    keep : ndarray of bool or None
        The examples of positive weight (``None``: all of them). Examples of weight 0
        are left out of training, exactly as if they had not been given.
    weights : ndarray or None
        The kept examples' weights (``None``: all equal, which trains exactly as no
        weights).

    Raises
    ------
    InputError
        An invalid ``sample_weight``, or, for hard labels, positive weight on one class
        only.
    """
    w = check_sample_weight(sample_weight, len(y))
    if w is None:
        return None, None
    keep = w > 0
    if hard and len(np.unique(y)) > 1:
        present = np.unique(y[keep])
        if len(present) < 2:
            zero = [labels[i] for i in np.unique(y) if i not in present]
            raise InputError(
                f"sample_weight is 0 for every example of class(es) {zero}, so only"
                f" {labels[int(present[0])]!r} would be trained; training needs positive"
                " weight on examples of at least two classes"
            )
    kept = w[keep]
    if not keep.all():
        log.info("sample_weight: %d example(s) of weight 0 left out", int((~keep).sum()))
    weights = None if np.all(kept == kept[0]) else kept
    return (None if keep.all() else keep), weights


def weights_per_example(
    sample_weight: Any, y: np.ndarray, labels: Sequence[Any], hard: bool = True
) -> np.ndarray | None:
    """:func:`fit_weights` as one weight per example, scaled so the positive ones
    average 1 (0: left out of training); ``None`` when all are equal and positive.

    Raises
    ------
    InputError
        As :func:`fit_weights`.
    """
    keep, weights = fit_weights(sample_weight, y, labels, hard)
    if keep is None and weights is None:
        return None
    kept = np.ones(len(y), dtype=bool) if keep is None else keep
    out = np.zeros(len(y))
    out[kept] = 1.0 if weights is None else weights / weights.mean()
    return out
