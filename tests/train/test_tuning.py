"""tuning="prompt+head" / "head": a soft verbalizer trained with the prompt (or alone), the
real head untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SENTIMENT_PVP

from pet_kit import EarlyStopping, InputError, PromptClassifier, SavedPromptError
from pet_kit.model.scorer import ClozeScorer
from pet_kit.model.state_cache import CachedStates
from pet_kit.train import trainer


def test_untrained_label_head_scores_exactly_like_the_frozen_head(make_clf, toy_data):
    X, _ = toy_data
    plain = make_clf().fit(None).predict_proba(X)
    head = make_clf(tuning="prompt+head").fit(None)
    np.testing.assert_allclose(head.predict_proba(X), plain, atol=1e-6)
    assert head.label_head_ is not None


def test_multi_length_words_untrained_equal_too(make_clf, toy_data):
    """Words of several token lengths: the label rows are swapped into the full softmax."""
    X, _ = toy_data
    pvp = {
        "pattern": "[SOFT] {text} It was [MASK].",
        "verbalizer": {"positive": ["great", "good fun"], "negative": ["terrible"]},
    }
    plain = make_clf(pvp=pvp).fit(None).predict_proba(X)
    head = make_clf(pvp=pvp, tuning="prompt+head").fit(None).predict_proba(X)
    np.testing.assert_allclose(head, plain, atol=1e-6)


def test_training_moves_the_label_rows_not_the_backbone_head(make_clf, toy_data):
    X, y = toy_data
    before = make_clf().fit(None).model_.scorer.head  # the process-wide cached backbone
    weight, bias = before.weight.detach().clone(), before.bias.detach().clone()
    clf = make_clf(tuning="prompt+head", epochs=5)
    clf.fit(X, y)
    scorer = clf.model_.scorer
    head = scorer.head
    init = scorer.make_label_head()  # from the (untouched) frozen head
    moved = [
        not torch.allclose(a, b) for a, b in zip(clf.label_head_.weight, init.weight, strict=True)
    ]
    assert all(moved)
    assert head.weight.grad is None and not head.weight.requires_grad
    assert torch.equal(head.weight, weight) and torch.equal(head.bias, bias)
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]


def test_a_hard_pattern_trains_its_label_head(make_clf, toy_data):
    X, y = toy_data
    hard = {"pattern": "{text} It was [MASK].", "verbalizer": {"pos": ["great"], "neg": ["bad"]}}
    labels = ["pos" if v == "positive" else "neg" for v in y]
    clf = make_clf(pvp=hard, tuning="prompt+head", epochs=10).fit(X, labels)
    assert clf.n_slots_ == 0 and not clf.history_["zero_shot"]
    assert clf.score(X, labels) > make_clf(pvp=hard).fit(None).score(X, labels)


def test_head_mode_trains_the_label_rows_and_keeps_the_slots(make_clf, toy_data):
    X, y = toy_data
    untrained = make_clf(tuning="head").fit(None)  # same seed: the same initial slots
    clf = make_clf(tuning="head", epochs=5).fit(X, y)
    assert torch.equal(clf.model_.slots(), untrained.model_.slots())
    init = clf.model_.scorer.make_label_head()
    assert not torch.allclose(clf.label_head_.weight[0], init.weight[0])
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]
    # the flags are restored: the same prompt object trains again in "prompt" mode
    assert all(p.requires_grad for p in clf.model_.prompt.parameters())
    warm = clf.set_params(tuning="prompt+head", warm_start=True, epochs=2).fit(X, y)
    assert not torch.equal(warm.model_.slots(), untrained.model_.slots())


def test_head_mode_moves_less_than_prompt_head_at_the_start(make_clf, toy_data):
    """One step of "head" changes only the readout: the slots' drift is zero."""
    X, y = toy_data
    both = make_clf(tuning="prompt+head", epochs=1).fit(X, y)
    head = make_clf(tuning="head", epochs=1).fit(X, y)
    assert float((both.model_.slots() - both.model_.slots_init).abs().max()) > 0
    assert float((head.model_.slots() - head.model_.slots_init).abs().max()) == 0


def test_head_mode_saved_and_loaded(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(tuning="head").fit(X, y)
    clf.save(tmp_path / "h")
    loaded = PromptClassifier.load(tmp_path / "h")
    assert loaded.tuning == "head" and loaded.label_head_ is not None
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_saved_and_loaded_with_the_prompt(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(tuning="prompt+head").fit(X, y)
    clf.save(tmp_path / "p")
    loaded = PromptClassifier.load(tmp_path / "p")
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    # a plain prompt folder claiming a label head is refused
    make_clf().fit(X, y).save(tmp_path / "q")
    q_meta = json.loads((tmp_path / "q" / "prompt.json").read_text())
    q_meta["params"]["tuning"] = "prompt+head"
    (tmp_path / "q" / "prompt.json").write_text(json.dumps(q_meta))
    with pytest.raises(SavedPromptError, match="label head"):
        PromptClassifier.load(tmp_path / "q")


def test_unknown_modes_are_refused(make_clf, toy_data):
    with pytest.raises(InputError, match="tuning"):
        make_clf(tuning="verbalizer").fit(*toy_data)


def test_architectures_without_a_head_split_are_refused(make_clf, toy_data, monkeypatch):
    real = ClozeScorer.__init__

    def no_head(self, backbone, encoder, fast=True):
        real(self, backbone, encoder, fast=False)

    monkeypatch.setattr(ClozeScorer, "__init__", no_head)
    with pytest.raises(InputError, match="prompt\\+head"):
        make_clf(tuning="prompt+head").fit(*toy_data)


MULTI_LENGTH_PVP = {
    "pattern": "[SOFT] {text} It was [MASK].",
    "verbalizer": {"positive": ["great", "good fun"], "negative": ["terrible"]},
}


def _uncached(monkeypatch):
    """Make ``tuning="head"`` train through the scorer, as every other mode does."""
    monkeypatch.setattr(trainer, "CachedStates", lambda scorer, slots, batch_size: scorer)


def _encoder_calls(clf, monkeypatch):
    """Count the backbone's encoder passes (the fast path's ``base_model`` forward)."""
    base = clf.model_.backbone.model.base_model
    calls = []
    real = base.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "forward", counted)
    return calls


@pytest.mark.parametrize("pvp", [SENTIMENT_PVP, MULTI_LENGTH_PVP])
def test_cached_states_score_and_train_like_the_scorer(make_clf, toy_data, pvp):
    X, _ = toy_data
    clf = make_clf(pvp=pvp, tuning="head").fit(None)
    scorer, slots = clf.model_.scorer, clf.model_.slots()
    with torch.no_grad():  # a label head away from the frozen rows
        for w in clf.label_head_.weight:
            w.add_(0.05 * torch.randn_like(w))
    examples = clf.model_.encode_records([{"text": t} for t in X])
    cached = CachedStates(scorer, slots, batch_size=3)  # states from batches of 3
    batch = examples[::2]
    got, want = cached.class_scores(batch), scorer.class_scores(batch, slots)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    grads = []
    for scores in (got, want):
        clf.label_head_.zero_grad()
        scores.logsumexp(-1).sum().backward()
        grads.append([w.grad.clone() for w in clf.label_head_.weight])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_head_mode_runs_the_encoder_once_per_example(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    clf = make_clf(tuning="head", epochs=4, batch_size=4).fit(X, y)  # the backbone loaded
    calls = _encoder_calls(clf, monkeypatch)
    clf.set_params(epochs=4).fit(X, y)
    cached = len(calls)
    assert cached == -(-len(X) // 4)  # one pass per batch of new examples, every epoch after
    calls.clear()
    _uncached(monkeypatch)
    clf.fit(X, y)
    assert len(calls) >= 4 * cached  # a pass per batch and epoch


def test_head_mode_cached_trains_like_uncached(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    fast = make_clf(pvp=MULTI_LENGTH_PVP, tuning="head", epochs=5).fit(X, y)
    _uncached(monkeypatch)
    slow = make_clf(pvp=MULTI_LENGTH_PVP, tuning="head", epochs=5).fit(X, y)
    for a, b in zip(fast.label_head_.weight, slow.label_head_.weight, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(fast.history_["train_loss"], slow.history_["train_loss"], atol=1e-4)


def test_head_mode_with_early_stopping_caches_the_validation_states_too(
    make_clf, toy_data, monkeypatch
):
    """Validation scores under inference mode, then training steps on plain tensors."""
    X, y = toy_data
    early = EarlyStopping(n_iter_no_change=50, validation_fraction=0.25)
    clf = make_clf(tuning="head", epochs=6, early_stopping=early).fit(X, y)
    assert len(clf.history_["val_accuracy"]) == 6
    calls = _encoder_calls(clf, monkeypatch)
    clf.fit(X, y)
    assert len(calls) <= 4  # the training and validation examples, once each


def test_head_mode_with_a_deep_prompt_is_not_cached(make_clf, toy_data, monkeypatch):
    """The deep states train, so the encoder's states change every step."""

    def refuse(*args, **kwargs):
        raise AssertionError("the states are not fixed with a deep prompt")

    monkeypatch.setattr(trainer, "CachedStates", refuse)
    X, y = toy_data
    clf = make_clf(tuning="head", deep_prompt=2, epochs=2).fit(X, y)
    assert clf.deep_prompt_ is not None
