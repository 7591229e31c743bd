"""Choose pet_kit's training defaults on a DEV split carved from the train split only.

For each task the K-shot training sample and a disjoint dev sample are drawn from
``load_task(task, "train")``; the test split is never touched. Prints a table and writes
``benchmarks/results/tune_pet_kit.json``.

Example::

    python benchmarks/tune_pet_kit.py --tasks rotten_tomatoes --k 16 --seeds 0 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["rotten_tomatoes"])
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--dev-size", type=int, default=300)
    p.add_argument("--lrs", nargs="+", type=float, default=[3e-3, 1e-2, 3e-2])
    p.add_argument("--epochs", nargs="+", type=int, default=[20])
    p.add_argument("--encoders", nargs="+", default=["none"])
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tune_pet_kit.json"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pet_kit import PromptClassifier
    from pet_kit.datasets import load_task, sample_k_shot

    rows = []
    for task in args.tasks:
        train_all = load_task(task, "train")
        soft = f"{REPO}/templates/{task}.yaml#soft"
        for lr, epochs, enc in itertools.product(args.lrs, args.epochs, args.encoders):
            accs, secs = [], []
            for seed in args.seeds:
                train = sample_k_shot(train_all, args.k, seed=seed)
                rest = train_all.drop(index=train.index)
                dev = rest.sample(n=min(args.dev_size, len(rest)), random_state=1000 + seed)
                clf = PromptClassifier(
                    pvp=soft,
                    max_length=args.max_length,
                    epochs=epochs,
                    learning_rate=lr,
                    random_state=seed,
                    verbose=0,
                    prompt_encoder=None if enc == "none" else enc,
                )
                t0 = time.perf_counter()
                clf.fit(train["text"], train["label"])
                accs.append(clf.score(dev["text"], dev["label"]))
                secs.append(time.perf_counter() - t0)
            row = {
                "task": task,
                "k": args.k,
                "lr": lr,
                "epochs": epochs,
                "encoder": enc,
                "dev_acc_mean": statistics.fmean(accs),
                "dev_acc_std": statistics.pstdev(accs),
                "seeds": args.seeds,
                "dev_accs": accs,
                "seconds_mean": statistics.fmean(secs),
            }
            logging.info("%s", row)
            rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"rows": rows, "config": vars(args), "torch_threads": torch.get_num_threads()}, indent=1
        )
    )
    print(f"{'task':<16}{'lr':>8}{'epochs':>8}{'encoder':>9}{'dev acc':>16}{'s/fit':>8}")
    for r in rows:
        print(
            f"{r['task']:<16}{r['lr']:>8g}{r['epochs']:>8}{r['encoder']:>9}"
            f"{r['dev_acc_mean']:>10.3f} ± {r['dev_acc_std']:.3f}{r['seconds_mean']:>8.1f}"
        )


if __name__ == "__main__":
    main()
