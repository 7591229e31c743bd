"""Where the task information is lost: the frozen cloze readout against the states it reads.

A prompt-only classifier sees a text through one narrow readout: the frozen MLM head's
scores of a few label words at ``[MASK]``. This script asks, on the same backbone, splits
and seeds as ``few_shot.py``, how much a classifier can read from each stage of that path
when it is *allowed* a trained linear readout (logistic regression on the K examples):

``cloze``           the label-word class scores as they are (zero-shot argmax; no training);
``cloze_lr``        logistic regression on those class scores (a learned scale and bias per
                    class: the most a verbalizer readout of this pattern can give);
``mask_vocab_lr``   ... on the MLM head's log-probabilities of every vocabulary word at the
                    mask (any label words, chosen from the K examples);
``mask_state_lr``   ... on the encoder's final hidden state at the mask, before the head;
``mean_pool_lr``    ... on the mean-pooled final states of the plain text (the
                    ``linear_probe`` row of ``few_shot.py``).

If ``mask_state_lr`` is close to ``mean_pool_lr`` but ``cloze_lr`` / ``mask_vocab_lr`` are
far below, the information reaches the mask position and the frozen head's word scores lose
it. The readouts bound the *hard* pattern, not prompt tuning: trained slots change the mask
state itself (on subjectivity the trained prompt beats every readout here).
Writes ``benchmarks/results/cloze_readout.{json,md}``.

    python benchmarks/cloze_readout.py --tasks rotten_tomatoes subjectivity
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, markdown_table, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
READOUTS = ("cloze", "cloze_lr", "mask_vocab_lr", "mask_state_lr", "mean_pool_lr")
log = logging.getLogger("cloze_readout")


def cloze_features(clf: Any, texts: list[str], batch_size: int = 32) -> dict[str, np.ndarray]:
    """Per text: class scores, vocabulary log-probabilities and final hidden state at the
    mask of the fitted zero-shot classifier ``clf``'s pattern."""
    import torch

    model = clf.model_
    scorer = model.scorer
    examples = model.encode(texts)
    out: dict[str, list[tuple[list[int], np.ndarray]]] = {"state": [], "vocab": []}
    order = sorted(range(len(examples)), key=lambda i: examples[i].length())
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            state = scorer.mask_states([examples[i] for i in idx], None)
            out["state"].append((idx, state.float().numpy()))
            out["vocab"].append((idx, scorer.vocab_logprobs(state).numpy()))
    feats = {}
    for name, parts in out.items():
        arr = np.empty((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for idx, values in parts:
            arr[idx] = values
        feats[name] = arr
    feats["cloze"] = model.raw_scores(examples)
    return feats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["rotten_tomatoes", "subjectivity"])
    p.add_argument("--ks", nargs="+", type=int, default=[8, 16, 32])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--model",
        default=None,
        help="a masked-LM folder or hub name (default: the embedded default backbone)",
    )
    p.add_argument(
        "--label",
        default=None,
        help="the backbone's name in the table (default: 'default' or the model's folder name)",
    )
    p.add_argument("--out", default=str(RESULTS / "cloze_readout.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from few_shot_methods import Encoder, pvp_refs
    from sklearn.linear_model import LogisticRegression

    from pet_kit import PromptClassifier
    from pet_kit.datasets import load_task, sample_k_shot

    if args.threads:
        torch.set_num_threads(args.threads)
    label = args.label or (Path(args.model).name if args.model else "default")
    out = Path(args.out)
    # results of other backbones / tasks already in --out are kept (one table for all)
    kept = json.loads(out.read_text(encoding="utf-8"))["results"] if out.is_file() else []
    results = [
        r for r in kept if (r["backbone"], r["task"]) not in {(label, t) for t in args.tasks}
    ]
    for task in args.tasks:
        t0 = time.perf_counter()
        hard, _ = pvp_refs(task)
        clf = PromptClassifier(
            pvp=hard, model=args.model, max_length=args.max_length, verbose=0
        ).fit(None)
        labels = list(clf.classes_)
        train_all = load_task(task, "train")
        test = load_task(task, "test", max_size=args.test_size)
        samples = {(k, s): sample_k_shot(train_all, k, seed=s) for k in args.ks for s in args.seeds}
        pool = sorted({t for df in samples.values() for t in df["text"]})
        texts = test["text"].tolist() + pool
        feats = cloze_features(clf, texts)
        feats["mean_pool"] = Encoder(args.max_length, args.model).embed(texts)
        row_of = {t: len(test) + i for i, t in enumerate(pool)}
        y_test = test["label"].to_numpy()
        zero = np.asarray(labels, dtype=object)[feats["cloze"][: len(test)].argmax(1)]
        cells: dict[str, dict[int, list[float]]] = {r: {} for r in READOUTS}
        cells["cloze"][0] = [float((zero == y_test).mean())]
        readout_feats = {
            "cloze_lr": "cloze",
            "mask_vocab_lr": "vocab",
            "mask_state_lr": "state",
            "mean_pool_lr": "mean_pool",
        }
        for (k, seed), train in samples.items():
            rows = [row_of[t] for t in train["text"]]
            for readout, name in readout_feats.items():
                x = feats[name]
                lr = LogisticRegression(max_iter=2000, random_state=seed)
                lr.fit(x[rows], train["label"])
                acc = float((lr.predict(x[: len(test)]) == y_test).mean())
                cells[readout].setdefault(k, []).append(acc)
        summary = {
            r: {
                str(k): {
                    "mean": statistics.mean(v),
                    "std": statistics.pstdev(v),  # as few_shot.py
                    "n_seeds": len(v),
                    "runs": v,
                }
                for k, v in sorted(by_k.items())
            }
            for r, by_k in cells.items()
        }
        secs = time.perf_counter() - t0
        log.info("%s: %.0f s", task, secs)
        results.append(
            {
                "backbone": label,
                "model": args.model,
                "task": task,
                "pvp": hard,
                "n_test": len(test),
                "seconds": secs,
                "readouts": summary,
            }
        )
    data = {"machine": machine(), "config": vars(args), "results": results}
    write_json(out, data)
    text = markdown(data)
    print(text)
    out.with_suffix(".md").write_text(text, encoding="utf-8")


def markdown(data: dict[str, Any]) -> str:
    """The readout table: one row per task and readout, one column per K."""
    ks = [str(k) for k in data["config"]["ks"]]
    seeds = data["config"]["seeds"]
    lines = [
        "<!-- generated by benchmarks/cloze_readout.py; do not edit -->",
        f"Accuracy on the fixed test subset; the trained readouts are logistic regressions on"
        f" K examples per class (mean ± std over seeds {seeds}, the splits of few_shot.py);"
        " `cloze` is the untrained zero-shot prompt (K = 0). The task's default hard"
        " pattern. Backbones: "
        + "; ".join(
            f"`{name}` = {model or 'the embedded default'}"
            for name, model in sorted({(r["backbone"], r["model"]) for r in data["results"]})
        )
        + ".",
        "",
    ]
    body = []
    for res in sorted(data["results"], key=lambda r: (r["task"], r["backbone"] != "default")):
        for readout, by_k in res["readouts"].items():
            cells = []
            for k in ["0", *ks]:
                c = by_k.get(k)
                cells.append("" if c is None else f"{c['mean']:.3f} ± {c['std']:.3f}")
            body.append([res["task"], res["backbone"], readout, *cells])
    header = ["task", "backbone", "readout", "K = 0", *[f"K = {k}" for k in ks]]
    return "\n".join(lines + markdown_table(header, body)) + "\n"


if __name__ == "__main__":
    main()
