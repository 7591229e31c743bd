"""PET on the default backbone: a PVP ensemble, distilled into one prompt.

Three soft patterns are trained on K labelled Rotten Tomatoes reviews per class and
their probabilities combined with PET's weighted mean; the ensemble then soft-labels
unlabeled training reviews and one student prompt is trained on them (plus the labelled
ones), giving a single small saved prompt; then the same members are distilled into a
linear classifier on the frozen encoder instead. Prints the test accuracy of every member,
the ensemble and both students. ``python examples/ensemble_distill.py --k 16 --seed 0``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from pet_kit import PromptClassifier, PromptEnsemble
from pet_kit.datasets import load_task, sample_k_shot, unlabeled_texts

WORDS = "rotten_tomatoes"  # a shipped verbalizer, by name
PVPS = [
    {"pattern": "[SOFT*4] {text} [SOFT:All in all, it was] [MASK].", "verbalizer": WORDS},
    {"pattern": "[SOFT:Just] [MASK]! [SOFT*2] {text}", "verbalizer": WORDS},
    {"pattern": "{text} [SOFT*2] [SOFT:The movie was] [MASK].", "verbalizer": WORDS},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unlabeled", type=int, default=500, help="unlabeled train texts")
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument(
        "--out",
        help="a new or empty folder for the student prompt (default: a new folder in the"
        " system's temporary folder; the path is printed)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    train_all = load_task("rotten_tomatoes", "train")
    train = sample_k_shot(train_all, k=args.k, seed=args.seed)
    unlabeled = unlabeled_texts("rotten_tomatoes", args.unlabeled, seed=args.seed)
    test = load_task("rotten_tomatoes", "test", max_size=args.test_size)
    X, y, Xt, yt = train["text"], train["label"], test["text"], test["label"]

    base = PromptClassifier(epochs=20, verbose=0)
    t0 = time.perf_counter()
    ens = PromptEnsemble(
        pvps=PVPS,
        estimator=base,
        weighting="wmean",
        distill="prompt",
        temperature=2.0,
        random_state=args.seed,
    ).fit(X, y, X_unlabeled=unlabeled)
    print(f"trained 3 members + a student in {time.perf_counter() - t0:.0f}s")
    for i, member in enumerate(ens.estimators_):
        print(f"member {i} (weight {ens.weights_[i]:.3f}): {member.score(Xt, yt):.4f}")
    ens_acc = (ens.classes_[ens.ensemble_proba(Xt).argmax(1)] == yt.to_numpy()).mean()
    print(f"ensemble (wmean): {ens_acc:.4f}")
    print(f"distilled student prompt: {ens.score(Xt, yt):.4f}")
    path = ens.save(args.out or tempfile.mkdtemp(prefix="pet_kit_rt_distilled_"))
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"saved the student prompt ({size / 1024:.1f} KB) to {path}")
    # the same members, another student: a linear classifier on the frozen encoder
    ens.set_params(distill="linear").distil(X, y, unlabeled)
    print(f"distilled linear student: {ens.score(Xt, yt):.4f}")


if __name__ == "__main__":
    main()
