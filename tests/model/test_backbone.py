"""Backbone loading: refusals with clear messages, caching, fingerprints."""

from __future__ import annotations

import pytest
import torch
from conftest import SENTIMENT_PVP, build_model

from pet_kit import BackboneError, PromptClassifier
from pet_kit.model.backbone import fingerprint, load_backbone


def test_missing_mlm_head_is_refused(tmp_path, tiny_tokenizer):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    BertModel(cfg).save_pretrained(tmp_path)  # an encoder without its MLM head
    tiny_tokenizer.save_pretrained(tmp_path)
    with pytest.raises(BackboneError, match=r"no trained MLM head.*cls\.predictions"):
        load_backbone(str(tmp_path), device="cpu")


def test_not_a_masked_lm_is_refused(tmp_path, tiny_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tiny_tokenizer))
    ).save_pretrained(tmp_path)
    with pytest.raises(BackboneError, match="not a masked language model"):
        load_backbone(str(tmp_path), device="cpu")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(BackboneError, match="must be None, a name/path"):
        load_backbone(42)


def test_model_object_without_head_is_refused(tiny_tokenizer):
    from transformers import BertConfig, BertModel

    encoder = BertModel(
        BertConfig(
            vocab_size=len(tiny_tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
        )
    )
    clf = PromptClassifier(pvp=SENTIMENT_PVP, model=encoder, tokenizer=tiny_tokenizer)
    with pytest.raises(BackboneError, match="no MLM head"):
        clf.fit(None)


def test_backbones_are_loaded_once_and_shared(tiny_dir):
    a = load_backbone(str(tiny_dir), device="cpu")
    b = load_backbone(str(tiny_dir), device="cpu")
    assert a is b and a.owned
    assert not a.model.training
    assert not any(p.requires_grad for p in a.model.parameters())


def test_fingerprint_tracks_weights_not_object(tiny_tokenizer):
    m1 = build_model(len(tiny_tokenizer), seed=0)
    m2 = build_model(len(tiny_tokenizer), seed=0)
    m3 = build_model(len(tiny_tokenizer), seed=1)
    assert fingerprint(m1) == fingerprint(m2) != fingerprint(m3)
    assert fingerprint(m1).startswith("weights-sha256:")
    with torch.no_grad():
        m2.get_input_embeddings().weight[0, 0] += 1.0
    assert fingerprint(m2) != fingerprint(m1)  # in-place edits are seen (no stale cache)
