"""Cloze scores equal a plain Hugging Face forward pass, on every supported architecture."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import arch_clf, build_model

from pet_kit import Batching, InputError, load_pvp
from pet_kit.model.backbone import Backbone, frozen, head_parts
from pet_kit.model.encoding import ClozeEncoder
from pet_kit.model.scorer import ClozeScorer

ARCHS = ["bert", "roberta", "mpnet", "distilbert", "albert", "electra"]
TEXTS = ["a great movie", "i hate this boring film", "ok", "the plot was fun but too long"]
VERB = {"positive": ["great", "good"], "negative": ["terrible", "bad"]}


def _scorer(arch, tokenizer, pattern, verbalizer=VERB, fast=True):
    model = build_model(len(tokenizer), seed=1, arch=arch)
    backbone = Backbone(model=model, tokenizer=tokenizer, name=arch, owned=False)
    pvp = load_pvp({"pattern": pattern, "verbalizer": verbalizer})
    enc = ClozeEncoder(pvp, tokenizer, max_length=64)
    return model, enc, ClozeScorer(backbone, enc, fast=fast)


@pytest.mark.parametrize("arch", ARCHS)
def test_known_architectures_have_a_fast_head(arch, tiny_tokenizer):
    model = build_model(len(tiny_tokenizer), arch=arch)
    assert head_parts(model) is not None


@pytest.mark.parametrize("arch", ARCHS)
def test_matches_plain_hf_forward(arch, tiny_tokenizer):
    """Class scores = mean over label words of the MLM logits at [MASK]."""
    model, enc, scorer = _scorer(arch, tiny_tokenizer, "{text} It was [MASK].")
    got = scorer.class_scores(enc.encode([{"text": t} for t in TEXTS]), None).detach()
    ids = {k: tiny_tokenizer.convert_tokens_to_ids(v) for k, v in VERB.items()}
    for i, text in enumerate(TEXTS):
        batch = tiny_tokenizer(f"{text} It was {tiny_tokenizer.mask_token}.", return_tensors="pt")
        inputs = {k: v for k, v in batch.items() if k != "token_type_ids"}
        if arch == "mpnet":  # MPNet takes id 1 for padding; in the tiny vocabulary it is [UNK]
            inputs["position_ids"] = torch.arange(2, batch["input_ids"].shape[1] + 2)[None]
        with torch.no_grad():
            logits = model(**inputs).logits
        pos = (batch["input_ids"][0] == tiny_tokenizer.mask_token_id).nonzero().item()
        for j, label in enumerate(enc.labels):
            expected = logits[0, pos, ids[label]].mean()
            assert got[i, j].item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    "verbalizer",
    [VERB, {"positive": ["fantastic", "good"], "negative": ["bad"]}],
    ids=["single-token", "multi-token"],
)
def test_fast_path_equals_full_vocab_path(arch, verbalizer, tiny_tokenizer):
    pattern = "[SOFT*2] {text} [SOFT#x] It was [MASK]. [SOFT#x]"
    _, enc, fast = _scorer(arch, tiny_tokenizer, pattern, verbalizer, fast=True)
    full = ClozeScorer(fast.backbone, enc, fast=False)
    assert fast.head is not None and full.head is None
    slots = torch.randn(enc.n_slots, fast.model.get_input_embeddings().embedding_dim)
    batch = enc.encode([{"text": t} for t in TEXTS])
    with torch.no_grad():
        a, b = fast.word_scores(batch, slots), full.word_scores(batch, slots)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_multi_token_word_is_mean_log_probability(tiny_tokenizer):
    """'fantastic' = fan + ##tastic over two masks; 'bad' over one; log-prob normalised."""
    verb = {"positive": ["fantastic"], "negative": ["bad"]}
    model, enc, scorer = _scorer("bert", tiny_tokenizer, "{text} It was [MASK].", verb)
    assert sorted(g.length for g in enc.verbalizer.groups) == [1, 2]
    got = scorer.word_scores(enc.encode([{"text": "a movie"}]), None).detach()[0]
    mask = tiny_tokenizer.mask_token

    def logp(n_masks):
        batch = tiny_tokenizer(
            "a movie It was " + " ".join([mask] * n_masks) + ".", return_tensors="pt"
        )
        with torch.no_grad():
            out = model(**batch).logits[0].log_softmax(-1)
        pos = (batch["input_ids"][0] == tiny_tokenizer.mask_token_id).nonzero().squeeze(1)
        return out, pos

    out1, pos1 = logp(1)
    out2, pos2 = logp(2)
    fan, tastic, bad = tiny_tokenizer.convert_tokens_to_ids(["fan", "##tastic", "bad"])
    exp_bad = out1[pos1[0], bad]
    exp_fantastic = (out2[pos2[0], fan] + out2[pos2[1], tastic]) / 2
    # groups are ordered by length: [bad] (1 token), then [fantastic] (2 tokens)
    assert got[0].item() == pytest.approx(exp_bad.item(), abs=1e-5)
    assert got[1].item() == pytest.approx(exp_fantastic.item(), abs=1e-5)


def test_soft_slots_enter_as_input_embeddings(tiny_tokenizer):
    """A slot set to a word's embedding acts exactly like that word."""
    model, enc, scorer = _scorer("bert", tiny_tokenizer, "{text} [SOFT] was [MASK].")
    _, enc_hard, hard = _scorer("bert", tiny_tokenizer, "{text} it was [MASK].")
    hard = ClozeScorer(scorer.backbone, enc_hard)
    it = tiny_tokenizer.convert_tokens_to_ids("it")
    slots = model.get_input_embeddings().weight[it].detach().unsqueeze(0)
    x = [{"text": t} for t in TEXTS]
    with torch.no_grad():
        torch.testing.assert_close(
            scorer.class_scores(enc.encode(x), slots), hard.class_scores(enc_hard.encode(x), None)
        )


@pytest.mark.parametrize("aggregate", ["mean", "max", "logsumexp"])
def test_aggregation_rules(aggregate, tiny_tokenizer):
    verb = {"labels": VERB, "aggregate": aggregate}
    _, enc, scorer = _scorer("bert", tiny_tokenizer, "{text} It was [MASK].", verb)
    batch = enc.encode([{"text": t} for t in TEXTS])
    with torch.no_grad():
        words = scorer.word_scores(batch, None)
        classes = scorer.class_scores(batch, None)
    labels = torch.tensor([li for g in enc.verbalizer.groups for li in g.label_index])
    for c in range(2):
        cols = words[:, labels == c]
        expected = {
            "mean": cols.mean(1),
            "max": cols.max(1).values,
            "logsumexp": cols.logsumexp(1),
        }[aggregate]
        torch.testing.assert_close(classes[:, c], expected)


def test_an_unknown_aggregate_is_refused_not_read_as_logsumexp(tiny_tokenizer):
    model, enc, _ = _scorer("bert", tiny_tokenizer, "{text} It was [MASK].")
    enc.verbalizer = dataclasses.replace(enc.verbalizer, aggregate="median")
    backbone = Backbone(model=model, tokenizer=tiny_tokenizer, name="bert", owned=False)
    with pytest.raises(InputError, match=r"aggregate must be one of .*'median'"):
        ClozeScorer(backbone, enc)


def test_batching_and_order_do_not_change_scores(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    a = clf.predict_proba(X)
    clf.set_params(batching=Batching(eval_batch_size=3))
    b = clf.predict_proba(X)
    rev = clf.predict_proba(X[::-1])[::-1]
    # other batch compositions pad differently: equal up to float summation order
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, rev, atol=1e-5)


def test_frozen_restores_flags(tiny_model):
    tiny_model.train()
    with frozen(tiny_model):
        assert not tiny_model.training
        assert not any(p.requires_grad for p in tiny_model.parameters())
    assert tiny_model.training and all(p.requires_grad for p in tiny_model.parameters())


def _is_frozen(model) -> bool:
    return not model.training and not any(p.requires_grad for p in model.parameters())


def _is_restored(model) -> bool:
    return model.training and all(p.requires_grad for p in model.parameters())


def test_frozen_overlapping_in_two_threads_keeps_and_restores_flags(tiny_model):
    """Thread A leaves while B still predicts: B's model stays frozen, and once both
    have left the caller's flags are back (not B's snapshot of A's frozen state)."""
    import threading

    tiny_model.train()
    a_in, a_leave, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with frozen(tiny_model):
            a_in.set()
            a_leave.wait(30)
        a_out.set()

    thread = threading.Thread(target=a)
    thread.start()
    assert a_in.wait(30)
    with frozen(tiny_model):
        a_leave.set()
        assert a_out.wait(30)
        assert _is_frozen(tiny_model)  # A left, B is still inside
    thread.join(30)
    assert _is_restored(tiny_model)


def test_frozen_nested_restores_only_at_the_outermost_exit(tiny_model):
    tiny_model.train()
    with frozen(tiny_model):
        with frozen(tiny_model):
            assert _is_frozen(tiny_model)
        assert _is_frozen(tiny_model)
    assert _is_restored(tiny_model)
    with pytest.raises(RuntimeError), frozen(tiny_model):
        raise RuntimeError("boom")
    assert _is_restored(tiny_model)


def test_max_length_is_capped_to_the_model(make_clf, toy_data):
    clf = make_clf(max_length=100_000).fit(*toy_data)
    assert clf.model_.encoder.max_length == 128


def test_estimator_on_other_architectures(tiny_tokenizer, toy_data):
    X, y = toy_data
    for arch in ("roberta", "mpnet", "distilbert", "albert", "electra"):
        pvp = {"pattern": "[SOFT*2] {text} It was [MASK].", "verbalizer": VERB}
        clf = arch_clf(arch, tiny_tokenizer, pvp=pvp, epochs=2)
        assert clf.fit(X, y).predict_proba(X).shape == (len(X), 2)
