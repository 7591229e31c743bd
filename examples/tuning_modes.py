"""The four tuning modes on one task: what trains, accuracy, and the saved size.

``prompt`` (soft slots), ``prompt+head`` (+ soft verbalizer), ``lora`` (+ LoRA adapters on
a private copy of the backbone, needs ``pip install 'pet_kit[lora]'``) and ``full`` (every
weight of a private copy, with PET's auxiliary MLM loss on unlabeled reviews). The shared
backbone is checked to be unchanged at the end.
``python examples/tuning_modes.py --k 16 --test-size 300``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot, unlabeled_texts

PVP = "rotten_tomatoes#soft"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--modes", nargs="+", default=["prompt", "prompt+head", "lora", "full"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    train = sample_k_shot(load_task("rotten_tomatoes", "train"), k=args.k, seed=args.seed)
    test = load_task("rotten_tomatoes", "test", max_size=args.test_size)
    unlabeled = unlabeled_texts("rotten_tomatoes", 200, seed=args.seed)
    shared = PromptClassifier(pvp=PVP, verbose=0).fit(None).model_.backbone.model
    before = {k: v.clone() for k, v in shared.state_dict().items()}

    print(f"{'tuning':<12} {'test acc':>8} {'fit s':>6} {'saved':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            clf = PromptClassifier(pvp=PVP, tuning=mode, random_state=args.seed, verbose=0)
            t0 = time.perf_counter()
            clf.fit(train["text"], train["label"], X_unlabeled=unlabeled)
            secs = time.perf_counter() - t0
            acc = clf.score(test["text"], test["label"])
            folder = clf.save(Path(tmp) / mode.replace("+", "_"))
            size = sum(f.stat().st_size for f in folder.iterdir())
            human = f"{size / 2**20:.1f} MB" if size > 2**20 else f"{size / 1024:.1f} KB"
            print(f"{mode:<12} {acc:>8.4f} {secs:>6.0f} {human:>10}")
    unchanged = all(torch.equal(before[k], v) for k, v in shared.state_dict().items())
    print(f"shared backbone unchanged: {unchanged}")


if __name__ == "__main__":
    main()
