"""tuning="lora" / "full": a private copy of the backbone trains; the shared one never does."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from conftest import arch_clf

from pet_kit import InputError, PromptClassifier, SavedPromptError, Tuning

pytest.importorskip("peft")


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_the_shared_backbone_and_a_callers_model_are_never_changed(
    make_clf, toy_data, tiny_model, tiny_tokenizer, tuning
):
    X, y = toy_data
    shared = make_clf().fit(None).model_.backbone.model  # the process-wide cached backbone
    before = _weights(shared)
    clf = make_clf(tuning=tuning, epochs=2).fit(X, y)
    assert _same(before, _weights(shared))
    assert clf.model_.backbone.model is not shared
    assert all(not p.requires_grad for p in shared.parameters())
    # a model object passed by the caller: weights and flags as they were
    tiny_model.train()
    flags = [p.requires_grad for p in tiny_model.parameters()]
    mine = _weights(tiny_model)
    make_clf(model=tiny_model, tokenizer=tiny_tokenizer, tuning=tuning, epochs=2).fit(X, y)
    assert _same(mine, _weights(tiny_model))
    assert tiny_model.training and flags == [p.requires_grad for p in tiny_model.parameters()]


def test_lora_trains_only_adapters_and_they_move(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(tuning=Tuning("lora", rank=4), epochs=5).fit(X, y)
    delta = clf.backbone_delta_
    assert delta and all(".lora_" in k for k in delta)
    # rank 4 on query + value of 2 layers (hidden 32): A (4, 32) and B (32, 4) each
    assert sum(v.numel() for v in delta.values()) == 2 * 2 * (4 * 32 + 32 * 4)
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in delta.items())
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]


def test_untrained_lora_scores_like_the_frozen_model(make_clf, toy_data):
    X, _ = toy_data
    plain = make_clf().fit(None).predict_proba(X)
    lora = make_clf(tuning="lora").fit(None)  # LoRA's B starts at zero: no change
    np.testing.assert_allclose(lora.predict_proba(X), plain, atol=1e-6)


def test_prompt_and_backbone_have_separate_learning_rates(make_clf, toy_data):
    """A negligible backbone rate leaves LoRA at its (no-op) start: the same model as
    prompt-only training, while the prompt still learns at its own rate."""
    X, y = toy_data
    prompt_only = make_clf(epochs=3).fit(X, y)
    lora = make_clf(tuning=Tuning("lora", learning_rate=1e-12), epochs=3).fit(X, y)
    np.testing.assert_allclose(lora.predict_proba(X), prompt_only.predict_proba(X), atol=1e-4)
    moved = make_clf(tuning=Tuning("lora", learning_rate=1e-2), epochs=3).fit(X, y)
    assert not np.allclose(moved.predict_proba(X), prompt_only.predict_proba(X), atol=1e-3)


def test_full_tuning_trains_every_weight(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(tuning=Tuning("full", learning_rate=1e-3), epochs=3).fit(X, y)
    model = clf.model_.backbone.model
    assert set(clf.backbone_delta_) == {n for n, _ in model.named_parameters()}
    shared = make_clf().fit(None).model_.backbone.model
    changed = [
        not torch.equal(p, dict(shared.named_parameters())[n]) for n, p in model.named_parameters()
    ]
    assert sum(changed) > len(changed) // 2


def test_the_auxiliary_mlm_loss_is_used_and_can_be_turned_off(make_clf, toy_data):
    X, y = toy_data

    def full(weight):
        return make_clf(tuning=Tuning("full", learning_rate=1e-3, mlm_loss_weight=weight), epochs=2)

    off = full(0.0).fit(X, y).predict_proba(X)
    on = full(0.5).fit(X, y, X_unlabeled=X * 4).predict_proba(X)
    again = full(0.5).fit(X, y, X_unlabeled=X * 4).predict_proba(X)
    assert not np.allclose(on, off, atol=1e-4)
    np.testing.assert_array_equal(on, again)  # seeded masking: reproducible


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_save_load_pickle_round_trip(make_clf, toy_data, tmp_path, tuning):
    X, y = toy_data
    clf = make_clf(tuning=Tuning(tuning, learning_rate=1e-3), epochs=2).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "p")
    loaded = PromptClassifier.load(tmp_path / "p")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    assert loaded.tuning == Tuning(tuning, learning_rate=1e-3)
    assert loaded.backbone_delta_.keys() == clf.backbone_delta_.keys()
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X), expected, atol=1e-6)


def test_saved_sizes_lora_small_full_whole_model(make_clf, toy_data, tmp_path):
    X, y = toy_data
    sizes = {}
    for tuning in ("prompt", "lora", "full"):
        make_clf(tuning=tuning, epochs=1).fit(X, y).save(tmp_path / tuning)
        sizes[tuning] = (tmp_path / tuning / "prompt.safetensors").stat().st_size
    n_params = sum(p.numel() for p in make_clf().fit(None).model_.backbone.model.parameters())
    assert sizes["prompt"] < sizes["lora"] < sizes["full"]
    assert sizes["full"] >= 4 * n_params


def test_a_lora_prompt_with_another_rank_or_edited_weights_is_refused(make_clf, toy_data, tmp_path):
    X, y = toy_data
    make_clf(tuning=Tuning("lora"), epochs=1).fit(X, y).save(tmp_path / "p")
    meta_file = tmp_path / "p" / "prompt.json"
    meta = json.loads(meta_file.read_text())
    assert meta["params"]["tuning"] == Tuning("lora").get_params()  # nested, all fields
    meta["params"]["tuning"]["rank"] = 4
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(SavedPromptError, match=r"wrong shape.*LoRA rank"):
        PromptClassifier.load(tmp_path / "p")
    # a plain prompt claiming LoRA weights it does not have
    make_clf().fit(X, y).save(tmp_path / "q")
    q_file = tmp_path / "q" / "prompt.json"
    q_meta = json.loads(q_file.read_text())
    q_meta["params"]["tuning"] = "lora"
    q_file.write_text(json.dumps(q_meta))
    with pytest.raises(SavedPromptError, match="no backbone weights"):
        PromptClassifier.load(tmp_path / "q")


@pytest.mark.parametrize("arch", ["roberta", "distilbert", "albert", "electra"])
def test_lora_on_other_architectures(tiny_tokenizer, toy_data, arch):
    X, y = toy_data
    clf = arch_clf(arch, tiny_tokenizer, tuning="lora", epochs=2).fit(X, y)
    assert clf.backbone_delta_ and all(".lora_" in k for k in clf.backbone_delta_)
    assert clf.predict_proba(X).shape == (len(X), 2)


@pytest.mark.parametrize(
    ("param", "value", "match"),
    [
        ("learning_rate", 0, r"tuning\.learning_rate must be a number > 0 \(or None\), got 0"),
        ("rank", 0, r"tuning\.rank must be a positive integer, got 0"),
        ("alpha", -1, r"tuning\.alpha must be a number > 0, got -1"),
        ("mlm_loss_weight", 1.0, r"tuning\.mlm_loss_weight must be a number in \[0, 1\), got 1\.0"),
    ],
)
def test_bad_tuning_params_are_refused(make_clf, toy_data, param, value, match):
    with pytest.raises(InputError, match=match):
        make_clf(tuning=Tuning("lora", **{param: value})).fit(*toy_data)


def test_lora_without_peft_says_how_to_install(make_clf, toy_data, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_peft(name, *args, **kw):
        if name == "peft" or name.startswith("peft."):
            raise ImportError("no peft")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_peft)
    with pytest.raises(InputError, match=r"pet_kit\[lora\]"):
        make_clf(tuning="lora").fit(*toy_data)
