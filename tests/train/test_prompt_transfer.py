"""Prompt transfer: a new task's slots start from a saved prompt's."""

from __future__ import annotations

import pytest
import torch
from conftest import NEG, POS, build_model, tiny_clf

from pet_kit import BackboneMismatchError, InputError, PromptClassifier

X = POS[:4] + NEG[:4]
Y = ["positive"] * 4 + ["negative"] * 4
TWO_SLOTS = {
    "pattern": "[SOFT*2] {text} It was [MASK].",
    "verbalizer": {"positive": ["great"], "negative": ["terrible"]},
}
FOUR_SLOTS = {
    "pattern": "[SOFT*4] {text} It was [MASK].",
    "verbalizer": {"good": ["great"], "bad": ["terrible"]},
}


@pytest.fixture(scope="module")
def source(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("src") / "prompt"
    tiny_clf(tiny_dir, pvp=TWO_SLOTS, epochs=3).fit(X, Y).save(folder)
    return folder


def test_a_new_task_starts_from_a_saved_prompt(tiny_dir, source):
    saved = PromptClassifier.load(source).prompt_().detach()
    y = ["good"] * 4 + ["bad"] * 4
    clf = tiny_clf(tiny_dir, pvp=FOUR_SLOTS, prompt_init=str(source), epochs=0).fit(X, y)
    start = clf.prompt_init_
    assert torch.allclose(start[:2], saved.float())  # the saved prompt's two slots
    plain = tiny_clf(tiny_dir, pvp=FOUR_SLOTS, epochs=0).fit(X, y).prompt_init_
    assert torch.allclose(start[2:], plain[2:])  # the others: their own initialisation
    assert not torch.allclose(start[:2], plain[:2])


def test_extra_saved_slots_are_left_out(tiny_dir, source):
    one = {**TWO_SLOTS, "pattern": "[SOFT] {text} It was [MASK]."}
    clf = tiny_clf(tiny_dir, pvp=one, prompt_init=source, epochs=0).fit(X, Y)
    saved = PromptClassifier.load(source).prompt_().detach()
    assert torch.allclose(clf.prompt_init_, saved[:1].float())


def test_a_transferred_setting_round_trips(tiny_dir, source, tmp_path):
    clf = tiny_clf(tiny_dir, pvp=TWO_SLOTS, prompt_init=str(source), epochs=1).fit(X, Y)
    back = PromptClassifier.load(clf.save(tmp_path / "p"))
    assert back.prompt_init == str(source)


def test_a_folder_that_is_not_a_prompt_is_refused(tiny_dir, tmp_path):
    with pytest.raises(InputError, match=r"did you mean prompt_init='vocab'"):
        tiny_clf(tiny_dir, prompt_init="vocabb").fit(X, Y)
    with pytest.raises(InputError, match="nor a saved prompt folder"):
        tiny_clf(tiny_dir, prompt_init=tmp_path).fit(X, Y)


def test_a_prompt_from_another_backbone_is_refused(source, tiny_tokenizer):
    other = build_model(len(tiny_tokenizer), seed=1)
    clf = tiny_clf(None, model=other, tokenizer=tiny_tokenizer, pvp=TWO_SLOTS, prompt_init=source)
    with pytest.raises(BackboneMismatchError, match="same backbone"):
        clf.fit(X, Y)
