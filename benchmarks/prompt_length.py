"""Soft-prompt length and position sweep on one task.

Soft slots are plain pattern syntax, so the sweep only rewrites the pattern: ``n`` slots
as a prefix (``[SOFT*n] [MASK]: {text}``), a suffix (``[MASK]: {text} [SOFT*n]``) or
interleaved around the mask (``[SOFT*a] [MASK]: [SOFT*b] {text}``, a + b = n), trained
with pet_kit's defaults on K examples per class; test accuracy (mean ± std over seeds)
per length and position, as a table, JSON and a PNG plot. Resumable (finished runs are
skipped). Default task: subjectivity (its texts are long, so the mask comes first).

    python benchmarks/prompt_length.py        # K=8, lengths 1 5 20 50 100, seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

from _common import machine, markdown_table, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
POSITIONS = ("prefix", "suffix", "interleaved")


def pattern_for(position: str, n: int) -> str:
    if position == "prefix":
        return f"[SOFT*{n}] [MASK]: {{text}}"
    if position == "suffix":
        return f"[MASK]: {{text}} [SOFT*{n}]"
    a, b = (n + 1) // 2, n // 2
    return f"[SOFT*{a}] [MASK]: " + (f"[SOFT*{b}] " if b else "") + "{text}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="subjectivity")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--lengths", nargs="+", type=int, default=[1, 5, 20, 50, 100])
    p.add_argument("--positions", nargs="+", default=list(POSITIONS), choices=POSITIONS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", default=str(RESULTS / "prompt_length.json"))
    p.add_argument(
        "--report-only", action="store_true", help="rebuild the table and plot from the JSON"
    )
    args = p.parse_args(argv)
    if args.report_only:
        out = Path(args.out)
        report(json.loads(out.read_text()), out)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pet_kit").setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pet_kit import PromptClassifier
    from pet_kit.datasets import load_task, sample_k_shot

    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"runs": []}
    data["machine"] = machine()
    data["config"] = {k: v for k, v in vars(args).items() if k != "out"}
    done = {(r["position"], r["n_slots"], r["seed"]) for r in data["runs"]}
    words = str(REPO / "verbalizers" / f"{args.task}.yaml")
    train_all = load_task(args.task, "train")
    test = load_task(args.task, "test", max_size=args.test_size)
    for n in args.lengths:
        for position in args.positions:
            for seed in args.seeds:
                if (position, n, seed) in done:
                    continue
                train = sample_k_shot(train_all, args.k, seed=seed)
                pattern = pattern_for(position, n)
                t0 = time.perf_counter()
                clf = PromptClassifier(
                    pvp={"pattern": pattern, "verbalizer": words},
                    max_length=args.max_length,
                    random_state=seed,
                    verbose=0,
                ).fit(train["text"], train["label"])
                acc = clf.score(test["text"], test["label"])
                secs = time.perf_counter() - t0
                logging.info("%s n=%d seed=%d: %.4f (%.0fs)", position, n, seed, acc, secs)
                data["runs"].append(
                    {
                        "position": position,
                        "n_slots": n,
                        "seed": seed,
                        "pattern": pattern,
                        "accuracy": acc,
                        "seconds": secs,
                    }
                )
                done.add((position, n, seed))
                write_json(out, data)
    report(data, out)


def report(data: dict, out: Path) -> None:
    cells: dict[tuple[str, int], list[float]] = {}
    for r in data["runs"]:
        cells.setdefault((r["position"], r["n_slots"]), []).append(r["accuracy"])
    lengths = sorted({n for _, n in cells})
    positions = [p for p in POSITIONS if any(q == p for q, _ in cells)]
    summary = {
        f"{p}:{n}": {
            "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "n_seeds": len(v),
        }
        for (p, n), v in cells.items()
    }
    data["summary"] = summary
    write_json(out, data)
    cfg = data.get("config", {})
    lines = [
        f"{cfg.get('task')} K={cfg.get('k')}, test {cfg.get('test_size')}, max_length"
        f" {cfg.get('max_length')}; mean ± std over seeds {cfg.get('seeds')}",
        "",
    ]
    rows = []
    for n in lengths:
        row = [str(n)]
        for p in positions:
            s = summary.get(f"{p}:{n}")
            row.append(f"{s['mean']:.3f} ± {s['std']:.3f}" if s else "")
        rows.append(row)
    lines += markdown_table(["slots", *positions], rows, rule="---:")
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter, ScalarFormatter
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for p in positions:
        ns = [n for n in lengths if f"{p}:{n}" in summary]
        means = [summary[f"{p}:{n}"]["mean"] for n in ns]
        stds = [summary[f"{p}:{n}"]["std"] for n in ns]
        ax.errorbar(ns, means, yerr=stds, marker="o", capsize=3, label=p)
    ax.set_xscale("log")
    ax.set_xticks(lengths)  # the slot counts measured, as plain numbers (not 2×10⁰)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("soft slots")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{cfg.get('task')}, K={cfg.get('k')}: prompt length and position")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
