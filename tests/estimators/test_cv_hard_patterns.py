"""PromptClassifierCV's untrained candidates: the soft prompt at its initialisation and
the hard patterns of the PVP's template file; its fits run without the guard."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NEG, POS, tiny_clf

from pet_kit import PromptClassifier, PromptClassifierCV
from pet_kit.estimators.prompt_classifier_cv import hard_patterns

X = POS + NEG
Y = ["positive"] * 8 + ["negative"] * 8

TEMPLATE = """\
verbalizer:
  labels:
    positive: [great, good]
    negative: [terrible, bad]
default: soft
patterns:
  - name: it_was
    pattern: "{text} it was [MASK]."
  - name: just
    pattern: "just [MASK]! {text}"
  - name: soft
    pattern: "[SOFT*2] {text} it was [MASK]."
"""


@pytest.fixture()
def template(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TEMPLATE)
    return str(path)


def test_hard_patterns_of_a_template(template):
    assert hard_patterns(f"{template}#soft") == [f"{template}#it_was", f"{template}#just"]
    assert hard_patterns(f"{template}#just") == [f"{template}#it_was"]  # its own left out
    assert hard_patterns(template) == [f"{template}#it_was", f"{template}#just"]
    assert hard_patterns("rotten_tomatoes#soft") == [
        "rotten_tomatoes#it_was",
        "rotten_tomatoes#just",
        "rotten_tomatoes#all_in_all",
    ]
    assert hard_patterns({"pattern": "{text} [MASK].", "verbalizer": {"a": ["great"]}}) == []
    assert hard_patterns(None) == []


def test_cross_validation_candidates_include_the_hard_patterns_and_untrained_soft(
    tiny_dir, template, monkeypatch
):
    guards = []
    real = PromptClassifier.fit

    def spy(self, *args, **kwargs):
        guards.append(self.guard)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PromptClassifier, "fit", spy)
    base = tiny_clf(tiny_dir, pvp=f"{template}#soft", epochs=1, guard="holdout")
    cv = PromptClassifierCV(base, n_splits=2, n_repeats=1, random_state=0).fit(X, Y)
    params = cv.cv_results_["params"]
    untrained = [p for p in params if p.get("epochs") == 0]
    assert untrained == [
        {"calibration": None, "epochs": 0},
        {"calibration": "content_free", "epochs": 0},
        *(
            {"calibration": c, "epochs": 0, "pvp": f"{template}#{name}"}
            for c in (None, "content_free")
            for name in ("it_was", "just")
        ),
    ]
    assert params[: len(untrained)] == untrained  # listed first: a tie keeps them
    assert len(params) == len(untrained) + 3  # and the three learning rates
    assert set(guards) == {None}  # cross-validation is the check: no guard in its fits
    assert cv.best_estimator_.guard is None
    off = PromptClassifierCV(base, hard_patterns=False, n_splits=2, n_repeats=1).fit(X, Y)
    assert all("pvp" not in p for p in off.cv_results_["params"])


def test_cross_validation_can_choose_a_hard_pattern(tiny_dir, template):
    base = tiny_clf(tiny_dir, pvp=f"{template}#soft")
    cv = PromptClassifierCV(
        base, candidates=[{"epochs": [0]}], n_splits=2, n_repeats=1, rule="best", random_state=0
    ).fit(X, Y)
    scores = cv.cv_results_["mean_test_score"]
    best = cv.cv_results_["params"][int(np.argmax(scores))]
    assert cv.best_params_ == best
    if "pvp" in best:  # the refit is that hard pattern, untrained
        assert cv.best_estimator_.pvp_.pattern.text in (
            "{text} it was [MASK].",
            "just [MASK]! {text}",
        )
    assert cv.best_estimator_.history_["steps"] == 0


def test_the_progress_bar_counts_the_hard_candidates(tiny_dir, template, monkeypatch):
    import io

    from tqdm import tqdm as std_tqdm

    import pet_kit.estimators.prompt_classifier_cv as module

    totals = []

    class Spy(std_tqdm):
        def __init__(self, *args, **kwargs):
            totals.append(kwargs.get("total"))
            super().__init__(*args, **{**kwargs, "file": io.StringIO()})

    monkeypatch.setattr(module, "tqdm", Spy)
    base = tiny_clf(tiny_dir, pvp=f"{template}#soft", epochs=1)
    PromptClassifierCV(base, candidates=[{"epochs": [0]}], n_splits=2, n_repeats=1, verbose=1).fit(
        X, Y
    )
    assert totals == [(1 + 2 * 2) * 2 + 1]  # (soft + 2 hard x 2 calibrations) x 2 folds + refit


def test_a_candidate_grid_can_turn_the_guard_on(tiny_dir):
    cv = PromptClassifierCV(
        tiny_clf(tiny_dir, epochs=1),
        candidates=[{"guard": ["holdout"]}],
        n_splits=2,
        n_repeats=1,
        random_state=0,
    ).fit(X, Y)
    assert cv.best_estimator_.guard == "holdout"
    assert cv.best_estimator_.fit_summary_["guard"] is not None
