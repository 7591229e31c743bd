"""Progress where the wait is: predict/score bars with a total at the default verbosity,
pet-kit predict and train's evaluations, one overall bar for PromptClassifierCV, and no
transformers bars at the default verbosity."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from conftest import NEG, POS, tiny_clf
from tqdm import tqdm as std_tqdm

from pet_kit import Batching, PromptClassifierCV

MODULES = (
    "pet_kit.model.scorer",
    "pet_kit.train.loop",
    "pet_kit.estimators.prompt_classifier_cv",
    "pet_kit.batch.job",
)


@pytest.fixture()
def bars(monkeypatch):
    """Every tqdm bar pet_kit opens: its ``desc``, ``total``, whether shown and its final
    count (written to a buffer, never to the terminal)."""
    import importlib

    opened: list[dict] = []

    class Spy(std_tqdm):
        def __init__(self, *args, **kwargs):
            self.record = {
                "desc": kwargs.get("desc"),
                "total": kwargs.get("total"),
                "shown": not kwargs.get("disable", False),
                "n": None,
            }
            opened.append(self.record)
            super().__init__(*args, **{**kwargs, "file": io.StringIO()})

        def close(self):
            self.record["n"] = self.n
            super().close()

    for name in MODULES:
        monkeypatch.setattr(importlib.import_module(name), "tqdm", Spy, raising=False)
    return opened


def _shown(opened):
    return [b for b in opened if b["shown"]]


TEXTS = POS + NEG  # 16 texts


# ----------------------------------------------------------------- predict / score
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_predict_shows_a_bar_with_a_total_at_the_default_verbosity(tiny_dir, bars, method):
    clf = tiny_clf(tiny_dir, verbose=1, batching=Batching(eval_batch_size=4)).fit(None)
    bars.clear()
    getattr(clf, method)(TEXTS)
    assert _shown(bars) == [{"desc": "predict", "total": 16, "shown": True, "n": 16}]


def test_score_shows_the_bar_too(tiny_dir, bars):
    clf = tiny_clf(tiny_dir, verbose=1, batching=Batching(eval_batch_size=4)).fit(None)
    bars.clear()
    clf.score(TEXTS, ["positive"] * 8 + ["negative"] * 8)
    assert [b["total"] for b in _shown(bars)] == [16]


@pytest.mark.parametrize(("verbose", "n_texts"), [(0, 16), (1, 4)])
def test_no_predict_bar_when_silent_or_one_batch(tiny_dir, bars, verbose, n_texts):
    clf = tiny_clf(tiny_dir, verbose=verbose, batching=Batching(eval_batch_size=4)).fit(None)
    bars.clear()
    clf.predict_proba(TEXTS[:n_texts])
    assert _shown(bars) == []


def test_a_fit_that_takes_no_step_shows_no_empty_bar(tiny_dir, bars):
    tiny_clf(tiny_dir, verbose=1, epochs=0).fit(TEXTS, ["positive"] * 8 + ["negative"] * 8)
    assert _shown(bars) == []  # no "0it" bar


# --------------------------------------------------------------- cross-validation
def test_cross_validation_shows_one_overall_bar(tiny_dir, bars):
    y = ["positive"] * 8 + ["negative"] * 8
    base = tiny_clf(tiny_dir, verbose=1, epochs=1, batching=Batching(eval_batch_size=2))
    cv = PromptClassifierCV(
        base, candidates=[{"epochs": [0]}, {"learning_rate": [0.1]}], n_splits=2, n_repeats=1
    ).fit(TEXTS, y)
    shown = _shown(bars)
    assert shown == [{"desc": "PromptClassifierCV", "total": 2 * 2 + 1, "shown": True, "n": 5}]
    assert cv.best_estimator_.verbose == 1  # predicts with the base estimator's bars
    bars.clear()
    cv.predict(TEXTS)
    assert [b["total"] for b in _shown(bars)] == [16]


def test_cross_validation_at_verbose_0_is_silent(tiny_dir, bars):
    y = ["positive"] * 8 + ["negative"] * 8
    base = tiny_clf(tiny_dir, verbose=1, epochs=1)
    cv = PromptClassifierCV(base, candidates=[{"epochs": [0]}], n_splits=2, n_repeats=1, verbose=0)
    cv.fit(TEXTS, y)
    assert _shown(bars) == []


# -------------------------------------------------------------------- pet-kit
@pytest.fixture(scope="module")
def saved(tiny_dir, tmp_path_factory):
    """A prompt saved with the default verbose=1."""
    return tiny_clf(tiny_dir, verbose=1).fit(None).save(tmp_path_factory.mktemp("p") / "p")


@pytest.mark.parametrize("shards", [1, 2])
def test_predict_file_bar_has_the_total(saved, tmp_path, bars, shards):
    from pet_kit import PromptClassifier
    from pet_kit.batch import predict_file

    src = tmp_path / "in.csv"
    pd.DataFrame({"text": TEXTS * 2 + TEXTS[:3]}).to_csv(src, index=False)  # 35 rows
    clf = PromptClassifier.load(saved).set_params(batching=Batching(eval_batch_size=2))
    predict_file(clf, src, tmp_path / "out.csv", chunk_size=10, num_shards=shards)
    assert clf.verbose == 1  # restored after the file's bar
    total = {1: 35, 2: 10 + 10}[shards]  # shard 0 of 2: chunks 0 and 2 (rows 0-9, 20-29)
    # one bar: the classifier's own predict bars are off under the file's
    assert [(b["desc"][:14], b["total"], b["n"]) for b in _shown(bars)] == [
        ("predict in.csv", total, total)
    ]


def test_cli_predict_to_stdout_shows_a_total(saved, tmp_path, bars, capsys):
    from pet_kit.cli import main

    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    assert main(["predict", str(saved), str(src), "--device", "cpu"]) == 0
    assert [(b["total"], b["n"]) for b in _shown(bars)] == [(16, 16)]
    assert main(["predict", str(saved), str(src), "--device", "cpu", "--no-progress"]) == 0
    assert [(b["total"], b["n"]) for b in _shown(bars)] == [(16, 16)]  # no new bar


def test_cli_train_evaluations_show_a_bar(tiny_dir, tmp_path, bars, capsys):
    from pet_kit.cli import main

    pd.DataFrame({"text": TEXTS, "label": ["pos"] * 8 + ["neg"] * 8}).to_csv(
        tmp_path / "train.csv", index=False
    )
    pd.DataFrame({"text": TEXTS * 3, "label": (["pos"] * 8 + ["neg"] * 8) * 3}).to_csv(
        tmp_path / "eval.csv", index=False
    )
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"""
pvp:
  pattern: "[SOFT*2] {{text}} It was [MASK]."
  verbalizer: {{pos: [great, good], neg: [terrible, bad]}}
model: {tiny_dir}
data: {{train: train.csv, eval: eval.csv}}
params: {{epochs: 1, random_state: 0, device: cpu, batching: {{eval_batch_size: 16}}}}
output: out/prompt
""")
    assert main(["train", str(cfg)]) == 0
    predict = [b for b in _shown(bars) if b["desc"] == "predict"]
    assert [(b["total"], b["n"]) for b in predict] == [(48, 48), (48, 48)]  # before, after
    # the default guard's two probes, then the fit itself unless the guard kept the untrained
    # prompt
    fits = [b["desc"] for b in _shown(bars) if b["desc"].startswith("fit")]
    assert fits[:2] == ["fit (guard probe)"] * 2 and fits[2:] in ([], ["fit"])


# ------------------------------------------------------------- transformers bars
def _bars_on() -> bool:
    import transformers
    from transformers.utils import logging as hf_logging

    return hf_logging.is_progress_bar_enabled() and int(transformers.__version__[0]) >= 5


@pytest.mark.skipif(not _bars_on(), reason="transformers' bars are off or it has none")
def test_no_transformers_loading_bar_at_the_default_verbosity(tiny_dir, capsys):
    from pet_kit.model.backbone import clear_backbone_cache

    clear_backbone_cache()
    tiny_clf(tiny_dir, verbose=1).fit(None)
    assert "Loading weights" not in capsys.readouterr().err
    clear_backbone_cache()
    tiny_clf(tiny_dir, verbose=2).fit(None)  # verbose=2: transformers as configured
    assert "Loading weights" in capsys.readouterr().err
    clear_backbone_cache()


@pytest.mark.skipif(not _bars_on(), reason="transformers' bars are off or it has none")
def test_adapt_writes_and_loads_without_transformers_bars(tiny_dir, tmp_path, capsys):
    from pet_kit.train.adapt import adapt

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS * 3) + "\n")
    adapt(
        texts,
        tmp_path / "adapted",
        model=str(tiny_dir),
        max_steps=1,
        batch_size=4,
        max_length=16,
        verbose=1,
        device="cpu",
    )
    err = capsys.readouterr().err
    assert "Writing model shards" not in err and "Loading weights" not in err
