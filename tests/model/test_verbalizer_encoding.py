"""Tests for Verbalizer.compile and ClozeEncoder on the tiny WordPiece tokenizer."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import VOCAB, build_tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pet_kit import InputError, PatternError, Verbalizer, VerbalizerError, load_pvp
from pet_kit.config.verbalizer import CompiledVerbalizer
from pet_kit.io.inputs import check_text
from pet_kit.model.encoding import ClozeEncoder, Encoded

SENTI = {"positive": ["great", "good"], "negative": ["terrible", "bad"]}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    """The conftest WordPiece tokenizer (uncased), without building a model."""
    return build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def cased_tok(tmp_path_factory):
    from transformers import BertTokenizerFast

    tokens = list(dict.fromkeys([*VOCAB, "Great", "Good", "Movie"]))
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=False)


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def encoder(tok, pattern: str, max_length: int = 64, verbalizer=None, fields=None):
    spec = {"pattern": pattern, "verbalizer": verbalizer or SENTI}
    if fields:
        spec["fields"] = fields
    return ClozeEncoder(load_pvp(spec), tok, max_length)


# ------------------------------------------------------------------------ verbalizer
@pytest.mark.parametrize("space_before", [True, False])
def test_compile_single_token_words(tok, space_before):
    v = Verbalizer.from_mapping(SENTI)
    cv = v.compile(tok, space_before=space_before)
    assert isinstance(cv, CompiledVerbalizer)
    assert cv.labels == ("positive", "negative")
    assert len(cv.groups) == 1
    (g,) = cv.groups
    assert g.length == 1
    assert g.words == ("great", "good", "terrible", "bad")
    assert g.label_index == (0, 0, 1, 1)
    assert g.token_ids == tuple((tok.convert_tokens_to_ids(w),) for w in g.words)
    assert cv.max_length == 1
    assert cv.n_words == 4
    assert cv.aggregate == "mean"


def test_compile_groups_by_length(tok):
    v = Verbalizer.from_mapping(
        {"pos": ["great", "fantastic", "好评"], "neg": ["bad", "superb"], "mid": ["很不好"]},
        aggregate="max",
    )
    cv = v.compile(tok, space_before=True)
    assert [g.length for g in cv.groups] == [1, 2, 3]
    one, two, three = cv.groups
    assert one.words == ("great", "bad")
    assert one.label_index == (0, 1)
    assert two.words == ("fantastic", "好评", "superb")
    assert two.label_index == (0, 0, 1)
    assert two.token_ids[0] == tuple(tok.convert_tokens_to_ids(["fan", "##tastic"]))
    assert two.token_ids[1] == tuple(tok.convert_tokens_to_ids(["好", "评"]))
    assert three.words == ("很不好",) and three.label_index == (2,)
    assert cv.max_length == 3
    assert cv.n_words == 6
    assert cv.aggregate == "max"
    for g in cv.groups:
        assert all(len(t) == g.length for t in g.token_ids)


def test_compile_chinese_two_token_words(tok):
    cv = Verbalizer.from_mapping({"pos": ["好评"], "neg": ["差评"]}).compile(
        tok, space_before=False
    )
    assert [g.length for g in cv.groups] == [2]
    assert cv.groups[0].token_ids == (
        tuple(tok.convert_tokens_to_ids(["好", "评"])),
        tuple(tok.convert_tokens_to_ids(["差", "评"])),
    )


@pytest.mark.parametrize("word", ["zzz", "xylophone", "ünknown"])
def test_compile_unknown_word(tok, word):
    v = Verbalizer.from_mapping({"pos": ["great"], "neg": ["bad", word]})
    with pytest.raises(VerbalizerError) as info:
        v.compile(tok, space_before=True)
    msg = str(info.value)
    assert repr(word) in msg
    assert "not in the backbone's vocabulary" in msg
    assert "[UNK]" in msg
    assert info.value.key == "labels.neg"


def test_compile_partly_unknown_word(tok):
    # WordPiece turns a word with any unknown piece into a single [UNK]
    v = Verbalizer.from_mapping({"pos": ["great"], "neg": ["good zzz"]})
    with pytest.raises(VerbalizerError, match="'good zzz' is not in the backbone's vocabulary"):
        v.compile(tok, space_before=True)


@pytest.mark.parametrize("word", ["[SEP]", "[CLS]", "[MASK]", "[PAD]"])
def test_compile_special_token_word(tok, word):
    v = Verbalizer.from_mapping({"pos": ["great"], "neg": [word]})
    with pytest.raises(VerbalizerError) as info:
        v.compile(tok, space_before=True)
    assert "special token" in str(info.value)
    assert repr(word) in str(info.value)


def test_compile_words_tokenizing_identically(tok):
    v = Verbalizer.from_mapping({"pos": ["Great"], "neg": ["great"]})  # distinct strings
    with pytest.raises(VerbalizerError) as info:
        v.compile(tok, space_before=True)
    msg = str(info.value)
    assert "'Great'" in msg and "'great'" in msg
    assert "tokenize identically" in msg


def test_compile_identical_within_a_label(tok):
    v = Verbalizer.from_mapping({"pos": ["great", "GREAT"], "neg": ["bad"]})
    with pytest.raises(VerbalizerError, match="tokenize identically"):
        v.compile(tok, space_before=False)


def test_compile_cased_tokenizer_keeps_case(cased_tok):
    cv = Verbalizer.from_mapping({"pos": ["Great"], "neg": ["great"]}).compile(
        cased_tok, space_before=True
    )
    assert cv.groups[0].token_ids == ((cased_tok.convert_tokens_to_ids("Great"),), (40,))


def test_verbalizer_errors_are_config_errors(tok):
    from pet_kit import ConfigError

    with pytest.raises(ConfigError):
        Verbalizer.from_mapping({"only": ["great"]})
    with pytest.raises(ValueError):
        Verbalizer.from_mapping({"a": ["x"], "b": 3})


def test_verbalizer_dict_round_trip():
    v = Verbalizer.from_mapping({1: ["bad"], 2: ["good", "fine"]}, aggregate="logsumexp", name="r")
    again = Verbalizer.from_dict(v.to_dict())
    assert again.labels == v.labels
    assert again.aggregate == "logsumexp" and again.name == "r"


# -------------------------------------------------------------------------- encoder
def test_special_frame_and_layout(tok):
    enc = encoder(tok, "Review: {text} It was [MASK].")
    (e,) = enc.encode([{"text": "a good movie"}])
    assert isinstance(e, Encoded)
    input_ids, soft, start = enc.assemble(e, 1)
    tokens = tok.convert_ids_to_tokens(input_ids)
    assert tokens == [
        "[CLS]",
        "review",
        ":",
        "a",
        "good",
        "movie",
        "it",
        "was",
        "[MASK]",
        ".",
        "[SEP]",
    ]
    assert start == 8
    assert soft == [-1] * len(input_ids)
    assert enc.n_slots == 0 and enc.slot_init_ids == []
    assert enc.field_names == ("text",)
    assert enc.labels == ("positive", "negative")
    assert enc.fixed_length == 8  # [CLS] review : it was [MASK] . [SEP]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_assemble_places_n_masks(tok, n):
    enc = encoder(tok, "{text} It was [MASK] too.")
    (e,) = enc.encode([{"text": "good fun"}])
    input_ids, soft, start = enc.assemble(e, n)
    assert input_ids[start : start + n] == [tok.mask_token_id] * n
    assert input_ids[start - 1] == tok.convert_tokens_to_ids("was")
    assert input_ids[start + n] == tok.convert_tokens_to_ids("too")
    assert input_ids.count(tok.mask_token_id) == n
    assert all(s == -1 for s in soft[start : start + n])


def test_soft_index_marks_soft_positions(tok):
    enc = encoder(tok, "[SOFT*2] {text} [SOFT] It was [MASK]. [SOFT:it was]")
    assert enc.n_slots == 5
    assert enc.slot_init_ids == [None, None, None, *ids(tok, "it was")]
    (e,) = enc.encode([{"text": "good"}])
    input_ids, soft, start = enc.assemble(e, 1)
    # [CLS] s0 s1 good s2 it was [MASK] . s3 s4 [SEP]
    assert soft == [-1, 0, 1, -1, 2, -1, -1, -1, -1, 3, 4, -1]
    assert start == 7
    assert len(input_ids) == len(soft)
    # soft positions hold a placeholder id and never count as the mask position
    assert input_ids[start] == tok.mask_token_id


def test_shared_slots_reuse_ids(tok):
    enc = encoder(tok, "[SOFT#p*2] {text} [SOFT#q] [SOFT#p*2] [MASK] [SOFT#q] [SOFT]")
    assert enc.n_slots == 4  # p: 0,1  q: 2  anonymous: 3
    (e,) = enc.encode([{"text": "good"}])
    _, soft, _ = enc.assemble(e, 1)
    assert [s for s in soft if s >= 0] == [0, 1, 2, 0, 1, 2, 3]


def test_shared_init_slots_reuse_ids(tok):
    enc = encoder(tok, "[SOFT#w:it was] {text} [SOFT#w:it was] [MASK]")
    assert enc.n_slots == 2
    assert enc.slot_init_ids == ids(tok, "it was")
    (e,) = enc.encode([{"text": "good"}])
    _, soft, _ = enc.assemble(e, 1)
    assert [s for s in soft if s >= 0] == [0, 1, 0, 1]


def test_soft_words_one_slot_per_token(tok):
    enc = encoder(tok, "[SOFT:fantastic 好评 movie] {text} [MASK]")
    expected = ids(tok, "fantastic 好评 movie")
    assert len(expected) == 5
    assert enc.slot_init_ids == expected
    assert enc.n_slots == 5


def test_soft_words_unknown_tokenize_to_unk(tok):
    # init words are tokenized as written; unknown words give [UNK]-initialised slots
    enc = encoder(tok, "[SOFT:zzz] {text} [MASK]")
    assert enc.slot_init_ids == [tok.unk_token_id]


def test_field_options_applied(cased_tok):
    fields = {"q": {"lowercase_first": True, "strip_final_punct": True}}
    enc = encoder(cased_tok, "{text} it was [MASK]. {q}?", fields=fields)
    (e,) = enc.encode([{"text": "Good Movie!", "q": "Great Movie?!。 "}])
    tokens = cased_tok.convert_ids_to_tokens(enc.assemble(e, 1)[0])
    # text untouched, q lower-cased first character only and stripped of final punctuation
    assert tokens == [
        "[CLS]",
        "Good",
        "Movie",
        "!",
        "it",
        "was",
        "[MASK]",
        ".",
        "great",
        "Movie",
        "?",
        "[SEP]",
    ]


def test_strip_final_punct_keeps_inner_punct(tok):
    enc = encoder(tok, "{text}? [MASK]", fields={"text": {"strip_final_punct": True}})
    (e,) = enc.encode([{"text": "good, fun...!? "}])
    assert tok.convert_ids_to_tokens(list(e.fields[0])) == ["good", ",", "fun"]
    (e,) = enc.encode([{"text": "好评很好。！"}])
    assert tok.convert_ids_to_tokens(list(e.fields[0])) == ["好", "评", "很", "好"]
    (e,) = enc.encode([{"text": "!!!"}])
    assert e.fields == ((),)


def test_lowercase_first_on_empty_text(tok):
    enc = encoder(tok, "{text} [MASK]", fields={"text": {"lowercase_first": True}})
    (e,) = enc.encode([{"text": "   "}])
    assert e.fields == ((),)


def test_truncation_longest_first(tok):
    enc = encoder(tok, "{text_a} [MASK] {text_b}", max_length=20)
    budget = 20 - enc.fixed_length
    assert budget == 17
    (e,) = enc.encode([{"text_a": "good " * 30, "text_b": "bad " * 5}])
    assert [len(f) for f in e.fields] == [12, 5]  # only the longer field is cut
    (e,) = enc.encode([{"text_a": "good " * 30, "text_b": "bad " * 40}])
    assert sorted(len(f) for f in e.fields) == [8, 9]
    (e,) = enc.encode([{"text_a": "good " * 3, "text_b": "bad " * 4}])
    assert [len(f) for f in e.fields] == [3, 4]  # nothing cut when it fits
    # the end of a field is cut, never its beginning
    (e,) = enc.encode([{"text_a": "the movie " + "good " * 30, "text_b": "x"}])
    assert tok.convert_ids_to_tokens(list(e.fields[0][:2])) == ["the", "movie"]


def test_long_text_raises_no_false_tokenizer_warning(tmp_path):
    """pet_kit cuts long texts itself: the tokenizer's 'indexing errors' warning is false."""
    from conftest import transformers_warnings

    short_tok = build_tokenizer(tmp_path)  # fresh: the tokenizer warns once per instance
    short_tok.model_max_length = 16
    enc = encoder(short_tok, "{text} It was [MASK].", max_length=16)
    with transformers_warnings() as seen:
        (e,) = enc.encode([{"text": "good movie " * 40}])
    assert len(e.fields[0]) < 16
    assert not [m for m in seen if "longer than the specified maximum" in m]
    with transformers_warnings() as seen:
        short_tok("good movie " * 40)  # the check can fail: the same tokenizer does warn
    assert [m for m in seen if "longer than the specified maximum" in m]


def test_non_shortenable_field_kept_whole(tok):
    enc = encoder(
        tok, "{text_a} [MASK] {text_b}", max_length=20, fields={"text_b": {"shortenable": False}}
    )
    (e,) = enc.encode([{"text_a": "good " * 30, "text_b": "bad " * 15}])
    assert [len(f) for f in e.fields] == [2, 15]


def test_non_shortenable_field_that_cannot_fit(tok):
    enc = encoder(
        tok, "{text_a} [MASK] {text_b}", max_length=20, fields={"text_b": {"shortenable": False}}
    )
    with pytest.raises(InputError) as info:
        enc.encode(
            [{"text_a": "good", "text_b": "fine"}, {"text_a": "good", "text_b": "bad " * 18}]
        )
    assert "example 1" in str(info.value)
    assert "non-shortenable" in str(info.value)


def test_pattern_longer_than_max_length(tok):
    pattern = "[SOFT*10] {text} It was [MASK]."
    enc = encoder(tok, pattern, max_length=16)
    assert enc.fixed_length == 16  # [CLS] 10 slots "it was" [MASK] "." [SEP]
    with pytest.raises(PatternError) as info:
        encoder(tok, pattern, max_length=15)
    assert "needs 16 tokens" in str(info.value)
    assert "max_length is 15" in str(info.value)
    # multi-token label words count with all their mask positions
    with pytest.raises(PatternError, match="3 mask position"):
        encoder(tok, pattern, max_length=17, verbalizer={"a": ["很不好"], "b": ["bad"]})


def test_fixed_length_counts_longest_label_word(tok):
    one = encoder(tok, "{text} [MASK]")
    three = encoder(tok, "{text} [MASK]", verbalizer={"a": ["很不好"], "b": ["bad"]})
    assert three.fixed_length == one.fixed_length + 2


def test_missing_field(tok):
    enc = encoder(tok, "{text_a} [MASK] {text_b}")
    with pytest.raises(InputError) as info:
        enc.encode([{"text_a": "good", "text_b": "bad"}, {"text_a": "good", "text": "bad"}])
    msg = str(info.value)
    assert "'text_b'" in msg and "example 1" in msg
    assert "['text', 'text_a']" in msg


def test_collate_pads_dynamically(tok):
    enc = encoder(tok, "[SOFT] {text} It was [MASK].", max_length=64)
    batch = enc.encode([{"text": "good"}, {"text": "a really good movie and a fun plot"}])
    out = enc.collate(batch, 2)
    lengths = [len(enc.assemble(e, 2)[0]) for e in batch]
    assert set(out) == {"input_ids", "attention_mask", "soft_index", "mask_pos"}
    assert out["input_ids"].shape == (2, max(lengths))
    assert out["input_ids"].dtype == torch.long
    assert out["attention_mask"].sum(1).tolist() == lengths
    for i, n in enumerate(lengths):
        ids_i, soft_i, start_i = enc.assemble(batch[i], 2)
        assert out["input_ids"][i, :n].tolist() == ids_i
        assert (out["input_ids"][i, n:] == tok.pad_token_id).all()
        assert out["attention_mask"][i, :n].eq(1).all() and out["attention_mask"][i, n:].eq(0).all()
        assert out["soft_index"][i, :n].tolist() == soft_i
        assert (out["soft_index"][i, n:] == -1).all()
        assert out["mask_pos"][i].item() == start_i
    # width follows the batch, not max_length
    small = enc.collate(batch[:1], 1)
    assert small["input_ids"].shape == (1, lengths[0] - 1)


def test_encode_empty_batch(tok):
    enc = encoder(tok, "{text} [MASK]")
    assert enc.encode([]) == []


@pytest.mark.parametrize(
    "text",
    [
        "good movie " * 9_091,
        "好" * 100_000,
        "x" * 100_000,
        "good" + " " * 99_990 + "bad",
        ("fantastic! " * 10_000)[:100_000],
    ],
    ids=["words", "cjk", "one-word", "whitespace", "subwords"],
)
def test_very_long_text_fast_and_truncated(tok, text):
    assert len(text) >= 99_990
    enc = encoder(tok, "[SOFT*2] {text} It was [MASK].", max_length=32)
    t0 = time.perf_counter()
    (e,) = enc.encode([{"text": text}])
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0
    budget = 32 - enc.fixed_length
    full = ids(tok, text.strip())
    assert list(e.fields[0]) == full[:budget]
    input_ids, _, _ = enc.assemble(e, 1)
    assert len(input_ids) <= 32


def test_long_text_cut_inside_a_word_keeps_true_tokens(tok):
    enc = encoder(tok, "{text} [MASK]", max_length=8)  # cut at 8 * 32 = 256 characters
    text = "good" + " " * 200 + "super" + "b" * 150  # the 155-char word is one [UNK]
    (e,) = enc.encode([{"text": text}])
    assert tok.convert_ids_to_tokens(ids(tok, text)) == ["good", "[UNK]"]
    assert tok.convert_ids_to_tokens(list(e.fields[0])) == ["good", "[UNK]"]


# ----------------------------------------------------------------- property tests
_EXTRA = ["fantastic", "superb", "好评", "很不好", "!", "?", ",", "zzz"]
WORDS = [*[w for w in VOCAB if w.isalpha() and w.isascii()][:60], *_EXTRA]
word_text = st.lists(st.sampled_from(WORDS), max_size=80).map(" ".join)

PATTERNS = [
    ("[SOFT*2] {text_a} [SOFT:it was] [MASK] . {text_b} [SOFT#p]", {}),
    ("{text_a}? [MASK], {text_b}", {"text_a": {"strip_final_punct": True}}),
    ("[MASK] News: {text_a} [SOFT#p*2] {text_b} [SOFT#p*2]", {}),
]
LABELS = {"pos": ["great", "fantastic"], "neg": ["bad", "很不好"]}


@pytest.fixture(scope="module")
def encoders(tok):
    out = []
    for pattern, fields in PATTERNS:
        probe = encoder(tok, pattern, max_length=512, verbalizer=LABELS, fields=fields)
        out.append((pattern, fields, probe.fixed_length))
    return out


def _skeleton(enc: ClozeEncoder, n_masks: int, field_lengths: list[int]) -> list[tuple]:
    """Expected layout: ('id', token) for fixed tokens, ('field', j) for field tokens."""
    out: list[tuple] = [("id", i) for i in enc._prefix]
    fi = 0
    for part in enc.parts:
        if part.kind == "lit":
            out += [("id", i) for i in part.ids]
        elif part.kind == "field":
            out += [("field", fi)] * field_lengths[fi]
            fi += 1
        elif part.kind == "mask":
            out += [("mask", None)] * n_masks
        else:
            out += [("soft", s) for s in part.slots]
    out += [("id", i) for i in enc._suffix]
    return out


def _check_invariants(tok, enc, record, strict_prefix: bool):
    (e,) = enc.encode([record])
    n_masks = enc.verbalizer.max_length
    input_ids, soft, start = enc.assemble(e, n_masks)
    assert len(input_ids) <= enc.max_length
    assert len(input_ids) == len(soft) == enc.fixed_length + e.length()
    lengths = [len(f) for f in e.fields]
    layout = _skeleton(enc, n_masks, lengths)
    assert len(layout) == len(input_ids)
    field_pos = [0] * len(lengths)
    for pos, ((kind, val), tid, sid) in enumerate(zip(layout, input_ids, soft, strict=True)):
        if kind == "id":
            assert (tid, sid) == (val, -1)
        elif kind == "mask":
            assert tid == tok.mask_token_id and sid == -1
            assert start <= pos < start + n_masks
        elif kind == "soft":
            assert sid == val
        else:
            assert sid == -1
            assert tid == e.fields[val][field_pos[val]]
            field_pos[val] += 1
    assert input_ids[0] == tok.cls_token_id and input_ids[-1] == tok.sep_token_id
    assert input_ids[start : start + n_masks] == [tok.mask_token_id] * n_masks
    # truncation: fields are prefixes of their full tokenization, longest first
    full = []
    for name in enc.field_names:
        text = enc._field_text(check_text(record[name], name), name)  # as the encoder reads it
        full.append(ids(tok, text))
    budget = enc.max_length - enc.fixed_length
    if strict_prefix:
        for got, whole in zip(e.fields, full, strict=True):
            assert list(got) == whole[: len(got)]
    if sum(map(len, full)) <= budget:
        assert lengths == [len(f) for f in full]
    else:
        assert sum(lengths) == budget
        cut = [n for n, f in zip(lengths, full, strict=True) if n < len(f)]
        assert max(lengths) - min(cut) <= 1  # cut fields are (almost) as long as any other


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), a=word_text, b=word_text)
def test_property_fixed_parts_never_truncated(tok, encoders, data, a, b):
    pattern, fields, fixed = data.draw(st.sampled_from(encoders))
    max_length = data.draw(st.integers(fixed, fixed + 60))
    enc = encoder(tok, pattern, max_length=max_length, verbalizer=LABELS, fields=fields)
    _check_invariants(tok, enc, {"text_a": a, "text_b": b}, strict_prefix=True)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), a=st.text(max_size=300), b=st.text(max_size=300))
def test_property_arbitrary_unicode(tok, encoders, data, a, b):
    pattern, fields, fixed = data.draw(st.sampled_from(encoders))
    max_length = data.draw(st.integers(fixed, fixed + 40))
    enc = encoder(tok, pattern, max_length=max_length, verbalizer=LABELS, fields=fields)
    _check_invariants(tok, enc, {"text_a": a, "text_b": b}, strict_prefix=False)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(max_length=st.integers(1, 40))
def test_property_max_length_below_fixed_is_rejected_at_construction(tok, max_length):
    pattern = PATTERNS[0][0]
    fixed = encoder(tok, pattern, max_length=512, verbalizer=LABELS).fixed_length
    if max_length < fixed:
        with pytest.raises(PatternError):
            encoder(tok, pattern, max_length=max_length, verbalizer=LABELS)
    else:
        enc = encoder(tok, pattern, max_length=max_length, verbalizer=LABELS)
        _check_invariants(tok, enc, {"text_a": "good " * 50, "text_b": "bad " * 50}, True)
