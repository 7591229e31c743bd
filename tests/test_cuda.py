"""Every training mode on a CUDA device (skipped where torch sees no GPU, e.g. in CI).

Fit on ``device="cuda"``, check the backbone really ran there, then load the saved prompt
on the CPU: its probabilities must equal the GPU's (same numbers, another device), and
the caller's model object must come back as it was.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_clf

from pet_kit import DeepPrompt, PromptClassifier, PromptEnsemble
from pet_kit.estimators.student import LinearStudent

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MODES = {
    "prompt": {},
    "prompt+head": {"tuning": "prompt+head"},
    "lora": {"tuning": "lora"},
    "full": {"tuning": "full"},
    "deep": {"deep_prompt": DeepPrompt(2, encoder="mlp")},
    "demonstrations": {"demonstrations": "similar", "max_length": 64},
    "calibrated": {"calibration": "unlabeled"},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_fit_on_cuda_then_load_on_cpu_gives_the_same_probabilities(
    mode, tiny_dir, toy_data, tmp_path
):
    if mode == "lora":
        pytest.importorskip("peft")
    X, y = toy_data
    clf = tiny_clf(tiny_dir, device="cuda", epochs=4, **MODES[mode])
    clf.fit(X, y, X_unlabeled=X)
    assert clf.model_.backbone.model.device.type == "cuda"
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]
    back = PromptClassifier.load(clf.save(tmp_path / mode), model=str(tiny_dir), device="cpu")
    assert back.model_.backbone.model.device.type == "cpu"
    np.testing.assert_allclose(back.predict_proba(X), proba, atol=2e-4)


@pytest.mark.parametrize("tuning", ["prompt", "full"])
def test_a_callers_model_on_cuda_is_left_as_it_was(tuning, tiny_model, tiny_tokenizer, toy_data):
    X, y = toy_data
    model = tiny_model.to("cuda")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    clf = tiny_clf(None, model=model, tokenizer=tiny_tokenizer, tuning=tuning, epochs=2)
    clf.fit(X, y, X_unlabeled=X)
    assert clf.model_.backbone.model.device.type == "cuda"
    assert clf.predict(X).shape == (len(X),)
    after = model.state_dict()
    assert all(v.device.type == "cuda" and torch.equal(v, after[k]) for k, v in before.items())
    assert flags == [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize("distill", ["prompt", "linear"])
def test_ensemble_and_distillation_on_cuda(distill, tiny_dir, toy_data, tmp_path):
    X, y = toy_data
    base = tiny_clf(tiny_dir, device="cuda", epochs=3)
    ens = PromptEnsemble(
        pvps=[
            {"pattern": "[SOFT*2] {text} It was [MASK].", "verbalizer": base.pvp["verbalizer"]},
            {"pattern": "{text} [SOFT] [MASK]!", "verbalizer": base.pvp["verbalizer"]},
        ],
        estimator=base,
        distill=distill,
        student_params={"max_steps": 20},
        random_state=0,
    ).fit(X, y, X_unlabeled=X)
    proba = ens.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    # a distilled ensemble saves only its student
    loader = LinearStudent if distill == "linear" else PromptClassifier
    back = loader.load(ens.save(tmp_path / distill), model=str(tiny_dir), device="cpu")
    np.testing.assert_allclose(back.predict_proba(X), proba, atol=2e-4)
