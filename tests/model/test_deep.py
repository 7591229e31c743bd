"""Deep prompts: trainable states at every layer's input, hooks only while pet_kit runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import arch_clf

from pet_kit import DeepPrompt, InputError, PromptClassifier, SavedPromptError
from pet_kit.model.deep import layer_hooks_spec


def _hooks(model):
    modules, _ = layer_hooks_spec(model)
    return sum(len(m._forward_pre_hooks) for m in modules)


def test_trains_saves_loads_and_leaves_no_hooks(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(deep_prompt=3, epochs=5).fit(X, y)
    model = clf.model_.backbone.model
    assert clf.n_slots_ == 5  # 3 deep + the pattern's 2
    assert tuple(clf.deep_prompt_.states().shape) == (1, 3, 32)  # (layers - 1, P, hidden)
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]
    proba = clf.predict_proba(X)
    assert _hooks(model) == 0 and all(not p.requires_grad for p in model.parameters())
    clf.save(tmp_path / "p")
    loaded = PromptClassifier.load(tmp_path / "p")
    np.testing.assert_allclose(loaded.predict_proba(X), proba, atol=1e-6)
    assert loaded.pvp_.pattern.text == clf.pvp_.pattern.text  # the prefix is not saved twice


def test_every_layer_state_is_used(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(deep_prompt=2, epochs=2).fit(X, y)
    before = clf.predict_proba(X)
    with torch.no_grad():
        clf.deep_prompt_.raw[0] += 5.0  # the states at layer 1's input
    assert not np.allclose(clf.predict_proba(X), before, atol=1e-4)


@pytest.mark.parametrize("arch", ["roberta", "distilbert", "albert", "electra"])
def test_other_architectures(tiny_tokenizer, toy_data, arch):
    X, y = toy_data
    clf = arch_clf(arch, tiny_tokenizer, deep_prompt=2, epochs=2).fit(X, y)
    before = clf.predict_proba(X)
    with torch.no_grad():  # the last layer's input (ALBERT: its shared layer's last call)
        clf.deep_prompt_.raw[-1] += 5.0
    assert not np.allclose(clf.predict_proba(X), before, atol=1e-4)
    assert _hooks(clf.model) == 0


def test_mlp_reparameterisation_is_folded_into_the_saved_states(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(deep_prompt=DeepPrompt(2, encoder="mlp"), epochs=3).fit(X, y)
    assert clf.deep_prompt_.mlp is None
    clf.save(tmp_path / "p")
    np.testing.assert_allclose(
        PromptClassifier.load(tmp_path / "p").predict_proba(X), clf.predict_proba(X), atol=1e-6
    )


def test_errors(make_clf, toy_data, tmp_path):
    X, y = toy_data
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError, match="deep_prompt"):
            make_clf(deep_prompt=bad).fit(X, y)
    with pytest.raises(InputError, match=r"deep_prompt\.encoder must be one of"):
        make_clf(deep_prompt=DeepPrompt(2, encoder="lstm")).fit(X, y)
    make_clf(epochs=1).fit(X, y).save(tmp_path / "plain")
    import json

    meta_file = tmp_path / "plain" / "prompt.json"
    meta = json.loads(meta_file.read_text())
    meta["params"]["deep_prompt"] = 2
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(SavedPromptError, match=r"deep_states|slot tensor"):
        PromptClassifier.load(tmp_path / "plain")


def test_hooks_act_only_in_the_thread_that_attached_them(tiny_model):
    """Another thread running the shared backbone meanwhile sees the plain model."""
    import threading

    from pet_kit.model.deep import DeepStates

    model = tiny_model.eval()
    ids = torch.tensor([[2, 10, 11, 12, 13, 14, 3]])
    with torch.no_grad():
        plain = model.base_model(input_ids=ids)[0]
    n_layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    deep = DeepStates(torch.full((n_layers - 1, 2, hidden), 3.0))
    soft_index = torch.tensor([[-1, 0, 1, -1, -1, -1, -1]])
    attached, release = threading.Event(), threading.Event()

    def hold() -> None:
        with deep.attached(model, soft_index):
            attached.set()
            release.wait(30)

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert attached.wait(30)
        assert _hooks(model) > 0  # the other thread's hooks are registered ...
        with torch.no_grad():
            during = model.base_model(input_ids=ids)[0]
        torch.testing.assert_close(during, plain)  # ... but do not touch this thread's pass
        with deep.attached(model, soft_index), torch.no_grad():  # this thread's own do
            assert not torch.allclose(model.base_model(input_ids=ids)[0], plain, atol=1e-4)
    finally:
        release.set()
        other.join(30)
    assert _hooks(model) == 0


def test_concurrent_deep_and_plain_predictions_match_sequential(make_clf, toy_data):
    from concurrent.futures import ThreadPoolExecutor

    X, y = toy_data
    deep = make_clf(deep_prompt=2, epochs=2).fit(X, y)
    plain = make_clf(epochs=2).fit(X, y)
    assert deep.model_.backbone.model is plain.model_.backbone.model  # one shared backbone
    want = {"deep": deep.predict_proba(X), "plain": plain.predict_proba(X)}
    jobs = [("deep", deep), ("plain", plain)] * 8
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: (job[0], job[1].predict_proba(X)), jobs))
    for name, proba in got:
        np.testing.assert_allclose(proba, want[name], atol=1e-5)


def test_hook_seen_half_registered_by_another_thread_is_a_no_op(make_clf, toy_data):
    # torch adds a with_kwargs pre-hook in two dict writes (and removes it in two); a
    # forward pass in another thread in between calls the hook without kwargs
    import threading

    X, y = toy_data
    deep = make_clf(deep_prompt=2, epochs=1).fit(X, y)
    model = deep.model_.backbone.model
    modules, _ = layer_hooks_spec(model)
    soft_index = torch.full((1, 4), -1, dtype=torch.long)
    hs = torch.zeros(1, 4, 32)
    seen: list[object] = []
    with deep.deep_prompt_.attached(model, soft_index):
        hook = next(iter(modules[1]._forward_pre_hooks.values()))
        other = threading.Thread(target=lambda: seen.append(hook(modules[1], (hs,))))
        other.start()
        other.join()
        # the owner thread, called plainly: layer 0 is left alone, layer 1 gets new args only
        assert hook(modules[0], (hs,)) is None
        new = hook(modules[1], (hs,))
        assert isinstance(new, tuple) and len(new) == 1 and new[0].shape == hs.shape
    assert seen == [None]
