"""The training guard: fit keeps the untrained prompt unless the examples show that
training helps."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import NEG, POS, tiny_clf
from sklearn.base import clone

from pet_kit import InputError, PromptClassifier
from pet_kit.train import guard, trainer
from pet_kit.train.loop import TrainingInterrupted, TrainResult

X = POS + NEG
Y = ["positive"] * 8 + ["negative"] * 8


def _guarded(tiny_dir, **kw):
    return tiny_clf(tiny_dir, guard="holdout", **kw)


@pytest.fixture()
def decide(monkeypatch):
    """Make the guard's rule answer ``helps`` (the probe still trains and is scored)."""
    calls = []

    def set_answer(helps: bool) -> list:
        def rule(untrained, trained):
            calls.append((untrained, trained))
            return helps

        monkeypatch.setattr(guard, "training_helps", rule)
        return calls

    return set_answer


def _same_prompt(a: PromptClassifier, b: PromptClassifier) -> bool:
    return torch.equal(a.prompt_(), b.prompt_()) and np.array_equal(
        a.predict_proba(X), b.predict_proba(X)
    )


def test_the_default_is_the_two_fold_guard():
    assert PromptClassifier().guard == "2fold"
    assert PromptClassifier(guard=None).get_params()["guard"] is None
    assert clone(PromptClassifier(guard=None)).guard is None


def test_an_unknown_guard_is_refused_by_name(tiny_dir):
    expected = r"guard must be one of \(None, 'holdout', '2fold', '4fold'\).*did you mean 'holdout'"
    with pytest.raises(InputError, match=expected):
        tiny_clf(tiny_dir, guard="holdot").fit(X, Y)


def test_it_keeps_the_untrained_prompt_when_training_does_not_help(tiny_dir, decide, caplog):
    calls = decide(False)
    with caplog.at_level(logging.INFO, logger="pet_kit.train.trainer"):
        clf = _guarded(tiny_dir, verbose=1).fit(X, Y)
    untrained = tiny_clf(tiny_dir, epochs=0).fit(X, Y)
    assert _same_prompt(clf, untrained)  # the slots at their initialisation
    summary = clf.fit_summary_
    assert summary["kept_untrained"] is True
    assert summary["steps"] == 0 and summary["trained"] == {}
    check = summary["guard"]
    assert check["kept_untrained"] is True and check["helps"] is False
    assert (check["n_train"], check["n_held_out"]) == ([12], 4)  # a stratified quarter
    assert check["probe_steps"] == 3 * 3  # the probe did train: 3 epochs of 12 examples
    assert set(check["untrained"]) == set(check["trained"]) == {"accuracy", "log_loss", "brier"}
    assert calls == [(check["untrained"], check["trained"])]
    assert clf.history_["guard"] == check and clf.history_["kept_untrained"] is True
    assert summary["text"].startswith("kept the untrained prompt")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [f"fit: {summary['text']}"]


def test_it_trains_on_all_examples_when_training_helps(tiny_dir, decide):
    decide(True)
    clf = _guarded(tiny_dir).fit(X, Y)
    plain = tiny_clf(tiny_dir, guard=None).fit(X, Y)
    # the probe uses neither the fit's random numbers nor its prompt: guard=None's result
    assert _same_prompt(clf, plain)
    assert clf.history_["steps"] == plain.history_["steps"] == 3 * 4
    assert clf.fit_summary_["kept_untrained"] is False
    assert clf.fit_summary_["guard"]["helps"] is True
    assert "guard: training beat the untrained prompt on 4 held-out" in clf.fit_summary_["text"]


@pytest.mark.parametrize("helps", [False, True])
def test_two_folds_score_every_example_with_a_probe_that_did_not_train_on_it(
    tiny_dir, decide, helps
):
    calls = decide(helps)
    clf = tiny_clf(tiny_dir, guard="2fold").fit(X, Y)
    check = clf.fit_summary_["guard"]
    assert (check["mode"], check["n_train"], check["n_held_out"]) == ("2fold", [8, 8], 16)
    assert check["probe_steps"] == 2 * (3 * 2)  # two probes: 3 epochs of 8 examples each
    assert len(calls) == 1  # one decision on the pooled held-out scores
    expected = tiny_clf(tiny_dir, guard=None, epochs=3 if helps else 0).fit(X, Y)
    assert _same_prompt(clf, expected)
    assert clf.fit_summary_["kept_untrained"] is (not helps)
    if not helps:
        assert "2 probes trained on 8 / 8 examples" in clf.fit_summary_["text"]


def test_probes_can_train_as_many_steps_as_the_fit(tiny_dir, decide, monkeypatch):
    """``guard.PROBE_STEPS = "fit"``: each probe takes the full fit's optimizer steps on its
    half (the decision and the final fit unchanged)."""
    decide(False)
    monkeypatch.setattr(guard, "PROBE_STEPS", "fit")
    clf = tiny_clf(tiny_dir, guard="2fold").fit(X, Y)
    assert clf.fit_summary_["guard"]["probe_steps"] == 2 * (3 * 4)  # 3 epochs of 16 each
    # an explicit budget is the probes' budget either way
    clf = tiny_clf(tiny_dir, guard="2fold", max_steps=5).fit(X, Y)
    assert clf.fit_summary_["guard"]["probe_steps"] == 2 * 5


def test_the_splits_are_stratified_and_seeded():
    y = np.array([0] * 8 + [1] * 8 + [2] * 4)
    for mode in ("holdout", "2fold", "4fold"):
        a = guard.splits(y, mode, np.random.RandomState(0))
        b = guard.splits(y, mode, np.random.RandomState(0))
        assert len(a) == len(b)
        for pair_a, pair_b in zip(a, b, strict=True):
            assert all(np.array_equal(x, z) for x, z in zip(pair_a, pair_b, strict=True))
        held = np.concatenate([h for _, h in a])
        for train, h in a:
            assert not set(train) & set(h)
            assert set(y[h]) == set(y[train]) == {0, 1, 2}  # every class on both sides
        assert len(held) == (5 if mode == "holdout" else 20)  # a quarter, or everything
    assert guard.splits(np.array([0, 0, 1]), "2fold", np.random.RandomState(0)).startswith(
        "a class has 1 example(s)"
    )


def test_four_folds_train_each_probe_on_three_quarters_or_as_many_folds_as_a_class_allows():
    y = np.array([0] * 8 + [1] * 8)
    folds = guard.splits(y, "4fold", np.random.RandomState(0))
    assert [(len(tr), len(h)) for tr, h in folds] == [(12, 4)] * 4
    assert sorted(np.concatenate([h for _, h in folds])) == list(range(16))  # each once
    # a class of three examples: three folds, still every example held out once
    y = np.array([0] * 8 + [1] * 3)
    folds = guard.splits(y, "4fold", np.random.RandomState(0))
    assert len(folds) == 3
    assert sorted(np.concatenate([h for _, h in folds])) == list(range(11))
    assert all(set(y[tr]) == {0, 1} for tr, _ in folds)


def test_the_rule_prefers_the_untrained_prompt_on_a_tie():
    u = {"accuracy": 0.75, "log_loss": 0.5, "brier": 0.4}
    assert not guard.training_helps(u, dict(u))
    assert not guard.training_helps(u, {**u, "accuracy": 0.5, "brier": 0.1})  # accuracy fell
    assert not guard.training_helps(u, {**u, "accuracy": 1.0, "brier": 0.45})  # Brier rose
    assert guard.training_helps(u, {**u, "brier": 0.3})
    # one confident mistake: the log-loss rises, the Brier score falls; the Brier score rules
    assert guard.training_helps(u, {"accuracy": 1.0, "log_loss": 1.2, "brier": 0.3})


def test_the_comparison_names_each_score_untrained_to_trained():
    u = {"accuracy": 0.5, "log_loss": 0.805, "brier": 0.62}
    t = {"accuracy": 0.75, "log_loss": 1.232, "brier": 0.42}
    assert guard.comparison(u, t) == (
        "Brier 0.620 -> 0.420, log-loss 0.805 -> 1.232, accuracy 0.500 -> 0.750"
    )
    # a check recorded before the Brier score was: the rest
    old = {"accuracy": 0.5, "log_loss": 0.8}
    assert guard.comparison(old, old) == "log-loss 0.800 -> 0.800, accuracy 0.500 -> 0.500"


def test_a_degenerate_learning_rate_changes_nothing_so_the_untrained_prompt_stays(tiny_dir):
    """The real rule on a probe that cannot move: held-out scores tie, untrained wins."""
    clf = _guarded(tiny_dir, learning_rate=1e-30).fit(X, Y)
    check = clf.fit_summary_["guard"]
    assert check["untrained"] == check["trained"]
    assert clf.fit_summary_["kept_untrained"] is True
    assert _same_prompt(clf, tiny_clf(tiny_dir, epochs=0).fit(X, Y))


def test_the_real_decision_follows_the_rule_and_is_deterministic(tiny_dir):
    for lr in (3e-2, 0.3):
        a = _guarded(tiny_dir, learning_rate=lr, epochs=6).fit(X * 2, Y * 2)
        b = _guarded(tiny_dir, learning_rate=lr, epochs=6).fit(X * 2, Y * 2)
        check = a.fit_summary_["guard"]
        assert check == {**b.fit_summary_["guard"], "seconds": check["seconds"]}
        assert _same_prompt(a, b)
        helps = guard.training_helps(check["untrained"], check["trained"])
        assert a.fit_summary_["kept_untrained"] is (not helps)
        reference = tiny_clf(tiny_dir, learning_rate=lr, epochs=6 if helps else 0, guard=None)
        assert _same_prompt(a, reference.fit(X * 2, Y * 2))


def test_guard_none_runs_no_probe(tiny_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the guard ran")

    monkeypatch.setattr(trainer, "check_training", fail)
    clf = tiny_clf(tiny_dir, guard=None).fit(X, Y)
    assert clf.fit_summary_["guard"] is None and clf.fit_summary_["kept_untrained"] is False
    assert clf.history_["steps"] > 0
    # nothing to check when nothing trains
    for fitted in (
        _guarded(tiny_dir).fit(None),
        _guarded(tiny_dir, epochs=0).fit(X, Y),
        _guarded(tiny_dir, max_steps=0).fit(X, Y),
    ):
        assert fitted.fit_summary_["guard"] is None


def test_too_few_examples_of_a_class_trains_unchecked_and_says_so(tiny_dir):
    clf = _guarded(tiny_dir).fit(X[:5] + X[8:9], Y[:5] + Y[8:9])  # one negative
    check = clf.fit_summary_["guard"]
    assert check["skipped"].startswith("a class has 1 example(s)")
    assert clf.fit_summary_["kept_untrained"] is False and clf.history_["steps"] > 0
    assert "guard skipped (a class has 1 example(s)" in clf.fit_summary_["text"]
    # two of each class: one held out per class
    two = _guarded(tiny_dir).fit(X[:2] + X[8:10], Y[:2] + Y[8:10])
    assert (two.fit_summary_["guard"]["n_train"], two.fit_summary_["guard"]["n_held_out"]) == (
        [2],
        2,
    )


def test_sample_weight_reaches_the_final_fit_and_the_held_out_scores(tiny_dir, decide):
    decide(True)
    w = [3.0, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 0]
    clf = _guarded(tiny_dir).fit(X, Y, sample_weight=w)
    plain = tiny_clf(tiny_dir, guard=None).fit(X, Y, sample_weight=w)
    assert _same_prompt(clf, plain)
    check = clf.fit_summary_["guard"]
    assert sum(check["n_train"]) + check["n_held_out"] == 15  # the weight-0 example left out
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 0, 1])
    unweighted = guard.held_out_scores(probs, y, y, None)
    weighted = guard.held_out_scores(probs, y, y, np.array([1.0, 0.0, 1.0]))
    assert unweighted["accuracy"] == pytest.approx(1 / 3)
    assert weighted["accuracy"] == pytest.approx(0.5)
    assert weighted["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.4)) / 2)
    # Brier: squared distance to the one-hot row, summed over classes
    assert unweighted["brier"] == pytest.approx((0.02 + 1.28 + 0.72) / 3)
    assert weighted["brier"] == pytest.approx((0.02 + 0.72) / 2)
    soft = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    assert guard.held_out_scores(probs, y, soft, None)["brier"] == pytest.approx(
        (0.32 + 1.28 + 0.72) / 3
    )


def test_soft_labels_and_other_modes_keep_exactly_the_untrained_model(tiny_dir, decide):
    decide(False)
    soft = np.array([[0.2, 0.8]] * 8 + [[0.9, 0.1]] * 8)
    cases = [
        ({}, soft),
        ({"tuning": "prompt+head"}, Y),
        ({"tuning": "head"}, Y),
        ({"deep_prompt": 2}, Y),
        ({"calibration": "content_free"}, Y),
        ({"early_stopping": True}, Y),
        ({"demonstrations": "random"}, Y),
    ]
    for params, y in cases:
        clf = _guarded(tiny_dir, **params).fit(X, y)
        untrained = tiny_clf(tiny_dir, epochs=0, **params).fit(X, y)
        assert clf.fit_summary_["kept_untrained"] is True, params
        assert np.allclose(clf.predict_proba(X), untrained.predict_proba(X), atol=1e-6), params


def test_a_warm_start_keeps_the_prompt_it_continued_from(tiny_dir, decide):
    first = tiny_clf(tiny_dir, guard=None).fit(X, Y)
    before = first.predict_proba(X)
    decide(False)
    first.set_params(warm_start=True, guard="holdout").fit(X, Y)
    assert first.fit_summary_["kept_untrained"] is True
    assert np.array_equal(first.predict_proba(X), before)


def test_ctrl_c_in_the_probe_leaves_the_untrained_prompt(tiny_dir, monkeypatch):
    real = trainer.train_model

    def interrupted(*args, **kwargs):
        if kwargs.get("desc", "").startswith("fit (guard"):
            raise TrainingInterrupted(TrainResult(interrupted=True))
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_model", interrupted)
    clf = _guarded(tiny_dir)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, Y)
    assert clf.history_["interrupted"] is True
    assert clf.fit_summary_["guard"]["interrupted"] is True
    assert _same_prompt(clf, tiny_clf(tiny_dir, epochs=0).fit(X, Y))
