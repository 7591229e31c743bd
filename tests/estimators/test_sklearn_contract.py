"""The scikit-learn contract of every estimator, on text: binary ``decision_function``,
label ``y`` in the shapes scikit-learn accepts, and ``fit(..., sample_weight=...)``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import NEG, POS, SENTIMENT_PVP, tiny_clf
from sklearn.exceptions import DataConversionWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score

from pet_kit import InputError, LinearStudent, PromptClassifierCV, PromptEnsemble

X = POS + NEG
Y = np.array(["positive"] * len(POS) + ["negative"] * len(NEG))
TOPICS = {
    "pattern": "[SOFT*2] {text} It is about [MASK].",
    "verbalizer": {"sport": ["sports"], "tech": ["technology"], "news": ["news"]},
}


class OnlyArray:
    """Exposes only ``__array__``: no ``__len__``, no iteration (like scikit-learn's
    ``_NotAnArray``)."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)


def _estimators(tiny_dir):
    """One of each estimator, on the tiny model, fast."""
    base = tiny_clf(tiny_dir, epochs=2)
    second = {"pattern": "[SOFT] Just [MASK]! {text}", "verbalizer": SENTIMENT_PVP["verbalizer"]}
    return {
        "PromptClassifier": base,
        "PromptClassifierCV": PromptClassifierCV(
            base, candidates=[{"learning_rate": [3e-2]}], n_splits=2, n_repeats=1, random_state=0
        ),
        "PromptEnsemble": PromptEnsemble([SENTIMENT_PVP, second], base, random_state=0),
        "LinearStudent": LinearStudent(model=str(tiny_dir), device="cpu"),
    }


NAMES = ["PromptClassifier", "PromptClassifierCV", "PromptEnsemble", "LinearStudent"]


@pytest.fixture()
def estimator(request, tiny_dir):
    return _estimators(tiny_dir)[request.param]


# ----------------------------------------------------------- decision_function
@pytest.mark.parametrize("estimator", NAMES, indirect=True)
def test_binary_decision_function_is_one_score_per_example(estimator):
    """Positive means ``classes_[1]``; the sigmoid of the score is ``predict_proba[:, 1]``."""
    est = estimator.fit(X, Y)
    scores = est.decision_function(X)
    assert scores.shape == (len(X),)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(1 / (1 + np.exp(-scores)), proba[:, 1], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(est.classes_[(scores > 0).astype(int)], est.predict(X))


def test_roc_auc_works_in_cross_val_score(tiny_dir):
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(tiny_clf(tiny_dir, epochs=2), X, Y, cv=cv, scoring="roc_auc")
    assert np.isfinite(scores).all()


def test_multiclass_decision_function_keeps_one_column_per_class(tiny_dir):
    texts = ["sports news", "tech news", "world news", "the sport", "science tech", "news"]
    labels = ["sport", "tech", "news", "sport", "tech", "news"]
    clf = tiny_clf(tiny_dir, pvp=TOPICS, epochs=1).fit(texts, labels)
    assert clf.decision_function(texts).shape == (6, 3)
    student = LinearStudent(model=str(tiny_dir), device="cpu").fit(texts, labels)
    assert student.decision_function(texts).shape == (6, 3)
    second = {"pattern": "[SOFT] About [MASK]: {text}", "verbalizer": TOPICS["verbalizer"]}
    ensemble = PromptEnsemble([TOPICS, second], tiny_clf(tiny_dir, epochs=1)).fit(texts, labels)
    scores = ensemble.decision_function(texts)
    assert scores.shape == (6, 3)
    np.testing.assert_allclose(np.exp(scores), ensemble.predict_proba(texts), rtol=1e-6)


# ------------------------------------------------------------------- y shapes
@pytest.mark.parametrize("estimator", NAMES, indirect=True)
@pytest.mark.parametrize("form", ["column", "frame", "only_array"])
def test_a_column_of_labels_is_labels(estimator, form):
    """An (n, 1) y, a one-column DataFrame and an object exposing only ``__array__``
    train exactly as the 1-D labels."""
    from sklearn.base import clone

    expected = clone(estimator).fit(X, Y).predict_proba(X)
    y = {
        "column": Y[:, None],
        "frame": pd.DataFrame({"label": Y}),
        "only_array": OnlyArray(Y),
    }[form]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = estimator.fit(X, y).predict_proba(X)
        assert estimator.score(X, y) == pytest.approx(estimator.score(X, Y))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if form != "only_array":  # scikit-learn's own warning for a column-vector y
        assert any(issubclass(w.category, DataConversionWarning) for w in caught)


def test_labels_of_an_object_column_cross_validate(tiny_dir):
    """Integer labels in an object array (a pandas object column) stratify the folds."""
    labels = {"pattern": SENTIMENT_PVP["pattern"], "verbalizer": {1: ["great"], 0: ["bad"]}}
    y = np.array([1] * len(POS) + [0] * len(NEG), dtype=object)
    est = _estimators(tiny_dir)["PromptClassifierCV"]
    est.set_params(estimator=est.estimator.set_params(pvp=labels))
    assert list(est.fit(X, y).classes_) == [0, 1]


@pytest.mark.parametrize("estimator", NAMES, indirect=True)
def test_missing_or_unusable_y_is_a_named_error(estimator):
    with pytest.raises(InputError, match="requires y to be passed, but the target y is None"):
        estimator.fit(X, None)
    with pytest.raises(InputError, match="continuous"):  # regression targets
        estimator.fit(X, np.linspace(0.05, 0.95, len(X)))
    with pytest.raises(InputError, match=r"y\[0\] is inf, not a label"):
        estimator.fit(X, np.r_[np.inf, np.ones(len(X) - 1)])


# -------------------------------------------------------------- sample_weight
@pytest.mark.parametrize("estimator", NAMES, indirect=True)
def test_sample_weight_changes_training_and_zero_weight_drops_an_example(estimator):
    from sklearn.base import clone

    plain = clone(estimator).fit(X, Y).predict_proba(X)
    uniform = clone(estimator).fit(X, Y, sample_weight=np.full(len(X), 3.0)).predict_proba(X)
    np.testing.assert_array_equal(uniform, plain)  # uniform weights train as no weights
    w = np.linspace(0.1, 5.0, len(X))
    weighted = clone(estimator).fit(X, Y, sample_weight=w).predict_proba(X)
    assert not np.allclose(weighted, plain, atol=1e-6)
    # an example of weight 0 counts as if it were not there
    keep = np.arange(len(X)) != 3
    without = clone(estimator).fit([X[i] for i in np.flatnonzero(keep)], Y[keep])
    zero = clone(estimator).fit(X, Y, sample_weight=keep.astype(float))
    np.testing.assert_allclose(
        zero.predict_proba(X), without.predict_proba(X), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("estimator", NAMES, indirect=True)
@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), "sample_weight has 3 values but X has 16 examples"),
        (np.ones((16, 2)), "sample_weight must be 1-D"),
        ([1.0] * 15 + [np.nan], r"sample_weight\[15\] is nan"),
        ([1.0] * 15 + [np.inf], r"sample_weight\[15\] is inf"),
        ([1.0] * 15 + [-1.0], r"sample_weight\[15\] is -1.0"),
        (np.zeros(16), "every sample_weight is 0"),
        (["a"] * 16, "sample_weight must hold numbers"),
        (np.r_[np.ones(8), np.zeros(8)], "positive weight on examples of at least two classes"),
    ],
)
def test_bad_sample_weights_are_named_errors(estimator, weights, message):
    with pytest.raises(InputError, match=message):
        estimator.fit(X, Y, sample_weight=weights)


def test_sample_weight_accepts_what_scikit_learn_passes(tiny_dir):
    """A list, a Series, an object exposing only ``__array__``: all the same weights."""
    w = np.linspace(0.5, 2.0, len(X))
    expected = tiny_clf(tiny_dir, epochs=2).fit(X, Y, sample_weight=w).predict_proba(X)
    for form in (list(w), pd.Series(w), OnlyArray(w)):
        got = tiny_clf(tiny_dir, epochs=2).fit(X, Y, sample_weight=form).predict_proba(X)
        np.testing.assert_array_equal(got, expected)
    kept = w.copy()
    tiny_clf(tiny_dir, epochs=2).fit(X, Y, sample_weight=w)
    np.testing.assert_array_equal(w, kept)  # never changed in place


def test_sample_weight_without_training_data_is_an_error(tiny_dir):
    with pytest.raises(InputError, match="sample_weight was given without training data"):
        tiny_clf(tiny_dir).fit(None, sample_weight=[1.0, 2.0])


def test_sample_weight_scales_the_loss_not_the_learning_rate(tiny_dir):
    """Only relative weights matter: ``w`` and ``10 * w`` train the same prompt."""
    w = np.linspace(0.5, 2.0, len(X))
    a = tiny_clf(tiny_dir, epochs=2).fit(X, Y, sample_weight=w)
    b = tiny_clf(tiny_dir, epochs=2).fit(X, Y, sample_weight=10 * w)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5, atol=1e-6)
