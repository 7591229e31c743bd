"""The built wheel carries the shipped PVPs and works installed, away from the checkout.

The wheel is built offline (``pip wheel --no-build-isolation``) from a copy of the
sources, so the build writes nothing into the repository. The installed-wheel check
installs it (``--no-deps``) into a fresh virtual environment made from the base
interpreter, whose ``site-packages`` lists the project environment's ``site-packages``
*after* its own (a ``.pth`` path line): the dependencies come from the project
environment, ``pet_kit`` from the wheel. The project's editable install cannot shadow it:
its finder is started by a ``.pth`` file, and ``.pth`` files are read only in
site-packages folders, not in folders a ``.pth`` line adds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PVP_FOLDERS = ("templates", "verbalizers")  # mapped into the wheel as pet_kit/pvps/...
PIP = [sys.executable, "-m", "pip"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(cmd: list[str], cwd: Path, timeout: int = 180, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, **OFFLINE, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    for name in ("pet_kit", *PVP_FOLDERS):
        shutil.copytree(
            REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    dist = root / "dist"
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    _run([*PIP, *build, "-w", str(dist), str(src)], cwd=root)
    (built,) = dist.glob("pet_kit-*.whl")
    return built


def test_wheel_contains_the_shipped_pvps(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"pet_kit/pvps/{p.relative_to(REPO).as_posix()}"
        for folder in PVP_FOLDERS
        for p in (REPO / folder).glob("*.yaml")
    }
    assert any("/templates/" in f for f in shipped) and any("/verbalizers/" in f for f in shipped)
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"
    assert {n for n in names if n.startswith("pet_kit/pvps/")} == shipped  # nothing else there
    assert "pet_kit/resources/minilm_l6_mlm.safetensors" in names


@pytest.fixture(scope="module")
def wheel_env(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its python."""
    root = tmp_path_factory.mktemp("wheel_env")
    venv = root / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = venv / bindir / ("python.exe" if os.name == "nt" else "python")
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=root,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "_pet_kit_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=root,
    )
    return python


SCRIPT = """
import json
import pet_kit
from pet_kit import PromptClassifier, load_pvp
from pet_kit.config.pvp import shipped_pvps

first = next(p for p in shipped_pvps() if p.name == "sentiment_en").patterns[0]
pvp = load_pvp("sentiment_en")
clf = PromptClassifier(pvp=f"sentiment_en#{first}", verbose=0).fit(None)
pred = clf.predict(["A gorgeous, moving film.", "A dull, lifeless mess."])
print(json.dumps({
    "file": pet_kit.__file__, "source": pvp.source, "name": pvp.name, "first": first,
    "classes": [str(c) for c in clf.classes_], "pred": [str(p) for p in pred],
}))
"""


@pytest.mark.integration
def test_installed_wheel_loads_pvps_by_name_from_an_empty_folder(wheel_env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _run([str(wheel_env), "-c", textwrap.dedent(SCRIPT)], cwd=empty, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    env_root = wheel_env.parents[1]
    # pet_kit and its PVP files come from the installed wheel, not from the checkout
    assert env_root in Path(result["file"]).resolve().parents, result["file"]
    assert env_root in Path(result["source"]).resolve().parents, result["source"]
    assert REPO not in Path(result["file"]).resolve().parents
    assert result["name"] == "sentiment_en#soft"
    assert result["first"] == "it_was"
    assert result["classes"] == ["negative", "positive"]
    assert len(result["pred"]) == 2 and set(result["pred"]) <= set(result["classes"])

    # the console script, too
    pet_kit_cli = wheel_env.parent / ("pet-kit.exe" if os.name == "nt" else "pet-kit")
    listed = _run([str(pet_kit_cli), "list-pvps"], cwd=empty).stdout.splitlines()
    assert {line.split()[0] for line in listed[1:]} >= {"sentiment_en", "rotten_tomatoes"}
    checked = _run([str(pet_kit_cli), "validate", "sentiment_en#it_was"], cwd=empty).stdout
    assert checked.startswith("OK")
