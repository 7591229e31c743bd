"""Every script under examples/ runs end to end on the embedded backbone (tiny settings).

The README points users at these scripts; a renamed parameter or attribute in the library
must break a test, not a user's first run. Each runs as a subprocess from the repository
root, with K=2 per class and a small test subset, writing into a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--k", "2", "--test-size", "16"]

#: example -> (arguments; {tmp} is the test's temporary folder, what its output must show)
CASES = {
    "calibration": (SMALL, "calibration=unlabeled"),
    "demonstrations": (SMALL, "demonstrations=similar"),
    "tuning_modes": ([*SMALL, "--modes", "prompt", "prompt+head", "lora"], "unchanged: True"),
    "deep_prompt": (SMALL, "+ deep prompt (P=4)"),
    "ensemble_distill": ([*SMALL, "--unlabeled", "16", "--out", "{tmp}/student"], "ensemble"),
    "explain_prompt": (["--k", "2", "--png", "{tmp}/report.png"], "report:"),
    "label_words": ([*SMALL, "--out", "{tmp}/words.yaml"], "written to"),
    "prompt_bank": (["--k", "2", "--epochs", "1", "--out", "{tmp}/bank"], "] "),
    "sklearn_and_pairs": (SMALL, "zero-shot NLI:"),
}


def _example_scripts() -> set[str]:
    return {p.stem for p in (REPO / "examples").glob("*.py")}


#: examples tested elsewhere: quickstart (README command 1) at its default settings by
#: test_readme_demo_shows_training_beat_the_untrained_prompt below, predict_sharded by
#: tests/batch/test_batch.py, ray_predict (needs the optional ``ray`` extra; skipped
#: without it) by tests/test_ray.py
TESTED_ELSEWHERE = {"quickstart", "predict_sharded", "ray_predict"}


def test_every_example_is_covered():
    """A new example gets a case here, or in TESTED_ELSEWHERE with its own test."""
    assert _example_scripts() - TESTED_ELSEWHERE == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, tmp_path):
    args, expected = CASES[name]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / f"{name}.py"), *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert expected in proc.stdout, proc.stdout[-2000:]
    assert "longer than the specified maximum" not in proc.stderr


def test_readme_demo_shows_training_beat_the_untrained_prompt(tmp_path):
    """README command 1's promise, at its default settings (a smaller test subset): it
    runs from any folder, training beats the untrained prompt, the prompt is saved."""
    import re

    demo = [sys.executable, str(REPO / "examples" / "quickstart.py")]
    proc = subprocess.run(
        [*demo, "--test-size", "200", "--out", str(tmp_path / "prompt")],
        cwd=tmp_path,  # runs from any folder
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    before = float(re.search(r"accuracy before training \S+ \S+ \S+: ([0-9.]+)", proc.stdout)[1])
    after = float(re.search(r"accuracy after training on \d+ examples: ([0-9.]+)", proc.stdout)[1])
    assert after > before + 0.2, proc.stdout
    assert "saved the prompt" in proc.stdout and (tmp_path / "prompt" / "prompt.json").is_file()
