"""The few-shot benchmark's report (tables, summary, plots) from recorded runs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def few_shot(monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module("few_shot")
    yield module
    sys.modules.pop("few_shot", None)


def _runs(method: str, accs: list[float], k: int = 8) -> list[dict]:
    return [
        {
            "task": "toy",
            "method": method,
            "k": k,
            "seed": s,
            "accuracy": a,
            "seconds": 1.0,
            "n_test": 10,
            "threads": 1,
        }
        for s, a in enumerate(accs)
    ]


def test_report_of_peer_rows_only_writes_tables_and_skips_the_empty_pet_plot(few_shot, tmp_path):
    data = {"runs": _runs("setfit", [0.5, 0.7]), "machine": {}, "invocations": []}
    out = tmp_path / "fs.json"
    few_shot.report(data, out)
    peers = (tmp_path / "fs.md").read_text()
    assert "| setfit | 0.600 ± 0.100 (n=2) | 1.0 |" in peers  # fewer than 5 seeds: n=
    assert (tmp_path / "fs.png").stat().st_size > 0
    assert not (tmp_path / "fs_pet.png").exists()  # no PET-family rows: no plot, no crash
    assert "**toy**" not in (tmp_path / "fs_pet.md").read_text()
    summary = json.loads(out.read_text())["summary"]
    assert summary["toy"]["setfit"]["8"]["n_seeds"] == 2


def test_report_with_pet_rows_draws_both_plots(few_shot, tmp_path):
    runs = _runs("pet_kit", [0.8] * 5) + _runs("pet_kit_lora", [0.6, 0.8, 0.7, 0.7, 0.7])
    out = tmp_path / "fs.json"
    few_shot.report({"runs": runs, "machine": {}, "invocations": []}, out)
    assert (tmp_path / "fs_pet.png").stat().st_size > 0
    pet = (tmp_path / "fs_pet.md").read_text()
    assert "| pet_kit_lora | 0.700 ± 0.063 |" in pet
