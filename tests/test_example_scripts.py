"""The examples' command lines, without running them (tests/test_examples.py runs them):
each has a ``--help``, none writes into the checkout unless told to, the Ray example
without Ray says what to install, and the docs they point to exist.

In-process (no backbone is loaded): quick enough for the default suite.
"""

from __future__ import annotations

import importlib.util
import re
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_has_a_help(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(script), run_name="__main__")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--help" in out
    first_line = (script.read_text(encoding="utf-8").split('"""')[1]).splitlines()[0]
    assert " ".join(first_line.split()) in " ".join(out.split())  # the docstring's summary


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_no_example_writes_into_the_checkout_by_default(script):
    source = script.read_text(encoding="utf-8")
    assert not re.search(r"""REPO\s*/\s*["']prompts""", source), (
        f"{script.name}: a default output under the checkout's prompts/; default to a new"
        " temporary folder (tempfile.mkdtemp) and print where it went"
    )
    for m in re.finditer(r"""add_argument\(\s*["'](--(?:out|png)\b[^"']*)""", source):
        option, block = m.group(1), source[m.start() :][:400]
        block = re.sub(r'"\s+"', "", block)  # implicitly joined string literals
        assert "default=" not in block.split(")")[0], f"{script.name} {option}: a fixed default"
        assert "temporary folder" in block, f"{script.name} {option}: help names no default"


def test_examples_point_to_docs_that_exist():
    for script in EXAMPLES:
        source = script.read_text(encoding="utf-8")
        assert "README's limits" not in source, script.name
        for page in re.findall(r"docs/[\w-]+\.md", source):
            assert (REPO / page).is_file(), f"{script.name}: {page} does not exist"


def test_ray_example_without_ray_says_what_to_install(monkeypatch, capsys, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "ray_predict_no_ray", REPO / "examples" / "ray_predict.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importable without Ray (its --help too)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` -> ModuleNotFoundError
    argv = [str(tmp_path / "prompt"), str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")]
    assert module.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "'ray' is not installed" in err and 'pip install "ray[data]"' in err
    assert 'pip install "pet_kit[ray]"' in err and "Traceback" not in err
