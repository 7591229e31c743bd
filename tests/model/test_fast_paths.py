"""What prediction and training compute, and how they batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pet_kit import Batching, InputError
from pet_kit.model.scorer import ClozeScorer
from pet_kit.model.soft_prompt import SoftPrompt
from pet_kit.train.loop import GROUP_MEGABATCH, _grouped_batches

LONG = "a long review that goes on and on about the film and its many scenes " * 3


def _spy_batches(monkeypatch):
    """Record, for each class_scores call, the examples' lengths and grad mode."""
    calls = []
    real = ClozeScorer.class_scores

    def spy(self, batch, slots):
        calls.append(
            {
                "lengths": [e.length() for e in batch],
                "inference": torch.is_inference_mode_enabled(),
                "backbone_grads": any(p.requires_grad for p in self.model.parameters()),
            }
        )
        return real(self, batch, slots)

    monkeypatch.setattr(ClozeScorer, "class_scores", spy)
    return calls


def _spy_prompt(monkeypatch):
    count = {"n": 0}
    real = SoftPrompt.forward

    def spy(self):
        count["n"] += 1
        return real(self)

    monkeypatch.setattr(SoftPrompt, "forward", spy)
    return count


def test_predict_sorts_batches_by_length_and_keeps_input_order(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    texts = [t if i % 2 else LONG[: 10 + 7 * i] for i, t in enumerate(X * 3)]
    clf = make_clf(batching=Batching(eval_batch_size=4)).fit(X, y)
    expected = [clf.predict_proba([t])[0] for t in texts]
    calls = _spy_batches(monkeypatch)
    proba = clf.predict_proba(texts)
    lengths = [n for c in calls for n in c["lengths"]]
    assert lengths == sorted(lengths)  # batches are consecutive runs of sorted lengths
    assert all(c["inference"] and not c["backbone_grads"] for c in calls)
    assert torch.allclose(torch.as_tensor(proba), torch.as_tensor(np.array(expected)), atol=1e-5)


def test_prompt_encoder_runs_once_per_predict_call(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    clf = make_clf(prompt_encoder="mlp", batching=Batching(eval_batch_size=2)).fit(X, y)
    count = _spy_prompt(monkeypatch)
    calls = _spy_batches(monkeypatch)
    clf.predict_proba(X * 2)
    assert len(calls) >= 4
    assert count["n"] == 1


def test_prompt_encoder_runs_once_per_training_micro_batch(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    count = _spy_prompt(monkeypatch)
    calls = _spy_batches(monkeypatch)
    make_clf(
        prompt_encoder="lstm",
        epochs=2,
        batch_size=4,
        batching=Batching(gradient_accumulation_steps=2),
    ).fit(X, y)
    train_calls = [c for c in calls if not c["inference"]]
    # one call per training micro-batch, plus one at the start recording the initial
    # vectors (prompt_init_, for pet_kit.tools.explain)
    assert train_calls and count["n"] == len(train_calls) + 1
    # the backbone never requires grad while training: only the prompt does
    assert not any(c["backbone_grads"] for c in train_calls)


def test_no_weight_gradients_reach_the_backbone(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    backbone = clf.model_.backbone
    assert all(p.grad is None for p in backbone.model.parameters())


def test_grouped_batches_cover_every_example_once_with_similar_lengths():
    lengths = [(i * 37) % 101 for i in range(1000)]
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(1000, generator=gen).tolist()
    batches = _grouped_batches(order, lengths, 8, gen)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) == 8 for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    plain = [order[i : i + 8] for i in range(0, 1000, 8)]
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)
    assert spread < plain_spread / 10
    # the batches come in a random order, not sorted by length
    firsts = [lengths[b[0]] for b in batches[:GROUP_MEGABATCH]]
    assert firsts != sorted(firsts, reverse=True)
    # another generator state gives other batches
    other = _grouped_batches(order, lengths, 8, torch.Generator().manual_seed(1))
    assert other != batches


def test_group_by_length_pads_less_and_still_learns(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    texts = [t + (" " + LONG[: 9 * i] if i % 3 == 0 else "") for i, t in enumerate(X * 4)]
    labels = y * 4

    def padding(**kw):
        calls = _spy_batches(monkeypatch)
        clf = make_clf(batch_size=4, epochs=3, **kw).fit(texts, labels)
        train = [c["lengths"] for c in calls if not c["inference"]]
        monkeypatch.undo()
        return sum(max(b) * len(b) - sum(b) for b in train), clf

    plain, _ = padding()
    grouped, clf = padding(batching=Batching(group_by_length=True))
    assert grouped < plain / 2
    losses = clf.history_["train_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_group_by_length_auto_only_groups_large_training_sets(make_clf, toy_data):
    X, y = toy_data

    def vectors(texts, labels, mode):
        clf = make_clf(batch_size=1, epochs=1, batching=Batching(group_by_length=mode))
        return clf.fit(texts, labels).prompt_().detach()

    # 8 examples = 8 batches <= 50: "auto" is plain random batching
    assert torch.equal(vectors(X, y, "auto"), vectors(X, y, False))
    # 64 examples = 64 batches > 50: "auto" groups by length
    big_x = [t + " really" * (i % 7) for i, t in enumerate(X * 8)]
    big_y = y * 8
    grouped = vectors(big_x, big_y, "auto")
    assert torch.equal(grouped, vectors(big_x, big_y, True))
    assert not torch.equal(grouped, vectors(big_x, big_y, False))


def test_bad_group_by_length_is_refused(make_clf, toy_data):
    refused = r"batching\.group_by_length must be True, False or 'auto', got 'yes'"
    with pytest.raises(InputError, match=refused):
        make_clf(batching=Batching(group_by_length="yes")).fit(*toy_data)


def test_mask_states_feed_the_vocabulary_log_probabilities(make_clf, toy_data):
    """mask_logprobs is the head applied to mask_states (one pass, split head)."""
    clf = make_clf().fit(None)
    scorer, model = clf.model_.scorer, clf.model_
    batch = model.encode(toy_data[0][:3])
    with torch.inference_mode():
        states = scorer.mask_states(batch, model.slots())
        assert states.shape == (3, model.backbone.model.config.hidden_size)
        torch.testing.assert_close(
            scorer.vocab_logprobs(states), scorer.mask_logprobs(batch, model.slots())
        )


def test_mask_states_need_a_split_head(make_clf, toy_data):
    clf = make_clf().fit(None)
    scorer = ClozeScorer(clf.model_.backbone, clf.model_.encoder, fast=False)
    batch = clf.model_.encode(toy_data[0][:2])
    with pytest.raises(InputError, match="cannot split its MLM head"):
        scorer.mask_states(batch, clf.model_.slots())
    assert scorer.mask_logprobs(batch, clf.model_.slots()).shape[0] == 2  # full-logits path
