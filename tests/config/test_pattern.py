"""Tests for the pattern language (:func:`pet_kit.parse_pattern`)."""

from __future__ import annotations

import pytest

from pet_kit import ConfigError, PatternError, parse_pattern
from pet_kit.config.pattern import MAX_SLOTS, Field, Literal, Mask, Pattern, Soft


def _err(text: str) -> str:
    with pytest.raises(PatternError) as info:
        parse_pattern(text)
    err = info.value
    assert isinstance(err, ConfigError)
    assert isinstance(err, ValueError)
    return str(err)


# --------------------------------------------------------------------- valid patterns
def test_basic_segments():
    p = parse_pattern("{text} It was [MASK].")
    assert isinstance(p, Pattern)
    assert p.text == "{text} It was [MASK]."
    assert p.segments == (
        Field("text", space_before=False),
        Literal(" It was "),
        Mask(space_before=True),
        Literal("."),
    )
    assert p.fields == ("text",)
    assert not p.has_soft


def test_mask_first_and_no_space():
    p = parse_pattern("[MASK]:{text}")
    assert p.segments == (Mask(False), Literal(":"), Field("text", False))


def test_fields_in_order_of_first_appearance():
    p = parse_pattern("{text_b} and {text_a}? [MASK], {text_b} {Col_2}")
    assert p.fields == ("text_b", "text_a", "Col_2")
    assert [s.name for s in p.segments if isinstance(s, Field)] == [
        "text_b",
        "text_a",
        "text_b",
        "Col_2",
    ]


def test_field_name_whitespace_is_stripped():
    p = parse_pattern("{ text } [MASK]")
    assert p.fields == ("text",)


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("{{ {text} }} [MASK]", "{ "),
        ("{{{text}}} [MASK]", "{"),
        ("{text} {{x}} [MASK]", " {x} "),
    ],
)
def test_double_braces_are_literals(pattern, literal):
    p = parse_pattern(pattern)
    assert p.fields == ("text",)
    assert Literal(literal) in p.segments
    joined = "".join(s.text for s in p.segments if isinstance(s, Literal))
    assert "{{" not in joined and "}}" not in joined


def test_literal_braces_only_is_not_a_field():
    msg = _err("{{text}} [MASK]")
    assert "no text field" in msg


def test_space_before_flags():
    p = parse_pattern("{a}{b} {c}\t[MASK]\n{d}[SOFT] {e}")
    flags = {s.name: s.space_before for s in p.segments if isinstance(s, Field)}
    assert flags == {"a": False, "b": False, "c": True, "d": True, "e": True}
    mask = next(s for s in p.segments if isinstance(s, Mask))
    assert mask.space_before is True
    assert parse_pattern("{text}[MASK]").segments[1] == Mask(False)


def test_literal_text_kept_verbatim():
    p = parse_pattern("Review:  {text}  It was [MASK] !")
    lits = [s.text for s in p.segments if isinstance(s, Literal)]
    assert lits == ["Review:  ", "  It was ", " !"]


# ------------------------------------------------------------------------ soft slots
def test_soft_plain():
    p = parse_pattern("[SOFT] {text} [MASK]")
    assert p.has_soft
    assert p.segments[0] == Soft(count=1, init=None, shared=None)


def test_soft_count():
    p = parse_pattern("[SOFT*4] {text} [MASK]")
    assert p.segments[0] == Soft(count=4, init=None, shared=None)


def test_soft_max_slots_allowed():
    p = parse_pattern(f"[SOFT*{MAX_SLOTS}] {{text}} [MASK]")
    assert p.segments[0].count == MAX_SLOTS


def test_soft_init_words():
    p = parse_pattern("{text} [SOFT: It was ] [MASK].")
    soft = next(s for s in p.segments if isinstance(s, Soft))
    assert soft == Soft(count=None, init="It was", shared=None)


def test_soft_shared():
    p = parse_pattern("[SOFT#p*2] {text} [SOFT#p*2] [MASK] [SOFT#q]")
    softs = [s for s in p.segments if isinstance(s, Soft)]
    assert softs == [Soft(2, None, "p"), Soft(2, None, "p"), Soft(1, None, "q")]


def test_soft_shared_with_init():
    p = parse_pattern("[SOFT#w:it was] {text} [SOFT#w:it was] [MASK]")
    softs = [s for s in p.segments if isinstance(s, Soft)]
    assert softs == [Soft(None, "it was", "w")] * 2


def test_soft_shared_written_equivalently_is_consistent():
    # [SOFT#a] is one slot, exactly like [SOFT#a*1]
    p = parse_pattern("[SOFT#a*1] {text} [SOFT#a] [MASK]")
    assert p.has_soft


def test_has_soft_false_without_slots():
    assert parse_pattern("[MASK] {text}").has_soft is False


def test_square_brackets_that_are_not_markers_are_literals():
    p = parse_pattern("[ Category: [MASK] ] {text} [note]")
    lits = "".join(s.text for s in p.segments if isinstance(s, Literal))
    assert "[ Category: " in lits and " ] " in lits and "[note]" in lits


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("pattern", ["{text} It was great.", "{text}"])
def test_no_mask(pattern):
    msg = _err(pattern)
    assert "no [MASK]" in msg
    assert "add [MASK]" in msg


def test_two_masks():
    msg = _err("{text} [MASK] and [MASK].")
    assert "2 [MASK] markers" in msg
    assert "exactly one" in msg
    # the hint explains how multi-token words are handled
    assert "several mask positions" in msg


@pytest.mark.parametrize("bad", ["[mask]", "<mask>", "[Mask]"])
def test_wrong_mask_spelling_is_rejected_with_hint(bad):
    msg = _err(f"{{text}} It was {bad}.")
    assert repr(bad) in msg
    assert "write [MASK]" in msg
    assert "column 15" in msg  # 1-based column of the marker


def test_wrong_mask_even_when_a_real_mask_exists():
    msg = _err("{text} [MASK] <mask>")
    assert "'<mask>'" in msg


@pytest.mark.parametrize(
    "slot",
    ["[SOFTx]", "[SOFT*]", "[SOFT#]", "[SOFT*-1]", "[SOFT*2#a]", "[SOFT x]", "[SOFT*two]"],
)
def test_malformed_soft(slot):
    msg = _err(f"{slot} {{text}} [MASK]")
    assert "malformed soft slot" in msg
    assert repr(slot) in msg
    assert "[SOFT*N]" in msg  # lists the valid forms


@pytest.mark.parametrize("count", [0, MAX_SLOTS + 1])
def test_soft_count_out_of_range(count):
    msg = _err(f"[SOFT*{count}] {{text}} [MASK]")
    assert f"between 1 and {MAX_SLOTS}" in msg


def test_soft_count_and_init_together():
    msg = _err("[SOFT*2:it was] {text} [MASK]")
    assert "either *N or :init words, not both" in msg


@pytest.mark.parametrize("slot", ["[SOFT:]", "[SOFT:   ]"])
def test_soft_empty_init(slot):
    assert "init words are empty" in _err(f"{slot} {{text}} [MASK]")


@pytest.mark.parametrize(
    "pattern",
    [
        "[SOFT#a] {text} [SOFT#a*2] [MASK]",
        "[SOFT#a*3] {text} [SOFT#a*2] [MASK]",
        "[SOFT#a:good] {text} [SOFT#a:bad] [MASK]",
        "[SOFT#a:good] {text} [SOFT#a] [MASK]",
    ],
)
def test_inconsistent_sharing(pattern):
    msg = _err(pattern)
    assert "[SOFT#a...]" in msg
    assert "written identically" in msg


@pytest.mark.parametrize(
    ("pattern", "brace", "col"),
    [
        ("{text [MASK]", "{", 1),
        ("{text}} [MASK]", "}", 7),
        ("}{text} [MASK]", "}", 1),
        ("{text} [MASK}", "}", 13),
        ("{text} { [MASK]", "{", 8),
    ],
)
def test_unbalanced_braces(pattern, brace, col):
    msg = _err(pattern)
    assert f"unbalanced '{brace}' at column {col}" in msg
    assert "'{{' or '}}'" in msg


@pytest.mark.parametrize("name", ["1abc", "", "text-b", "a b", "text.b", "é!"])
def test_bad_field_name(name):
    msg = _err(f"{{{name}}} [MASK]")
    assert "bad field name" in msg
    assert f"{{{name}}}" in msg


def test_no_text_field():
    msg = _err("It was [MASK].")
    assert "no text field" in msg
    assert "{text}" in msg


@pytest.mark.parametrize("pattern", ["", "   ", "\n"])
def test_empty_pattern(pattern):
    assert "empty" in _err(pattern)


def test_non_string_pattern():
    with pytest.raises(PatternError):
        parse_pattern(None)  # type: ignore[arg-type]


def test_error_carries_source_and_key():
    with pytest.raises(PatternError) as info:
        parse_pattern("{text}", source="my.yaml", key="patterns.0.pattern")
    err = info.value
    assert err.source == "my.yaml"
    assert err.key == "patterns.0.pattern"
    assert str(err).startswith("my.yaml: patterns.0.pattern: ")
    assert "'{text}'" in str(err)  # the pattern itself is quoted


def test_a_huge_pattern_is_refused_before_parsing(monkeypatch):
    import time

    text = "{text} It was [MASK]." + " and so on" * 1_000_000  # 10 MB
    start = time.perf_counter()
    with pytest.raises(PatternError) as info:
        parse_pattern(text, source="p.yaml", key="pattern")
    assert time.perf_counter() - start < 0.5
    msg = str(info.value)
    assert msg.startswith("p.yaml: pattern: the pattern is 10000021 characters long")
    assert "over the limit of 10000" in msg and "PET_KIT_MAX_PATTERN_CHARS" in msg
    assert len(msg) < 500  # the pattern itself is not repeated in the message
    parse_pattern("{text} [MASK]" + "x" * 9_987)  # 10 000 characters: fine
    monkeypatch.setenv("PET_KIT_MAX_PATTERN_CHARS", "20000000")
    assert parse_pattern(text).fields == ("text",)
