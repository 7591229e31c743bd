"""The overwrite rule of the folders fit and pet-kit train write: a checkpoint folder
holding another task's prompt is replaced only when told to."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import NEG, POS, SENTIMENT_PVP, tiny_clf

from pet_kit import Checkpoints, PromptClassifier, SavedPromptError
from pet_kit.cli import main

X, Y = POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG)
OTHER = {"pattern": "{text} Topic: [MASK].", "verbalizer": {"a": ["good"], "b": ["bad"]}}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_checkpoint_folder_holding_another_tasks_prompt_is_not_replaced(tiny_dir, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_clf(tiny_dir, pvp=OTHER, epochs=1).fit(X, ["a"] * 8 + ["b"] * 8).save(folder)
    before = _files(folder)
    with pytest.raises(SavedPromptError, match=r"ckpt already holds a pet_kit prompt \(classes"):
        tiny_clf(tiny_dir, epochs=1, checkpoint=folder).fit(X, Y)
    assert _files(folder) == before
    tiny_clf(tiny_dir, epochs=1, checkpoint=Checkpoints(folder, overwrite=True)).fit(X, Y)
    assert PromptClassifier.load(folder, device="cpu").classes_.tolist() == ["negative", "positive"]
    tiny_clf(tiny_dir, epochs=1, checkpoint=folder).fit(X, Y)  # its own task: replaced


def test_pet_kit_train_checkpoint_folder_follows_the_overwrite_rule(tiny_dir, tmp_path, capsys):
    tiny_clf(tiny_dir, pvp=OTHER, epochs=1).fit(X, ["a"] * 8 + ["b"] * 8).save(tmp_path / "ck")
    pd.DataFrame({"text": X, "label": Y}).to_csv(tmp_path / "train.csv", index=False)
    params = {"epochs": 1, "batch_size": 4, "verbose": 0, "device": "cpu"}
    config = {
        "pvp": SENTIMENT_PVP,
        "model": str(tiny_dir),
        "data": {"train": "train.csv"},
        "params": {**params, "checkpoint": {"dir": "ck", "every": 2}},
        "output": "out",
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    before = _files(tmp_path / "ck")
    assert main(["train", str(tmp_path / "t.yaml")]) == 1
    assert "ck already holds a pet_kit prompt" in capsys.readouterr().err
    assert _files(tmp_path / "ck") == before
    assert main(["train", str(tmp_path / "t.yaml"), "--overwrite"]) == 0
    assert PromptClassifier.load(tmp_path / "ck", device="cpu").classes_.tolist() == [
        "negative",
        "positive",
    ]
