"""The estimator's parameters: one table of defaults, grouped settings that nest."""

from __future__ import annotations

import inspect

import pytest
from conftest import NEG, POS, tiny_clf
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from pet_kit import DeepPrompt, EarlyStopping, InputError, PromptClassifier, Tuning
from pet_kit.config.settings import DEFAULTS, PARAMETERS
from pet_kit.train.loop import TrainConfig


def test_the_signature_is_the_table():
    """Names, order and defaults of ``PromptClassifier(...)`` are the settings table's."""
    sig = inspect.signature(PromptClassifier).parameters
    assert list(sig) == list(PARAMETERS)
    assert {k: p.default for k, p in sig.items()} == dict(DEFAULTS)


def test_the_trainer_uses_the_same_defaults():
    config = TrainConfig()
    for name in ("learning_rate", "epochs", "batch_size", "weight_decay", "temperature"):
        assert getattr(config, name) == DEFAULTS[name], name


def test_a_grid_reaches_a_group_field(tiny_dir):
    X, y = POS[:4] + NEG[:4], ["positive"] * 4 + ["negative"] * 4
    base = tiny_clf(tiny_dir, epochs=1, tuning=Tuning("prompt+head"))
    search = GridSearchCV(base, {"tuning__mode": ["prompt", "prompt+head"]}, cv=2).fit(X, y)
    assert [p["tuning__mode"] for p in search.cv_results_["params"]] == ["prompt", "prompt+head"]
    assert search.best_estimator_.tuning.mode in ("prompt", "prompt+head")
    assert base.tuning == Tuning("prompt+head")  # the grid worked on clones
    copy = clone(base)
    assert copy.tuning == base.tuning and copy.tuning is not base.tuning


def test_group_fields_are_recorded_and_restored(tiny_dir, tmp_path):
    X, y = POS[:4] + NEG[:4], ["positive"] * 4 + ["negative"] * 4
    clf = tiny_clf(tiny_dir, epochs=1, batching={"eval_batch_size": 3}).fit(X, y)
    back = PromptClassifier.load(clf.save(tmp_path / "p"))
    assert back.settings().batching.eval_batch_size == 3
    assert back.predict_proba(X) == pytest.approx(clf.predict_proba(X))


@pytest.mark.parametrize(
    ("start", "nested", "expected"),
    [
        ({"tuning": "lora"}, {"tuning__rank": 4}, ("tuning", Tuning("lora", rank=4))),
        ({"tuning": {"mode": "full"}}, {"tuning__alpha": 2.0},
         ("tuning", Tuning("full", alpha=2.0))),
        ({}, {"deep_prompt__length": 3}, ("deep_prompt", DeepPrompt(3))),
        ({"early_stopping": True}, {"early_stopping__n_iter_no_change": 2},
         ("early_stopping", EarlyStopping(n_iter_no_change=2))),
    ],
)  # fmt: skip
def test_set_params_reaches_a_field_of_a_shorthand_group(start, nested, expected):
    clf = PromptClassifier(**start).set_params(**nested)
    name, value = expected
    assert getattr(clf, name) == value


def test_set_params_leaves_the_callers_group_object_alone():
    mine = Tuning("lora")
    clf = PromptClassifier(tuning=mine).set_params(tuning__rank=2)
    assert clf.tuning.rank == 2 and mine.rank == 8


def test_set_params_on_an_off_group_needs_its_required_fields():
    with pytest.raises(InputError, match=r"the field\(s\) \['length'\] are required"):
        PromptClassifier().set_params(deep_prompt__encoder="mlp")
