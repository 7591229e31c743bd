"""Fuzzing the specification loaders: random YAML documents and random PVP dicts.

Loading may only ever raise pet_kit's documented errors (:class:`PetKitError`
subclasses). A PVP that loads and compiles is then encoded: the mask and the soft slots
are never cut and no input exceeds ``max_length``. (Fixed patterns with random texts are
fuzzed in test_verbalizer_encoding.py; this covers random patterns.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pet_kit import PetKitError, load_pvp, load_pvps, load_verbalizer
from pet_kit.model.encoding import ClozeEncoder

KEYS = [
    "pattern", "patern", "patterns", "verbalizer", "verbaliser", "labels", "lables",
    "aggregate", "agregate", "fields", "text", "text_a", "shortenable", "lowercase_first",
    "strip_final_punct", "name", "default", "language", "description", "<<", "1", "yes",
]  # fmt: skip
PATTERN_FRAGMENTS = [
    "{text}", "{text_a}", "{text_b}", "{", "}", "{{", "}}", "[MASK]", "[mask]", "<mask>",
    "[SOFT]", "[SOFT*2]", "[SOFT*0]", "[SOFT*999]", "[SOFT:It was]", "[SOFT:]", "[SOFT#a]",
    "[SOFT#a*2]", "[SOFT", "[", "]", "*", "#", ":", " ", "It was", ".", "?", "好", "😀",
    "[CLS]", "[SEP]", "{ text }", "{1x}", "\n", "\t",
]  # fmt: skip
WORDS = ["great", "good", "bad", "terrible", "", " ", "[SEP]", "[MASK]", "xyzzy", "好评", "fun"]
YAML_FRAGMENTS = [
    "pattern: ", "verbalizer: ", "labels: ", "patterns:\n", "  - ", "  ", "\n", ": ", ", ",
    "{", "}", "[", "]", "'", '"', "&a ", "*a", "&b [*a, *a]", "<<: *a", "!!python/object/apply"
    ":builtins.open ['pet_kit_pwned_marker', 'w']", "!!str ", "!!binary aGk=", "? ", "|\n",
    "---\n", "...\n", "%YAML 1.1\n", "# c\n", "~", "null", "yes", "1.5", "-1", "\t",
    "\"{text} It was [MASK].\"", "[great, good]", "{pos: [great], neg: [bad]}", "\x00", "\ufeff",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
patterns = st.lists(st.sampled_from(PATTERN_FRAGMENTS), max_size=10).map("".join)
values = st.recursive(
    st.one_of(scalars, patterns),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), scalars), inner, max_size=4),
    ),
    max_leaves=12,
)
label_words = st.one_of(
    st.sampled_from(WORDS), st.lists(st.sampled_from(WORDS), max_size=3), values
)
verbalizers = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(WORDS), st.integers(0, 3)), label_words, max_size=4),
    st.fixed_dictionaries(
        {"labels": st.dictionaries(st.sampled_from(WORDS), label_words, max_size=4)},
        optional={"aggregate": st.sampled_from(["mean", "max", "logsumexp", "median", 1])},
    ),
    values,
)
VALID_WORDS = ["great", "good", "bad", "terrible", "fun", "boring", "awful", "好评", "fantastic"]
SAFE_FRAGMENTS = [
    "[SOFT]", "[SOFT*2]", "[SOFT:It was]", "[SOFT#a]", "[SOFT#a]", " ", "It was", ".", "?",
    "{{", "}}", "{text}", "好", "😀", "\n", "[", "]",
]  # fmt: skip


@st.composite
def near_valid_pvps(draw: st.DrawFn) -> dict[str, object]:
    """PVP dicts that often load: a field and [MASK] among random fragments."""
    fragment = st.one_of(st.sampled_from(SAFE_FRAGMENTS), st.sampled_from(PATTERN_FRAGMENTS))
    parts = draw(st.lists(fragment, max_size=8))
    for required in ("{text}", "[MASK]"):
        parts.insert(draw(st.integers(0, len(parts))), required)
    words = draw(st.lists(st.sampled_from(VALID_WORDS), min_size=2, max_size=6, unique=True))
    n_labels = draw(st.integers(2, len(words)))
    labels: dict[object, list[str]] = {}
    for i, word in enumerate(words):
        labels.setdefault(draw(st.sampled_from([i % n_labels, f"l{i % n_labels}"])), []).append(
            word
        )
    verbalizer: dict[str, object] = {"labels": labels}
    verbalizer["aggregate"] = draw(st.sampled_from(["mean", "max", "logsumexp"]))
    return {"pattern": "".join(parts), "verbalizer": verbalizer}


pvp_dicts = st.one_of(
    near_valid_pvps(),
    near_valid_pvps(),
    st.fixed_dictionaries(
        {"pattern": st.one_of(patterns, values), "verbalizer": verbalizers},
        optional={
            "fields": st.dictionaries(
                st.sampled_from(["text", "text_a", "text_b", "x"]),
                st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3),
                max_size=2,
            ),
            "name": scalars,
        },
    ),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=5),
)


@st.composite
def mutated_yaml(draw: st.DrawFn) -> str:
    """A near-valid PVP dumped as YAML, with random fragments spliced in."""
    text = yaml.safe_dump(draw(near_valid_pvps()), allow_unicode=True)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(YAML_FRAGMENTS + PATTERN_FRAGMENTS)) + text[at:]
    return text


yaml_texts = st.one_of(
    st.lists(st.sampled_from(YAML_FRAGMENTS + PATTERN_FRAGMENTS), max_size=30).map("".join),
    mutated_yaml(),
    mutated_yaml(),
)
texts = st.lists(st.sampled_from([*WORDS, "a", "\n", "é", "😀", "."]), max_size=40).map(" ".join)


def _check_encoding(pvp, tokenizer, max_length: int, text: str) -> None:
    """Compile ``pvp``; when that succeeds, check the encoding invariants on ``text``."""
    enc = ClozeEncoder(pvp, tokenizer, max_length)
    records = [{name: text for name in enc.field_names}, {name: "" for name in enc.field_names}]
    n_masks = enc.verbalizer.max_length
    n_soft = sum(len(p.slots) for p in enc.parts if p.kind == "soft")
    for encoded in enc.encode(records):
        ids, soft, start = enc.assemble(encoded, n_masks)
        assert len(ids) <= max_length
        assert ids[start : start + n_masks] == [tokenizer.mask_token_id] * n_masks
        assert sum(s >= 0 for s in soft) == n_soft  # every soft slot is present
        assert sorted({s for s in soft if s >= 0}) == list(range(enc.n_slots))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=pvp_dicts, max_length=st.integers(4, 64), text=texts)
def test_fuzz_pvp_dicts(tiny_tokenizer, spec, max_length, text):
    try:
        pvp = load_pvp(spec)
    except PetKitError:
        return
    try:
        _check_encoding(pvp, tiny_tokenizer, max_length, text)
    except PetKitError:
        pass


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=yaml_texts, max_length=st.integers(4, 64), text=texts)
def test_fuzz_yaml_documents(tiny_tokenizer, document, max_length, text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(document, encoding="utf-8")
        for loader in (load_pvps, load_verbalizer):
            try:
                loaded = loader(str(path))
            except PetKitError:
                continue
            for pvp in loaded if isinstance(loaded, list) else []:
                try:
                    _check_encoding(pvp, tiny_tokenizer, max_length, text)
                except PetKitError:
                    pass
        assert not (Path(folder) / "pet_kit_pwned_marker").exists()
