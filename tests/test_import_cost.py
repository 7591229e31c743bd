"""``import pet_kit`` and the light CLI commands must not load the heavy libraries.

The checks that need a clean ``sys.modules`` run in a fresh interpreter
(``sys.executable -c ...``): the test process itself has torch loaded already.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pet_kit

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sklearn", "pandas")


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter at the repository root; return its last JSON line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_pet_kit_is_light_until_a_model_is_needed():
    result = _run(
        f"""
        import json, sys
        heavy = {HEAVY!r}
        import pet_kit
        pet_kit.__version__
        pet_kit.PVP, pet_kit.load_pvp, pet_kit.Pattern, pet_kit.ConfigError
        before = [m for m in heavy if m in sys.modules]
        clf = pet_kit.PromptClassifier(pvp="sentiment_en")
        ok = "pvp" in clf.get_params() and pet_kit.PromptClassifier.__name__ == "PromptClassifier"
        print(json.dumps({{"before": before, "ok": ok, "torch_after": "torch" in sys.modules}}))
        """
    )
    assert result["before"] == []
    assert result["ok"]
    assert result["torch_after"]  # the estimator does load torch (the check is not vacuous)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["validate", "--help"],
        ["train", "--help"],
        ["predict", "--help"],
        ["validate", "sentiment_en", "verbalizers/sentiment_en.yaml"],
        ["list-pvps"],
    ],
    ids=" ".join,
)
def test_light_cli_commands_do_not_import_torch(argv):
    result = _run(
        f"""
        import contextlib, io, json, runpy, sys
        heavy = {HEAVY!r}
        sys.argv = ["pet-kit", *{argv!r}]
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                runpy.run_module("pet_kit", run_name="__main__", alter_sys=True)
            code = None
        except SystemExit as exc:
            code = exc.code
        loaded = [m for m in heavy if m in sys.modules]
        print(json.dumps({{"code": code, "loaded": loaded, "out": out.getvalue()}}))
        """
    )
    assert result["code"] in (0, None), result["out"]
    assert result["loaded"] == []
    if argv[0] == "validate" and argv[1] != "--help":
        assert result["out"].count("OK    ") == 2
    if argv == ["--version"]:
        assert pet_kit.__version__ in result["out"]


def test_all_matches_the_lazy_table():
    assert set(pet_kit.__all__) == {*pet_kit._LAZY, "__version__"}
    assert len(pet_kit.__all__) == len(set(pet_kit.__all__))
    assert set(pet_kit.__all__) <= set(dir(pet_kit))


def test_unknown_attribute_raises_the_standard_attribute_error():
    with pytest.raises(AttributeError, match=r"^module 'pet_kit' has no attribute 'no_such_name'$"):
        pet_kit.no_such_name  # noqa: B018
    assert not hasattr(pet_kit, "no_such_name")


@pytest.mark.parametrize("name", sorted(pet_kit._LAZY))
def test_lazy_names_resolve_to_their_module_attribute(name):
    module_name, _, attr = pet_kit._LAZY[name].partition(":")
    if importlib.util.find_spec(module_name) is None:
        pytest.skip(f"{module_name} does not exist yet")
    expected = getattr(importlib.import_module(module_name), attr)
    assert getattr(pet_kit, name) is expected
    assert vars(pet_kit)[name] is expected  # cached: __getattr__ runs once per name
