"""LM-BFF-style demonstrations on the default backbone (Rotten Tomatoes).

Each input is followed by one labelled training review per class, filled into the
pattern with its label word ("... It was great." / "... It was terrible."), chosen at
random or as the most similar review. Prints test accuracy without and with them.
``python examples/demonstrations.py --k 16 --test-size 300``.
"""

from __future__ import annotations

import argparse
import logging

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pvp", default="rotten_tomatoes#soft")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    train = sample_k_shot(load_task("rotten_tomatoes", "train"), k=args.k, seed=args.seed)
    test = load_task("rotten_tomatoes", "test", max_size=args.test_size)
    for demos in (None, "random", "similar"):
        clf = PromptClassifier(
            pvp=args.pvp, demonstrations=demos, max_length=256, random_state=args.seed, verbose=0
        )
        clf.fit(train["text"], train["label"])
        acc = clf.score(test["text"], test["label"])
        print(f"demonstrations={demos!s:<8} test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
