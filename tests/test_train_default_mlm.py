"""scripts/default_backbone/train_mlm.py: the corpus reader and a tiny resumable run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "default_backbone" / "train_mlm.py"


@pytest.fixture()
def script():
    spec = importlib.util.spec_from_file_location("train_default_mlm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_default_mlm"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("train_default_mlm", None)


def _corpus(folder: Path) -> Path:
    folder.mkdir()
    lines = {
        "a": [f"the film number {i} was good fun to watch" for i in range(30)],
        "b": [u for i in range(10) for u in (f"press the button {i} to open the menu", "", " ")],
    }
    for name, units in lines.items():
        (folder / f"{name}.txt").write_text("\n".join(units) + "\n", encoding="utf-8")
    manifest = {"sources": {name: {} for name in lines}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_corpus_texts_reads_every_source_once_in_a_seeded_order(script, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    texts, manifest = script.corpus_texts(corpus, seed=0)
    assert len(texts) == 40 and all(t.strip() for t in texts)
    assert sorted(manifest["sources"]) == ["a", "b"]
    assert texts == script.corpus_texts(corpus, seed=0)[0]
    assert texts != script.corpus_texts(corpus, seed=1)[0]


def test_hard_pattern_is_the_shipped_rotten_tomatoes_hard_pattern(script):
    from pet_kit import load_pvp

    pvp = load_pvp(script.hard_pattern())
    assert not pvp.pattern.has_soft and "[MASK]" in pvp.pattern.text


@pytest.mark.integration
def test_a_time_boxed_run_continues_to_a_model_folder(script, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    args = ["--corpus", str(corpus), "--run", str(tmp_path / "run"), "train", "--max-steps", "2"]
    args += ["--batch-size", "2", "--max-length", "16", "--threads", "1"]
    assert script.main([*args, "--max-minutes", "1e-9"]) == 0
    assert (tmp_path / "run" / "checkpoint" / "adapt_state.json").is_file()
    assert not (tmp_path / "run" / "model").exists()
    assert script.main(args) == 0
    info = json.loads((tmp_path / "run" / "model" / "pet_kit_adapt.json").read_text("utf-8"))
    assert info["steps"] == 2 and info["settings"]["pack"] is True
