"""Contextual calibration of a zero-shot (and a trained) prompt on the default backbone.

A cloze prompt's label words carry a prior: a small MLM may say "good" more often
than "bad" whatever the review. Calibration estimates that prior on content-free inputs
("N/A", "", [MASK]) or on unlabeled texts, and divides it out. Prints test accuracy and
the share of "positive" predictions, raw and calibrated.
``python examples/calibration.py --test-size 500``.
"""

from __future__ import annotations

import argparse
import logging

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot, unlabeled_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pvp", default="rotten_tomatoes#it_was")
    parser.add_argument("--k", type=int, default=16, help="0: zero-shot only")
    parser.add_argument("--test-size", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    test = load_task("rotten_tomatoes", "test", max_size=args.test_size)
    unlabeled = unlabeled_texts("rotten_tomatoes", 200, seed=0)
    Xt, yt = test["text"], test["label"]

    def report(name: str, clf: PromptClassifier) -> None:
        positive = (clf.predict(Xt) == "positive").mean()
        prior = clf.calibration_prior_
        prior_s = ""
        if prior is not None:
            rounded = [round(float(p), 3) for p in prior]
            prior_s = f"  prior {dict(zip(clf.classes_.tolist(), rounded, strict=True))}"
        print(f"{name:<38} accuracy {clf.score(Xt, yt):.4f}  positive {positive:.2f}{prior_s}")

    for calibration in (None, "content_free", "unlabeled"):
        clf = PromptClassifier(pvp=args.pvp, calibration=calibration, verbose=0)
        report(f"zero-shot, calibration={calibration}", clf.fit(None, X_unlabeled=unlabeled))
    if args.k:
        train = sample_k_shot(load_task("rotten_tomatoes", "train"), k=args.k, seed=0)
        soft = "rotten_tomatoes#soft"
        for calibration in (None, "unlabeled"):
            clf = PromptClassifier(pvp=soft, calibration=calibration, random_state=0, verbose=0)
            clf.fit(train["text"], train["label"], X_unlabeled=unlabeled)
            report(f"trained K={args.k}, calibration={calibration}", clf)


if __name__ == "__main__":
    main()
