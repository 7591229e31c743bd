"""One backbone, many tasks: train two small prompts, serve them from one PromptBank.

Trains a Rotten Tomatoes sentiment prompt and a BBC News topic prompt (K per class),
saves both, loads them into a PromptBank (the default backbone is loaded once), routes
texts by task, and classifies a mixed batch in one encoder pass per batch. The same
folder can be served over HTTP: ``pet-kit serve FOLDER`` (the script prints the command).
``python examples/prompt_bank.py --k 8``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot
from pet_kit.serving.bank import PromptBank

TASKS = {
    "sentiment": ("rotten_tomatoes", "rotten_tomatoes#soft"),
    "topic": ("bbc_news", "bbc_news#soft"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--out",
        help="a new or empty folder for the two prompt folders (default: a new folder in the"
        " system's temporary folder; the path is printed)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out or tempfile.mkdtemp(prefix="pet_kit_bank_"))

    for name, (task, pvp) in TASKS.items():
        train = sample_k_shot(load_task(task, "train"), k=args.k, seed=0)
        clf = PromptClassifier(
            pvp=pvp, epochs=args.epochs, max_length=128, random_state=0, verbose=0
        )
        clf.fit(train["text"], train["label"]).save(out / name)
        print(f"trained and saved {name!r} ({task}, K={args.k})")

    bank = PromptBank.from_folder(out)
    for name, info in bank.tasks.items():
        print(f"{name}: classes {info['classes']}, pattern {info['pattern']!r}")
    texts = [
        "A gorgeous, moving film.",
        "Shares fell sharply after the profit warning.",
        "A tedious, overlong mess.",
        "The striker scored twice in the final.",
    ]
    tasks = ["sentiment", "topic", "sentiment", "topic"]
    for text, task, label in zip(texts, tasks, bank.predict_mixed(texts, tasks), strict=True):
        print(f"[{task}] {text!r} -> {label}")
    print(f"the prompts are in {out}; serve them over HTTP: pet-kit serve {out}")


if __name__ == "__main__":
    main()
