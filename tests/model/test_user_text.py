"""User text is plain text: special-token strings, lone surrogates, ambiguous columns.

Text that comes from the user (fields, demonstrations, calibration texts, label-search
data) must never become special tokens, must be a real str (no lone surrogates), and
must come from one unambiguous column.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest
from conftest import NEG, POS

from pet_kit import Calibration, InputError, load_pvp
from pet_kit.io.inputs import to_records
from pet_kit.model.demonstrations import _cut, embed_texts
from pet_kit.model.encoding import ClozeEncoder, plain_text_ids
from pet_kit.tools.label_search import search_label_words

SENTI = {"positive": ["great", "good"], "negative": ["terrible", "bad"]}
INJECTED = [
    "[MASK] [MASK] a great movie [MASK]",
    "[SEP] a terrible [PAD] film [CLS]",
    "[UNK] good[MASK]",
    "[MASK]",
]


def spaced(text: str) -> str:
    """``[MASK]`` -> ``[ MASK ]``: the same ordinary pieces for a BERT tokenizer."""
    return re.sub(r"\[(\w+)\]", r" [ \1 ] ", text)


def forbidden(tok) -> set[int]:
    return set(tok.all_special_ids) - {tok.unk_token_id}


@pytest.fixture(scope="module")
def fitted(tiny_dir):
    from conftest import tiny_clf

    return tiny_clf(tiny_dir, epochs=2).fit(POS + NEG, ["positive"] * 8 + ["negative"] * 8)


# ------------------------------------------------------------- special-token strings
def test_special_token_strings_in_fields_are_ordinary_pieces(tiny_tokenizer):
    pvp = load_pvp({"pattern": "Review: {text} It was [MASK].", "verbalizer": SENTI})
    enc = ClozeEncoder(pvp, tiny_tokenizer, max_length=64)
    encoded = enc.encode([{"text": t} for t in INJECTED])
    for text, e in zip(INJECTED, encoded, strict=True):
        (field,) = e.fields
        assert not forbidden(tiny_tokenizer) & set(field), text
        # exactly the pieces of the text with the brackets spaced out
        assert list(field) == tiny_tokenizer(spaced(text), add_special_tokens=False)["input_ids"]
    pieces = tiny_tokenizer.convert_ids_to_tokens(list(encoded[3].fields[0]))
    assert pieces[0] == "[" and pieces[-1] == "]" and "[MASK]" not in pieces
    ids, _, start = enc.assemble(encoded[0], 1)
    assert ids.count(tiny_tokenizer.mask_token_id) == 1 and ids[start] == enc.mask_id
    # the tokenizer itself is left as it was: other callers still get special tokens
    assert tiny_tokenizer("[MASK]", add_special_tokens=False)["input_ids"] == [enc.mask_id]
    assert tiny_tokenizer._tokenizer.encode_special_tokens is False


def test_predictions_do_not_change_when_brackets_are_spaced(fitted):
    texts = [*INJECTED, "a great movie"]
    np.testing.assert_allclose(
        fitted.predict_proba(texts), fitted.predict_proba([spaced(t) for t in texts]), atol=1e-6
    )


class _KeepsSpecials:
    """A tokenizer that keeps special tokens whole even when asked to split them (as slow
    BERT tokenizers of transformers 4.x do) and has no fast backend to switch."""

    def __init__(self, tok):
        self._tok = tok

    def __call__(self, texts, **kwargs):
        kwargs.pop("split_special_tokens", None)
        return self._tok(texts, **kwargs)

    def __getattr__(self, name):
        if name == "_tokenizer":
            raise AttributeError(name)
        return getattr(self._tok, name)


class _OldFast(_KeepsSpecials):
    """A fast tokenizer of transformers < 4.42: no split_special_tokens argument."""

    def __call__(self, texts, **kwargs):
        if "split_special_tokens" in kwargs:
            raise TypeError(
                "_batch_encode_plus() got an unexpected keyword argument 'split_special_tokens'"
            )
        return self._tok(texts, **kwargs)


@pytest.mark.parametrize("wrapper", [_KeepsSpecials, _OldFast])
def test_tokenizers_that_keep_special_tokens_whole_fall_back_to_pieces(tiny_tokenizer, wrapper):
    texts = [*INJECTED, "a good film", ""]
    expected = plain_text_ids(tiny_tokenizer, texts)
    assert plain_text_ids(wrapper(tiny_tokenizer), texts) == expected
    assert all(not forbidden(tiny_tokenizer) & set(row) for row in expected)


def test_calibration_texts_are_plain_text(make_clf):
    a = make_clf(calibration=Calibration("content_free", texts=["[MASK] [SEP]"])).fit(None)
    b = make_clf(calibration=Calibration("content_free", texts=["[ MASK ] [ SEP ]"])).fit(None)
    np.testing.assert_allclose(a.calibration_prior_, b.calibration_prior_, atol=1e-6)


def test_demonstrations_are_plain_text(make_clf, tiny_tokenizer):
    X = [*POS[:4], "[MASK] [SEP] great [MASK]", *NEG[:4], "[CLS] bad [PAD]"]
    y = ["positive"] * 5 + ["negative"] * 5
    clf = make_clf(epochs=1, demonstrations="random").fit(X, y)
    for e in clf.model_.encode(X):
        assert not forbidden(tiny_tokenizer) & {i for f in e.fields for i in f}
    # the demonstration budget counts the pieces the encoder will see
    assert _cut("[MASK] [MASK] [MASK]", tiny_tokenizer, 4) == "[MASK] ["


def test_similarity_embeddings_read_plain_text(fitted):
    backbone = fitted.model_.backbone
    np.testing.assert_allclose(
        embed_texts(backbone, ["[MASK] great [SEP]", "a film"]),
        embed_texts(backbone, [spaced("[MASK] great [SEP]"), "a film"]),
        atol=1e-6,
    )


def test_label_search_reads_plain_text(tiny_dir):
    y = ["positive"] * 3 + ["negative"] * 3
    X = ["[MASK] great", "good [SEP]", "[CLS] fun", "bad [MASK]", "[PAD] awful", "dull [MASK]"]
    kw = dict(model=str(tiny_dir), n_words=2, min_chars=2)
    got = search_label_words("{text} It was [MASK].", X, y, **kw)
    assert got == search_label_words("{text} It was [MASK].", [spaced(x) for x in X], y, **kw)


# ------------------------------------------------------------------ lone surrogates
@pytest.mark.parametrize(
    ("X", "where"),
    [
        (["a great film", "abc\udc80"], "X[1] has a lone surrogate '\\udc80' at character 3"),
        (
            pd.DataFrame({"text": pd.Series(["\ud800 bad"], dtype=object)}),
            "X[0]['text'] has a lone surrogate",
        ),
        ([{"text": "ok\udfff"}], "X[0]['text'] has a lone surrogate '\\udfff' at character 2"),
    ],
)
def test_lone_surrogates_are_refused_with_the_fix(fitted, X, where):
    with pytest.raises(InputError) as err:
        fitted.predict(X)
    assert where in str(err.value) and "errors='replace'" in str(err.value)


def test_lone_surrogates_in_fit_and_calibration_texts(make_clf):
    with pytest.raises(InputError, match=r"X\[8\] has a lone surrogate"):
        make_clf().fit([*POS, "x\udc80", *NEG[1:]], ["positive"] * 8 + ["negative"] * 8)
    clf = make_clf(calibration=Calibration("content_free", texts=["N/A", "\udcff"]))
    with pytest.raises(InputError, match="example 1 field 'text' has a lone surrogate"):
        clf.fit(None)


# ------------------------------------------------------------- ambiguous columns
def test_a_frame_with_two_text_columns_is_refused(fitted):
    X = pd.DataFrame([["a great movie", "awful"]], columns=["text", "text"])
    with pytest.raises(InputError, match=r"several columns named \['text'\]"):
        fitted.predict(X)
    with pytest.raises(InputError, match=r"several columns named \['text'\]"):
        to_records(pd.DataFrame([["a", "b", "c"]], columns=["text", "id", "text"]), ["text"])


def test_the_single_column_fallback_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="pet_kit.io.inputs"):
        records = to_records(pd.DataFrame({"review": ["a film"]}), ["text"])
    assert records == [{"text": "a film"}]
    assert "one column, 'review': it is read as the pattern's field 'text'" in caplog.text
