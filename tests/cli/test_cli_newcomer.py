"""What a newcomer runs into: train's output folder and label checks, one error format,
a status line while the backbone loads (and quiet loads with verbose=0), the training
bar's loss, rounded probabilities from predict, the explain PNG's legend."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from conftest import NEG, POS, tiny_clf

from pet_kit.cli import main


def _refuse_backbone(monkeypatch):
    import pet_kit.model.cloze_model as cloze_module

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(cloze_module, "load_backbone", refuse)


def _config(folder, tiny_dir, train_labels=None, eval_labels=None, output="out/prompt"):
    train_labels = train_labels or ["pos"] * 6 + ["neg"] * 6
    eval_labels = eval_labels or ["pos"] * 2 + ["neg"] * 2
    pd.DataFrame({"text": POS[:6] + NEG[:6], "label": train_labels}).to_csv(
        folder / "train.csv", index=False
    )
    pd.DataFrame({"text": POS[6:] + NEG[6:], "label": eval_labels}).to_csv(
        folder / "test.csv", index=False
    )
    cfg = folder / "train.yaml"
    cfg.write_text(
        "pvp: {pattern: '[SOFT] {text} It was [MASK].', verbalizer: {pos: [good], neg: [bad]}}\n"
        f"model: {tiny_dir}\ndata: {{train: train.csv, eval: test.csv}}\noutput: {output}\n"
        "params: {max_steps: 2, batch_size: 4, random_state: 0, verbose: 0, device: cpu}\n"
    )
    return cfg


# ------------------------------------------------------------------ train's output
def test_train_refuses_an_existing_prompt_unless_overwrite(tmp_path, tiny_dir, capsys, monkeypatch):
    cfg = _config(tmp_path, tiny_dir)
    out = tmp_path / "out" / "prompt"
    tiny_clf(tiny_dir).fit(None).save(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with monkeypatch.context() as m:
        _refuse_backbone(m)  # refused before the data or the backbone is loaded
        assert main(["train", str(cfg)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: the output folder {out} already holds a pet_kit prompt")
    assert "--overwrite" in captured.err and captured.out == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    assert main(["train", str(cfg), "--overwrite"]) == 0
    assert "saved prompt to" in capsys.readouterr().out
    meta = json.loads((out / "prompt.json").read_text(encoding="utf-8"))
    assert meta["params"]["max_steps"] == 2  # the new prompt replaced the old one


def test_train_into_an_empty_or_new_folder_needs_no_overwrite(tmp_path, tiny_dir, capsys):
    (tmp_path / "out" / "prompt").mkdir(parents=True)  # made by hand beforehand
    assert main(["train", str(_config(tmp_path, tiny_dir))]) == 0
    assert (tmp_path / "out" / "prompt" / "prompt.json").is_file()


@pytest.mark.parametrize("where", ["training", "eval"])
def test_train_checks_labels_before_any_model_work(tmp_path, tiny_dir, capsys, monkeypatch, where):
    odd = ["pos"] * 5 + ["neutral"] + ["neg"] * 6
    if where == "training":
        cfg = _config(tmp_path, tiny_dir, train_labels=odd)
    else:
        cfg = _config(tmp_path, tiny_dir, eval_labels=["pos", "neutral", "neg", "neg"])
    _refuse_backbone(monkeypatch)
    assert main(["train", str(cfg)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {where} data")
    assert "'neutral'" in captured.err and "untrained accuracy" not in captured.out
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ backbone loading
def test_cli_says_when_the_backbone_loads(tmp_path, tiny_dir, capsys, caplog):
    import logging

    from pet_kit.model.backbone import clear_backbone_cache

    prompt = tiny_clf(tiny_dir).fit(None).save(tmp_path / "prompt")
    (tmp_path / "in.txt").write_text("a great film\n", encoding="utf-8")
    clear_backbone_cache()
    status = logging.getLogger("pet_kit.model.backbone")
    level = status.level
    status.setLevel(logging.NOTSET)  # as in a fresh process: WARNING, from the root logger
    try:
        # the capture handler takes INFO; the root logger stays at WARNING
        with caplog.at_level(logging.INFO, logger="pet_kit.cli"):
            code = main(["predict", str(prompt), str(tmp_path / "in.txt"), "--device", "cpu"])
    finally:
        status.setLevel(level)
    assert code == 0
    assert f"loading backbone {tiny_dir} on cpu ..." in caplog.messages
    assert "Loading weights" not in capsys.readouterr().err


def test_verbose_0_loads_the_backbone_quietly(tiny_dir, capsys):
    import logging

    from transformers.utils import logging as hf_logging

    from pet_kit.model.backbone import clear_backbone_cache, load_backbone

    level = logging.getLogger("transformers").level
    bars = hf_logging.is_progress_bar_enabled()
    clear_backbone_cache()
    tiny_clf(tiny_dir, verbose=0).fit(None)
    assert capsys.readouterr().err == ""
    # the settings are transformers' again afterwards
    assert logging.getLogger("transformers").level == level
    assert hf_logging.is_progress_bar_enabled() == bars
    clear_backbone_cache()
    load_backbone(str(tiny_dir), device="cpu", verbose=1)  # transformers as configured
    if bars and int(__import__("transformers").__version__.split(".")[0]) >= 5:
        assert "Loading weights" in capsys.readouterr().err


def test_overlapping_quiet_loads_restore_transformers_settings():
    import logging
    import threading

    from transformers.utils import logging as hf_logging

    from pet_kit.model.backbone import transformers_quiet

    logger = logging.getLogger("transformers")
    before = (logger.level, hf_logging.is_progress_bar_enabled())
    inside = threading.Event()
    leave = threading.Event()

    def other_thread():
        with transformers_quiet():
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other_thread)
    with transformers_quiet():  # this thread enters first ...
        worker.start()
        assert inside.wait(10)
        with transformers_quiet():  # ... nested, too
            assert not hf_logging.is_progress_bar_enabled()
            assert logger.level == logging.ERROR
    assert not hf_logging.is_progress_bar_enabled()  # ... leaves while the other is inside
    leave.set()
    worker.join(10)
    assert (logger.level, hf_logging.is_progress_bar_enabled()) == before


# ------------------------------------------------------------------ training bar
def test_the_training_bar_shows_the_current_epochs_loss(tiny_dir, monkeypatch, toy_data):
    from tqdm import tqdm as std_tqdm

    import pet_kit.train.loop as loop

    shown: list[str] = []

    class Spy(std_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "file": io.StringIO(), "disable": False})

        def update(self, n=1):
            if self.desc == "fit":
                shown.append(self.postfix or "")
            return super().update(n)

    monkeypatch.setattr(loop, "tqdm", Spy)
    X, y = toy_data  # 16 examples, batches of 4: 4 steps per epoch
    clf = tiny_clf(tiny_dir, epochs=2, verbose=1).fit(X, y)
    losses = clf.history_["train_loss"]
    assert len(shown) == 8 and len(losses) == 2
    assert all(s.startswith("epoch=1,") for s in shown[:4])
    assert shown[3] == f"epoch=1, loss={losses[0]:.4f}"  # not the epoch before's
    assert shown[7] == f"epoch=2, loss={losses[1]:.4f}"


# -------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def saved_prompt(tiny_dir, tmp_path_factory):
    return tiny_clf(tiny_dir).fit(None).save(tmp_path_factory.mktemp("p") / "prompt")


def _significant(text: str) -> int:
    mantissa = text.lower().split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    return len(mantissa)


@pytest.mark.parametrize(("digits", "suffix"), [(None, ".csv"), (3, ".jsonl")])
def test_predict_rounds_probabilities(tmp_path, saved_prompt, digits, suffix):
    from pet_kit import PromptClassifier

    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(POS + NEG) + "\n", encoding="utf-8")
    out = tmp_path / f"pred{suffix}"
    extra = [] if digits is None else ["--digits", str(digits)]
    assert main(["predict", str(saved_prompt), str(inp), "--output", str(out), *extra]) == 0
    text = out.read_text(encoding="utf-8")
    if suffix == ".csv":
        rows = pd.read_csv(out, dtype=str)
        cells = [v for c in rows.columns if c.startswith("proba_") for v in rows[c]]
    else:
        rows = pd.DataFrame([json.loads(line) for line in text.splitlines()])
        cells = [m.group(1) for m in re.finditer(r'"proba_[a-z]+": ([-0-9.e]+)', text)]
    assert len(cells) == 2 * len(POS + NEG)
    assert max(_significant(c) for c in cells) <= (digits or 6)
    expected = PromptClassifier.load(saved_prompt).predict(POS + NEG)
    assert rows["prediction"].tolist() == expected.tolist()


def test_predict_digits_out_of_range_is_an_error_before_loading(tmp_path, capsys, monkeypatch):
    import pet_kit.cli as cli

    monkeypatch.setattr(cli, "_load_prompt", lambda args: pytest.fail("loaded"))
    (tmp_path / "in.txt").write_text("hi\n", encoding="utf-8")
    assert main(["predict", str(tmp_path), str(tmp_path / "in.txt"), "--digits", "0"]) == 1
    assert capsys.readouterr().err == "error: --digits must be from 1 to 17, got 0\n"


# -------------------------------------------------------------------- explain
def test_explain_png_legend_is_outside_the_bars(tmp_path, saved_prompt, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from pet_kit import PromptClassifier
    from pet_kit.tools.explain import save_report

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    clf = PromptClassifier.load(saved_prompt)
    assert save_report(clf, tmp_path / "r.png", text="a great film").is_file()
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))
    assert fig.bbox.x0 <= legend.x0 and legend.x1 <= fig.bbox.x1  # not cut off
    plt.close(fig)


def test_predict_resumes_only_with_the_same_digits(tmp_path, saved_prompt, monkeypatch, capsys):
    import pet_kit.batch.job as streaming

    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(POS + NEG) + "\n", encoding="utf-8")
    out = tmp_path / "pred.csv"
    argv = ["predict", str(saved_prompt), str(inp), "--output", str(out), "--chunk-size", "4"]
    real, calls = streaming.predict_chunk, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(streaming, "predict_chunk", interrupted)
        assert main([*argv, "--no-progress"]) == 130
    assert main([*argv, "--no-progress", "--digits", "3"]) == 1
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err  # the interrupted run
    assert "error: " in err and "was a different job" in err  # not mixed precisions
    assert main([*argv, "--no-progress"]) == 0
    assert "8 resumed from an earlier run" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == len(POS + NEG)
