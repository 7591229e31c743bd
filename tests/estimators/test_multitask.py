"""One soft prompt trained on several tasks; rank-1 per-task adaptation of a saved prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NEG, POS, tiny_clf

from pet_kit import InputError, PromptClassifier
from pet_kit.estimators.multitask import train_shared_prompt
from pet_kit.serving.bank import PromptBank

X = POS[:4] + NEG[:4]
SENTIMENT = {
    "pattern": "[SOFT*2] {text} It was [MASK].",
    "verbalizer": {"positive": ["great"], "negative": ["terrible"]},
}
QUALITY = {
    "pattern": "[SOFT*2] Quality: [MASK]. {text}",
    "verbalizer": {"high": ["good"], "low": ["bad"], "mixed": ["fine"]},
}


def _tasks():
    return {
        "sentiment": (SENTIMENT, X, ["positive"] * 4 + ["negative"] * 4),
        "quality": (QUALITY, X[:3] + X[4:7], ["high"] * 2 + ["mixed"] + ["low"] * 3),
    }


def test_one_prompt_serves_every_task(tiny_dir, tmp_path):
    fitted = train_shared_prompt(_tasks(), tiny_clf(tiny_dir, epochs=3))
    a, b = fitted["sentiment"], fitted["quality"]
    assert a.prompt_ is b.prompt_  # one shared tensor
    assert not torch.allclose(a.prompt_().detach(), a.prompt_init_)  # it trained
    assert list(b.classes_) == ["high", "low", "mixed"]
    assert b.predict_proba(X).shape == (8, 3)
    bank = PromptBank()
    for name, clf in fitted.items():
        bank.add(name, clf.save(tmp_path / name))
    assert bank.predict_proba(X[:2], task="quality").shape == (2, 3)


def test_weights_change_what_training_sees(tiny_dir):
    even = train_shared_prompt(_tasks(), tiny_clf(tiny_dir, epochs=2))
    skew = train_shared_prompt(
        _tasks(), tiny_clf(tiny_dir, epochs=2), weights={"sentiment": 9, "quality": 1}
    )
    assert not torch.allclose(even["sentiment"].prompt_(), skew["sentiment"].prompt_())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"quality": (dict(QUALITY, pattern="[SOFT] {text} [MASK]"), X, ["high", "low"] * 4)},
         "same number of soft slots"),
        ({"only": None}, "at least two tasks"),
    ],
)  # fmt: skip
def test_tasks_that_cannot_share_are_refused(tiny_dir, change, match):
    tasks = {**_tasks(), **change} if "only" not in change else {"only": _tasks()["sentiment"]}
    with pytest.raises(InputError, match=match):
        train_shared_prompt(tasks, tiny_clf(tiny_dir, epochs=1))


def test_rank1_adaptation_scales_a_saved_prompt(tiny_dir, tmp_path):
    source = train_shared_prompt(_tasks(), tiny_clf(tiny_dir, epochs=2))["sentiment"]
    folder = source.save(tmp_path / "shared")
    y = ["positive"] * 4 + ["negative"] * 4
    clf = tiny_clf(
        tiny_dir, pvp=SENTIMENT, prompt_init=str(folder), prompt_encoder="rank1", epochs=3
    ).fit(X, y)
    start, end = clf.prompt_init_, clf.prompt_().detach().float()
    assert torch.allclose(start, source.prompt_().detach().float())
    ratio = end / start  # e * (u v^T): a rank-1 matrix of scales
    assert torch.linalg.matrix_rank(ratio).item() == 1
    assert not torch.allclose(end, start)
    back = PromptClassifier.load(clf.save(tmp_path / "adapted"))
    assert np.allclose(back.predict_proba(X), clf.predict_proba(X))


def test_a_shared_prompt_can_start_from_a_saved_prompt(tiny_dir, tmp_path):
    source = train_shared_prompt(_tasks(), tiny_clf(tiny_dir, epochs=1))["sentiment"]
    folder = source.save(tmp_path / "start")
    fitted = train_shared_prompt(_tasks(), tiny_clf(tiny_dir, prompt_init=str(folder), epochs=1))
    start = fitted["quality"].prompt_init_
    assert torch.allclose(start, source.prompt_().detach().float())  # prompt transfer
    assert not torch.allclose(fitted["quality"].prompt_().detach().float(), start)


def test_a_shared_prompt_names_a_prompt_init_that_is_no_folder(tiny_dir, tmp_path):
    with pytest.raises(InputError, match="neither one of"):
        train_shared_prompt(_tasks(), tiny_clf(tiny_dir, prompt_init=str(tmp_path / "none")))
