"""prompt_init="text": soft slots start from the task's own words (label words, then the
pattern's literal text), not from random vocabulary words."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_clf

from pet_kit.model.soft_prompt import initial_vectors

INIT = ("random", "vocab", "text")


def _slots_init(clf):
    return clf.prompt_init_.float()


def _embedding_rows(clf, tokens):
    model = clf.model_
    tok = model.backbone.tokenizer
    ids = tok.convert_tokens_to_ids(tokens)
    assert tok.unk_token_id not in ids
    emb = model.backbone.model.get_input_embeddings().weight.detach().float().cpu()
    return emb[ids]


def test_the_three_strategies_give_different_vectors(tiny_dir):
    made = {s: _slots_init(tiny_clf(tiny_dir, prompt_init=s).fit(None)) for s in INIT}
    for a in INIT:
        for b in INIT:
            if a < b:
                assert not torch.allclose(made[a], made[b]), (a, b)


def test_text_copies_label_words_then_pattern_words(tiny_dir):
    clf = tiny_clf(tiny_dir, prompt_init="text").fit(None)
    # labels sorted (negative, positive); their words in turn, then "It was ."
    words = ["terrible", "great", "bad", "good", "it", "was", "."]
    tok = clf.model_.backbone.tokenizer
    assert clf.model_.text_init_ids() == tok.convert_tokens_to_ids(words)
    assert torch.equal(_slots_init(clf), _embedding_rows(clf, words[:2]))


def test_text_cycles_over_more_slots_and_keeps_explicit_init_words(tiny_dir):
    pvp = {
        "pattern": "[SOFT:wow] [SOFT*8] {text} It was [MASK].",
        "verbalizer": {"pos": ["good"], "neg": ["bad"]},
    }
    clf = tiny_clf(tiny_dir, pvp=pvp, prompt_init="text").fit(None)
    words = ["bad", "good", "it", "was", "."]
    expected = ["wow"] + [words[i % len(words)] for i in range(8)]
    assert torch.equal(_slots_init(clf), _embedding_rows(clf, expected))


def test_text_is_deterministic_and_trains(tiny_dir, toy_data):
    first = tiny_clf(tiny_dir, prompt_init="text", random_state=0).fit(None)
    again = tiny_clf(tiny_dir, prompt_init="text", random_state=0).fit(None)
    assert torch.equal(_slots_init(first), _slots_init(again))
    X, y = toy_data
    clf = tiny_clf(tiny_dir, prompt_init="text", max_steps=2).fit(X, y)
    assert torch.equal(_slots_init(clf), _slots_init(first))  # training starts there
    assert not torch.equal(clf.model_.slots().float().cpu(), _slots_init(first))


def test_initial_vectors_text_skips_special_ids_and_falls_back_to_vocab():
    emb = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    out = initial_vectors(
        emb, [None, 7, None, None], "text", gen(), exclude_ids=[0, 1], text_ids=[1, 5, 6]
    )
    assert torch.equal(out, emb[[5, 7, 6, 5]])
    # nothing to copy: as "vocab" (same draws for the same seed)
    none = initial_vectors(emb, [None, None], "text", gen(), exclude_ids=[0], text_ids=[0])
    assert torch.equal(none, initial_vectors(emb, [None, None], "vocab", gen(), exclude_ids=[0]))


def test_initial_vectors_refuses_an_unknown_strategy():
    with pytest.raises(ValueError, match="prompt_init must be one of"):
        initial_vectors(torch.zeros(3, 2), [None], "words", torch.Generator())
