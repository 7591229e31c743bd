"""Byte-level BPE (RoBERTa-style) tokenizers: label words in their leading-space form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NEG, POS, WORDS, build_model

from pet_kit import PromptClassifier, load_pvp
from pet_kit.model.backbone import Backbone
from pet_kit.model.encoding import ClozeEncoder
from pet_kit.model.scorer import ClozeScorer


@pytest.fixture(scope="module")
def bpe_tokenizer():
    from tokenizers import AddedToken, ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    corpus = [" ".join(WORDS)] * 20 + POS + NEG + ["It was great. It was terrible."] * 10
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token=AddedToken("<mask>", lstrip=True),
    )


VERB = {"positive": ["great"], "negative": ["terrible"]}


def test_label_words_take_the_leading_space_form(bpe_tokenizer):
    pvp = load_pvp({"pattern": "{text} It was [MASK].", "verbalizer": VERB})
    enc = ClozeEncoder(pvp, bpe_tokenizer, max_length=64)
    (group,) = enc.verbalizer.groups
    words = [bpe_tokenizer.convert_ids_to_tokens(list(ids)) for ids in group.token_ids]
    assert words == [["Ġgreat"], ["Ġterrible"]]


def test_no_space_before_mask_uses_the_bare_form(bpe_tokenizer):
    pvp = load_pvp({"pattern": "{text} It was:[MASK].", "verbalizer": VERB})
    enc = ClozeEncoder(pvp, bpe_tokenizer, max_length=64)
    pieces = {
        bpe_tokenizer.convert_ids_to_tokens(list(ids))[0]
        for g in enc.verbalizer.groups
        for ids in g.token_ids
    }
    assert not any(p.startswith("Ġ") for p in pieces)


def test_fields_after_a_space_are_tokenized_with_it(bpe_tokenizer):
    pvp = load_pvp({"pattern": "Review: {text} It was [MASK].", "verbalizer": VERB})
    enc = ClozeEncoder(pvp, bpe_tokenizer, max_length=64)
    (e,) = enc.encode([{"text": "great movie"}])
    assert bpe_tokenizer.convert_ids_to_tokens(list(e.fields[0])) == ["Ġgreat", "Ġmovie"]
    ids, _, start = enc.assemble(e, 1)
    assert ids[0] == bpe_tokenizer.bos_token_id and ids[-1] == bpe_tokenizer.eos_token_id
    assert ids[start] == bpe_tokenizer.mask_token_id


def test_literal_mask_token_in_pattern_is_rejected(bpe_tokenizer):
    from pet_kit import PatternError

    pvp = load_pvp({"pattern": "{text} It was [MASK]. <s>", "verbalizer": VERB})
    ClozeEncoder(pvp, bpe_tokenizer, max_length=64)  # other specials are fine
    with pytest.raises(PatternError, match="not the mask marker"):
        load_pvp({"pattern": "{text} It was <mask>.", "verbalizer": VERB})


def test_roberta_fast_path_and_training(bpe_tokenizer):
    model = build_model(len(bpe_tokenizer), arch="roberta")
    backbone = Backbone(model=model, tokenizer=bpe_tokenizer, name="roberta", owned=False)
    pvp = load_pvp({"pattern": "[SOFT*2] {text} It was [MASK].", "verbalizer": VERB})
    enc = ClozeEncoder(pvp, bpe_tokenizer, max_length=64)
    fast, full = ClozeScorer(backbone, enc), ClozeScorer(backbone, enc, fast=False)
    slots = torch.randn(2, 32)
    batch = enc.encode([{"text": t} for t in POS + NEG])
    with torch.no_grad():
        torch.testing.assert_close(
            fast.word_scores(batch, slots), full.word_scores(batch, slots), rtol=1e-5, atol=1e-5
        )
    clf = PromptClassifier(
        pvp=pvp,
        model=model,
        tokenizer=bpe_tokenizer,
        epochs=10,
        learning_rate=0.1,
        guard=None,  # this test is about training on a BPE backbone
        verbose=0,
        random_state=0,
    )
    clf.fit(POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG))
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]
    assert np.isfinite(clf.predict_proba(["great"])).all()


def test_special_token_strings_in_text_are_plain_text(bpe_tokenizer):
    """<s>, </s>, <mask>, <pad>, <unk> typed in a text are its characters, byte for byte."""
    pvp = load_pvp({"pattern": "Review: {text} It was [MASK].", "verbalizer": VERB})
    enc = ClozeEncoder(pvp, bpe_tokenizer, max_length=64)
    texts = ["<mask> great </s><s> movie <pad>", "<s>", "a <unk> film </s>", "great<mask>"]
    special = set(bpe_tokenizer.all_special_ids)
    for text, e in zip(texts, enc.encode([{"text": t} for t in texts]), strict=True):
        (field,) = e.fields
        assert not special & set(field), text
        decoded = bpe_tokenizer.decode(list(field), clean_up_tokenization_spaces=False)
        assert decoded == " " + text
    # pattern literals keep their special tokens (the pattern author wrote them)
    lit = ClozeEncoder(
        load_pvp({"pattern": "<s> {text} [MASK].", "verbalizer": VERB}),
        bpe_tokenizer,
        max_length=64,
    )
    assert bpe_tokenizer.bos_token_id in lit.parts[0].ids
