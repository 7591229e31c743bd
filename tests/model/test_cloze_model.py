"""The model object: one PVP compiled for one backbone, with its trained parts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import NEG, POS, tiny_clf

from pet_kit import ClozeModel, InputError

X = POS[:4] + NEG[:4]
Y = ["positive"] * 4 + ["negative"] * 4


def _difference(scores: np.ndarray) -> np.ndarray:
    """Two classes' scores as the estimator's ``decision_function`` gives them."""
    return scores[:, 1] - scores[:, 0]


@pytest.fixture(scope="module")
def fitted(tiny_dir):
    return tiny_clf(tiny_dir, epochs=2, calibration="content_free").fit(X, Y)


def test_the_estimator_is_a_face_over_its_model(fitted):
    model = fitted.model_
    assert isinstance(model, ClozeModel)
    assert list(fitted.classes_) == model.labels
    scores = model.class_scores(X)
    assert np.allclose(_difference(scores), fitted.decision_function(X))
    assert np.allclose(model.probabilities(scores), fitted.predict_proba(X))
    assert model.prior is not None and fitted.calibration_prior_ is model.prior


def test_raw_scores_differ_from_calibrated_ones_by_the_prior(fitted):
    model = fitted.model_
    raw = model.raw_scores(model.encode(X))
    logp = raw - np.log(np.exp(raw).sum(1, keepdims=True))
    assert np.allclose(model.calibrated(raw), logp - np.log(model.prior), atol=1e-5)


def test_a_model_saves_and_loads_by_itself(fitted, tmp_path):
    path = fitted.save(tmp_path / "p")
    model, meta = ClozeModel.load(path)
    assert meta["classes"] == fitted.model_.labels
    assert np.allclose(_difference(model.class_scores(X)), fitted.decision_function(X), atol=1e-5)


def test_a_pickled_model_leaves_its_backbone_behind(fitted):
    """The backbone (shared per process, possibly gigabytes) is rebuilt, not pickled."""
    data = pickle.dumps(fitted.model_)
    n_weights = sum(p.numel() for p in fitted.model_.backbone.model.parameters())
    assert len(data) < n_weights  # far less than 1 byte per backbone weight
    back = pickle.loads(data)
    assert back._scorer is None  # nothing built until it is used
    assert np.allclose(_difference(back.class_scores(X)), fitted.decision_function(X), atol=1e-5)


def test_a_model_without_a_prompt_says_so(fitted):
    model = ClozeModel.build(fitted.model_.pvp, fitted.model_.options)
    with pytest.raises(InputError, match="no prompt yet"):
        model.class_scores(X)
    with pytest.raises(InputError, match="no prompt to save"):
        model.tensors()


def test_prompt_only_models_share_encoder_passes(fitted, tiny_dir):
    assert fitted.model_.mixable
    deep = tiny_clf(tiny_dir, epochs=1, deep_prompt=2).fit(X, Y)
    assert not deep.model_.mixable
