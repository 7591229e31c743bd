"""Nothing lost: checkpoints during fit, Ctrl-C keeps the prompt so far, warm starts.

Ctrl-C is simulated by a ``KeyboardInterrupt`` raised from inside the forward pass of
training step k + 1 (so exactly k optimizer steps completed), where a real one lands.
"""

from __future__ import annotations

import errno
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import NEG, POS

import pet_kit.model.cloze_model as cloze_module
import pet_kit.train.trainer as trainer_module
from pet_kit import Checkpoints, EarlyStopping, InputError, PromptClassifier
from pet_kit.cli import main
from pet_kit.model.scorer import ClozeScorer


def interrupt_after(monkeypatch, k: int) -> dict[str, int]:
    """Raise KeyboardInterrupt in the training forward pass after ``k`` of them."""
    real = ClozeScorer.class_scores
    calls = {"n": 0}

    def class_scores(self, batch, slots):
        if torch.is_grad_enabled():  # training only; prediction runs in inference mode
            calls["n"] += 1
            if calls["n"] > k:
                raise KeyboardInterrupt
        return real(self, batch, slots)

    monkeypatch.setattr(ClozeScorer, "class_scores", class_scores)
    return calls


def slots(clf: PromptClassifier) -> torch.Tensor:
    with torch.no_grad():
        return clf.prompt_().detach().clone()


def record_writes(monkeypatch, copy_to: Path | None = None) -> list[int]:
    """Spy on prompt-folder writes: the step of each (and a copy of each folder)."""
    real = cloze_module.write_prompt_dir
    steps: list[int] = []

    def write(path, tensors, meta):
        out = real(path, tensors, meta)
        steps.append(meta["history"]["steps"])
        if copy_to is not None:
            shutil.copytree(out, copy_to / f"step{len(steps)}-{steps[-1]}")
        return out

    monkeypatch.setattr(cloze_module, "write_prompt_dir", write)
    return steps


# ---------------------------------------------------------------- Ctrl-C in fit
def test_interrupt_leaves_the_prompt_so_far(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    reference = make_clf(max_steps=3).fit(X, y)
    clf = make_clf(max_steps=10)
    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    monkeypatch.undo()
    assert clf.history_["interrupted"] is True and clf.history_["steps"] == 3
    assert reference.history_["interrupted"] is False
    torch.testing.assert_close(slots(clf), slots(reference), rtol=0, atol=0)
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))


def test_interrupt_with_early_stopping_keeps_the_best_prompt(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    params = dict(early_stopping=EarlyStopping(n_iter_no_change=100), epochs=10)
    clf = make_clf(**params)
    interrupt_after(monkeypatch, 13)  # 12 training examples, 3 steps/epoch: in epoch 5
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    monkeypatch.undo()
    history = clf.history_
    assert history["interrupted"] and history["steps"] == 13
    assert len(history["val_accuracy"]) == 4
    best = history["best_epoch"]
    reference = make_clf(**params, max_steps=3 * best).fit(X, y)
    torch.testing.assert_close(slots(clf), slots(reference), rtol=0, atol=0)


def test_interrupt_before_training_keeps_the_previous_fit(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    before = clf.predict_proba(X)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "training_data", stop)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    monkeypatch.undo()
    assert clf.history_["interrupted"] is False
    np.testing.assert_array_equal(clf.predict_proba(X), before)


# ------------------------------------------------------------------ checkpoints
def test_checkpoints_every_n_steps_match_the_uninterrupted_run(
    make_clf, toy_data, tmp_path, monkeypatch
):
    X, y = toy_data
    copies = tmp_path / "copies"
    steps = record_writes(monkeypatch, copies)
    ckpt = tmp_path / "ckpt"
    clf = make_clf(max_steps=5, checkpoint=Checkpoints(ckpt, every=2)).fit(X, y)
    monkeypatch.undo()
    assert steps == [2, 4, 5]  # every 2 steps, then the final prompt
    at4 = PromptClassifier.load(copies / "step2-4")
    assert at4.history_["checkpoint"] is True and at4.history_["steps"] == 4
    reference = make_clf(max_steps=4).fit(X, y)
    np.testing.assert_array_equal(at4.predict_proba(X), reference.predict_proba(X))
    final = PromptClassifier.load(ckpt)  # the folder always holds the latest prompt
    np.testing.assert_array_equal(final.predict_proba(X), clf.predict_proba(X))
    assert final.checkpoint == Checkpoints(str(ckpt), every=2)  # restored from prompt.json


def test_checkpoint_every_epoch_by_default(make_clf, toy_data, tmp_path, monkeypatch):
    steps = record_writes(monkeypatch)
    make_clf(epochs=2, checkpoint=str(tmp_path / "ckpt")).fit(*toy_data)
    assert steps == [4, 8, 8]  # 16 examples, batch 4: end of epochs 1 and 2, then final


def test_interrupt_writes_a_checkpoint(make_clf, toy_data, tmp_path, monkeypatch):
    X, y = toy_data
    ckpt = tmp_path / "ckpt"
    clf = make_clf(max_steps=50, checkpoint=Checkpoints(ckpt, every=100))
    interrupt_after(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    monkeypatch.undo()
    saved = PromptClassifier.load(ckpt)
    assert saved.history_["interrupted"] is True and saved.history_["steps"] == 6
    np.testing.assert_array_equal(saved.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------------------- warm start
def test_resume_from_checkpoint_equals_resuming_in_memory(make_clf, toy_data, tmp_path):
    X, y = toy_data
    first = make_clf(max_steps=3, checkpoint=tmp_path / "ckpt").fit(X, y)
    loaded = PromptClassifier.load(tmp_path / "ckpt")
    first.set_params(warm_start=True, max_steps=4, checkpoint=None).fit(X, y)
    loaded.set_params(warm_start=True, max_steps=4, checkpoint=None).fit(X, y)
    assert first.history_["warm_started"] and loaded.history_["warm_started"]
    torch.testing.assert_close(slots(loaded), slots(first), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.predict_proba(X), first.predict_proba(X))


def test_warm_start_continues_from_the_fitted_prompt(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(epochs=3).fit(X, y)
    trained = slots(clf)
    clf.set_params(warm_start=True, max_steps=0).fit(X, y)  # zero steps: unchanged
    torch.testing.assert_close(slots(clf), trained, rtol=0, atol=0)
    fresh_loss = make_clf(epochs=1).fit(X, y).history_["train_loss"][0]
    clf.set_params(max_steps=None, epochs=1).fit(X, y)
    assert clf.history_["train_loss"][0] < fresh_loss  # starts where training left off


def test_warm_start_without_a_fit_is_a_fresh_fit(make_clf, toy_data):
    X, y = toy_data
    a = make_clf(warm_start=True).fit(X, y)
    b = make_clf().fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.history_["warm_started"] is False


def test_warm_start_with_another_pvp_is_an_error(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    before = clf.predict_proba(X)
    other = {"pattern": "[SOFT*3] {text} [MASK]!", "verbalizer": dict(clf.pvp["verbalizer"])}
    with pytest.raises(InputError, match="fitted with another PVP"):
        clf.set_params(pvp=other, warm_start=True).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_warm_start_with_p_tuning_encoder(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(prompt_encoder="mlp", max_steps=2).fit(X, y)
    loaded = PromptClassifier.load(clf.save(tmp_path / "p"))
    # a loaded prompt holds only vectors: the encoder restarts at zero on top of them
    loaded.set_params(warm_start=True, max_steps=0).fit(X, y)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------------------------- CLI
def _train_config(tmp_path: Path, tiny_dir: Path) -> Path:
    pd.DataFrame({"text": POS + NEG, "label": ["pos"] * 8 + ["neg"] * 8}).to_csv(
        tmp_path / "train.csv", index=False
    )
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"""
pvp:
  pattern: "[SOFT*2] {{text}} It was [MASK]."
  verbalizer: {{pos: [great, good], neg: [terrible, bad]}}
model: {tiny_dir}
data: {{train: train.csv}}
params: {{epochs: 10, batch_size: 4, random_state: 0, verbose: 0, device: cpu, guard: null}}
output: out/prompt
""")
    return cfg


def test_cli_ctrl_c_saves_the_prompt_so_far(tmp_path, tiny_dir, capsys, monkeypatch):
    cfg = _train_config(tmp_path, tiny_dir)
    interrupt_after(monkeypatch, 2)
    assert main(["train", str(cfg)]) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    out = tmp_path / "out" / "prompt"
    assert f"interrupted after 2 step(s): saved the prompt so far to {out}" in err
    saved = PromptClassifier.load(out)
    assert saved.history_["interrupted"] is True and saved.history_["steps"] == 2


def test_cli_ctrl_c_before_training_saves_nothing(tmp_path, tiny_dir, capsys, monkeypatch):
    cfg = _train_config(tmp_path, tiny_dir)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "training_data", stop)
    assert main(["train", str(cfg)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------- pet-kit train: never lose the prompt
def _no_backbone(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(cloze_module, "load_backbone", refuse)


def test_cli_train_checks_the_output_before_loading_anything(
    tmp_path, tiny_dir, capsys, monkeypatch
):
    cfg = _train_config(tmp_path, tiny_dir)
    (tmp_path / "a_file").write_text("not a folder")
    _no_backbone(monkeypatch)
    assert main(["train", str(cfg), "--output", str(tmp_path / "a_file" / "prompt")]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'a_file'} is a file, not a folder" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf", "1.0e+999999"])
def test_cli_train_refuses_a_non_finite_param_before_loading_anything(
    tmp_path, tiny_dir, capsys, monkeypatch, value
):
    cfg = _train_config(tmp_path, tiny_dir)
    cfg.write_text(cfg.read_text().replace("epochs: 10,", f"learning_rate: {value}, epochs: 10,"))
    _no_backbone(monkeypatch)
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}:7: params.learning_rate: learning_rate=" in err  # file, line and key
    assert "is not a finite number" in err
    assert "must be a finite number > 0 (the default is 0.03)" in err


def test_cli_train_checks_labels_before_scoring(tmp_path, tiny_dir, capsys):
    cfg = _train_config(tmp_path, tiny_dir)
    pd.DataFrame({"text": ["so so"], "label": ["neutral"]}).to_csv(
        tmp_path / "train.csv", mode="a", header=False, index=False
    )
    pd.DataFrame({"text": POS[:2] + NEG[:2], "label": ["pos"] * 2 + ["neg"] * 2}).to_csv(
        tmp_path / "test.csv", index=False
    )
    cfg.write_text(
        cfg.read_text().replace("{train: train.csv}", "{train: train.csv, eval: test.csv}")
    )
    assert main(["train", str(cfg)]) == 1
    captured = capsys.readouterr()
    assert "untrained accuracy" not in captured.out
    assert "error: training data (train.csv): y has label(s) 'neutral'" in captured.err


def _failing_save(monkeypatch, target: Path) -> None:
    """Saving to ``target`` fails as on a full disk; other saves work."""
    real = PromptClassifier.save

    def save(self, path, **kw):
        if Path(path) == target:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, **kw)

    monkeypatch.setattr(PromptClassifier, "save", save)


def _rescued(err: str, tmp: Path) -> Path:
    found = re.search(r"The prompt was saved to (\S+) instead", err)
    assert found, err
    rescue = Path(found.group(1))
    assert rescue.parent == tmp and rescue.name.startswith("pet_kit-rescued-")
    assert f"mv {rescue} " in err
    return rescue


def test_cli_train_rescues_the_prompt_when_the_save_fails(tmp_path, tiny_dir, capsys, monkeypatch):
    cfg = _train_config(tmp_path, tiny_dir)
    out = tmp_path / "out" / "prompt"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    _failing_save(monkeypatch, out)
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"could not save the trained prompt to {out}: OSError: [Errno 28]" in err
    rescued = PromptClassifier.load(_rescued(err, tmp))
    assert rescued.history_["steps"] == 40 and not rescued.history_["interrupted"]
    assert not out.exists()


def test_cli_ctrl_c_rescues_the_prompt_when_the_save_fails(tmp_path, tiny_dir, capsys, monkeypatch):
    cfg = _train_config(tmp_path, tiny_dir)
    out = tmp_path / "out" / "prompt"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    _failing_save(monkeypatch, out)
    interrupt_after(monkeypatch, 2)
    assert main(["train", str(cfg)]) == 1
    monkeypatch.undo()
    rescued = PromptClassifier.load(_rescued(capsys.readouterr().err, tmp))
    assert rescued.history_["interrupted"] is True and rescued.history_["steps"] == 2


def test_cli_train_explains_an_exponent_yaml_reads_as_text(tmp_path, tiny_dir, capsys):
    cfg = _train_config(tmp_path, tiny_dir)
    cfg.write_text(cfg.read_text().replace("epochs: 10,", "learning_rate: 1e-3, epochs: 10,"))
    assert main(["train", str(cfg)]) == 1
    assert "got '1e-3' (text, not a number: YAML reads 1e-3 as text; write 1.0e-3" in (
        capsys.readouterr().err
    )


def test_cli_train_on_a_header_only_file_is_an_error_not_zero_shot(tmp_path, tiny_dir, capsys):
    cfg = _train_config(tmp_path, tiny_dir)
    (tmp_path / "train.csv").write_text("text,label\n", encoding="utf-8")
    assert main(["train", str(cfg)]) == 1
    assert "train.csv: no rows" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
