"""Tests for YAML/inline PVP specifications: load_pvp, load_pvps, load_verbalizer."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pet_kit import (
    PVP,
    ConfigError,
    PatternError,
    Verbalizer,
    VerbalizerError,
    load_pvp,
    load_pvps,
    load_verbalizer,
)
from pet_kit.config.schema import FieldOptions

VERBALIZER = """\
name: senti
aggregate: mean
labels:
  positive: [great, good]
  negative: [terrible, bad]
"""

TEMPLATE = """\
name: tpl
verbalizer: verb.yaml
default: second
patterns:
  - name: first
    pattern: "{text} It was [MASK]."
  - name: second
    pattern: "Just [MASK]! {text}"
  - name: soft
    pattern: "[SOFT*2] {text} [SOFT:it was] [MASK]."
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(spec, loader=load_pvp, cls=ConfigError, names: str | None = None) -> ConfigError:
    """Load ``spec``, expect a ``cls``; check it is a ConfigError/ValueError naming the file.

    ``names`` is the file name the message must contain (default: ``spec``'s own name).
    """
    with pytest.raises(cls) as info:
        loader(spec)
    err = info.value
    assert isinstance(err, ConfigError)
    assert isinstance(err, ValueError)
    if names is None and isinstance(spec, (str, Path)):
        names = Path(str(spec).partition("#")[0]).name
    if names is not None:
        assert names in str(err), str(err)
    return err


def located(err: ConfigError, path: Path, line: int) -> None:
    """Assert the error points at ``path:line``."""
    assert err.line == line, str(err)
    assert f"{path.name}:{line}:" in str(err), str(err)


@pytest.fixture()
def tpl(tmp_path: Path) -> Path:
    write(tmp_path, "verb.yaml", VERBALIZER)
    return write(tmp_path, "tpl.yaml", TEMPLATE)


# ----------------------------------------------------------------- template files
def test_template_default_pattern(tpl):
    pvp = load_pvp(tpl)
    assert isinstance(pvp, PVP)
    assert pvp.pattern.text == "Just [MASK]! {text}"
    assert pvp.name == "tpl#second"
    assert pvp.source == str(tpl)
    assert dict(pvp.verbalizer.labels) == {
        "positive": ("great", "good"),
        "negative": ("terrible", "bad"),
    }
    assert pvp.verbalizer.name == "senti"


def test_template_without_default_uses_first(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", TEMPLATE.replace("default: second\n", ""))
    assert load_pvp(path).pattern.text == "{text} It was [MASK]."
    assert load_pvp(str(path)).name == "tpl#first"


def test_template_select_by_name(tpl):
    pvp = load_pvp(f"{tpl}#soft")
    assert pvp.pattern.has_soft
    assert pvp.name == "tpl#soft"
    assert [p.pattern.text for p in load_pvps(f"{tpl}#first")] == ["{text} It was [MASK]."]


def test_template_unnamed_patterns_are_numbered(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer: verb.yaml
        patterns:
          - pattern: "{text} It was [MASK]."
          - pattern: "[MASK]: {text}"
        """,
    )
    assert load_pvp(f"{path}#1").pattern.text == "[MASK]: {text}"
    assert [p.name for p in load_pvps(path)] == ["t#0", "t#1"]


def test_load_pvps_returns_all_patterns(tpl):
    pvps = load_pvps(tpl)
    assert [p.name for p in pvps] == ["tpl#first", "tpl#second", "tpl#soft"]
    # one verbalizer object shared by all patterns of the file
    assert all(p.verbalizer == pvps[0].verbalizer for p in pvps)


def test_unknown_pattern_name_lists_names(tpl):
    err = config_error(f"{tpl}#thrid")
    msg = str(err)
    assert "no pattern named 'thrid'" in msg
    assert "first, second, soft" in msg
    assert f"{tpl.name}:4:" in msg  # the `patterns:` line


def test_default_naming_unknown_pattern(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", TEMPLATE.replace("default: second", "default: secnod"))
    err = config_error(path)
    assert "no pattern named 'secnod'" in str(err)
    assert "first, second, soft" in str(err)
    located(err, path, 3)
    assert err.key == "default"


def test_default_naming_unknown_pattern_load_pvps(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", TEMPLATE.replace("default: second", "default: secnod"))
    config_error(path, loader=load_pvps)


def test_duplicate_pattern_names(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", TEMPLATE.replace("name: soft", "name: first"))
    err = config_error(path, loader=load_pvps)
    assert "unique" in str(err)


def test_yml_suffix_and_pathlike(tmp_path):
    write(tmp_path, "verb.yml", VERBALIZER)
    path = write(tmp_path, "t.YML", TEMPLATE.replace("verb.yaml", "verb.yml"))
    assert load_pvp(path).name == "tpl#second"
    assert load_verbalizer(tmp_path / "verb.yml").labels["positive"] == ("great", "good")


def test_non_yaml_path_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"neither a YAML file path"):
        load_pvp(str(tmp_path / "pvp.txt"))
    with pytest.raises(ConfigError, match=r"must be a YAML path, a dict or a PVP"):
        load_pvp(42)  # type: ignore[arg-type]


def test_pvp_object_passes_through(tpl):
    pvp = load_pvp(tpl)
    assert load_pvp(pvp) is pvp
    assert load_pvps(pvp) == [pvp]
    assert load_verbalizer(pvp.verbalizer) is pvp.verbalizer


def test_template_without_verbalizer(tmp_path):
    path = write(tmp_path, "t.yaml", 'patterns:\n  - pattern: "{text} [MASK]"\n')
    err = config_error(path)
    assert "no 'verbalizer'" in str(err)


def test_template_with_inline_verbalizer(tmp_path):
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer:
          aggregate: max
          labels: {pos: great, neg: [bad, awful]}
        patterns:
          - pattern: "{text} [MASK]"
        """,
    )
    v = load_pvp(path).verbalizer
    assert v.aggregate == "max"
    assert dict(v.labels) == {"pos": ("great",), "neg": ("bad", "awful")}


def test_template_with_bare_inline_labels(tmp_path):
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer: {pos: great, neg: bad}
        patterns:
          - pattern: "{text} [MASK]"
        """,
    )
    assert dict(load_pvp(path).verbalizer.labels) == {"pos": ("great",), "neg": ("bad",)}


# ------------------------------------------------------------------------- PVP files
def test_pvp_file(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "p.yaml",
        """\
        name: mine
        pattern: "{text} It was [MASK]."
        verbalizer: verb.yaml
        fields:
          text: {lowercase_first: true}
        """,
    )
    pvp = load_pvp(path)
    assert pvp.name == "mine"
    assert pvp.pattern.text == "{text} It was [MASK]."
    assert pvp.field_options("text") == FieldOptions(lowercase_first=True)
    assert load_pvps(path) == [pvp]


def test_pvp_file_with_pattern_from_template(tpl):
    path = write(
        tpl.parent,
        "sub/p.yaml",
        """\
        pattern: ../tpl.yaml#soft
        verbalizer: {"yes": ["yes"], "no": ["no"]}
        """,
    )
    pvp = load_pvp(path)
    assert pvp.pattern.text == "[SOFT*2] {text} [SOFT:it was] [MASK]."
    assert set(pvp.verbalizer.labels) == {"yes", "no"}


def test_hash_on_a_pvp_file(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "p.yaml", 'pattern: "{text} [MASK]"\nverbalizer: verb.yaml\n')
    err = config_error(f"{path}#x")
    assert "selects a pattern" in str(err)


# ------------------------------------------------------------------------ inline dicts
def test_inline_bare_labels_mapping():
    pvp = load_pvp({"pattern": "{text} It was [MASK].", "verbalizer": {"a": "great", "b": ["bad"]}})
    assert dict(pvp.verbalizer.labels) == {"a": ("great",), "b": ("bad",)}
    assert pvp.verbalizer.aggregate == "mean"
    assert pvp.source == "<inline>"


def test_inline_full_verbalizer_mapping():
    pvp = load_pvp(
        {
            "pattern": "{text} [MASK]",
            "verbalizer": {"labels": {1: ["bad"], 2: ["good"]}, "aggregate": "logsumexp"},
        }
    )
    assert dict(pvp.verbalizer.labels) == {1: ("bad",), 2: ("good",)}
    assert pvp.verbalizer.aggregate == "logsumexp"


def test_inline_verbalizer_path(tmp_path, monkeypatch):
    write(tmp_path, "verb.yaml", VERBALIZER)
    absolute = load_pvp({"pattern": "{text} [MASK]", "verbalizer": str(tmp_path / "verb.yaml")})
    monkeypatch.chdir(tmp_path)
    relative = load_pvp({"pattern": "{text} [MASK]", "verbalizer": "verb.yaml"})
    assert absolute.verbalizer.labels == relative.verbalizer.labels
    assert relative.verbalizer.labels["negative"] == ("terrible", "bad")


def test_inline_fields_options():
    pvp = load_pvp(
        {
            "pattern": "{text_a}? [MASK], {text_b}",
            "verbalizer": {"y": "yes", "n": "no"},
            "fields": {"text_a": {"strip_final_punct": True}, "text_b": {"shortenable": False}},
        }
    )
    assert pvp.field_options("text_a").strip_final_punct
    assert pvp.field_options("text_a").shortenable
    assert not pvp.field_options("text_b").shortenable
    assert pvp.field_options("other") == FieldOptions()


def test_inline_errors():
    with pytest.raises(ConfigError, match=r"'feilds'.*did you mean 'fields'"):
        load_pvp({"pattern": "{text} [MASK]", "verbalizer": {"a": "x", "b": "y"}, "feilds": {}})
    with pytest.raises(ConfigError, match=r"required key 'verbalizer' is missing"):
        load_pvp({"pattern": "{text} [MASK]"})
    with pytest.raises(PatternError, match=r"no \[MASK\]"):
        load_pvp({"pattern": "{text}", "verbalizer": {"a": "x", "b": "y"}})
    with pytest.raises(ConfigError, match=r"field\(s\) \['txt'\] that the pattern does not use"):
        load_pvp(
            {"pattern": "{text} [MASK]", "verbalizer": {"a": "x", "b": "y"}, "fields": {"txt": {}}}
        )


def test_relative_verbalizer_resolved_against_template_folder(tmp_path, monkeypatch):
    write(tmp_path, "verbalizers/v.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "templates/t.yaml",
        'verbalizer: ../verbalizers/v.yaml\npatterns:\n  - pattern: "{text} [MASK]"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_pvp(path).verbalizer.name == "senti"
    # a missing relative verbalizer is reported at the referencing key, with the resolved path
    write(
        tmp_path,
        "templates/u.yaml",
        'verbalizer: nope.yaml\npatterns:\n  - pattern: "{text} [MASK]"\n',
    )
    err = config_error(tmp_path / "templates/u.yaml", names="nope.yaml")
    assert "u.yaml:1: verbalizer: verbalizer file 'nope.yaml' not found" in str(err)
    assert str(tmp_path / "templates" / "nope.yaml") in str(err)


# ------------------------------------------------------------------ per-field options
def test_field_options_file_and_pattern_level(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer: verb.yaml
        fields:
          text_a: {strip_final_punct: true}
          text_b: {lowercase_first: true, shortenable: false}
        patterns:
          - name: both
            pattern: "{text_a}? [MASK], {text_b}"
          - name: override
            pattern: "{text_a}? [MASK], {text_b}"
            fields:
              text_b: {shortenable: true}
          - name: only_a
            pattern: "{text_a}? [MASK]."
        """,
    )
    both, override, only_a = load_pvps(path)
    assert both.fields == {
        "text_a": FieldOptions(strip_final_punct=True),
        "text_b": FieldOptions(lowercase_first=True, shortenable=False),
    }
    # pattern-level options replace the file-level options of that field
    assert override.field_options("text_b") == FieldOptions(shortenable=True)
    assert override.field_options("text_a") == FieldOptions(strip_final_punct=True)
    # file-level options for fields a pattern does not use are dropped for that pattern
    assert set(only_a.fields) == {"text_a"}


def test_pattern_level_options_for_unused_field(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer: verb.yaml
        patterns:
          - pattern: "{text} [MASK]"
            fields:
              txt: {shortenable: false}
        """,
    )
    err = config_error(path)
    assert "['txt']" in str(err) and "its fields: ['text']" in str(err)
    located(err, path, 4)


# --------------------------------------------------------------- strict schema errors
@pytest.mark.parametrize(
    ("text", "line", "bad", "good", "key"),
    [
        # top level of a template file
        (TEMPLATE.replace("default: second", "defualt: second"), 3, "defualt", "default", None),
        # inside a pattern entry
        (
            TEMPLATE.replace(
                '    pattern: "Just', '    fields: {}\n    patern_name: x\n    pattern: "Just'
            ),
            9,
            "patern_name",
            None,
            "patterns.1.patern_name",
        ),
        # under a file-level `fields` mapping
        (
            TEMPLATE.replace(
                "patterns:\n", "fields:\n  text:\n    lowercase_frist: true\npatterns:\n"
            ),
            6,
            "lowercase_frist",
            "lowercase_first",
            "fields.text.lowercase_frist",
        ),
        # under a pattern-level `fields` mapping
        (
            TEMPLATE.replace(
                '[MASK]."\n  - name: second',
                '[MASK]."\n    fields:\n      text: {shortenable: true, lowercase_1st: true}'
                "\n  - name: second",
            ),
            8,
            "lowercase_1st",
            "lowercase_first",
            "patterns.0.fields.text.lowercase_1st",
        ),
        # in an inline verbalizer of a template file
        (
            TEMPLATE.replace(
                "verbalizer: verb.yaml",
                "verbalizer:\n  agregate: max\n  labels: {a: [great], b: [bad]}",
            ),
            3,
            "agregate",
            "aggregate",
            "verbalizer.agregate",
        ),
    ],
)
def test_unknown_key_did_you_mean_with_line(tmp_path, text, line, bad, good, key):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", text)
    assert bad in text.splitlines()[line - 1]  # the test data itself is right
    err = config_error(path)
    msg = str(err)
    assert f"unknown key '{bad}'" in msg
    if good:
        assert f"did you mean '{good}'?" in msg
    assert "valid keys:" in msg
    located(err, path, line)
    if key:
        assert err.key == key


def test_unknown_key_in_verbalizer_file(tmp_path):
    path = write(tmp_path, "v.yaml", VERBALIZER.replace("aggregate: mean", "aggregat: mean"))
    err = config_error(path, loader=load_verbalizer)
    assert "did you mean 'aggregate'?" in str(err)
    located(err, path, 2)


def test_unknown_key_in_pvp_file_without_suggestion(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "p.yaml",
        '# a comment\npattern: "{text} [MASK]"\nverbalizer: verb.yaml\nzzzzzz: 1\n',
    )
    err = config_error(path)
    assert "unknown key 'zzzzzz' in PVP" in str(err)
    assert "did you mean" not in str(err)
    located(err, path, 4)


@pytest.mark.parametrize(
    ("name", "text", "loader", "line", "good"),
    [
        (
            "p.yaml",
            "name: x\npatern: '{text} [MASK]'\nverbalizer: v.yaml\n",
            load_pvp,
            2,
            "pattern",
        ),
        ("v.yaml", "name: x\nlables:\n  a: [great]\n  b: [bad]\n", load_verbalizer, 2, "labels"),
        (
            "t.yaml",
            "verbalizer: v.yaml\npatterns:\n  - name: a\n    patern: '{text} [MASK]'\n",
            load_pvp,
            4,
            "pattern",
        ),
    ],
)
def test_misspelled_required_key_did_you_mean(tmp_path, name, text, loader, line, good):
    write(tmp_path, "v.yaml", VERBALIZER)
    path = write(tmp_path, name, text)
    err = config_error(path, loader=loader)
    assert f"did you mean '{good}'?" in str(err)
    located(err, path, line)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "verbalizer: v.yaml\nfields:\n  text:\n    strip_punct: true\n"
            'patterns:\n  - pattern: "{text} [MASK]"\n',
            4,
            "unknown key 'strip_punct'",
        ),
        (
            'verbalizer: v.yaml\npatterns:\n  - pattern: "{text} [MASK]"\n'
            "    fields:\n      text: {string_final_punct: true}\n",
            5,
            "did you mean 'strip_final_punct'",
        ),
        (
            "verbalizer:\n  labels:\n    weak: [bad]\n    strong: 5\n"
            'patterns:\n  - pattern: "{text} [MASK]"\n',
            4,
            "verbalizer.labels.strong: ",
        ),
    ],
)
def test_keys_starting_with_type_names_are_located(tmp_path, text, line, needle):
    write(tmp_path, "v.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", text)
    err = config_error(path)
    assert needle in str(err)
    located(err, path, line)


@pytest.mark.parametrize(
    "text",
    [
        "name: x\naggregate: max\n",
        "name: x\nlanguage: en\nlables:\n  a: [great]\n  b: [bad]\n",
    ],
)
def test_verbalizer_file_without_labels_key(tmp_path, text):
    path = write(tmp_path, "v.yaml", text)
    err = config_error(path, loader=load_verbalizer)
    assert "labels" in str(err)
    assert "missing" in str(err) or "did you mean 'labels'" in str(err)


@pytest.mark.parametrize(
    ("text", "missing", "what", "loader"),
    [
        ("verbalizer: verb.yaml\nname: x\n", "patterns", None, load_pvp),
        ('pattern: "{text} [MASK]"\nname: x\n', "verbalizer", "PVP", load_pvp),
    ],
)
def test_missing_required_key(tmp_path, text, missing, what, loader):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "f.yaml", text)
    err = config_error(path, loader=loader)
    if missing == "patterns":
        # no `pattern` and no `patterns`: read as a PVP missing its pattern
        assert "required key 'pattern' is missing" in str(err)
    else:
        assert f"required key '{missing}' is missing from the {what}" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("pattern: 5\nverbalizer: verb.yaml\n", 1, "valid string (got 5)"),
        ('verbalizer: verb.yaml\npatterns: "{text} [MASK]"\n', 2, "valid list"),
        (
            'verbalizer: verb.yaml\npatterns:\n  - pattern: "{text} [MASK]"\n    name: [1, 2]\n',
            4,
            "valid string",
        ),
        ("verbalizer: verb.yaml\npatterns: []\n", 2, "at least 1 item"),
        (
            "verbalizer: verb.yaml\nfields:\n  text: {shortenable: maybe}\n"
            'patterns:\n  - pattern: "{text} [MASK]"\n',
            3,
            "valid boolean",
        ),
        ('pattern: "{text} [MASK]"\nverbalizer: 3\n', 2, "got 3"),
    ],
)
def test_wrong_types(tmp_path, text, line, needle):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "f.yaml", text)
    err = config_error(path)
    assert needle in str(err)
    located(err, path, line)


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n", "---\n"])
@pytest.mark.parametrize("loader", [load_pvp, load_pvps, load_verbalizer])
def test_empty_file(tmp_path, content, loader):
    path = write(tmp_path, "empty.yaml", content)
    err = config_error(path, loader=loader)
    assert "got empty" in str(err)


@pytest.mark.parametrize("loader", [load_pvp, load_verbalizer])
def test_list_instead_of_mapping(tmp_path, loader):
    path = write(tmp_path, "list.yaml", "- great\n- bad\n")
    err = config_error(path, loader=loader)
    assert "YAML mapping" in str(err) and "got list" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("name: x\nlabels:\n", 2, "valid dictionary (got None)"),
        ("labels: [great, bad]\n", 1, "valid dictionary"),
        ("labels:\n  a: [great]\n  b: {x: 1}\n", 3, "valid list"),
        ("labels:\n  a: [great]\n  b: [3]\n", 3, "valid string (got 3)"),
        ("name: [x]\nlabels:\n  a: [great]\n  b: [bad]\n", 1, "valid string"),
    ],
)
def test_verbalizer_wrong_types(tmp_path, text, line, needle):
    path = write(tmp_path, "v.yaml", text)
    err = config_error(path, loader=load_verbalizer)
    assert needle in str(err)
    located(err, path, line)


def test_scalar_instead_of_mapping(tmp_path):
    path = write(tmp_path, "s.yaml", "just a string\n")
    err = config_error(path)
    assert "got str" in str(err)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('pattern: "{text} [MASK]"\nverbalizer: a: b\n', 2),
        ('name: x\npattern: "{text} [MASK]\nverbalizer: v.yaml\n', 4),
        ("name: x\nlabels:\n  a: [great\n  b: [bad]\nc: d\n", 4),
        ("name: x\n\tlabels: {}\n", 2),
    ],
)
def test_malformed_yaml_has_line(tmp_path, text, line):
    path = write(tmp_path, "bad.yaml", text)
    err = config_error(path)
    assert "invalid YAML" in str(err)
    located(err, path, line)


def test_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "PWNED"
    path = write(
        tmp_path,
        "evil.yaml",
        f'pattern: "{{text}} [MASK]"\nverbalizer: v.yaml\n'
        f'name: !!python/object/apply:os.system ["touch {marker}"]\n',
    )
    err = config_error(path)
    assert "could not determine a constructor" in str(err)
    assert "safe loader" in str(err)
    located(err, path, 3)
    assert not marker.exists()


@pytest.mark.parametrize("loader", [load_pvps, load_verbalizer])
def test_python_tag_in_other_loaders(tmp_path, loader):
    marker = tmp_path / "PWNED2"
    path = write(
        tmp_path,
        "evil.yaml",
        f'labels: !!python/object/new:os.system ["touch {marker}"]\n',
    )
    config_error(path, loader=loader)
    assert not marker.exists()


def test_python_tag_in_referenced_verbalizer(tmp_path):
    marker = tmp_path / "PWNED3"
    write(tmp_path, "v.yaml", f'labels: !!python/object/apply:os.system ["touch {marker}"]\n')
    path = write(tmp_path, "p.yaml", 'pattern: "{text} [MASK]"\nverbalizer: v.yaml\n')
    err = config_error(path, names="v.yaml")  # the offending (referenced) file
    assert "v.yaml:1:" in str(err)
    assert not marker.exists()


def test_anchors_and_aliases(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer: verb.yaml
        fields:
          text_a: &keep {shortenable: false, strip_final_punct: true}
          text_b: *keep
        patterns:
          - &base
            name: a
            pattern: "{text_a}? [MASK], {text_b}"
          - <<: *base
            name: b
            fields:
              text_a: *keep
        """,
    )
    a, b = load_pvps(path)
    assert a.pattern == b.pattern
    keep = FieldOptions(shortenable=False, strip_final_punct=True)
    assert a.fields == {"text_a": keep, "text_b": keep}
    assert b.name.endswith("#b")


def test_anchored_label_words(tmp_path):
    path = write(
        tmp_path,
        "v.yaml",
        """\
        labels:
          pos: &pos [great, good]
          neg: [bad]
        """,
    )
    assert load_verbalizer(path).labels["pos"] == ("great", "good")


@pytest.mark.parametrize(
    ("words", "line"),
    [("[great, yes]", 2), ("[no]", 3), ("[on, off]", 3), ("true", 3)],
)
def test_unquoted_yes_no_label_words(tmp_path, words, line):
    old = "[great]" if line == 2 else "[bad]"
    text = "labels:\n  pos: [great]\n  neg: [bad]\n".replace(old, words)
    path = write(tmp_path, "v.yaml", text)
    err = config_error(path, loader=load_verbalizer)
    assert "quote the word" in str(err)
    assert "got True" in str(err) or "got False" in str(err)
    located(err, path, line)


def test_quoted_yes_no_words_work(tmp_path):
    path = write(tmp_path, "v.yaml", 'labels:\n  "yes": ["yes", "true"]\n  "no": ["no"]\n')
    assert dict(load_verbalizer(path).labels) == {"yes": ("yes", "true"), "no": ("no",)}


def test_duplicate_label_words_across_classes(tmp_path):
    path = write(tmp_path, "v.yaml", "labels:\n  pos: [great, good]\n  neg: [bad, good]\n")
    err = config_error(path, loader=load_verbalizer, cls=VerbalizerError)
    assert "'good' is listed for both 'pos' and 'neg'" in str(err)
    located(err, path, 3)


def test_duplicate_label_word_within_class(tmp_path):
    path = write(tmp_path, "v.yaml", "labels:\n  pos: [great, good, great]\n  neg: [bad]\n")
    err = config_error(path, loader=load_verbalizer, cls=VerbalizerError)
    assert "listed twice" in str(err)
    located(err, path, 2)


def test_duplicate_label_words_after_stripping():
    with pytest.raises(VerbalizerError, match="listed for both"):
        load_verbalizer({"pos": ["great "], "neg": [" great"]})


@pytest.mark.parametrize("word", ['""', '"   "', '"\\t"'])
def test_empty_label_word(tmp_path, word):
    path = write(tmp_path, "v.yaml", f"labels:\n  pos: [great]\n  neg: [bad, {word}]\n")
    err = config_error(path, loader=load_verbalizer, cls=VerbalizerError)
    assert "empty or whitespace" in str(err)
    located(err, path, 3)


def test_label_with_no_words(tmp_path):
    path = write(tmp_path, "v.yaml", "labels:\n  pos: [great]\n  neg: []\n")
    err = config_error(path, loader=load_verbalizer, cls=VerbalizerError)
    assert "no label words" in str(err)


def test_single_label(tmp_path):
    path = write(tmp_path, "v.yaml", "labels:\n  pos: [great]\n")
    err = config_error(path, loader=load_verbalizer)
    assert "at least 2" in str(err)


@pytest.mark.parametrize("value", ["median", "sum", "MEAN", "1"])
def test_aggregate_invalid(tmp_path, value):
    path = write(tmp_path, "v.yaml", VERBALIZER.replace("aggregate: mean", f"aggregate: {value}"))
    err = config_error(path, loader=load_verbalizer)
    assert "use one of: mean, max, logsumexp" in str(err)
    located(err, path, 2)


def test_aggregate_invalid_on_verbalizer_object():
    with pytest.raises(VerbalizerError, match="aggregate must be one of"):
        Verbalizer(labels={"a": ("x",), "b": ("y",)}, aggregate="sum")


def test_verbalizer_file_where_pvp_expected(tmp_path):
    path = write(tmp_path, "verb.yaml", VERBALIZER)
    for loader in (load_pvp, load_pvps):
        err = config_error(path, loader=loader)
        assert "this is a verbalizer file" in str(err)
        assert "needs a pattern" in str(err)


@pytest.mark.parametrize("name", ["t.yaml", "p.yaml"])
def test_pvp_file_where_verbalizer_expected(tmp_path, name):
    write(tmp_path, "verb.yaml", VERBALIZER)
    text = TEMPLATE if name == "t.yaml" else 'pattern: "{text} [MASK]"\nverbalizer: verb.yaml\n'
    path = write(tmp_path, name, text)
    err = config_error(path, loader=load_verbalizer)
    assert "not a verbalizer file" in str(err)


def test_template_whose_verbalizer_is_a_template(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    write(tmp_path, "other.yaml", TEMPLATE)
    path = write(
        tmp_path, "t.yaml", TEMPLATE.replace("verbalizer: verb.yaml", "verbalizer: other.yaml")
    )
    err = config_error(path, names="other.yaml")
    assert "not a verbalizer file" in str(err)


@pytest.mark.parametrize("loader", [load_pvp, load_pvps, load_verbalizer])
def test_non_utf8_file(tmp_path, loader):
    path = write(
        tmp_path, "latin1.yaml", "labels:\n  pos: [café]\n  neg: [bad]\n".encode("latin-1")
    )
    err = config_error(path, loader=loader)
    assert "not UTF-8" in str(err)


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path, "bom.yaml", "\ufefflabels:\n  pos: [好评]\n  neg: [差评]\n".encode())
    assert dict(load_verbalizer(path).labels) == {"pos": ("好评",), "neg": ("差评",)}


@pytest.mark.parametrize("loader", [load_pvp, load_pvps, load_verbalizer])
def test_missing_file(tmp_path, loader):
    path = tmp_path / "does_not_exist.yaml"
    err = config_error(path, loader=loader)
    assert "file not found" in str(err)


def test_folder_instead_of_file(tmp_path):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    err = config_error(folder)
    assert "it is a folder" in str(err)


def test_pattern_error_in_file_is_located(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(tmp_path, "t.yaml", TEMPLATE.replace("Just [MASK]!", "Just [mask]!"))
    # load_pvp of another pattern does not parse the broken one
    assert load_pvp(f"{path}#first").name == "tpl#first"
    err = config_error(path, cls=PatternError)
    assert "write [MASK]" in str(err)
    located(err, path, 8)
    assert err.key == "patterns.1.pattern"


def test_verbalizer_error_reports_verbalizer_file(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER.replace("[terrible, bad]", "[terrible, great]"))
    path = write(tmp_path, "t.yaml", TEMPLATE)
    with pytest.raises(VerbalizerError) as info:
        load_pvp(path)
    assert re.search(r"verb\.yaml:5: labels\.negative: label word 'great'", str(info.value))


def test_duplicate_yaml_keys_rejected(tmp_path):
    write(tmp_path, "verb.yaml", VERBALIZER)
    path = write(
        tmp_path,
        "p.yaml",
        'pattern: "{text} It was [MASK]."\npattern: "[MASK] {text}"\nverbalizer: verb.yaml\n',
    )
    config_error(path)


# ------------------------------------------------- label keys that YAML merges or misreads
@pytest.mark.parametrize(
    ("labels", "first", "second"),
    [
        ("1: [great]\n  1.0: [good]\n  0x1: [bad]", "'1' (line 2, read as 1)", "'1.0' (line 3"),
        ("pos: [great]\n  1: [good]\n  true: [bad]", "'1' (line 3", "'true' (line 4"),
        ("0: [great]\n  false: [good]\n  pos: [bad]", "'0' (line 2", "'false' (line 3"),
        ("+1: [great]\n  01: [good]", "'+1' (line 2", "'01' (line 3"),
        ("1: [great]\n  yes: [good]", "'1' (line 2", "'yes' (line 3, read as True)"),
    ],
)
def test_label_keys_that_read_as_the_same_value_are_refused(tmp_path, labels, first, second):
    path = write(tmp_path, "v.yaml", f"labels:\n  {labels}\n  neg: [terrible]\n")
    err = config_error(path, loader=load_verbalizer)
    assert first in str(err) and second in str(err), str(err)
    assert "the same key once read" in str(err) and "quote them as distinct strings" in str(err)
    located(err, path, int(second.split("line ")[1].split(",")[0].rstrip(")")))


def test_colliding_keys_are_refused_by_pet_kit_validate_look_alikes_are_not(tmp_path, capsys):
    from pet_kit.cli import main

    path = write(
        tmp_path,
        "p.yaml",
        'pattern: "{text} It was [MASK]."\nverbalizer:\n  1: [great]\n  1.0: [bad]\n',
    )
    assert main(["validate", str(path)]) == 1
    assert "p.yaml:4: 1.0: keys '1' (line 3, read as 1) and '1.0'" in capsys.readouterr().out
    # quoted keys are strings; YAML 1.1 reads 0o1 as the string "0o1", not as 1
    path = write(tmp_path, "v.yaml", 'labels:\n  "1": [great]\n  "1.0": [good]\n  0o1: [bad]\n')
    assert set(load_verbalizer(path).labels) == {"1", "1.0", "0o1"}
    path = write(tmp_path, "b.yaml", "labels:\n  true: [great]\n  false: [bad]\n")
    assert set(load_verbalizer(path).labels) == {True, False}  # spelled as booleans


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("yes", "label 'yes' is read by YAML as the boolean True"),
        ("No", "label 'No' is read by YAML as the boolean False"),
        ("on", "label 'on' is read by YAML as the boolean True"),
        ("~", "label '~' is read by YAML as null"),
        ("null", "label 'null' is read by YAML as null"),
    ],
)
def test_unquoted_yes_no_and_null_label_keys_are_refused(tmp_path, key, needle):
    path = write(tmp_path, "v.yaml", f"labels:\n  pos: [great]\n  {key}: [bad]\n")
    err = config_error(path, loader=load_verbalizer)
    assert needle in str(err) and f'quote it ("{key}":)' in str(err), str(err)
    located(err, path, 3)
    # the same in a PVP's bare labels mapping
    pvp = write(
        tmp_path, "p.yaml", f'pattern: "{{text}} [MASK]"\nverbalizer: {{{key}: [bad], x: [y]}}'
    )
    assert needle in str(config_error(pvp))


# ------------------------------------------------------------------------- size limits
def test_a_huge_yaml_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import time

    path = write(tmp_path, "big.yaml", VERBALIZER + "# padding\n" * 600_000)  # 6 MB
    start = time.perf_counter()
    err = config_error(path, loader=load_verbalizer)
    assert time.perf_counter() - start < 0.5
    assert f"the YAML is {path.stat().st_size} bytes, over the limit of 1048576" in str(err)
    assert "PET_KIT_MAX_YAML_BYTES" in str(err)
    monkeypatch.setenv("PET_KIT_MAX_YAML_BYTES", str(8 << 20))
    assert set(load_verbalizer(path).labels) == {"positive", "negative"}
    monkeypatch.setenv("PET_KIT_MAX_YAML_BYTES", "lots")
    assert "PET_KIT_MAX_YAML_BYTES='lots' is not a positive integer" in str(
        config_error(path, loader=load_verbalizer, names="PET_KIT_MAX_YAML_BYTES")
    )


@pytest.mark.parametrize(
    "text",
    [
        "pattern: [MASK] News: {text}\nverbalizer:\n  a: [x]\n  b: [y]\n",  # not YAML
        "pattern: [MASK]\nverbalizer:\n  a: [x]\n  b: [y]\n",  # YAML, but a list
    ],
)
def test_an_unquoted_pattern_starting_with_a_bracket_says_to_quote_it(tmp_path, text):
    err = config_error(write(tmp_path, "p.yaml", text))
    assert "quote the whole value" in str(err), str(err)
    located(err, tmp_path / "p.yaml", 1)
