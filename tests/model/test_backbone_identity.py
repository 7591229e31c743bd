"""Backbone identity: the fingerprint covers every weight and is checked wherever a prompt
meets a backbone (load, unpickle, bank, int8 copies)."""

from __future__ import annotations

import json
import logging
import pickle
import shutil

import numpy as np
import pytest
import torch
from conftest import NEG, POS, build_model, tiny_clf

from pet_kit import BackboneMismatchError, PromptClassifier
from pet_kit.io.prompt_folder import META_FILE
from pet_kit.model.backbone import (
    FINGERPRINT_PREFIX,
    clear_backbone_cache,
    fingerprint,
    legacy_fingerprint,
)

X = POS + NEG
Y = ["positive"] * len(POS) + ["negative"] * len(NEG)


def _encoder_weight(model: torch.nn.Module) -> torch.Tensor:
    return model.bert.encoder.layer[0].output.dense.weight


def _other_encoder(model_dir, out):
    """A copy of the model folder ``model_dir`` whose encoder weights differ (same config,
    same embeddings)."""
    from transformers import AutoModelForMaskedLM

    shutil.copytree(model_dir, out)
    model = AutoModelForMaskedLM.from_pretrained(str(out))
    with torch.no_grad():
        _encoder_weight(model).mul_(-1.0)
    model.save_pretrained(out)
    return out


def test_the_fingerprint_covers_the_encoder_not_only_the_embeddings(tiny_tokenizer):
    a, b = build_model(len(tiny_tokenizer)), build_model(len(tiny_tokenizer))
    assert fingerprint(a) == fingerprint(b) and fingerprint(a).startswith(FINGERPRINT_PREFIX)
    with torch.no_grad():
        _encoder_weight(b)[0, 0] += 1.0
    assert legacy_fingerprint(a) == legacy_fingerprint(b)  # what the old identity saw
    assert fingerprint(a) != fingerprint(b)


def test_the_cached_digest_follows_in_place_changes(tiny_tokenizer):
    model = build_model(len(tiny_tokenizer))
    first = fingerprint(model)
    assert fingerprint(model) == first  # cached
    weight = _encoder_weight(model)
    with torch.no_grad():
        weight.add_(1.0)  # autograd's version counter moves
    second = fingerprint(model)
    assert second != first
    weight.data.copy_(weight.data * 2)  # .data bypasses the version counter
    assert fingerprint(model) not in (first, second)
    model.load_state_dict(build_model(len(tiny_tokenizer)).state_dict())
    assert fingerprint(model) == first


def test_a_prompt_refuses_a_backbone_whose_encoder_differs(tiny_dir, tmp_path):
    folder = tiny_clf(tiny_dir, epochs=1).fit(X, Y).save(tmp_path / "p")
    other = _other_encoder(tiny_dir, tmp_path / "other")
    with pytest.raises(BackboneMismatchError, match="weights differ"):
        PromptClassifier.load(folder, model=str(other), device="cpu")


def _as_legacy(folder, model_dir) -> None:
    """Rewrite the prompt's recorded identity as an older pet_kit recorded it."""
    from transformers import AutoModelForMaskedLM

    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir))
    meta["backbone"]["fingerprint"] = legacy_fingerprint(model)
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def test_a_prompt_saved_with_the_older_identity_loads_with_a_warning(
    tiny_dir, tiny_tokenizer, tmp_path, caplog
):
    clf = tiny_clf(tiny_dir, epochs=1).fit(X, Y)
    folder = clf.save(tmp_path / "p")
    _as_legacy(folder, tiny_dir)
    with caplog.at_level(logging.WARNING, logger="pet_kit"):
        loaded = PromptClassifier.load(folder, device="cpu")
    assert "older backbone identity" in caplog.text
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    other_dir = tmp_path / "other"
    build_model(len(tiny_tokenizer), seed=5).save_pretrained(other_dir)
    tiny_tokenizer.save_pretrained(other_dir)
    with pytest.raises(BackboneMismatchError):
        PromptClassifier.load(folder, model=str(other_dir), device="cpu")


def test_an_unpickled_estimator_checks_the_backbone_at_its_path(tiny_dir, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(tiny_dir, path)
    clf = tiny_clf(path, epochs=1).fit(X, Y)
    blob = pickle.dumps(clf)
    assert np.allclose(pickle.loads(blob).predict_proba(X), clf.predict_proba(X))
    shutil.rmtree(path)
    _other_encoder(tiny_dir, path)  # another model saved at the same path
    clear_backbone_cache()
    back = pickle.loads(blob)
    with pytest.raises(BackboneMismatchError, match="pickled with backbone"):
        back.predict_proba(X)


def test_a_bank_refuses_a_fitted_prompt_of_another_backbone(tiny_dir, tmp_path, tiny_tokenizer):
    from pet_kit.serving.bank import PromptBank

    other = build_model(len(tiny_tokenizer), seed=3)
    stranger = tiny_clf(None, model=other, tokenizer=tiny_tokenizer, epochs=1).fit(X, Y)
    bank = PromptBank(str(tiny_dir), device="cpu")
    with pytest.raises(BackboneMismatchError, match="the bank serves"):
        bank.add("stranger", stranger)
    bank.add("own", tiny_clf(tiny_dir, epochs=1).fit(X, Y))
    assert list(bank.tasks) == ["own"]


def test_an_int8_copy_follows_in_place_changes_of_the_model(tiny_model, tiny_tokenizer):
    clf = tiny_clf(None, model=tiny_model, tokenizer=tiny_tokenizer, epochs=1).fit(X, Y)
    before = clf.optimize("int8").predict_proba(X)
    tiny_model.load_state_dict(build_model(len(tiny_tokenizer), seed=7).state_dict())
    after = clf.predict_proba(X)
    assert not np.allclose(after, before)
    reference = pickle.loads(pickle.dumps(clf.optimize(None))).optimize("int8")
    np.testing.assert_allclose(after, reference.predict_proba(X), atol=1e-6)
    assert clf.model_.backbone.fingerprint == fingerprint(tiny_model)


def test_the_fingerprint_of_tied_weights_equals_an_untied_copy(tiny_tokenizer):
    tied = build_model(len(tiny_tokenizer))
    untied = build_model(len(tiny_tokenizer))
    untied.cls.predictions.decoder.weight = torch.nn.Parameter(
        untied.cls.predictions.decoder.weight.detach().clone()
    )
    assert tied.cls.predictions.decoder.weight is tied.bert.embeddings.word_embeddings.weight
    assert fingerprint(tied) == fingerprint(untied)


def test_prompt_json_records_the_full_identity(tiny_dir, tmp_path):
    clf = tiny_clf(tiny_dir, epochs=1).fit(X, Y)
    meta = json.loads((clf.save(tmp_path / "p") / META_FILE).read_text(encoding="utf-8"))
    assert meta["backbone"]["fingerprint"] == fingerprint(clf.model_.backbone.model)
    assert meta["backbone"]["fingerprint"].startswith(FINGERPRINT_PREFIX)
