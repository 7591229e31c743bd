"""scripts/default_backbone/label_bias.py: ranking vs bias of a zero-shot classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import backbone_scripts


@pytest.fixture()
def lb():
    with backbone_scripts("distill_cloze", "label_bias") as loaded:
        yield loaded["label_bias"]


def test_a_biased_but_well_ranked_classifier_is_told_from_a_badly_ranked_one(lb):
    labels = ["a"] * 4 + ["b"] * 4
    # every text scores higher for "b", but the "a" texts less so: perfect ranking, biased
    biased = np.array(
        [[0.0, 1.0 + 0.1 * i] for i in range(4)] + [[0.0, 2.0 + 0.1 * i] for i in range(4)]
    )
    r = lb.bias_scores(biased, ["a", "b"], labels)
    assert r["accuracy"] == 0.5 and r["roc_auc"] == 1.0 and r["centred_accuracy"] == 1.0
    assert (r["most_predicted"], r["predicted_share"], r["true_share"]) == ("b", 1.0, 0.5)
    # the same order without the offset: nothing for the centring to add
    fair = biased - np.array([0.0, 1.95])
    r = lb.bias_scores(fair, ["a", "b"], labels)
    assert r["accuracy"] == r["centred_accuracy"] == 1.0 and r["predicted_share"] == 0.5


def test_three_classes_use_the_macro_one_vs_rest_auc(lb):
    labels = ["x", "y", "z"] * 2
    scores = np.eye(3)[[0, 1, 2, 0, 1, 2]] + np.array([0.0, 0.0, 5.0])  # "z" always wins
    r = lb.bias_scores(scores, ["x", "y", "z"], labels)
    assert r["accuracy"] == pytest.approx(1 / 3, abs=1e-3) and r["roc_auc"] == 1.0
    assert r["centred_accuracy"] == 1.0 and r["most_predicted"] == "z"


def test_a_published_candidate_is_named_by_its_letter(lb, tmp_path):
    report = tmp_path / "gates.json"
    other, mine = tmp_path / "a" / "model-2", tmp_path / "b" / "model-2"
    cands = [{"model": str(other)}] * 27 + [{"model": str(mine)}]
    report.write_text(json.dumps({"candidates": cands}), encoding="utf-8")
    assert lb.model_name(mine, report) == "AB (`b/model-2`)"
    assert lb.model_name(tmp_path / "c" / "model-2", report) == "c/model-2"
    assert lb.model_name(mine, tmp_path / "missing.json") == "b/model-2"


def test_added_models_keep_the_published_rows_and_sit_before_the_teacher(lb):
    def row(acc):
        return {"accuracy": acc}

    published = {
        "gates": {"g": {"today's default": row(0.5), "/gone/a": row(0.6),
                        "teacher (mpnet) similarity": row(0.7)}},
        "test_size": {"g": 10},
        "models": ["/gone/a"],
    }  # fmt: skip
    measured = {"gates": {"g": {"/here/b": row(0.8), "/gone/a": row(0.65)}},
                "test_size": {"g": 10}, "models": ["/here/b", "/gone/a"]}  # fmt: skip
    out = lb.added(published, measured)
    assert list(out["gates"]["g"]) == ["today's default", "/gone/a", "/here/b",
                                       "teacher (mpnet) similarity"]  # fmt: skip
    assert out["gates"]["g"]["/gone/a"] == row(0.65)  # measured again: replaced in place
    assert out["models"] == ["/gone/a", "/here/b"]
    assert published["gates"]["g"]["/gone/a"] == row(0.6)  # the published report untouched


def test_adding_without_a_published_report_is_refused_by_name(lb, tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SystemExit):
        lb.main(["--add", str(folder), "--out", str(tmp_path / "bias")])
    assert "bias.json does not exist; run without --add first" in capsys.readouterr().err


def test_a_folder_rebuilt_where_others_were_measured_is_named_by_its_own_evaluation(lb, tmp_path):
    report = tmp_path / "gates.json"
    mine = tmp_path / "b" / "model-2"
    mine.mkdir(parents=True)
    cands = [{"model": str(mine), "measured_at": f"t{i}", "evaluation_file": "evaluation-2.json"}
             for i in range(3)]  # fmt: skip
    report.write_text(json.dumps({"candidates": cands}), encoding="utf-8")
    assert lb.model_name(mine, report) == "A, B or C (`b/model-2`)"  # nothing beside it
    evaluation = mine.parent / "evaluation-2.json"
    evaluation.write_text(json.dumps({"measured_at": "t1"}), encoding="utf-8")
    assert lb.model_name(mine, report) == "B (`b/model-2`)"
    evaluation.write_text(json.dumps({"measured_at": "t9"}), encoding="utf-8")
    assert lb.model_name(mine, report) == "b/model-2"  # a rebuild not published


def test_names_recorded_when_written_outlive_the_folders(lb, tmp_path, monkeypatch):
    monkeypatch.setattr(lb, "model_name", lambda path: f"now {path.name}")
    report = {"models": ["/x/gone", "/x/new"], "names": {"/x/gone": "AE (`gone`)"}}
    assert lb.model_names(report) == {"/x/gone": "AE (`gone`)", "/x/new": "now new"}
    measured = {"gates": {}, "models": ["/x/gone"]}
    assert "/x/gone" not in lb.added({**report, "gates": {}}, measured)["names"]
