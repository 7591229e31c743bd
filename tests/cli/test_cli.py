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
    err = capsys.readouterr().err
    assert "train.yaml:5: params.epoch: unknown parameter 'epoch'; did you mean 'epochs'?" in err


def _params_config(folder, tiny_dir, params: str):
    _write_data(folder)
    cfg = folder / "train.yaml"
    cfg.write_text(
        "pvp: {pattern: '[SOFT] {text} It was [MASK].', verbalizer: {pos: [good], neg: [bad]}}\n"
        f"model: {tiny_dir}\ndata: {{train: train.csv}}\noutput: out/prompt\n"
        f"params: {{max_steps: 2, batch_size: 4, random_state: 0, verbose: 0, device: cpu,"
        f" {params}}}\n"
    )
    return cfg


@pytest.mark.parametrize(
    "checkpoint", ["checkpoint: ckpt", "checkpoint: {dir: ckpt, every: 1}"], ids=["str", "dict"]
)
def test_train_config_grouped_params_and_a_relative_checkpoint_folder(
    tmp_path, tiny_dir, monkeypatch, checkpoint
):
    from pet_kit import Batching, Checkpoints, PromptClassifier, Tuning

    cfg = _params_config(
        tmp_path,
        tiny_dir,
        f"tuning: {{mode: prompt+head}}, batching: {{eval_batch_size: 5}}, {checkpoint}",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(cfg)]) == 0
    ckpt = tmp_path / "ckpt"  # beside the config, not in the working folder
    assert (ckpt / "prompt.json").is_file() and not (elsewhere / "ckpt").exists()
    saved = PromptClassifier.load(tmp_path / "out" / "prompt")
    assert saved.tuning == Tuning("prompt+head")
    assert saved.batching == Batching(eval_batch_size=5)
    expected = Checkpoints(str(ckpt), every=1) if "every" in checkpoint else str(ckpt)
    assert saved.checkpoint == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            "tuning: {mode: lora, rnak: 4}",
            "train.yaml:5: params.tuning.rnak: tuning has no field 'rnak'; did you mean 'rank'?",
        ),
        (
            "deep_prompt: {encoder: mlp}",
            "train.yaml:5: params.deep_prompt: deep_prompt must be an integer >= 0 (slots; 0:"
            " none), None or a DeepPrompt(length, encoder=None), got {'encoder': 'mlp'}: the"
            " field(s) ['length'] are required",
        ),
        (
            "tuning: {mode: lora, rank: 0}",
            "train.yaml:5: params.tuning.rank: tuning.rank must be a positive integer, got 0",
        ),
        (
            "lora_rank: 4",
            "train.yaml:5: params.lora_rank: unknown parameter 'lora_rank'; valid parameters:",
        ),
    ],
    ids=["unknown-field", "missing-field", "bad-field", "flat-name"],
)
def test_train_config_bad_grouped_params(tmp_path, tiny_dir, capsys, monkeypatch, params, message):
    import pet_kit.model.cloze_model as cloze_module

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(cloze_module, "load_backbone", refuse)
    cfg = _params_config(tmp_path, tiny_dir, params)
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert message in err


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


# ---------------------------------------------- evaluate/predict: rows, outputs, columns
@pytest.fixture(scope="module")
def saved_prompt(tiny_dir, tmp_path_factory):
    from conftest import tiny_clf

    return tiny_clf(tiny_dir).fit(None).save(tmp_path_factory.mktemp("p") / "prompt")


def test_evaluate_on_a_header_only_file_says_no_rows(tmp_path, saved_prompt, capsys):
    (tmp_path / "head.csv").write_text("text,label\n", encoding="utf-8")
    assert main(["evaluate", str(saved_prompt), str(tmp_path / "head.csv")]) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'head.csv'}: no rows" in err and "'label' column" in err


def test_evaluate_output_folder_fails_first_and_links_are_replaced(
    tmp_path, saved_prompt, capsys, caplog
):
    data = tmp_path / "test.csv"
    pd.DataFrame(
        {"review": POS[:2] + NEG[:2], "label": ["positive"] * 2 + ["negative"] * 2}
    ).to_csv(data, index=False)
    (tmp_path / "res.json").mkdir()
    args = ["evaluate", str(tmp_path / "no-prompt"), str(data), "--output"]
    assert main([*args, str(tmp_path / "res.json")]) == 1
    err = capsys.readouterr().err
    assert "res.json: is a folder, not a file" in err and "no such prompt folder" not in err
    target = tmp_path / "precious.txt"
    target.write_text("keep me", encoding="utf-8")
    (tmp_path / "link.json").symlink_to(target)
    with caplog.at_level("INFO", logger="pet_kit.cli"):
        code = main(
            ["evaluate", str(saved_prompt), str(data), "--output", str(tmp_path / "link.json")]
        )
    assert code == 0
    assert target.read_text(encoding="utf-8") == "keep me"
    assert json.loads((tmp_path / "link.json").read_text(encoding="utf-8"))["n"] == 4
    assert "pattern field(s) 'text' from the only column 'review'" in caplog.text


def test_predict_names_a_lone_surrogate_by_row(tmp_path, saved_prompt, capsys, caplog):
    path = tmp_path / "in.jsonl"
    # what json.dumps writes for text decoded with errors="surrogateescape"
    path.write_text(
        json.dumps({"text": "a great film"}) + "\n" + json.dumps({"text": "abc\udc80"}) + "\n",
        encoding="utf-8",
    )
    with caplog.at_level("INFO", logger="pet_kit.cli"):
        assert main(["predict", str(saved_prompt), str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "lone surrogate" in err and "errors='replace'" in err
    assert "line 2" in err or "row 1" in err  # pandas 3 fails on reading, older on predicting
    assert "pattern field(s) 'text'; the file's columns: ['text']" in caplog.text


def test_train_config_transfers_a_prompt_folder_beside_it(tmp_path, tiny_dir, monkeypatch):
    from pet_kit import PromptClassifier

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    source = _params_config(tmp_path / "a", tiny_dir, "epochs: 1")
    assert main(["train", str(source)]) == 0
    target = _params_config(tmp_path / "b", tiny_dir, "prompt_init: ../a/out/prompt")
    monkeypatch.chdir(tmp_path)  # the path is relative to the config, not the working folder
    assert main(["train", str(target)]) == 0
    saved = PromptClassifier.load(tmp_path / "b" / "out" / "prompt")
    start = PromptClassifier.load(tmp_path / "a" / "out" / "prompt").prompt_()
    assert saved.prompt_init_.allclose(start.detach().float())
