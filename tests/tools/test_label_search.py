"""Automatic label words: candidates, likelihood-ratio ranking, the written verbalizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pet_kit import InputError, PromptClassifier, load_verbalizer
from pet_kit.model.scorer import ClozeScorer
from pet_kit.tools.label_search import search_label_words, write_verbalizer

PATTERN = "{text} It was [MASK]."


def test_words_are_single_tokens_unique_and_compile(tiny_dir, tiny_tokenizer, toy_data):
    X, y = toy_data
    words = search_label_words(PATTERN, X, y, model=str(tiny_dir), n_words=2, min_chars=2)
    assert set(words) == {"negative", "positive"}
    flat = [w for picks in words.values() for w, _ in picks]
    assert all(len(picks) == 2 for picks in words.values()) and len(set(flat)) == len(flat)
    for w in flat:
        assert len(tiny_tokenizer(w, add_special_tokens=False)["input_ids"]) == 1
    verbalizer = {k: [w for w, _ in v] for k, v in words.items()}
    clf = PromptClassifier(pvp={"pattern": PATTERN, "verbalizer": verbalizer}, model=str(tiny_dir))
    assert clf.fit(None).predict(X).shape == (len(X),)
    scores = [s for picks in words.values() for _, s in picks]
    assert all(np.isfinite(scores))


def test_ranking_is_by_likelihood_ratio(tiny_dir, tiny_tokenizer, toy_data, monkeypatch):
    """With controlled MLM outputs: 'great' is likelier on positive examples, 'bad' on
    negative ones, 'the' likely everywhere (probable but not discriminative)."""
    X, y = toy_data
    vocab = tiny_tokenizer.get_vocab()
    great, bad, the = vocab["great"], vocab["bad"], vocab["the"]
    positive = {
        tuple(tiny_tokenizer(x, add_special_tokens=False)["input_ids"])
        for x, label in zip(X, y, strict=True)
        if label == "positive"
    }

    def fake(self, batch, slots):
        out = torch.full((len(batch), len(vocab)), -20.0)
        out[:, the] = -0.5
        for i, example in enumerate(batch):
            is_pos = example.fields[0] in positive
            out[i, great if is_pos else bad] = -1.0
            out[i, bad if is_pos else great] = -5.0
        return out

    monkeypatch.setattr(ClozeScorer, "mask_logprobs", fake)
    words = search_label_words(PATTERN, X, y, model=str(tiny_dir), n_words=1, min_chars=2)
    assert words["positive"][0][0] == "great" and words["negative"][0][0] == "bad"
    assert words["positive"][0][1] > 0


def test_clear_errors(tiny_dir, toy_data):
    X, y = toy_data
    with pytest.raises(InputError, match="two classes"):
        search_label_words(PATTERN, X, ["positive"] * len(X), model=str(tiny_dir))
    with pytest.raises(InputError, match="labelled examples"):
        search_label_words(PATTERN, [], [], model=str(tiny_dir))
    with pytest.raises(InputError, match="n_words"):
        search_label_words(PATTERN, X, y, model=str(tiny_dir), n_words=0)


def test_write_verbalizer_round_trip(tmp_path):
    words = {"positive": [("great", 1.2), ("good", 0.5)], "negative": ["bad"]}
    path = write_verbalizer(words, tmp_path / "v" / "auto.yaml", note="K=16 seed 0")
    text = path.read_text()
    assert text.startswith("# Label words proposed") and "# K=16 seed 0" in text
    v = load_verbalizer(str(path))
    assert dict(v.labels) == {"positive": ("great", "good"), "negative": ("bad",)}
    assert [p.name for p in path.parent.iterdir()] == ["auto.yaml"]


def test_cli_writes_an_editable_verbalizer(tiny_dir, toy_data, tmp_path, capsys):
    import pandas as pd

    from pet_kit.cli import main

    X, y = toy_data
    pd.DataFrame({"text": X, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "auto.yaml"
    code = main(
        [
            "label-words",
            PATTERN,
            str(tmp_path / "train.csv"),
            "--model",
            str(tiny_dir),
            "--n-words",
            "2",
            "--output",
            str(out),
        ]
    )
    assert code == 0 and "positive:" in capsys.readouterr().out
    v = load_verbalizer(str(out))
    assert set(v.labels) == {"positive", "negative"} and all(len(w) == 2 for w in v.labels.values())
    assert "# pattern: {text} It was [MASK]." in out.read_text()
