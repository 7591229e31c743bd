"""Automatic label words against the hand-written verbalizers (zero-shot, same pattern).

For each task: the task template's default hard pattern; label words searched on K
labelled train examples per class (``pet_kit.tools.label_search``, 5 seeds), then zero-shot
accuracy on the fixed test subset with the searched words vs the shipped verbalizer.
Writes ``benchmarks/results/label_words.{json,md}``.

    python benchmarks/label_words.py --tasks rotten_tomatoes subjectivity bbc_news
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

from _common import machine, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["rotten_tomatoes", "subjectivity", "bbc_news"])
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--n-words", type=int, default=3)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--out", default=str(RESULTS / "label_words.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pet_kit import PromptClassifier, load_pvp
    from pet_kit.datasets import load_task, sample_k_shot
    from pet_kit.tools.label_search import search_label_words

    results = []
    for task in args.tasks:
        template = REPO / "templates" / f"{task}.yaml"
        pvp = load_pvp(str(template))  # the default (hard) pattern
        pattern = pvp.pattern.text
        train_all = load_task(task, "train")
        test = load_task(task, "test", max_size=args.test_size)
        hand = PromptClassifier(pvp=pvp, max_length=args.max_length, verbose=0).fit(None)
        hand_acc = hand.score(test["text"], test["label"])
        hand_words = {str(k): list(v) for k, v in pvp.verbalizer.labels.items()}
        runs = []
        for seed in args.seeds:
            train = sample_k_shot(train_all, args.k, seed=seed)
            t0 = time.perf_counter()
            words = search_label_words(
                pattern,
                train["text"],
                train["label"],
                n_words=args.n_words,
                max_length=args.max_length,
            )
            secs = time.perf_counter() - t0
            verbalizer = {k: [w for w, _ in v] for k, v in words.items()}
            auto = PromptClassifier(
                pvp={"pattern": pattern, "verbalizer": verbalizer},
                max_length=args.max_length,
                verbose=0,
            ).fit(None)
            acc = auto.score(test["text"], test["label"])
            runs.append(
                {
                    "seed": seed,
                    "accuracy": acc,
                    "search_seconds": secs,
                    "words": {str(k): v for k, v in verbalizer.items()},
                }
            )
            logging.getLogger("label_words").warning(
                "%s seed %d: %.4f %s", task, seed, acc, verbalizer
            )
        accs = [r["accuracy"] for r in runs]
        results.append(
            {
                "task": task,
                "pattern": pattern,
                "k": args.k,
                "n_test": len(test),
                "hand_words": hand_words,
                "hand_accuracy": hand_acc,
                "runs": runs,
                "auto_mean": statistics.mean(accs),
                "auto_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            }
        )
    data = {"machine": machine(), "config": vars(args), "results": results}
    write_json(Path(args.out), data)
    lines = [
        f"Zero-shot accuracy, default hard pattern; auto words searched on K={args.k}"
        f" examples per class (mean ± std over seeds {args.seeds}).",
        "",
        "| task | hand-written words | accuracy | searched words (seed 0) | accuracy |",
        "|---|---|---:|---|---:|",
    ]
    for r in results:
        hand_s = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["hand_words"].items())
        auto_s = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["runs"][0]["words"].items())
        lines.append(
            f"| {r['task']} | {hand_s} | {r['hand_accuracy']:.3f} | {auto_s} |"
            f" {r['auto_mean']:.3f} ± {r['auto_std']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
