"""Deep prompts vs input-layer slots, and where the slots go, on one task.

Trains the subjectivity pattern ``[SOFT*4] [MASK]: {text}`` three ways on K examples per
class — input-layer slots only, with a 4-slot deep prompt (trainable states at every
layer), and with the slots moved after the text — and prints test accuracy and the
number of trained numbers. ``python examples/deep_prompt.py --k 16 --test-size 300``.
(The full length x position sweep: ``benchmarks/prompt_length.py``.)
"""

from __future__ import annotations

import argparse
import logging

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot

WORDS = "subjectivity"  # a shipped verbalizer, by name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    train = sample_k_shot(load_task("subjectivity", "train"), k=args.k, seed=args.seed)
    test = load_task("subjectivity", "test", max_size=args.test_size)
    runs = {
        "input-layer slots (prefix)": ({"pattern": "[SOFT*4] [MASK]: {text}"}, {}),
        "+ deep prompt (P=4)": ({"pattern": "[SOFT*4] [MASK]: {text}"}, {"deep_prompt": 4}),
        "input-layer slots (suffix)": ({"pattern": "[MASK]: {text} [SOFT*4]"}, {}),
    }
    for name, (pvp, extra) in runs.items():
        clf = PromptClassifier(
            pvp={**pvp, "verbalizer": WORDS},
            max_length=128,
            random_state=args.seed,
            verbose=0,
            **extra,
        )
        clf.fit(train["text"], train["label"])
        hidden = clf.prompt_().shape[1]
        trained = clf.n_slots_ * hidden
        if clf.deep_prompt_ is not None:
            trained += clf.deep_prompt_.states().numel()
        print(
            f"{name:<30} accuracy {clf.score(test['text'], test['label']):.3f}"
            f"  trained numbers {trained:,}"
        )


if __name__ == "__main__":
    main()
