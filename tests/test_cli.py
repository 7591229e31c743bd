"""The pet-kit command line: validate, train, predict, evaluate."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import NEG, POS, REPO

from pet_kit.cli import main


def test_validate_ok_and_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pattern: '{text} It was.'\nverbalizer: {pos: [great], neg: [bad]}\n")
    code = main(
        [
            "validate",
            str(REPO / "templates" / "sentiment_en.yaml"),
            str(REPO / "verbalizers" / "sentiment_en.yaml"),
            str(bad),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "OK    " in out and "4 pattern(s)" in out and "verbalizer with 2 labels" in out
    assert f"ERROR {bad}:1: pattern: no [MASK]" in out


def test_validate_against_a_tokenizer(tmp_path, tiny_dir, capsys):
    pvp = tmp_path / "pvp.yaml"
    pvp.write_text(
        "pattern: '{text} It was [MASK].'\nverbalizer:\n  pos: [great]\n  neg: [xyzzyq]\n"
    )
    assert main(["validate", str(pvp)]) == 0  # schema-valid
    assert main(["validate", str(pvp), "--model", str(tiny_dir)]) == 1
    assert "'xyzzyq' is not in the backbone's vocabulary" in capsys.readouterr().out


def _write_data(folder):
    train = pd.DataFrame({"text": POS[:6] + NEG[:6], "label": ["pos"] * 6 + ["neg"] * 6})
    test = pd.DataFrame({"text": POS[6:] + NEG[6:], "label": ["pos"] * 2 + ["neg"] * 2})
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    (folder / "new.txt").write_text("a great film\n\nawful plot\n")


def test_train_predict_evaluate(tmp_path, tiny_dir, capsys):
    _write_data(tmp_path)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"""
pvp:
  pattern: "[SOFT*2] {{text}} It was [MASK]."
  verbalizer: {{pos: [great, good], neg: [terrible, bad]}}
model: {tiny_dir}
data:
  train: train.csv
  eval: test.csv
params: {{epochs: 3, random_state: 0, verbose: 0, device: cpu}}
output: out/prompt
""")
    assert main(["train", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "untrained accuracy on 4 eval examples" in out and "saved prompt to" in out
    prompt = tmp_path / "out" / "prompt"
    assert (prompt / "prompt.safetensors").is_file()

    assert (
        main(
            [
                "predict",
                str(prompt),
                str(tmp_path / "new.txt"),
                "--output",
                str(tmp_path / "pred.jsonl"),
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"text", "prediction", "proba_neg", "proba_pos"} <= set(rows[0])
    assert abs(rows[0]["proba_neg"] + rows[0]["proba_pos"] - 1) < 1e-6

    capsys.readouterr()
    assert main(["predict", str(prompt), str(tmp_path / "test.csv")]) == 0
    assert capsys.readouterr().out.startswith("text,label,prediction,")

    assert (
        main(
            [
                "evaluate",
                str(prompt),
                str(tmp_path / "test.csv"),
                "--output",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["n"] == 4 and 0 <= result["accuracy"] <= 1 and "macro_f1" in result


def test_train_config_errors(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("pvp: x.yaml\ndata: {train: t.csv}\noutput: o\nparms: {}\n")
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "train.yaml:4: parms: unknown key 'parms'" in err and "did you mean 'params'" in err


def test_unknown_estimator_param_in_config(tmp_path, tiny_dir, capsys):
    _write_data(tmp_path)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        f"pvp: {{pattern: '{{text}} [MASK]', verbalizer: {{a: [good], b: [bad]}}}}\n"
        f"model: {tiny_dir}\ndata: {{train: train.csv}}\noutput: o\n"
        "params: {epoch: 3}\n"
    )
    assert main(["train", str(cfg)]) == 1
    assert "unknown parameter(s) ['epoch']" in capsys.readouterr().err


def test_predict_missing_prompt_dir(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hi\n")
    assert main(["predict", str(tmp_path / "nope"), str(tmp_path / "x.txt")]) == 1
    assert "no such prompt folder" in capsys.readouterr().err


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    eps = entry_points(group="console_scripts")
    if not any(ep.name == "pet-kit" for ep in eps):
        pytest.skip("package not installed (pip install -e .)")
    assert next(ep for ep in eps if ep.name == "pet-kit").value == "pet_kit.cli:main"
