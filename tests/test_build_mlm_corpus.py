"""Pure functions of scripts/default_backbone/build_corpus.py: no network, downloads or packages."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "default_backbone" / "build_corpus.py"


@pytest.fixture(scope="module")
def bmc():
    spec = importlib.util.spec_from_file_location("build_mlm_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_clean_units_normalises_filters_and_dedups(bmc):
    raw = [
        "  The cat\nsat on\tthe   mat. ",
        "The cat sat on the mat.",  # duplicate after normalising
        "Too short here",  # 3 words
        "1234 5678 9999 0000 ----",  # mostly non-letters
        "A line\u2028with a unicode separator inside it",
        "Ctrl\x07 chars are dropped from this unit",
    ]
    units = bmc.clean_units(raw)
    assert units == [
        "The cat sat on the mat.",
        "A line with a unicode separator inside it",
        "Ctrl chars are dropped from this unit",
    ]
    assert all("\n" not in u and u.splitlines() == [u] for u in units)
    assert bmc.clean_units(["one two three four five"], min_words=6) == []
    assert bmc.clean_units(["one two three four"], min_words=2) == ["one two three four"]


def test_strip_markup_and_html_paragraphs(bmc):
    text = 'Hello <span color="red">$name</span>, you have %d coins.\\nBye'
    assert bmc.strip_markup(text) == "Hello X, you have X coins. Bye"
    assert bmc.strip_markup("At %planet%: %1% took 50% of it.") == "At X: X took 50% of it."
    page = (
        "<html><head><title>T</title></head><body><nav>menu</nav>"
        "<p>First &amp; <code>inline</code> paragraph.</p><pre>code()</pre>"
        '<div class="highlight"><div>x = 1</div></div><li>Item text</li></body></html>'
    )
    paras = bmc.html_paragraphs(page, skip_classes=("highlight",))
    assert paras == ["First & inline paragraph.", "Item text"]


def test_mo_msgids_reads_singular_plural_and_context(bmc):
    strings = [b"", b"ctx\x04Hello", b"one apple\x00many apples"]
    header = 28
    table = header
    data_start = table + 16 * len(strings)
    offsets, blob = [], b""
    for s in strings:
        offsets.append((len(s), data_start + len(blob)))
        blob += s + b"\x00"
    mo = struct.pack("<IIIIIII", 0x950412DE, 0, len(strings), table, table + 8 * 3, 0, 0)
    mo += b"".join(struct.pack("<II", n, o) for n, o in offsets)
    mo += b"\x00" * (8 * len(strings)) + blob
    assert bmc.mo_msgids(mo) == ["", "Hello", "one apple", "many apples"]


def test_decontamination_removes_units_sharing_a_10gram(bmc):
    eval_texts = ["It was the best of times, it was the worst of times, it was the age of wisdom."]
    index = bmc.NgramIndex(eval_texts)
    planted = "Dickens wrote: it was the BEST of times; it was the worst of times, or so."
    nine_only = "it was the best of times it was the end, said nobody ever"
    clean = "A completely unrelated sentence about cats, dogs and the weather in spring."
    kept, removed = bmc.decontaminate([planted, nine_only, clean], index)
    assert kept == [nine_only, clean]
    assert removed == 1
    assert bmc.words("Don’t STOP-me") == ["don", "t", "stop", "me"]


def test_diatheke_and_kjv_parsers(bmc):
    osis = (
        'Genesis 1:1: <w>In</w> <w>God</w><w>created</w> the heavens.<milestone type="line"/>\n'
        "A praise psalm by David.  Esther (Greek) 1:2: in those days of old.\n"
        "Revelation of John 22:21: Amen. The following words used in the World English Bible "
        "are rare.\n(engWEB2015eb)\n"
    )
    assert bmc.parse_diatheke_osis(osis) == [
        "In God created the heavens.",
        "in those days of old.",
        "Amen.",
        "The following words used in the World English Bible are rare.",
    ]
    kjv = "\nGenesis 1\n\n  1 In the beginning.\n  2 And the earth.\n"
    assert bmc.parse_bible_kjv(kjv) == ["In the beginning.", "And the earth."]


def test_summarise_totals(bmc):
    entries = {
        "a": {"units": 2, "characters": 10, "words": 4, "tokens": 6,
              "removed_by_decontamination": 1, "weight": 3.0},
        "b": {"units": 5, "characters": 50, "words": 9, "tokens": 20,
              "removed_by_decontamination": 0, "weight": 0.5},
    }  # fmt: skip
    totals = bmc.summarise(entries)
    assert totals == {
        "sources": 2,
        "units": 7,
        "characters": 60,
        "words": 13,
        "tokens": 26,
        "removed_by_decontamination": 1,
        "weighted_tokens_per_pass": 28,
    }


def test_write_units_is_one_unit_per_line(bmc, tmp_path):
    path = tmp_path / "x.txt"
    bmc.write_units(path, ["first unit here now", "second unit here now"])
    assert path.read_bytes() == b"first unit here now\nsecond unit here now\n"
    assert len(bmc.file_sha256(path)) == 64


def test_registry_is_consistent(bmc):
    names = [s.name for s in bmc.SOURCES]
    assert len(names) == len(set(names)) == 54
    assert not set(names) & bmc.EXCLUDED
    assert all(s.weight > 0 and s.licence for s in bmc.SOURCES)
    with pytest.raises(SystemExit):
        bmc.select_sources("chitchat,sharegpt")
    assert [s.name for s in bmc.select_sources("austen,chitchat")] == ["chitchat", "austen"]
