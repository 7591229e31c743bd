"""Shipped PVPs are package data, addressable by name from any folder.

A string with no path separator and no ``.yaml``/``.yml`` suffix that is not an existing
file is a shipped PVP's name (``"sentiment_en"``, ``"rotten_tomatoes#soft"``); an existing
file always wins; an unknown name lists the shipped ones with a "did you mean".
No torch here except where the estimator itself is exercised.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

from pet_kit import ConfigError, load_pvp, load_pvps, load_verbalizer
from pet_kit.cli import main
from pet_kit.config.pvp import (
    SHIPPED_DIR,
    pvp_reference,
    shipped_pvp_names,
    shipped_pvp_path,
    shipped_pvps,
    shipped_verbalizer_names,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_FILES = sorted((SHIPPED_DIR / "templates").glob("*.yaml"))


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working folder: nothing shipped is reachable by a relative path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------- the files
def test_shipped_files_live_at_the_top_of_the_checkout():
    assert SHIPPED_DIR == REPO
    names = shipped_pvp_names()
    assert names == sorted(p.stem for p in TEMPLATE_FILES)
    assert {"sentiment_en", "rotten_tomatoes", "subjectivity", "nli_en"} <= set(names)
    assert set(shipped_verbalizer_names()) <= set(names)
    # one home: no second copy inside the package to drift apart
    assert not (REPO / "pet_kit" / "pvps").exists()


def test_an_edited_template_in_the_checkout_is_what_a_name_loads(tmp_path, monkeypatch):
    path = REPO / "templates" / "sentiment_en.yaml"
    assert shipped_pvp_path("sentiment_en") == path
    assert load_pvp("sentiment_en").source == str(path)


def test_package_data_covers_every_shipped_file():
    """pyproject maps templates/ and verbalizers/ into the wheel, every file included."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    dirs, data = config["setuptools"]["package-dir"], config["setuptools"]["package-data"]
    for folder in ("templates", "verbalizers"):
        package = f"pet_kit.pvps.{folder}"
        assert dirs[package] == folder and package in config["setuptools"]["packages"]
        files = [p.name for p in (REPO / folder).iterdir() if p.is_file()]
        assert files
        missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in data[package])]
        assert not missing, f"not package data (add a glob to pyproject.toml): {missing}"


def test_every_package_folder_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "pet_kit").rglob("__init__.py")
    }
    assert found <= set(config["setuptools"]["packages"])


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_templates_reference_only_shipped_verbalizers(path):
    """A template's verbalizer path names a shipped verbalizer beside it (../verbalizers/),
    so the same relative path works in the wheel's pet_kit/pvps."""
    ref = yaml.safe_load(path.read_text(encoding="utf-8")).get("verbalizer")
    if isinstance(ref, str):
        target = (path.parent / ref).resolve()
        assert target.is_file() and target.parent == SHIPPED_DIR / "verbalizers", ref


# ------------------------------------------------------------ load by name
def test_load_pvp_by_name_from_any_folder(elsewhere):
    pvp = load_pvp("sentiment_en")
    assert pvp.name == "sentiment_en#soft"  # the template's default pattern
    assert Path(pvp.source).resolve() == shipped_pvp_path("sentiment_en")
    assert list(pvp.verbalizer.labels) == ["positive", "negative"]
    assert load_pvp("rotten_tomatoes").name == "rotten_tomatoes#it_was"


def test_name_with_pattern_and_load_pvps(elsewhere):
    assert load_pvp("sentiment_en#it_was").pattern.text == "{text} It was [MASK]."
    names = [p.name for p in load_pvps("rotten_tomatoes")]
    assert names[0] == "rotten_tomatoes#it_was" and len(names) == 6
    assert [p.name for p in load_pvps("rotten_tomatoes#soft")] == ["rotten_tomatoes#soft"]
    with pytest.raises(ConfigError, match=r"no pattern named 'nope'; this file has: it_was"):
        load_pvp("sentiment_en#nope")


@pytest.mark.parametrize("name", [p.stem for p in TEMPLATE_FILES])
def test_every_shipped_name_loads(elsewhere, name):
    assert load_pvps(name)


def test_existing_file_wins_over_a_shipped_name(elsewhere):
    (elsewhere / "sentiment_en").write_text(
        "pattern: '{text} Mine: [MASK].'\nverbalizer: {yes_: [good], no_: [bad]}\n",
        encoding="utf-8",
    )
    pvp = load_pvp("sentiment_en")
    assert pvp.pattern.text == "{text} Mine: [MASK]."
    assert list(pvp.verbalizer.labels) == ["yes_", "no_"]
    assert load_pvp("sentiment_zh").name == "sentiment_zh#soft"  # other names unaffected


def test_unknown_name_lists_the_shipped_ones_with_did_you_mean(elsewhere):
    with pytest.raises(ConfigError) as err:
        load_pvp("sentimen_en#soft")
    msg = str(err.value)
    assert "'sentimen_en' is not a file and not the name of a shipped PVP" in msg
    assert "did you mean 'sentiment_en'" in msg
    assert all(name in msg for name in shipped_pvp_names())
    assert "pet-kit list-pvps" in msg and "my_pvp.yaml" in msg
    with pytest.raises(ConfigError) as err:
        load_pvp("zzzz")
    assert "did you mean" not in str(err.value) and "rotten_tomatoes" in str(err.value)


def test_old_repo_paths_point_to_the_name(elsewhere):
    with pytest.raises(ConfigError, match=r"pvp='rotten_tomatoes#soft'") as err:
        load_pvp("templates/rotten_tomatoes.yaml#soft")
    assert "file not found" in str(err.value)


@pytest.mark.parametrize(
    "ref", ["{text} It was [MASK].", "folder/sentiment_en", "folder\\sentiment_en", ""]
)
def test_non_names_are_not_looked_up(elsewhere, ref):
    """Pattern strings, paths without a suffix, empty strings: no shipped-name lookup."""
    with pytest.raises(ConfigError, match=r"neither a YAML file path"):
        load_pvp(ref)


def test_yaml_suffix_is_always_a_path(elsewhere):
    with pytest.raises(ConfigError, match=r"file not found"):
        load_pvp("nosuch.yaml")


# --------------------------------------------- names inside PVPs and files
def test_shipped_verbalizer_by_name(elsewhere):
    assert load_verbalizer("sentiment_en").labels["positive"] == ("great", "good")
    pvp = load_pvp({"pattern": "{text} All in all: [MASK].", "verbalizer": "subjectivity"})
    assert list(pvp.verbalizer.labels) == ["review", "plot"]
    with pytest.raises(ConfigError, match=r"did you mean 'sentiment_en'"):
        load_verbalizer("sentimentt_en")


def test_unknown_verbalizer_name_in_a_file_is_located(elsewhere):
    path = elsewhere / "p.yaml"
    path.write_text("pattern: '{text} [MASK].'\nverbalizer: sentimnt_en\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_pvp(str(path))
    assert err.value.line == 2 and err.value.key == "verbalizer"
    assert "did you mean 'sentiment_en'" in str(err.value)


def test_pvp_pattern_may_name_a_shipped_template(elsewhere):
    pvp = load_pvp({"pattern": "rotten_tomatoes#soft", "verbalizer": {"a": ["good"], "b": ["bad"]}})
    assert pvp.pattern.text == load_pvp("rotten_tomatoes#soft").pattern.text
    assert list(pvp.verbalizer.labels) == ["a", "b"]


# ----------------------------------------------------------- pvp_reference
def test_pvp_reference(tmp_path):
    shipped = shipped_pvp_path("rotten_tomatoes")
    assert pvp_reference("rotten_tomatoes#soft", tmp_path) == f"{shipped}#soft"
    assert pvp_reference("rotten_tomatoes") == str(shipped)
    (tmp_path / "rotten_tomatoes").write_text("x", encoding="utf-8")
    assert pvp_reference("rotten_tomatoes#soft", tmp_path) == f"{tmp_path / 'rotten_tomatoes'}#soft"
    assert pvp_reference("sub/x.yaml#a", tmp_path) == f"{tmp_path / 'sub' / 'x.yaml'}#a"
    assert pvp_reference("sub/x.yaml#a") == "sub/x.yaml#a"  # no base: unchanged
    with pytest.raises(ConfigError, match=r"did you mean 'rotten_tomatoes'"):
        pvp_reference("roten_tomatoes", tmp_path)


# --------------------------------------------------------------------- CLI
def test_list_pvps(elsewhere, capsys):
    assert main(["list-pvps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["NAME", "LANG", "LABELS"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert sorted(rows) == shipped_pvp_names()  # one line per shipped PVP
    assert "  en  " in rows["sentiment_en"] and "positive, negative" in rows["sentiment_en"]
    assert "it_was, review, just, soft*" in rows["sentiment_en"]  # * marks the default
    assert "  zh  " in rows["sentiment_zh"]
    assert "1, 2, 3, 4, 5" in rows["rating5_en"]


def test_shipped_pvps_summary():
    info = {p.name: p for p in shipped_pvps()}
    assert info["rotten_tomatoes"].default == "it_was"
    assert info["rotten_tomatoes"].patterns[:2] == ("it_was", "just")
    assert info["nli_en"].labels == ("entailment", "neutral", "contradiction")


def test_validate_by_name(elsewhere, capsys):
    assert main(["validate", "sentiment_en", "rotten_tomatoes#soft"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("OK ")}
    assert "4 pattern(s)" in lines["sentiment_en:"]
    assert "1 pattern(s)" in lines["rotten_tomatoes#soft:"]
    assert main(["validate", "sentimen_en"]) == 1
    assert "did you mean 'sentiment_en'" in capsys.readouterr().out


def test_train_config_resolves_names_and_relative_files(tmp_path):
    """What ``pet-kit train`` does with a config's ``pvp``: a file beside the config wins."""
    assert pvp_reference("subjectivity#soft", tmp_path).endswith(
        str(REPO / "templates" / "subjectivity.yaml#soft")
    )
    (tmp_path / "subjectivity.yaml").write_text("x", encoding="utf-8")
    assert pvp_reference("subjectivity.yaml#soft", tmp_path) == str(
        tmp_path / "subjectivity.yaml#soft"
    )


def test_estimator_takes_a_name(elsewhere):
    from pet_kit import PromptClassifier, PromptEnsemble
    from pet_kit.estimators.ensemble import _pvp_list

    pvp = PromptClassifier(pvp="sentiment_en#it_was").resolved_pvp()
    assert pvp.name == "sentiment_en#it_was"
    assert list(pvp.verbalizer.labels) == ["negative", "positive"]  # sorted: classes_ order
    assert len(_pvp_list(PromptEnsemble(pvps="rotten_tomatoes").pvps)) == 6


def test_a_misspelled_file_or_pattern_name_gets_a_suggestion(tmp_path):
    (tmp_path / "support_tickets.yaml").write_text("x: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"did you mean 'support_tickets.yaml'\?"):
        load_pvp(tmp_path / "suport_tickets.yaml")
    with pytest.raises(ConfigError, match="no folder"):
        load_pvp(tmp_path / "missing" / "pvp.yaml")
    with pytest.raises(ConfigError, match=r"no pattern named 'sofft'; did you mean 'soft'\?"):
        load_pvp(REPO / "templates" / "sentiment_en.yaml#sofft")
