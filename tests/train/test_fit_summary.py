"""fit says what it did: a hard pattern that cannot train warns, empty data is an error,
and every fit records and logs what trained, its steps, loss and held-out accuracy."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import SENTIMENT_PVP

from pet_kit import EarlyStopping, InputError, NothingTrainedWarning, PromptClassifier

HARD = {"pattern": "{text} It was [MASK].", "verbalizer": SENTIMENT_PVP["verbalizer"]}


# ------------------------------------------------------------------ a hard pattern
def test_a_hard_pattern_with_examples_warns_that_nothing_trains(make_clf, toy_data, caplog):
    X, y = toy_data
    with caplog.at_level(logging.WARNING, logger="pet_kit.train.trainer"):
        with pytest.warns(NothingTrainedWarning) as record:
            clf = make_clf(pvp=HARD).fit(X, y)
    message = str(record[0].message)
    assert "trained nothing" in message and "has no [SOFT] slots" in message
    assert "tuning='head'" in message and "[SOFT" in message and "fit(None)" in message
    assert record[0].filename == __file__  # points at the caller's fit
    assert any("trained nothing" in m for m in caplog.messages)
    assert issubclass(NothingTrainedWarning, UserWarning)
    assert clf.history_["zero_shot"] and clf.fit_summary_["n_trained"] == 0
    assert clf.fit_summary_["text"] == message


@pytest.mark.parametrize(
    "params",
    [
        {},  # fit(None): zero-shot was asked for
        {"epochs": 0},  # no training was asked for
    ],
)
def test_no_warning_when_no_training_was_asked_for(make_clf, toy_data, params):
    X, y = toy_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", NothingTrainedWarning)
        clf = make_clf(pvp=HARD, **params)
        clf.fit(None) if not params else clf.fit(X, y)


@pytest.mark.parametrize("tuning", ["head", "prompt+head"])
def test_a_hard_pattern_trains_its_readout_without_a_warning(make_clf, toy_data, tuning):
    X, y = toy_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", NothingTrainedWarning)
        clf = make_clf(pvp=HARD, tuning=tuning, epochs=1).fit(X, y)
    assert clf.fit_summary_["trained"] == {"label_head": clf.fit_summary_["n_trained"]}
    assert clf.fit_summary_["n_trained"] > 0
    assert clf.fit_summary_["text"].startswith("trained label head (soft verbalizer) (")


# ---------------------------------------------------------------------- empty data
@pytest.mark.parametrize(
    "make_xy",
    [
        lambda X, y: ([], []),
        lambda X, y: (pd.Series(X)[pd.Series(X) == "nope"], pd.Series(y)[pd.Series(X) == "nope"]),
        lambda X, y: (
            pd.DataFrame({"text": X, "label": y}).query("label == 'nope'")[["text"]],
            pd.DataFrame({"text": X, "label": y}).query("label == 'nope'")["label"],
        ),
    ],
    ids=["empty lists", "filtered Series", "filtered DataFrame"],
)
def test_empty_training_data_is_an_error(make_clf, toy_data, make_xy):
    X, y = make_xy(*toy_data)
    with pytest.raises(InputError, match=r"X is empty \(0 examples.*fit\(None\)"):
        make_clf().fit(X, y)


def test_fit_none_is_still_zero_shot(make_clf):
    clf = make_clf().fit(None)
    assert clf.history_["zero_shot"] and clf.fit_summary_["steps"] == 0


# -------------------------------------------------------------------- the summary
def test_the_summary_names_what_trained_steps_and_loss(make_clf, toy_data, caplog):
    X, y = toy_data
    with caplog.at_level(logging.INFO, logger="pet_kit.train.trainer"):
        clf = make_clf(epochs=2, verbose=1).fit(X, y)
    s = clf.fit_summary_
    n_values = clf.prompt_.embedding.numel()  # 2 slots x hidden size
    assert s["trained"] == {"prompt": n_values} and s["n_trained"] == n_values
    assert s["steps"] == clf.history_["steps"] == 8 and s["n_examples"] == len(X)
    assert s["final_train_loss"] == pytest.approx(clf.history_["train_loss"][-1])
    assert s["held_out"] is None
    assert clf.history_["summary"] == s
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"fit: {s['text']}" in lines
    assert f"trained soft prompt ({n_values} values) for 8 optimizer steps" in s["text"]
    assert f"final train loss {s['final_train_loss']:.4f}" in s["text"]


def test_the_summary_is_logged_at_debug_when_verbose_is_0(make_clf, toy_data, caplog):
    X, y = toy_data
    with caplog.at_level(logging.DEBUG, logger="pet_kit.train.trainer"):
        clf = make_clf(epochs=1, verbose=0).fit(X, y)
    record = next(r for r in caplog.records if r.getMessage().startswith("fit: trained"))
    assert record.levelno == logging.DEBUG and clf.fit_summary_["steps"] == 4


def test_the_summary_compares_held_out_accuracy_before_and_after(make_clf, toy_data):
    X, y = toy_data
    early = EarlyStopping(validation_fraction=0.25, n_iter_no_change=2)
    clf = make_clf(early_stopping=early, epochs=3, learning_rate=0.1).fit(X, y)
    held = clf.fit_summary_["held_out"]
    assert held["n"] == 4 and clf.fit_summary_["n_examples"] == 16
    untrained = make_clf(early_stopping=early, epochs=0).fit(X, y)
    assert untrained.fit_summary_["held_out"] is None  # nothing trained: no split scored
    # the held-out examples are those early stopping split off (same random_state)
    kept = clf.history_["best_epoch"]
    assert held["after"] == pytest.approx(clf.history_["val_accuracy"][kept - 1])
    assert 0.0 <= held["before"] <= 1.0
    text = clf.fit_summary_["text"]
    assert f"held-out accuracy (4 examples) {held['before']:.3f} before" in text
    assert "on 12 examples" in text


def test_the_summary_survives_save_and_load(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(epochs=1).fit(X, y)
    loaded = PromptClassifier.load(clf.save(tmp_path / "p"))
    assert loaded.fit_summary_ == clf.fit_summary_


def test_a_summary_of_a_partly_trained_part_counts_only_what_trains(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(prompt_encoder="rank1", epochs=1).fit(X, y)
    trained = clf.fit_summary_["trained"]["prompt"]
    assert 0 < trained < clf.prompt_.embedding.numel()  # the scales, not the frozen vectors
    np.testing.assert_equal(clf.fit_summary_["n_trained"], trained)
