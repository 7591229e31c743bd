"""Accuracy of a trained prompt on float32 vs the opt-in fast paths (bf16, int8).

For each task: the task template's soft pattern is trained on K examples per class (one
seed, the estimator's defaults), then the same fitted prompt predicts the fixed test
subset in float32, after ``optimize("bf16")`` and after ``optimize("int8")``. Reported:
accuracy, wall seconds of the prediction, label agreement with float32 and the largest
probability difference. Writes ``benchmarks/results/fast_inference_accuracy.{json,md}``::

    python benchmarks/fast_inference_accuracy.py --threads 1
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, markdown_table, write_json

RESULTS = Path(__file__).resolve().parent / "results"
MODES = (None, "bf16", "int8")
#: The default backbone's vocabulary lacks the Chinese PVP's label words: its English-vocabulary
#: variant is used for chinese_reviews (as in few_shot.py).
PVP_FOR_TASK = {"chinese_reviews": "chinese_reviews_english_vocab"}
TASKS = ("rotten_tomatoes", "subjectivity", "bbc_news", "chinese_reviews")

log = logging.getLogger("fast_inference_accuracy")


def measure(task: str, k: int, seed: int, test_size: int) -> dict[str, Any]:
    from pet_kit import PromptClassifier
    from pet_kit.datasets import load_task, sample_k_shot

    train = sample_k_shot(load_task(task, "train"), k, seed=seed)
    test = load_task(task, "test", max_size=test_size)
    pvp = f"{PVP_FOR_TASK.get(task, task)}#soft"
    clf = PromptClassifier(pvp=pvp, random_state=seed, verbose=0)
    clf.fit(train["text"], train["label"])
    y = test["label"].to_numpy()
    rows: dict[str, Any] = {}
    exact = None
    for mode in MODES:
        clf.optimize(mode)
        clf.predict_proba(test["text"][:64])  # warm-up: the first call pays one-off costs
        t0 = time.perf_counter()
        proba = clf.predict_proba(test["text"])
        seconds = time.perf_counter() - t0
        exact = proba if exact is None else exact
        rows[str(mode)] = {
            "accuracy": float(np.mean(clf.classes_[proba.argmax(1)] == y)),
            "seconds": seconds,
            "label_agreement": float(np.mean(proba.argmax(1) == exact.argmax(1))),
            "max_proba_diff": float(np.abs(proba - exact).max()),
        }
        log.info("%s %s: %s", task, mode, rows[str(mode)])
    return {"n_test": len(y), "modes": rows}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", default=str(RESULTS / "fast_inference_accuracy.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = {
        "machine": machine(),
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "tasks": {t: measure(t, args.k, args.seed, args.test_size) for t in args.tasks},
    }
    out = Path(args.out)
    write_json(out, data)
    rows = []
    for task, r in data["tasks"].items():
        base = r["modes"]["None"]
        for mode, m in r["modes"].items():
            rows.append(
                [
                    task,
                    "float32" if mode == "None" else mode,
                    f"{m['accuracy']:.3f}",
                    f"{m['accuracy'] - base['accuracy']:+.3f}",
                    f"{m['label_agreement']:.4f}",
                    f"{m['max_proba_diff']:.3f}",
                    f"{base['seconds'] / m['seconds']:.2f}",
                ]
            )
    head = ["task", "inference", "accuracy", "Δ accuracy", "label agreement", "max Δp", "speed-up"]
    text = "\n".join(
        [
            f"K={args.k}, seed {args.seed}, test {args.test_size}, torch threads"
            f" {torch.get_num_threads()}; speed-up = float32 predict seconds / this mode's",
            "",
            *markdown_table(head, rows),
        ]
    )
    out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
