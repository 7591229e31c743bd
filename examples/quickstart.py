"""Few-shot demo: Rotten Tomatoes sentiment with the embedded default backbone.

Trains only a soft prompt (a few KB) on K labelled reviews per class while the backbone
and its MLM head stay frozen, prints test accuracy before and after training, and saves
the prompt. Run it through the README's first command (``bash scripts/run_demo.sh``) or
directly: ``python examples/quickstart.py --k 16 --seed 0``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16, help="labelled examples per class")
    parser.add_argument("--seed", type=int, default=0, help="sampling and training seed")
    parser.add_argument("--test-size", type=int, default=1000, help="fixed test subset size")
    parser.add_argument("--pvp", default=str(REPO / "templates" / "rotten_tomatoes.yaml#soft"))
    parser.add_argument("--out", default=str(REPO / "prompts" / "rotten_tomatoes"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    train = sample_k_shot(load_task("rotten_tomatoes", "train"), k=args.k, seed=args.seed)
    test = load_task("rotten_tomatoes", "test", max_size=args.test_size)
    print(
        f"Rotten Tomatoes: {len(train)} training reviews ({args.k} per class),"
        f" {len(test)} test reviews; PVP {args.pvp}"
    )

    clf = PromptClassifier(pvp=args.pvp, random_state=args.seed, verbose=1)
    t0 = time.perf_counter()
    clf.fit(None)  # the prompt as initialised, no training: the "before" score
    before = clf.score(test["text"], test["label"])
    print(
        f"accuracy before training (zero-shot, initial prompt): {before:.4f}"
        f"  [{time.perf_counter() - t0:.1f}s]"
    )

    t0 = time.perf_counter()
    clf.fit(train["text"], train["label"])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    after = clf.score(test["text"], test["label"])
    print(
        f"accuracy after training on {len(train)} examples: {after:.4f}"
        f"  [fit {fit_s:.1f}s, predict {time.perf_counter() - t0:.1f}s]"
    )

    out = clf.save(args.out)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"saved the prompt ({size / 1024:.1f} KB, backbone {clf.backbone_name_}) to {out}")
    again = PromptClassifier.load(out)
    print(
        "reloaded prompt predicts:",
        [str(p) for p in again.predict(["A gorgeous, moving film.", "Dull and far too long."])],
    )


if __name__ == "__main__":
    main()
