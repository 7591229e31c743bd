"""Automatic label words: propose a verbalizer from K examples per class, compare.

Searches 3 label words per class for the BBC News hard pattern on K labelled train
articles per class, writes them as an editable verbalizer YAML and compares zero-shot
test accuracy with the hand-written verbalizer (also: ``pet-kit label-words``).
``python examples/label_words.py --k 16 --test-size 200``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from pet_kit import PromptClassifier, load_pvp
from pet_kit.datasets import load_task, sample_k_shot
from pet_kit.tools.label_search import search_label_words, write_verbalizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument(
        "--out",
        help="the verbalizer YAML file to write (default: in a new folder in the system's"
        " temporary folder; the path is printed)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    pvp = load_pvp("bbc_news")
    train = sample_k_shot(load_task("bbc_news", "train"), k=args.k, seed=0)
    test = load_task("bbc_news", "test", max_size=args.test_size)
    words = search_label_words(
        pvp.pattern.text, train["text"], train["label"], n_words=3, max_length=128
    )
    for label, picks in words.items():
        print(f"{label}: " + ", ".join(f"{w} ({s:+.2f})" for w, s in picks))
    out = args.out or Path(tempfile.mkdtemp(prefix="pet_kit_label_words_")) / "bbc_news_auto.yaml"
    path = write_verbalizer(words, out, name="bbc_news_auto", note=f"K={args.k}, seed 0")
    print(f"written to {path}")
    hand = PromptClassifier(pvp=pvp, max_length=128, verbose=0).fit(None)
    auto = PromptClassifier(
        pvp={"pattern": pvp.pattern.text, "verbalizer": str(path)}, max_length=128, verbose=0
    ).fit(None)
    print(
        f"zero-shot accuracy: hand-written {hand.score(test['text'], test['label']):.3f},"
        f" searched {auto.score(test['text'], test['label']):.3f}"
    )


if __name__ == "__main__":
    main()
