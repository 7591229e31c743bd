"""Settings chosen by cross-validation on the few examples."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NEG, POS, tiny_clf

from pet_kit import InputError, PromptClassifier, PromptClassifierCV

X = POS[:6] + NEG[:6]
Y = ["positive"] * 6 + ["negative"] * 6


def test_it_chooses_by_cross_validation_and_refits(tiny_dir):
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir, epochs=2), n_splits=3, n_repeats=1, rule="best", random_state=0
    ).fit(X, Y)
    results = cv.cv_results_
    assert len(results["params"]) == 5  # 2 untrained + 3 learning rates
    best = int(np.argmax(results["mean_test_score"]))
    assert cv.best_params_ == results["params"][best]
    assert cv.best_score_ == pytest.approx(results["mean_test_score"][best])
    assert [results[f"split{i}_test_score"][0] for i in range(3)]  # 3 folds recorded
    assert isinstance(cv.best_estimator_, PromptClassifier)
    assert list(cv.classes_) == ["negative", "positive"]
    assert np.allclose(cv.predict_proba(X), cv.best_estimator_.predict_proba(X))
    # refitted on all of X: the chosen settings trained on the 12 examples
    assert cv.best_estimator_.get_params()["learning_rate"] in (3e-2, 1e-2, 1e-1)


def test_a_tie_keeps_the_untrained_prompt(tiny_dir):
    """When no trained candidate beats it, the untrained prompt is kept."""
    candidates = [{"epochs": [0]}, {"epochs": [0], "learning_rate": [1e-2]}]
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir), candidates=candidates, n_splits=2, n_repeats=1, random_state=0
    ).fit(X, Y)
    assert cv.best_params_ == {"epochs": 0}
    assert cv.best_estimator_.history_["steps"] == 0


def test_the_budget_shrinks_the_split(tiny_dir):
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir, epochs=1),
        candidates=[{"epochs": [0, 1]}],
        n_splits=3,
        n_repeats=3,
        max_fits=8,
        random_state=0,
    ).fit(X, Y)
    assert cv.n_splits_ * cv.n_repeats_ * 2 <= 8
    assert (cv.n_splits_, cv.n_repeats_) == (3, 1)  # repeats shrink before folds
    assert len([k for k in cv.cv_results_ if k.startswith("split")]) == 3


@pytest.mark.parametrize(
    ("kwargs", "X", "y", "match"),
    [
        ({}, X[:3] + X[6:7], Y[:3] + Y[6:7], "at least 2 examples of each"),
        ({"n_splits": 7}, X, Y, "n_splits=7 needs 2 <= n_splits"),
        ({"max_fits": 3}, X, Y, "max_fits=3 is below the minimum"),
        ({"candidates": [{"learning_rate": 0.1}]}, X, Y, "must map to a list"),
        ({"candidates": {"learning_rate": [0.1]}}, X, Y, r"got one dict .*wrap it in a list"),
        ({"candidates": []}, X, Y, r"non-empty list of dicts .*None: the defaults"),
        ({"candidates": [{"learnig_rate": [0.1]}]}, X, Y, "did you mean 'learning_rate'"),
        ({"candidates": [{"learning_rate": [float("nan")]}]}, X, Y, "learning_rate=nan"),
        ({"candidates": [{"epochs": []}]}, X, Y, "'epochs' has no values"),
        ({"rule": "median"}, X, Y, "rule must be 'one_se' or 'best'"),
    ],
)
def test_what_cannot_be_cross_validated_is_refused(tiny_dir, kwargs, X, y, match):
    with pytest.raises(InputError, match=match):
        PromptClassifierCV(tiny_clf(tiny_dir), **kwargs).fit(X, y)


def test_the_budget_shrinks_folds_once_repeats_are_one(tiny_dir):
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir, epochs=1),
        candidates=[{"epochs": [0, 1]}],
        n_splits=4,
        n_repeats=2,
        max_fits=6,
        random_state=0,
    ).fit(X, Y)
    assert (cv.n_splits_, cv.n_repeats_) == (3, 1)


def _results(means, stds, epochs):
    return {
        "mean_test_score": np.asarray(means),
        "std_test_score": np.asarray(stds),
        "params": [{"epochs": e} if e == 0 else {"learning_rate": 0.1} for e in epochs],
        "split0_test_score": np.zeros(len(means)),
        "split1_test_score": np.zeros(len(means)),
        "split2_test_score": np.zeros(len(means)),
        "split3_test_score": np.zeros(len(means)),
    }


@pytest.mark.parametrize(
    ("means", "stds", "chosen"),
    [
        ([0.70, 0.75], [0.0, 0.2], 0),  # 0.05 better, se = 0.2 / 2 = 0.1: keep untrained
        ([0.70, 0.85], [0.0, 0.2], 1),  # 0.15 better than untrained: train
        ([0.80, 0.75], [0.0, 0.0], 0),  # untrained is simply best
    ],
)
def test_the_one_standard_error_rule(means, stds, chosen):
    from pet_kit.estimators.prompt_classifier_cv import _choose

    results = _results(means, stds, [0, 20])
    assert _choose(results, "one_se") == chosen
    assert _choose(results, "best") == int(np.argmax(means))


def test_the_untrained_candidate_stays_untrained_when_the_base_sets_max_steps(tiny_dir):
    """``max_steps`` overrides ``epochs``: ``epochs=0`` alone would train 5 steps."""
    base = tiny_clf(tiny_dir, max_steps=5)
    cv = PromptClassifierCV(
        base, candidates=[{"epochs": [0, 1]}], n_splits=2, n_repeats=1, rule="best"
    ).fit(X, Y)
    params = cv.cv_results_["params"]
    assert params[0] == {"epochs": 0, "max_steps": None}  # untrained, listed first
    assert params[1] == {"epochs": 1}  # trained: the base's max_steps applies
    only = PromptClassifierCV(base, candidates=[{"epochs": [0]}], n_splits=2, n_repeats=1)
    chosen = only.fit(X, Y).best_estimator_
    assert chosen.history_["steps"] == 0
    assert np.array_equal(chosen.prompt_().detach(), chosen.prompt_init_)
    assert base.max_steps == 5  # the caller's estimator is not changed


def test_a_generator_of_texts_is_read_once(tiny_dir):
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir), candidates=[{"epochs": [0]}], n_splits=2, n_repeats=1
    )
    assert cv.fit((x for x in X), iter(Y)).classes_.tolist() == ["negative", "positive"]


@pytest.mark.parametrize(
    ("kwargs", "y", "match"),
    [
        ({}, np.eye(2)[[1] * 6 + [0] * 6], r"one label per example.*shape \(12, 2\)"),
        ({}, [*Y[:-1], float("nan")], r"y\[11\] is missing"),
        ({}, [None, *Y[1:]], r"y\[0\] is missing"),
        ({}, Y[:-1], "X has 12 examples but y has 11"),
        ({"random_state": 2**70}, Y, "random_state must be None, an integer"),
        ({"random_state": "x"}, Y, "random_state must be None, an integer"),
    ],
)
def test_labels_folds_cannot_use_are_refused_clearly(tiny_dir, kwargs, y, match):
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir), candidates=[{"epochs": [0]}], n_splits=2, n_repeats=1, **kwargs
    )
    with pytest.raises(InputError, match=match):
        cv.fit(X, y)


def test_x_unlabeled_goes_to_every_candidate_without_unused_warnings(tiny_dir):
    import warnings

    candidates = [{"epochs": [0], "calibration": [None, "unlabeled"]}]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cv = PromptClassifierCV(
            tiny_clf(tiny_dir), candidates=candidates, n_splits=2, n_repeats=1, random_state=0
        ).fit(X, Y, X_unlabeled=["a film", "another film", "a third film"])
    read = [p for p in cv.cv_results_["params"] if p.get("calibration") == "unlabeled"]
    assert read and not np.isnan(cv.cv_results_["mean_test_score"]).any()
