"""Look inside a trained soft prompt: nearest words, drift, word scores, slot ablation.

Trains the subjectivity soft prompt on K examples per class, then prints each slot's
nearest vocabulary words, norm and distance from its initialisation, explains one
prediction (label-word scores; the predicted class's probability with each slot
removed) and saves a PNG report (also: ``pet-kit explain PROMPT_DIR --text ... --png``).
``python examples/explain_prompt.py --k 16``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot
from pet_kit.tools.explain import explain_prediction, explain_slots, save_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument(
        "--png",
        help="where the PNG report goes (default: a new folder in the system's temporary"
        " folder; the path is printed)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    train = sample_k_shot(load_task("subjectivity", "train"), k=args.k, seed=0)
    clf = PromptClassifier(
        pvp="subjectivity#soft",
        max_length=128,
        random_state=0,
        verbose=0,
    )
    clf.fit(train["text"], train["label"])
    table = explain_slots(clf, top_k=4)
    for row in table.itertuples():
        words = ", ".join(w for w, _ in row.nearest)
        print(
            f"slot {row.slot}: norm {row.norm:.2f} (words ~{row.embedding_norm:.2f}),"
            f" moved {row.l2_to_init:.2f} (cos to init {row.cos_to_init:.2f}); near: {words}"
        )
    text = "An utterly charming film, the best of the year."
    info = explain_prediction(clf, text)
    print(f"{text!r} -> {info['label']} {info['probabilities']}")
    for label, word, score in info["word_scores"]:
        print(f"  {label}: {word} {score:+.2f}")
    for a in info["ablation"]:
        print(f"  without slot {a['slot']}: p({info['label']}) = {a['probability']:.3f}")
    png = args.png or Path(tempfile.mkdtemp(prefix="pet_kit_explain_")) / "report.png"
    print(f"report: {save_report(clf, png, text=text)}")


if __name__ == "__main__":
    main()
