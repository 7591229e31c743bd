"""PromptBank: one backbone, many saved prompts, mixed-task batches in one pass."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SENTIMENT_PVP, build_model, tiny_clf

from pet_kit import InputError, PromptClassifier, SavedPromptError
from pet_kit.serving.bank import PromptBank

TOPIC_PVP = {
    "pattern": "[SOFT] Topic: [MASK]. {text}",
    "verbalizer": {"film": ["movie"], "book": ["book"], "music": ["music"]},
}
MULTI_PVP = {  # a two-token label word: not mixable, runs per task
    "pattern": "{text} [SOFT] [MASK].",
    "verbalizer": {"positive": ["great", "good fun"], "negative": ["bad"]},
}
TEXTS = ["a great movie", "i hate this book", "boring music and plot", "wow what fun", "x"]


@pytest.fixture()
def prompts(tiny_dir, toy_data, tmp_path):
    X, y = toy_data
    root = tmp_path / "prompts"
    tiny_clf(tiny_dir).fit(X, y).save(root / "sentiment")
    tiny_clf(tiny_dir, tuning="prompt+head", calibration="unlabeled").fit(X, y).save(
        root / "sentiment_head"
    )
    topics = ["film", "book", "music", "film"] * 4
    tiny_clf(tiny_dir, pvp=TOPIC_PVP).fit(X, topics).save(root / "topic")
    tiny_clf(tiny_dir, pvp=MULTI_PVP).fit(X, y).save(root / "multi")
    return root


def test_routes_each_task_to_its_prompt(prompts, tiny_dir):
    bank = PromptBank.from_folder(prompts, model=str(tiny_dir))
    assert set(bank.tasks) == {"sentiment", "sentiment_head", "topic", "multi"}
    assert bank.tasks["topic"]["classes"] == ["book", "film", "music"]
    assert bank.tasks["sentiment_head"]["calibrated"]
    assert not bank.tasks["multi"]["mixed_batches"] and bank.tasks["topic"]["mixed_batches"]
    for name in bank.tasks:
        alone = PromptClassifier.load(prompts / name, model=str(tiny_dir))
        np.testing.assert_allclose(bank.predict_proba(TEXTS, name), alone.predict_proba(TEXTS))
        assert list(bank.predict(TEXTS, name)) == list(alone.predict(TEXTS))


def test_mixed_batches_equal_per_task_predictions(prompts, tiny_dir):
    bank = PromptBank.from_folder(prompts, model=str(tiny_dir), batch_size=4)
    names = list(bank.tasks)
    rng = np.random.default_rng(0)
    tasks = [names[i] for i in rng.integers(len(names), size=23)]
    texts = [TEXTS[i] for i in rng.integers(len(TEXTS), size=23)]
    mixed = bank.predict_mixed_proba(texts, tasks)
    for text, task, p in zip(texts, tasks, mixed, strict=True):
        np.testing.assert_allclose(p, bank.predict_proba([text], task)[0], atol=1e-5)
    labels = bank.predict_mixed(texts, tasks)
    assert labels == [bank.predict([t], k)[0] for t, k in zip(texts, tasks, strict=True)]


def test_a_mixed_batch_runs_one_encoder_pass(prompts, tiny_dir):
    bank = PromptBank(model=str(tiny_dir), batch_size=64)
    for name in ("sentiment", "sentiment_head", "topic"):
        bank.add(name, prompts / name)
    model = bank._tasks["topic"].clf.model_.backbone.model
    calls = []
    handle = model.base_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        bank.predict_mixed_proba(TEXTS * 3, ["sentiment", "sentiment_head", "topic"] * 5)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_clear_errors(prompts, tiny_dir, tiny_tokenizer, toy_data, tmp_path):
    bank = PromptBank.from_folder(prompts, model=str(tiny_dir))
    with pytest.raises(InputError, match=r"unknown task 'nope'.*sentiment"):
        bank.predict(TEXTS, "nope")
    with pytest.raises(InputError, match="already"):
        bank.add("topic", prompts / "topic")
    with pytest.raises(InputError, match="2 texts but 1"):
        bank.predict_mixed(["a", "b"], ["topic"])
    with pytest.raises(InputError, match="no prompt folders"):
        PromptBank.from_folder(tmp_path)
    other = build_model(len(tiny_tokenizer), seed=3)
    stranger = PromptClassifier(
        pvp=SENTIMENT_PVP, model=other, tokenizer=tiny_tokenizer, epochs=1, verbose=0
    ).fit(*toy_data)
    with pytest.raises(SavedPromptError, match="one bank serves one backbone"):
        bank.add("stranger", stranger)
    bank.remove("multi")
    assert "multi" not in bank.tasks
