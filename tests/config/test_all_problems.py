"""Every problem of a specification at once: ConfigError.problems, "did you mean",
``pet-kit validate`` by kind of file (template, PVP, verbalizer, train config), and file
paths shown normalised."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from pet_kit import ConfigError, PatternError, load_pvp, load_pvps, load_verbalizer
from pet_kit.cli import main


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def raised(loader, spec) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loader(spec)
    return info.value


def validate(capsys, *paths: Path | str, cwd: Path | None = None) -> tuple[int, str]:
    """``pet-kit validate PATHS`` (in ``cwd``): exit status and stdout."""
    with pytest.MonkeyPatch.context() as patch:
        if cwd is not None:
            patch.chdir(cwd)
        code = main(["validate", *map(str, paths)])
    return code, capsys.readouterr().out


TWO_TYPOS = """\
name: demo
verbalizer: {positive: [great], negative: [bad]}
patterns:
  - name: plain
    patern: "{text} It was [MASK]."
  - name: soft
    pattern: "[SOFT] {text} It was [MASK]."
    fields:
      text: {shortenabel: false}
"""

TRAIN = """\
pvp:
  pattern: "{text} It was [MASK]."
  verbalizer: {positive: [great], negative: [bad]}
data: {train: train.csv}
output: out/prompt
params:
  epochs: 2
"""


# ------------------------------------------------------------ ConfigError itself
def test_two_problems_in_one_file_are_both_listed_with_their_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "t.yaml", TWO_TYPOS)
    err = raised(load_pvps, path)
    assert [(p.line, p.key) for p in err.problems] == [
        (5, "patterns.0.patern"),
        (9, "patterns.1.fields.text.shortenabel"),
    ]
    lines = str(err).splitlines()
    assert lines[0].startswith("t.yaml:5: patterns.0.patern: unknown key 'patern'")
    assert lines[1].startswith("t.yaml:9: patterns.1.fields.text.shortenabel: unknown key")
    assert "more problem" not in str(err)
    # the first problem is the error's own (what code reading exc.line/key/problem sees)
    assert (err.line, err.key) == (5, "patterns.0.patern")
    assert err.problem.startswith("unknown key 'patern'")


def test_did_you_mean_for_every_misspelled_key(tmp_path):
    path = write(
        tmp_path,
        "p.yaml",
        """\
        patern: "{text} It was [MASK]."
        verbaliser: {positive: [great], negative: [bad]}
        feilds: {}
        """,
    )
    err = raised(load_pvp, path)
    text = str(err)
    assert "p.yaml:1: patern: unknown key 'patern' in PVP; did you mean 'pattern'?" in text
    assert (
        "p.yaml:2: verbaliser: unknown key 'verbaliser' in PVP; did you mean 'verbalizer'?" in text
    )
    assert "p.yaml:3: feilds: unknown key 'feilds' in PVP; did you mean 'fields'?" in text
    # the required keys the misspellings explain are not reported as missing as well
    assert "missing" not in text and len(err.problems) == 3


def test_did_you_mean_for_a_misspelled_choice(tmp_path):
    path = write(tmp_path, "v.yaml", "labels: {pos: [great], neg: [bad]}\naggregate: maen\n")
    err = raised(load_verbalizer, path)
    assert "v.yaml:2: aggregate:" in str(err)
    assert "use one of: mean, max, logsumexp; did you mean 'mean'?" in str(err)


def test_the_members_of_a_union_make_one_problem(tmp_path):
    path = write(tmp_path, "p.yaml", "pattern: '{text} It was [MASK].'\nverbalizer: 42\n")
    err = raised(load_pvp, path)
    assert len(err.problems) == 1
    assert "p.yaml:2: verbalizer: expected a string or a mapping (got 42)" in str(err)


def test_config_error_keeps_its_single_problem_form_and_pickles_with_all_problems():
    from pet_kit.errors import Problem

    err = ConfigError("bad thing", source="x.yaml", line=3, key="a.b")
    assert str(err) == "x.yaml:3: a.b: bad thing"
    assert (err.problem, err.source, err.line, err.key) == ("bad thing", "x.yaml", 3, "a.b")
    assert err.problems == (Problem("bad thing", source="x.yaml", line=3, key="a.b"),)
    many = PatternError.from_problems(
        [Problem("first", source="a.yaml", line=1), Problem("second", source="a.yaml", line=2)]
    )
    back = pickle.loads(pickle.dumps(many))
    assert type(back) is PatternError and back.problems == many.problems
    assert str(back) == str(many) == "a.yaml:1: first\na.yaml:2: second"


def test_yaml_syntax_errors_know_their_column(tmp_path):
    path = write(tmp_path, "bad.yaml", "pattern: '{text} [MASK]'\nverbalizer: {pos: [a}\n")
    err = raised(load_pvp, path)
    assert err.line == 2 and err.column is not None
    assert f"(column {err.column})" in str(err)


# ------------------------------------------------------------------ paths shown
def test_paths_are_shown_normalised_and_relative_to_the_working_folder(tmp_path, monkeypatch):
    write(tmp_path, "verbalizers/v.yaml", "labels:\n  pos: [great]\n  neg: ['']\n")
    tpl = write(
        tmp_path,
        "templates/t.yaml",
        "verbalizer: ../verbalizers/v.yaml\npatterns:\n  - pattern: '{text} It was [MASK].'\n",
    )
    monkeypatch.chdir(tmp_path)
    err = raised(load_pvps, tpl.resolve())
    assert "/../" not in str(err) and "\\..\\" not in str(err)
    assert str(err).startswith(str(Path("verbalizers/v.yaml")) + ":3: labels.neg: label word ''")
    elsewhere = tmp_path / "templates"
    monkeypatch.chdir(elsewhere)  # outside the working folder: the absolute path, normalised
    err = raised(load_pvps, tpl.resolve())
    assert str(err).startswith(str((tmp_path / "verbalizers" / "v.yaml").resolve()) + ":3:")


def test_display_path():
    from pet_kit.errors import display_path

    assert display_path("a/../b/./c.yaml") == str(Path("b/c.yaml"))
    assert display_path(str(Path.cwd() / "x" / ".." / "y.yaml")) == "y.yaml"
    for name in ("<inline>", "PET_KIT_MAX_YAML_BYTES", ""):
        assert display_path(name) == name


# ---------------------------------------------------------- pet-kit validate
def test_validate_says_a_train_config_is_a_train_config(tmp_path, capsys):
    cfg = write(tmp_path, "train.yaml", TRAIN)
    write(tmp_path, "train.csv", "text,label\na great film,positive\n")
    code, out = validate(capsys, cfg)
    assert code == 0, out
    assert f"OK    {cfg}: train config: PVP with 1 pattern(s)" in out
    assert "1 param(s)" in out and "in PVP" not in out


def test_validate_a_misspelled_parameter_of_a_train_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "train.csv", "text,label\na great film,positive\n")
    write(tmp_path, "train.yaml", TRAIN + "  learning_rat: 0.01\n  lora_rank: 4\n")
    code, out = validate(capsys, "train.yaml")
    assert code == 1
    assert (
        "ERROR train.yaml:8: params.learning_rat: unknown parameter 'learning_rat';"
        " did you mean 'learning_rate'?" in out
    )
    assert "ERROR train.yaml:9: params.lora_rank: unknown parameter 'lora_rank'" in out
    assert "train.yaml: 2 problem(s) in this train config" in out
    assert "unknown key 'pvp'" not in out


def test_validate_a_misspelled_field_of_a_grouped_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "train.csv", "text,label\na great film,positive\n")
    write(tmp_path, "train.yaml", TRAIN + "  tuning: {mode: lora, rnk: 4}\n  batch_size: 0\n")
    code, out = validate(capsys, "train.yaml")
    assert code == 1
    assert (
        "ERROR train.yaml:8: params.tuning.rnk: tuning has no field 'rnk'; did you mean 'rank'?"
        in out
    )
    assert "ERROR train.yaml:9: params.batch_size: batch_size must be a positive integer" in out


def test_validate_a_train_config_checks_keys_pvp_and_data_together(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "pvp.yaml",
        "pattern: '{text} It was.'\nverbalizer: {positive: [great], negative: [bad]}\n",
    )
    write(
        tmp_path,
        "train.yaml",
        """\
        pvp: pvp.yaml
        data: {train: nowhere.csv}
        outptu: out
        params: {pvp: other.yaml}
        """,
    )
    code, out = validate(capsys, "train.yaml")
    assert code == 1
    assert "ERROR pvp.yaml:1: pattern: no [MASK]" in out
    assert "ERROR train.yaml:2: data.train: file 'nowhere.csv' not found" in out
    assert "ERROR train.yaml:3: outptu: unknown key 'outptu' in train config; did you mean" in out
    assert "ERROR train.yaml:4: params.pvp: 'pvp' belongs at the top level" in out


def test_validate_a_train_config_with_an_inline_pvp_locates_its_problems(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "train.csv", "text,label\na great film,positive\n")
    write(tmp_path, "train.yaml", TRAIN.replace("negative: [bad]", "negative: [great]"))
    code, out = validate(capsys, "train.yaml")
    assert code == 1
    assert "ERROR train.yaml:3: pvp.verbalizer.negative: label word 'great' is listed" in out


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("labels: {pos: [a], neg: [b]}\nagregate: max\n", "verbalizer file"),
        ("patterns:\n  - patern: x\nverbalizer: v.yaml\n", "template file"),
        ("patern: x\nverbalizer: v.yaml\n", "PVP file"),
        ("pvpp: p.yaml\ndata: {}\noutput: o\n", "train config"),
    ],
    ids=["verbalizer", "template", "pvp", "train"],
)
def test_validate_names_the_kind_of_file(tmp_path, capsys, text, kind):
    path = write(tmp_path, "f.yaml", text)
    code, out = validate(capsys, path)
    assert code == 1
    assert f"problem(s) in this {kind}" in out, out


def test_validate_a_file_of_no_known_kind(tmp_path, capsys):
    path = write(tmp_path, "f.yaml", "name: x\ncolour: blue\n")
    code, out = validate(capsys, path)
    assert code == 1 and "cannot tell what this file is: its keys name, colour" in out


def test_validate_lists_problems_of_the_pattern_and_of_the_verbalizer(tmp_path, capsys):
    path = write(
        tmp_path,
        "p.yaml",
        """\
        pattern: "{text} It was."
        verbalizer:
          pos: [great]
          neg: ["  "]
        """,
    )
    code, out = validate(capsys, path.name, cwd=tmp_path)
    assert code == 1
    assert "ERROR p.yaml:1: pattern: no [MASK]" in out
    assert "ERROR p.yaml:4: verbalizer.neg: label word '' is empty" in out


def test_validate_lists_the_problems_of_every_pattern(tmp_path, capsys):
    write(tmp_path, "v.yaml", "labels: {pos: [great], neg: [bad]}\n")
    path = write(
        tmp_path,
        "t.yaml",
        """\
        verbalizer: v.yaml
        patterns:
          - name: one
            pattern: "{text} It was."
          - name: two
            pattern: "{text} It was [MASK]."
          - name: three
            pattern: "{text} [MASK] and [MASK]."
        """,
    )
    code, out = validate(capsys, path)
    assert code == 1
    assert ":4: patterns.0.pattern: no [MASK]" in out
    assert ":8: patterns.2.pattern: 2 [MASK] markers" in out
    assert "2 problem(s) in this template file" in out
