"""Few-shot benchmark: pet_kit against its peers on the same backbone and the same splits.

This is the runner (command line, task loop, results file); the rows are in
``few_shot_methods.py`` (which documents each method) and the tables, summary and plots
in ``few_shot_report.py``.

Every (task, K, seed) uses ``pet_kit.datasets.sample_k_shot(train, K, seed)`` and the fixed
test subset ``load_task(task, "test", max_size=--test-size)``. Results are appended to a
JSON file as they finish (a rerun skips what is there), then a table of mean ± std over
seeds and a plot of accuracy vs K are written, and for the PET rows a paired comparison
with ``pet_kit`` (the same task, K and seed: mean ± std of the difference, wins).
``--report-only`` rebuilds the tables and plots from the JSON; ``--merge`` first adds the
runs of other results files (e.g. ``few_shot_parallel.py``'s workers).

Example::

    python benchmarks/few_shot.py --tasks rotten_tomatoes --ks 0 8 16 32 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from _common import backbone_mismatch, device_name, machine, resolve_backbone, write_json
from few_shot_methods import (
    CPU_ONLY,
    LIKE_ROWS,
    LIKE_SOURCES,
    METHODS,
    ON_ANY_BACKBONE,
    RUNNERS,
    WITH_K0,
    ZERO_SHOT_ONLY,
    Encoder,
    adapted_backbone,
    pvp_refs,
    soft_refs,
    transfer_source,
)
from few_shot_report import report

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

log = logging.getLogger("few_shot")


def task_data(task: str, test_size: int) -> tuple[Any, Any]:
    from pet_kit.datasets import load_task

    return load_task(task, "train"), load_task(task, "test", max_size=test_size)


def merge(data: dict[str, Any], paths: list[Path]) -> int:
    """Add the runs of other result files (e.g. parallel workers) that ``data`` lacks.

    A run is identified by (task, method, K, seed); the first one recorded wins, as does
    the first record of a task's adapting or transfer-source cost. The
    other files' invocations are kept (with their machine) so every run stays traceable.
    Returns the number of runs added.
    """
    done = {(r["task"], r["method"], r["k"], r["seed"]) for r in data["runs"]}
    invocations = data.setdefault("invocations", [])
    known = {json.dumps(i, sort_keys=True) for i in invocations}
    added = 0
    for path in paths:
        other = json.loads(Path(path).read_text())
        for inv in other.get("invocations", []):
            inv = {
                **inv,
                "machine": inv.get("machine", other.get("machine")),
                "merged_from": Path(path).name,
            }
            text = json.dumps(inv, sort_keys=True)
            if text not in known:  # merging again adds nothing
                invocations.append(inv)
                known.add(text)
        for r in other["runs"]:
            key = (r["task"], r["method"], r["k"], r["seed"])
            if key not in done:
                data["runs"].append(r)
                done.add(key)
                added += 1
        for key in ("adapt", "transfer"):  # per-task costs of shared set-ups
            for task, info in other.get(key, {}).items():
                data.setdefault(key, {}).setdefault(task, info)
        failures = data.setdefault("failures", [])
        failures.extend(f for f in other.get("failures", []) if f not in failures)
    if not data.get("failures"):
        data.pop("failures", None)
    return added


def check_model(args: argparse.Namespace, out: Path) -> str:
    """``--model`` resolved to an absolute folder, refused where its rows would be wrong:
    a method that ignores it, a missing folder, or the default results file."""
    unsupported = [m for m in args.methods if m not in ON_ANY_BACKBONE]
    if unsupported:
        raise SystemExit(f"--model: {', '.join(unsupported)} always run on their own backbone;"
                         f" choose --methods among {', '.join(ON_ANY_BACKBONE)}")  # fmt: skip
    return resolve_backbone(args.model, out, RESULTS / "few_shot.json")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["rotten_tomatoes", "subjectivity", "bbc_news", "chinese_reviews"],
    )
    p.add_argument("--ks", nargs="+", type=int, default=[0, 8, 16, 32])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20, help="pet_kit epochs")
    p.add_argument("--lr", type=float, default=3e-2, help="pet_kit learning rate")
    p.add_argument("--ft-epochs", type=int, default=15, help="fine-tuning epochs")
    p.add_argument("--setfit-iters", type=int, default=5, help="SetFit num_iterations")
    p.add_argument(
        "--adapt-steps",
        type=int,
        default=300,
        help="continued-MLM steps of the adapted rows' backbone (32 packed 128-token windows)",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--n-unlabeled",
        type=int,
        default=500,
        help="unlabeled train texts for distillation and calibration rows",
    )
    p.add_argument(
        "--model",
        default=None,
        help="another backbone (a model folder) for the rows that support it"
        f" ({', '.join(ON_ANY_BACKBONE)}); --out must then name its own results file",
    )
    p.add_argument("--out", default=str(RESULTS / "few_shot.json"))
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="add the runs of these result files (e.g. parallel workers) to --out, then report",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only rebuild the table, summary and plot from the JSON",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("transformers", "sentence_transformers", "setfit", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"runs": []}
    runs_rows = not (args.merge or args.report_only)  # --model matters only when rows run
    if args.model is not None and runs_rows:
        args.model = check_model(args, out)
    mismatch = backbone_mismatch(out, data, args.model) if runs_rows else None
    if mismatch:
        p.error(mismatch)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        log.info("merged %d runs into %s", merge(data, [Path(x) for x in args.merge]), out)
        report(data, out)
        return
    if args.report_only:
        report(data, out)
        return
    done = {(r["task"], r["method"], r["k"], r["seed"]) for r in data["runs"]}
    config = {k: v for k, v in vars(args).items() if k not in ("out", "report_only", "merge")}
    data["machine"] = here = machine()
    data.setdefault("invocations", []).append(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "config": config, "machine": here}
    )
    if args.model is not None:
        data["model"] = args.model
    peers = set(args.methods) - {"zero_shot", "pet_kit"}
    encoder = Encoder(args.max_length, args.model) if peers else None

    from pet_kit.datasets import sample_k_shot

    for task in args.tasks:
        train_all, test = task_data(task, args.test_size)
        hard, soft = pvp_refs(task)
        ctx = {
            "task": task,
            "hard": hard,
            "soft": soft,
            "soft_all": soft_refs(task),
            "n_unlabeled": args.n_unlabeled,
            "encoder": encoder,
            "max_length": args.max_length,
            "ft_epochs": args.ft_epochs,
            "setfit_iters": args.setfit_iters,
            "pet_params": {"epochs": args.epochs, "learning_rate": args.lr},
            "model": args.model,  # None: the default backbone
            "train_texts": train_all["text"].tolist(),
            "adapt_steps": args.adapt_steps,
            "adapt_info": data.setdefault("adapt", {}),
            "transfer_info": data.setdefault("transfer", {}),
        }
        for method in args.methods:
            if method in ("setfit", "setfit_adapted"):
                try:
                    import setfit  # noqa: F401
                except ImportError:
                    log.warning("setfit is not installed: skipping its row")
                    continue
            if method in LIKE_ROWS and task not in LIKE_SOURCES:
                log.info("%s: no like source task for %s: skipped", method, task)
                continue
            ks = (
                [0]
                if method in ZERO_SHOT_ONLY
                else [k for k in args.ks if k > 0 or method in WITH_K0]
            )
            for k in ks:
                seeds = [0] if method in ZERO_SHOT_ONLY else args.seeds
                for seed in seeds:
                    key = (task, method, k, seed)
                    if key in done:
                        continue
                    train = sample_k_shot(train_all, k, seed=seed)
                    if method.endswith("_adapted"):  # once per task, recorded apart
                        adapted_backbone(ctx)
                    if method.startswith("pet_kit_transfer"):  # likewise
                        transfer_source(ctx, like=method in LIKE_ROWS)
                    t0 = time.perf_counter()
                    try:
                        acc = RUNNERS[method](ctx, train, test, seed)
                        secs = time.perf_counter() - t0
                        results = acc if isinstance(acc, dict) else {method: (acc, secs)}
                    except Exception as exc:  # a peer library failing must not stop the rest
                        log.exception("%s %s K=%d seed=%d failed", task, method, k, seed)
                        data.setdefault("failures", []).append(
                            {
                                "task": task,
                                "method": method,
                                "k": k,
                                "seed": seed,
                                "error": repr(exc)[:500],
                            }
                        )
                        break
                    for name, (acc, secs, *extra) in results.items():
                        if (task, name, k, seed) in done:
                            continue
                        log.info("%s %s K=%d seed=%d: %.4f (%.1fs)", task, name, k, seed, acc, secs)
                        data["runs"].append(
                            {
                                "task": task,
                                "method": name,
                                "k": k,
                                "seed": seed,
                                "accuracy": acc,
                                "seconds": secs,
                                "n_test": len(test),
                                "threads": torch.get_num_threads(),
                                "device": "cpu" if name in CPU_ONLY else device_name(),
                                **(extra[0] if extra else {}),
                            }
                        )
                        done.add((task, name, k, seed))
                    write_json(out, data)
    report(data, out)


if __name__ == "__main__":
    main()
