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


@pytest.mark.integration
def test_evaluate_checkpoint_measures_a_snapshot_and_leaves_the_run(script, tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    base = ["--corpus", str(corpus), "--run", str(run)]
    train = [*base, "train", "--max-steps", "4", "--batch-size", "2", "--max-length", "16"]
    train += ["--checkpoint-every", "2", "--threads", "1"]
    # stop after step 2 (its state is saved), as a time box would
    from pet_kit.train import adapt as adapt_module

    real_adapt = adapt_module.adapt

    def two_steps(*args, **kwargs):
        return real_adapt(*args, **{**kwargs, "max_minutes": None, "on_step": stop_at_2})

    def stop_at_2(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(adapt_module, "adapt", two_steps)
    with pytest.raises(KeyboardInterrupt):
        script.main(train)
    monkeypatch.setattr(adapt_module, "adapt", real_adapt)
    measured = []

    def fake_gates(ref):  # the real one scores 1,000 reviews on the default backbone
        measured.append(ref)
        return {"zero_shot_rotten_tomatoes": 0.5, "evaluative_in_top5": []}

    monkeypatch.setattr(script, "evaluate_one", fake_gates)
    assert script.main([*base, "evaluate", "--checkpoint"]) == 0
    snap = run / "snapshot-2"
    assert measured == [None, str(snap)]
    report = json.loads((run / "evaluation-checkpoint.json").read_text("utf-8"))
    assert report["steps"] == "2 of 4" and report["heldout_mlm"]["after"]["masked_tokens"] > 0
    assert not (run / "evaluation.json").exists()
    assert script.main(train) == 0  # the run continues from its checkpoint to the end
    assert json.loads((run / "model" / "pet_kit_adapt.json").read_text("utf-8"))["steps"] == 4


def test_steady_malloc_is_safe_to_call_anywhere(script):
    first = script.steady_malloc()
    assert isinstance(first, bool) and script.steady_malloc() == first
    big = [bytearray(200_000) for _ in range(20)]  # allocations still work afterwards
    assert sum(len(b) for b in big) == 4_000_000
