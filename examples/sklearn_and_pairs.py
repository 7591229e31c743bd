"""pet_kit inside scikit-learn tooling, inline PVPs, pair inputs and zero-shot.

An inline PVP with two trainable slots, tuned by ``GridSearchCV`` inside a ``Pipeline`` on
K Rotten Tomatoes reviews per class, then a shipped NLI PVP applied zero-shot to pairs of
texts (the pattern's two fields are DataFrame columns). Runs on the embedded default
backbone in about a minute on a laptop CPU: ``python examples/sklearn_and_pairs.py``.
"""

from __future__ import annotations

import argparse

import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pet_kit import PromptClassifier
from pet_kit.datasets import load_task, sample_k_shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--k", type=int, default=8, help="labelled reviews per class (default %(default)s)"
    )
    parser.add_argument(
        "--test-size", type=int, default=200, help="test reviews scored (default %(default)s)"
    )
    args = parser.parse_args()

    train = sample_k_shot(load_task("rotten_tomatoes", "train"), k=args.k, seed=0)
    test = load_task("rotten_tomatoes", "test", max_size=args.test_size)

    # 1. an inline PVP: two trainable vectors in front of the review
    pvp = {
        "pattern": "[SOFT*2] {text} It was [MASK].",
        "verbalizer": {"positive": ["great", "good"], "negative": ["terrible", "bad"]},
    }
    clf = PromptClassifier(pvp=pvp, epochs=10, random_state=0, verbose=0)

    # 2. inside a Pipeline and a grid search (the backbone is loaded once and shared)
    pipe = make_pipeline(FunctionTransformer(lambda xs: [x.strip() for x in xs]), clf)
    grid = GridSearchCV(
        pipe,
        {"promptclassifier__learning_rate": [0.01, 0.03]},
        cv=StratifiedKFold(n_splits=2, shuffle=True, random_state=0),
    )
    grid.fit(train["text"].tolist(), train["label"].tolist())
    print("best params:", grid.best_params_)
    print("test accuracy:", round(grid.score(test["text"].tolist(), test["label"].tolist()), 3))

    # 3. pair inputs: the pattern's fields are DataFrame columns
    nli = PromptClassifier(pvp="nli_en#question", verbose=0).fit(None)
    pairs = pd.DataFrame(
        {
            "text_a": ["A man is playing a guitar on stage.", "The cafe is closed today."],
            "text_b": ["A person plays music.", "The cafe is open."],
        }
    )
    print("zero-shot NLI:", list(nli.predict(pairs)))
    print(
        "(zero-shot quality depends on the backbone: docs/default_backbone.md, section"
        " Limits, says where the embedded one falls short and how to pass another)"
    )


if __name__ == "__main__":
    main()
