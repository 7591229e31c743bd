"""scripts/default_backbone/zero_shot_calibration.py, and the zero-shot scorer it shares with
the gates (`distill_cloze.zero_shot`): calibration modes measured zero-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import NEG, POS, SENTIMENT_PVP, backbone_scripts


@pytest.fixture()
def zc():
    with backbone_scripts("distill_cloze", "dev_tasks", "label_bias", "zero_shot_calibration") as m:
        yield m["zero_shot_calibration"]


@pytest.fixture()
def dc():
    with backbone_scripts("distill_cloze") as m:
        yield m["distill_cloze"]


def test_each_mode_is_what_a_user_would_run(dc, tiny_dir):
    """``unlabeled`` divides out the prior over the classified texts themselves, so its
    predictions are the argmax of the probabilities over that prior; ``None`` is the raw
    zero-shot classifier; ``content_free`` needs no texts."""
    from pet_kit import PromptClassifier

    pvp = {**SENTIMENT_PVP, "pattern": "{text} It was [MASK]."}
    X, y = POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG)
    raw = PromptClassifier(pvp=pvp, model=str(tiny_dir), verbose=0).fit(None)
    proba = raw.predict_proba(X)
    assert dc.zero_shot(str(tiny_dir), pvp, X, y, None) == pytest.approx(raw.score(X, y), abs=1e-4)
    shifted = (proba / proba.mean(0)).argmax(1)
    expected = float(np.mean(raw.classes_[shifted] == np.array(y)))
    assert dc.zero_shot(str(tiny_dir), pvp, X, y, "unlabeled") == pytest.approx(expected, abs=1e-4)
    assert 0.0 <= dc.zero_shot(str(tiny_dir), pvp, X, y, "content_free") <= 1.0


def test_the_table_has_a_column_per_mode_and_the_development_mean(zc, tmp_path):
    report = {
        "models": [],
        "kind": {"d1": "dev", "d2": "dev", "g": "gate"},
        "size": {"d1": 10, "d2": 20, "g": 30},
        "results": {
            "today's default": {
                "d1": {"none": 0.5, "content_free": 0.4, "unlabeled": 0.7},
                "d2": {"none": 0.7, "content_free": 0.6, "unlabeled": 0.8},
                "g": {"none": 0.6, "content_free": 0.65, "unlabeled": 0.9},
            }
        },
    }
    out = tmp_path / "calibration"
    out.with_suffix(".json").write_text(json.dumps(report), encoding="utf-8")
    assert zc.main(["--report-only", "--out", str(out)]) == 0
    lines = out.with_suffix(".md").read_text(encoding="utf-8").splitlines()
    assert "| model | task (texts) | `none` | `content_free` | `unlabeled` |" in lines
    assert "| today's default | dev: mean | **0.600** | **0.500** | **0.750** |" in lines
    # the gate comes after the development mean: the rows that decide come first
    rows = [line for line in lines if line.startswith("| today's default")]
    assert [r.split(" | ")[1] for r in rows] == [
        "dev: `d1` (10)", "dev: `d2` (20)", "dev: mean", "gate: `g` (30)"
    ]  # fmt: skip
