"""pet-kit's help and the messages of evaluate and validate: plain text (no reST marks),
a description for every command, every option documented with its default, ``-v`` after
the command, evaluate's refusals of data it cannot score."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from conftest import NEG, POS

from pet_kit.cli import build_parser, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _help(name: str) -> str:
    """``pet-kit NAME --help``, whitespace collapsed (wrapping depends on the terminal)."""
    return " ".join(_commands()[name].format_help().split())


def _refuse_prompt_load(monkeypatch):
    import pet_kit.cli as cli

    def refuse(args):
        raise AssertionError("the prompt was loaded")

    monkeypatch.setattr(cli, "_load_prompt", refuse)


def test_top_level_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out and ":func:" not in out
    assert "cloze prompts" in out  # what the tool is for
    assert "Exit status: 0 on success" in out and "pet-kit COMMAND --help" in out


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_a_description_and_documented_options(name, capsys):
    parser = _commands()[name]
    assert parser.description and len(parser.description) > 30, name
    text = parser.format_help()
    assert "``" not in text and ":mod:" not in text, text
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flag = "/".join(action.option_strings) or action.dest
        assert action.help, f"pet-kit {name} {flag}: no help text"
        shown_default = action.option_strings and action.default not in (
            None,
            True,
            False,
            argparse.SUPPRESS,
        )
        if shown_default:
            assert "%(default)" in action.help or str(action.default) in action.help, (
                f"pet-kit {name} {flag}: help does not show the default {action.default!r}"
            )


def test_list_pvps_and_label_word_options_are_documented():
    assert "pattern names" in _help("list-pvps")
    label_words = _help("label-words")
    assert "the column holding each example's label (default label)" in label_words
    assert "most probable words" in label_words and "(default 100)" in label_words
    evaluate = _help("evaluate")
    assert "(default label)" in evaluate and "CSV/TSV/JSONL/TXT" not in evaluate
    serve, adapt = _help("serve"), _help("adapt")
    assert "(default 8000)" in serve and "(default 127.0.0.1" in serve
    assert "(default 32)" in adapt and "(default 0.0001)" in adapt


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["validate", "sentiment_en"], 0),
        (["-v", "validate", "sentiment_en"], 1),
        (["validate", "-v", "sentiment_en"], 1),
        (["validate", "sentiment_en", "-vv"], 2),
        (["-v", "validate", "-v", "sentiment_en"], 2),
        (["-vv", "validate", "-v", "sentiment_en"], 3),
        (["-vv", "list-pvps"], 2),
    ],
)
def test_verbose_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose == verbose


def test_validate_with_verbose_after_the_command_runs(capsys):
    assert main(["validate", "-v", "sentiment_en"]) == 0
    assert capsys.readouterr().out.startswith("OK ")


def test_evaluate_refuses_a_txt_file_before_loading_anything(tmp_path, capsys, monkeypatch):
    data = tmp_path / "texts.txt"
    data.write_text("a great film\nawful plot\n", encoding="utf-8")
    _refuse_prompt_load(monkeypatch)
    assert main(["evaluate", str(tmp_path / "prompt"), str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{data}: a .txt file holds texts only" in err
    assert "CSV/TSV/JSONL" in err and "pet-kit predict" in err


def test_evaluate_without_the_label_column_names_the_option(tmp_path, capsys, monkeypatch):
    data = tmp_path / "unlabelled.csv"
    pd.DataFrame({"text": POS[:2] + NEG[:2]}).to_csv(data, index=False)
    _refuse_prompt_load(monkeypatch)
    assert main(["evaluate", str(tmp_path / "prompt"), str(data)]) == 1
    err = capsys.readouterr().err
    assert "no label column 'label'" in err and "--label-column" in err
    assert "config" not in err
