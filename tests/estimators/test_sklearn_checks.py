"""scikit-learn's own estimator checks on every pet_kit estimator.

The checks feed numeric arrays, while pet_kit's estimators classify texts (their tags say
so, and ``check_estimator`` then runs almost nothing). So each estimator is checked
through a thin adapter: a subclass that validates the numeric ``X`` as scikit-learn
estimators do (``validate_data``: 2-D, finite, ``n_features_in_``), turns each row into a
text of words from the tiny test vocabulary (one word per feature, by the value's bucket),
and gives the estimator a verbalizer for the labels it is fitted on. ``y`` and
``sample_weight`` reach the estimator untouched, so the checks of labels, weights,
``decision_function``, ``predict_proba``, pickling, cloning and parameters test pet_kit.

Every check that fails is listed in ``EXPECTED_FAILURES`` with the reason; a listed check
that starts passing fails the test too, so the list stays true.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from conftest import WORDS
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted, validate_data

from pet_kit import LinearStudent, PromptClassifier, PromptClassifierCV, PromptEnsemble

#: One label word per class, in this order (the checks use at most a few classes).
LABEL_WORDS = ["great", "terrible", "good", "bad", "fun", "dull", "nice", "poor", "best"]
#: The words a numeric value can become: 9 buckets per feature, features cycling through.
FEATURE_WORDS = [w for w in WORDS if w not in LABEL_WORDS and w.isalpha()][:45]
PATTERNS = ("[SOFT*2] {text} It was [MASK].", "[SOFT] Just [MASK]! {text}")
#: A label the adapter adds when ``y`` has a single class (a verbalizer needs two).
OTHER = "<other>"


def _texts(X: np.ndarray) -> list[str]:
    """Each row as words: feature ``j``'s value rounded into one of 9 buckets."""
    buckets = np.clip(np.rint(X), -4, 4).astype(int) + 4
    n = len(FEATURE_WORDS)
    return [
        " ".join(FEATURE_WORDS[(9 * j + int(b)) % n] for j, b in enumerate(row)) for row in buckets
    ]


def _labels(y: Any) -> list[Any]:
    """The sorted distinct labels of ``y`` as Python scalars (the adapter's only look at
    ``y``, to write a verbalizer; pet_kit gets ``y`` itself): at least two, at most one
    per label word (more, e.g. regression targets, stay unknown to the verbalizer),
    missing values left out (pet_kit then reports them)."""
    if y is None:
        values: list[Any] = []
    else:
        values = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(y).ravel()]
    values = [v for v in values if not (isinstance(v, float) and np.isnan(v))]
    labels = sorted(set(values), key=lambda v: (str(type(v)), v))[: len(LABEL_WORDS)]
    while len(labels) < 2:
        labels.append(OTHER if OTHER not in labels else OTHER + "2")
    return labels


def _pvp(labels: list[Any], pattern: str = PATTERNS[0]) -> dict[str, Any]:
    return {"pattern": pattern, "verbalizer": {k: [LABEL_WORDS[i]] for i, k in enumerate(labels)}}


@contextmanager
def _params(est: Any, params: dict[str, Any]) -> Iterator[None]:
    """Set ``params`` for one ``fit`` and put the given ones back (the checks verify that
    ``fit`` leaves its parameters as they were)."""
    saved = {k: getattr(est, k) for k in params}
    est.__dict__.update(params)
    try:
        yield
    finally:
        est.__dict__.update(saved)


class NumericText:
    """The adapter (a mixin in front of a pet_kit estimator): numeric rows to texts."""

    def label_params(self, labels: list[Any]) -> dict[str, Any]:
        """Parameters that give the estimator a verbalizer for ``labels``."""
        return {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = False
        tags.input_tags.two_d_array = True
        return tags

    def fit(self, X, y=None, sample_weight=None):
        X = validate_data(self, X, reset=True)
        with _params(self, self.label_params(_labels(y))):
            return super().fit(_texts(X), y, sample_weight=sample_weight)

    def _as_texts(self, X) -> list[str]:
        if isinstance(X, list) and all(isinstance(t, str) for t in X):
            return X  # already converted (pet_kit's score calls predict)
        check_is_fitted(self)
        return _texts(validate_data(self, X, reset=False))

    def decision_function(self, X):
        return super().decision_function(self._as_texts(X))

    def predict_proba(self, X):
        return super().predict_proba(self._as_texts(X))

    def predict(self, X):
        return super().predict(self._as_texts(X))

    def score(self, X, y, sample_weight=None):
        return super().score(self._as_texts(X), y, sample_weight=sample_weight)


class TextPromptClassifier(NumericText, PromptClassifier):
    def label_params(self, labels):
        return {"pvp": _pvp(labels)}


class TextPromptClassifierCV(NumericText, PromptClassifierCV):
    def label_params(self, labels):
        return {"estimator": clone(self.estimator).set_params(pvp=_pvp(labels))}


class TextPromptEnsemble(NumericText, PromptEnsemble):
    def label_params(self, labels):
        return {"pvps": [_pvp(labels, p) for p in PATTERNS]}


class TextLinearStudent(NumericText, LinearStudent):
    pass


def _base(tiny_dir) -> PromptClassifier:
    return PromptClassifier(
        model=str(tiny_dir),
        epochs=2,
        batch_size=16,
        max_length=32,
        random_state=0,
        verbose=0,
        device="cpu",
    )


#: Why a check fails, one line each.
TRAIN_ACCURACY = (
    "asks for 83% training accuracy on numeric blobs: a frozen tiny random BERT reading"
    " them as bucket words, with 2 soft slots trained for 2 epochs, cannot reach it"
    " (prompts rely on a pretrained backbone reading real text)"
)
MINI_BATCH_WEIGHTS = (
    "mini-batch training: an integer weight scales an example's loss, while repeating"
    " the example changes the batches and the steps per epoch, so the prompts differ"
    " (the weighted loss is the repeated data's loss)"
)
BATCH_FLOAT32 = (
    "float32 forward passes over batches of another size differ in the last bits"
    " (about 1e-7 in probability, above the check's atol=1e-7)"
)
# expected failures whose outcome the CPU decides: the last bits of a float32 batch differ
# on some machines and not on others (measured: it fails on the earlier CI machines and
# passes on a fresh one of 2026-12-06), so passing is no news there; every other expected
# failure must still fail
BY_HARDWARE = {"check_methods_subset_invariance"}
PROMPT_FAILURES = {
    "check_classifiers_train": TRAIN_ACCURACY,
    "check_sample_weight_equivalence_on_dense_data": MINI_BATCH_WEIGHTS,
    "check_methods_subset_invariance": BATCH_FLOAT32,
}

EXPECTED_FAILURES = {
    "PromptClassifier": PROMPT_FAILURES,
    "PromptClassifierCV": {
        **PROMPT_FAILURES,
        "check_sample_weight_equivalence_on_dense_data": (
            "its 15 examples with weight 0 on some leave a class with fewer than 2, too few"
            " to cross-validate (and, as for PromptClassifier, mini-batch training)"
        ),
    },
    "PromptEnsemble": PROMPT_FAILURES,
    "LinearStudent": {
        "check_sample_weight_equivalence_on_dense_data": (
            "float32 L-BFGS stops at its tolerance: the weighted and the repeated-rows fits"
            " (the same loss) agree to about 2e-4 in probability, not to the check's 1e-7"
        ),
    },
}


def _estimator(name: str, tiny_dir) -> Any:
    if name == "PromptClassifier":
        return TextPromptClassifier(**_base(tiny_dir).get_params())
    if name == "PromptClassifierCV":
        candidates = [{"learning_rate": [3e-2]}]
        return TextPromptClassifierCV(
            _base(tiny_dir), candidates=candidates, n_splits=2, n_repeats=1, random_state=0
        )
    if name == "PromptEnsemble":
        return TextPromptEnsemble(None, _base(tiny_dir), random_state=0)
    return TextLinearStudent(model=str(tiny_dir), device="cpu")


@pytest.mark.parametrize("name", list(EXPECTED_FAILURES))
def test_scikit_learn_estimator_checks(name, tiny_dir):
    expected = EXPECTED_FAILURES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            _estimator(name, tiny_dir),
            expected_failed_checks=expected,
            on_fail=None,
            on_skip=None,
        )
    failed = {
        r["check_name"]: repr(r["exception"])[:400] for r in results if r["status"] == "failed"
    }
    assert not failed, f"scikit-learn checks failed: {failed}"
    passing = sorted(
        r["check_name"]
        for r in results
        if r["expected_to_fail"] and r["status"] == "passed" and r["check_name"] not in BY_HARDWARE
    )
    assert not passing, f"expected to fail but passed (remove from the list): {passing}"
    unknown = set(expected) - {r["check_name"] for r in results}
    assert not unknown, f"listed but not run: {unknown}"
    ran = [r for r in results if r["status"] != "skipped"]
    assert len(ran) > 30  # the adapter makes scikit-learn run its checks, not skip them
