"""pet_kit inside scikit-learn tooling, inline PVPs, pair inputs and zero-shot.

Runs on the embedded default backbone in about a minute on a laptop CPU:
``python examples/sklearn_and_pairs.py``.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from pet_kit import PromptClassifier
from pet_kit.io.datasets import load_task, sample_k_shot


def main() -> None:
    train = sample_k_shot(load_task("rotten_tomatoes", "train"), k=8, seed=0)
    test = load_task("rotten_tomatoes", "test", max_size=200)

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
    print("(zero-shot quality depends on the backbone; see the README's limits)")


if __name__ == "__main__":
    main()
