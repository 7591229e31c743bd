"""Settings chosen from the few examples: :class:`PromptClassifierCV`.

Prompt tuning is sensitive to the learning rate and the number of steps, and a few-shot
user has no dev set to tune them on. :class:`PromptClassifierCV` chooses them by repeated
stratified cross-validation on the training examples themselves, among a small set of
candidates that always includes the *untrained* prompt (with and without contextual
calibration) and the untrained hard patterns of the PVP's template file: when no trained
candidate beats them in cross-validation, the best untrained one is what you get. The
choice, every candidate's fold scores and the cost are in ``cv_results_``, as with
scikit-learn's searches.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..config.pvp import load_pvp, load_pvps
from ..config.schema import did_you_mean
from ..config.settings import PARAMETERS
from ..errors import InputError, PetKitError
from ..io.inputs import (
    CONTINUOUS_HINT,
    check_label,
    check_positive_int,
    label_vector,
    looks_continuous,
)
from ._sklearn import fit_weights
from .prompt_classifier import PromptClassifier

__all__ = ["DEFAULT_CANDIDATES", "PromptClassifierCV"]

log = logging.getLogger(__name__)

#: The untrained prompt (first, so a tie keeps it), then trained ones. ``epochs=0`` is
#: the prompt at its initialisation: the pattern's own words for ``[SOFT:words]`` slots
#: and vocabulary vectors for the others.
DEFAULT_CANDIDATES: tuple[dict[str, list[Any]], ...] = (
    {"epochs": [0], "calibration": [None, "content_free"]},
    {"learning_rate": [1e-2, 3e-2, 1e-1]},
)


def _choose(results: dict[str, Any], rule: str) -> int:
    """The index of the chosen candidate in ``cv_results_`` (see ``rule``)."""
    means = np.nan_to_num(np.asarray(results["mean_test_score"], dtype=float), nan=-np.inf)
    best = int(np.argmax(means))
    if rule == "best":
        return best
    untrained = [i for i, p in enumerate(results["params"]) if p.get("epochs", None) == 0]
    if not untrained or best in untrained:
        return best
    keep = max(untrained, key=lambda i: (means[i], -i))
    folds = sum(1 for k in results if k.startswith("split") and k.endswith("_test_score"))
    se = float(results["std_test_score"][best]) / np.sqrt(max(folds, 1))
    return best if means[best] - means[keep] > se else keep


def _n_candidates(candidates: list[dict[str, list[Any]]]) -> int:
    return sum(math.prod(len(v) for v in grid.values()) for grid in candidates)


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == 0


def _untrained_apart(grid: dict[str, list[Any]], max_steps: Any) -> list[dict[str, list[Any]]]:
    """``grid``, its ``epochs=0`` candidates made untrained for sure.

    ``max_steps`` (the base estimator's, or listed in the grid) overrides ``epochs``, so
    ``epochs=0`` alone would still train; the untrained candidates become a grid of their
    own with ``max_steps=None``, listed first (a tie keeps them), the grid's other
    ``epochs`` values after it.
    """
    epochs = list(grid.get("epochs", ()))
    if not any(_is_zero(e) for e in epochs) or (max_steps is None and "max_steps" not in grid):
        return [grid]
    untrained = {**grid, "epochs": [0], "max_steps": [None]}
    rest = [e for e in epochs if not _is_zero(e)]
    return [untrained, {**grid, "epochs": rest}] if rest else [untrained]


def hard_patterns(pvp: Any) -> list[str]:
    """The hard patterns (without soft slots) of the template file that ``pvp`` refers
    to, as ``"file#name"`` references, ``pvp``'s own pattern left out.

    Parameters
    ----------
    pvp : object
        A base estimator's ``pvp``: a shipped name or a template path, with or without
        ``#pattern``. Anything else (an inline dict, a PVP object, a PVP file holding
        one pattern) has no sibling patterns.

    Returns
    -------
    list of str
        In the file's order; empty when there are none or ``pvp`` cannot be read (the
        fit itself then reports why).
    """
    if not isinstance(pvp, (str, os.PathLike)):
        return []
    path = os.fspath(pvp).partition("#")[0]
    try:
        own = load_pvp(pvp).pattern.text
        pvps = load_pvps(path)
    except (PetKitError, OSError):
        return []
    return [
        f"{path}#{p.name.partition('#')[2]}"
        for p in pvps
        if p.name and "#" in p.name and not p.pattern.has_soft and p.pattern.text != own
    ]


def _with_hard(grids: list[dict[str, list[Any]]], refs: list[str]) -> list[dict[str, list[Any]]]:
    """``grids`` with the untrained hard patterns ``refs`` (raw and calibrated) after the
    leading untrained grids, so that a tie keeps an earlier untrained candidate."""
    if not refs:
        return grids
    untrained = 0
    while untrained < len(grids) and all(
        _is_zero(e) for e in grids[untrained].get("epochs", [None])
    ):
        untrained += 1
    hard = {"pvp": refs, "epochs": [0], "calibration": [None, "content_free"]}
    return [*grids[:untrained], hard, *grids[untrained:]]


def _is_missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):  # pandas.NA
        return True


def _examples(X: Any, y: Any) -> tuple[Any, np.ndarray]:
    """``X`` (an iterator such as a generator read into a list) and ``y`` as a 1-D array
    of labels, refused when stratified folds cannot be made from them.

    Raises
    ------
    InputError
        ``y`` is not one label per example (soft labels, a ragged list), a label is
        missing, or ``X`` and ``y`` differ in length.
    """
    if not hasattr(X, "__len__") and hasattr(X, "__iter__"):  # a generator: read it once
        X = list(X)
    try:
        labels = np.asarray(list(y), dtype=object)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"y must be one label per example, got {type(y).__name__} ({exc})"
        ) from exc
    if labels.ndim != 1:
        raise InputError(
            f"PromptClassifierCV needs one label per example to stratify its folds; y has"
            f" shape {labels.shape} (soft labels?). Pass hard labels, or train on soft"
            " labels with PromptClassifier"
        )
    missing = [i for i, v in enumerate(labels) if _is_missing(v)]
    if missing:
        raise InputError(
            f"y[{missing[0]}] is missing ({labels[missing[0]]!r}; {len(missing)} missing in"
            f" all); PromptClassifierCV needs a label for every example: drop or fill the"
            " examples without one"
        )
    if hasattr(X, "__len__") and len(X) != len(labels):
        raise InputError(f"X has {len(X)} examples but y has {len(labels)} labels")
    return X, labels


class PromptClassifierCV(ClassifierMixin, BaseEstimator):
    """A :class:`~pet_kit.PromptClassifier` whose settings are chosen by cross-validation
    on the training examples, keeping the untrained prompt when training does not help.

    ``fit`` runs repeated stratified k-fold cross-validation on ``(X, y)`` for every
    candidate (a scikit-learn ``GridSearchCV`` over ``candidates``, plus the untrained
    hard patterns of the PVP's template file), chooses one by ``rule`` — by default the
    best untrained candidate unless a trained one is better by more than one standard
    error — and refits it on all of ``(X, y)``. Cross-validation is the check that
    training helps, so its fits run with ``guard=None`` (list ``"guard"`` in a
    candidate grid to change that).

    Parameters
    ----------
    estimator : PromptClassifier, optional
        The base settings (PVP, backbone, ...); candidates override some of them.
        Default: ``PromptClassifier()`` (which then needs ``pvp`` in the candidates).
        Its ``max_steps`` (which overrides ``epochs``) does not apply to the
        ``epochs=0`` candidates: they are listed with ``max_steps=None``, so they stay
        untrained.
    candidates : list of dict, optional
        Parameter grids as in ``GridSearchCV(param_grid=...)``, e.g.
        ``[{"epochs": [0]}, {"learning_rate": [1e-2, 1e-1], "epochs": [10, 30]}]``.
        Nested names reach grouped settings (``"tuning__mode"``); listing several
        ``pvp`` values chooses the pattern (and so its slot count) too. Default:
        :data:`DEFAULT_CANDIDATES` — the untrained prompt, raw and calibrated, and three
        learning rates at the base estimator's epochs.
    hard_patterns : bool, default=True
        Add the *hard* patterns (without soft slots) of the template file the base
        estimator's ``pvp`` names (``"rotten_tomatoes#soft"``: ``it_was``, ``just``,
        ``all_in_all``), untrained (``epochs=0``), raw and with content-free
        calibration, as candidates after the leading untrained ones (whatever
        ``candidates`` says). They cost only scoring. An inline or single-pattern PVP
        has none.
    n_splits : int, optional
        Folds per repetition; default ``min(4, smallest class count)``. Each class needs
        at least 2 examples.
    n_repeats : int, default=2
        Repetitions of the k-fold split with different shuffles (few examples make one
        split noisy).
    max_fits : int, optional
        Budget: at most this many training runs in cross-validation (candidates x folds x
        repeats). ``n_repeats`` and then ``n_splits`` (down to 2) shrink to fit; a budget
        below ``2 * candidates`` is an error.
    rule : {"one_se", "best"}, default="one_se"
        ``"best"``: the candidate of the best mean accuracy (the first listed on a tie).
        ``"one_se"``: the one-standard-error rule — the untrained prompt (the best of the
        ``epochs=0`` candidates) is kept unless the best candidate's mean beats it by more
        than the best candidate's standard error over the folds: with a handful of
        examples per fold the best of several noisy estimates is optimistic, and training
        must be clearly better to be worth it.
    random_state : int or None
        Seeds the splits and, when the base estimator has none, its training.
    verbose : int, default=1
        ``0``: silent. ``1``: one progress bar over every fit (candidates x folds x
        repeats, then the refit), with an ETA; the fits' own bars are off. ``2`` or
        more: also ``GridSearchCV``'s lines (its ``verbose=verbose - 1``) and each
        fit's own bars and summary at the base estimator's ``verbose``.

    Attributes
    ----------
    best_estimator_ : PromptClassifier
        The chosen candidate refitted on all of ``(X, y)``.
    best_params_ : dict
        The chosen candidate's parameters.
    best_score_ : float
        Its mean cross-validated accuracy.
    cv_results_ : dict
        Per candidate: parameters, mean/std accuracy, fold scores, fit times
        (``GridSearchCV.cv_results_``).
    n_splits_, n_repeats_ : int
        The split actually used (after the budget).
    classes_ : ndarray
    """

    def __init__(
        self,
        estimator: PromptClassifier | None = None,
        *,
        candidates: list[dict[str, list[Any]]] | None = None,
        hard_patterns: bool = True,
        n_splits: int | None = None,
        n_repeats: int = 2,
        max_fits: int | None = None,
        rule: str = "one_se",
        random_state: Any = None,
        verbose: int = 1,
    ) -> None:
        self.estimator = estimator
        self.candidates = candidates
        self.hard_patterns = hard_patterns
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.max_fits = max_fits
        self.rule = rule
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    def _candidates(self, base: PromptClassifier) -> list[dict[str, list[Any]]]:
        """The candidate grids, checked, with the hard patterns (``hard_patterns``);
        ``epochs=0`` ones untrained whatever ``base``'s ``max_steps``
        (:func:`_untrained_apart`)."""
        given = DEFAULT_CANDIDATES if self.candidates is None else self.candidates
        if isinstance(given, dict):
            raise InputError(
                f"candidates must be a list of dicts, got one dict {given!r}; wrap it in a"
                " list: candidates=[{...}]"
            )
        if isinstance(given, (str, bytes)) or not isinstance(given, (list, tuple)) or not given:
            raise InputError(
                "candidates must be a non-empty list of dicts of parameter lists (None: the"
                f" defaults), got {given!r}"
            )
        known = base.get_params(deep=False)
        for grid in given:
            if not isinstance(grid, dict) or not grid:
                raise InputError(
                    f"candidates must be a list of non-empty dicts of parameter lists, got"
                    f" {given!r}"
                )
            for name, values in grid.items():
                if name not in known:
                    raise InputError(
                        f"candidates: {name!r} is not a parameter of {type(base).__name__}"
                        f"{did_you_mean(name, known)}"
                    )
                if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                    raise InputError(
                        f"candidates: {name!r} must map to a list of values, got {values!r}"
                    )
                if len(values) == 0:
                    raise InputError(f"candidates: {name!r} has no values")
                if name in PARAMETERS and PARAMETERS[name].check is not None:
                    for value in values:
                        PARAMETERS[name].check(name, value)
        grids = [dict(g) for g in given]
        if not isinstance(self.hard_patterns, (bool, np.bool_)):
            raise InputError(f"hard_patterns must be True or False, got {self.hard_patterns!r}")
        if self.hard_patterns:
            grids = _with_hard(grids, hard_patterns(base.get_params().get("pvp")))
        max_steps = base.get_params().get("max_steps")
        return [part for grid in grids for part in _untrained_apart(grid, max_steps)]

    def _split(self, y: np.ndarray, n_candidates: int) -> tuple[int, int]:
        """Folds and repeats for labels ``y`` within the budget."""
        classes, counts = np.unique(y, return_counts=True)
        if len(counts) < 2:
            raise InputError(
                f"y has one class ({classes[0]!r}); PromptClassifierCV needs at least 2"
                " examples of each of at least 2 classes to cross-validate"
            )
        if counts.min() < 2:
            raise InputError(
                "PromptClassifierCV needs at least 2 examples of each of at least 2 classes"
                f" to cross-validate (smallest class: {int(counts.min())}); use"
                " PromptClassifier for fewer"
            )
        if self.rule not in ("one_se", "best"):
            raise InputError(f"rule must be 'one_se' or 'best', got {self.rule!r}")
        PARAMETERS["random_state"].check("random_state", self.random_state)
        check_positive_int("n_repeats", self.n_repeats)
        check_positive_int("n_splits", self.n_splits, none_ok=True)
        check_positive_int("max_fits", self.max_fits, none_ok=True)
        splits = int(self.n_splits) if self.n_splits is not None else min(4, int(counts.min()))
        if splits < 2 or splits > counts.min():
            raise InputError(
                f"n_splits={splits} needs 2 <= n_splits <= the smallest class count"
                f" ({int(counts.min())})"
            )
        repeats = int(self.n_repeats)
        if self.max_fits is not None:
            budget = int(self.max_fits)
            if budget < 2 * n_candidates:
                raise InputError(
                    f"max_fits={budget} is below the minimum of 2 folds x {n_candidates}"
                    f" candidates = {2 * n_candidates}; raise it or list fewer candidates"
                )
            repeats = max(1, min(repeats, budget // (n_candidates * splits)))
            while n_candidates * splits * repeats > budget:
                splits -= 1
        return splits, repeats

    def fit(
        self, X: Any, y: Any, X_unlabeled: Any = None, sample_weight: Any = None
    ) -> PromptClassifierCV:
        """Cross-validate the candidates on ``(X, y)`` and refit the best on all of it.

        Parameters
        ----------
        X : texts (as for :meth:`PromptClassifier.fit`)
        y : array-like of labels
            A column of labels (``(n, 1)``, a one-column DataFrame) is read as labels.
        X_unlabeled : texts, optional
            Passed to every fit (calibration on unlabeled texts, PET's MLM loss); the
            candidates that read neither ignore them without a warning.
        sample_weight : array-like of shape (n_examples,), optional
            A weight >= 0 per example, passed to every fit (each fold's training
            examples' weights; see :meth:`PromptClassifier.fit`). Examples of weight 0
            are left out before the split. Not used by the cross-validated accuracy that
            chooses the candidate (unweighted) nor by untrained candidates
            (``epochs=0``).

        Returns
        -------
        self
        """
        base = clone(self.estimator) if self.estimator is not None else PromptClassifier()
        if base.random_state is None and self.random_state is not None:
            base.set_params(random_state=self.random_state)
        grids = self._candidates(base)
        n_candidates = _n_candidates(grids)
        if "guard" in base.get_params() and not any("guard" in g for g in grids):
            base.set_params(guard=None)  # cross-validation is the check
        if X is not None and y is None:
            raise InputError(
                "PromptClassifierCV requires y to be passed, but the target y is None; it"
                " needs labelled examples: fit(X, y)"
            )
        if X is None:
            raise InputError("PromptClassifierCV needs labelled examples: fit(X, y)")
        y = label_vector(y)
        X, y_arr = _examples(X, y)
        y = y_arr  # an iterator is read once: the search gets the labels read
        for i, label in enumerate(y_arr):
            check_label(label, i)
        if looks_continuous(y_arr):
            raise InputError(f"{CONTINUOUS_HINT}; pass the class labels of the examples")
        names, y_idx = np.unique(y_arr.astype(str), return_inverse=True)
        keep, weights = fit_weights(sample_weight, y_idx, names.tolist())
        if keep is not None:  # examples of weight 0: as if not given
            kept = np.flatnonzero(keep)
            X, y, y_idx = _safe_indexing(X, kept), y_arr[kept], y_idx[kept]
        splits, repeats = self._split(names[y_idx], n_candidates)
        # the folds stratify the labels' string forms: labels of any type (an object
        # column mixing ints and strings) split as they are matched
        cv = list(
            RepeatedStratifiedKFold(
                n_splits=splits, n_repeats=repeats, random_state=self.random_state
            ).split(np.zeros(len(y_idx)), y_idx)
        )
        log.info(
            "choosing among %d candidates by %d x %d-fold cross-validation (%d fits)",
            n_candidates,
            repeats,
            splits,
            n_candidates * splits * repeats,
        )
        verbose = int(self.verbose)
        own_verbose = base.get_params().get("verbose")
        quiet_fits = verbose <= 1 and own_verbose is not None
        if quiet_fits:  # one overall bar instead of every fit's own
            base.set_params(verbose=0)
        n_fits = n_candidates * len(cv)
        bar = tqdm(total=n_fits + 1, desc="PromptClassifierCV", unit="fit", disable=verbose <= 0)

        def accuracy(estimator: PromptClassifier, X_test: Any, y_test: Any) -> float:
            """The default score (accuracy), counting the fit it ends."""
            try:
                return float(estimator.score(X_test, y_test))
            finally:
                bar.update(1)

        search = GridSearchCV(
            base,
            grids,
            scoring=accuracy,
            cv=cv,
            refit=partial(_choose, rule=self.rule),
            error_score=np.nan,
            verbose=max(0, verbose - 1),
        )
        fit_params = {} if X_unlabeled is None else {"X_unlabeled": X_unlabeled}
        if weights is not None:
            fit_params["sample_weight"] = weights
        try:
            with warnings.catch_warnings():
                # X_unlabeled goes to every candidate; those that do not read it need not say so
                warnings.filterwarnings("ignore", r"X_unlabeled \(\d+ texts\) is not used")
                search.fit(X, y, **fit_params)
            bar.update(bar.total - bar.n)  # the refit (and fits that failed)
        finally:
            bar.close()
        if quiet_fits:  # the chosen prompt predicts at the base estimator's verbose
            search.best_estimator_.set_params(verbose=own_verbose)
        self.best_estimator_ = search.best_estimator_
        self.best_params_ = search.best_params_
        self.best_score_ = float(search.cv_results_["mean_test_score"][search.best_index_])
        self.cv_results_ = search.cv_results_
        self.n_splits_, self.n_repeats_ = splits, repeats
        self.classes_ = self.best_estimator_.classes_
        log.info("chose %s (cross-validated accuracy %.4f)", self.best_params_, self.best_score_)
        return self

    # ------------------------------------------------------------ delegation
    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores of the chosen prompt (for two classes one score per example:
        see :meth:`PromptClassifier.decision_function`)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the chosen prompt (columns: ``classes_``)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Labels predicted by the chosen prompt."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def save(self, path: Any, *, overwrite: bool = False) -> Any:
        """Save the chosen prompt (a regular prompt folder, loadable with
        :meth:`PromptClassifier.load`); ``overwrite`` as in :meth:`PromptClassifier.save`."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.save(path, overwrite=overwrite)
