"""Run the missing cells of the few-shot benchmark in parallel worker processes.

A cell is one (task, method, K) with the seeds that the results file still lacks. Each
cell runs as its own ``few_shot.py`` process (one torch thread, its own results file in
``--work-dir``), longest cells first (``--order``), at most ``--workers`` at a time: on a many-core
machine, or a GPU that several small-model processes share, this finishes the table in a
fraction of the serial time. At ``--deadline`` seconds the workers still running are
stopped (every seed a worker finished is already in its file) and all the workers' runs
are merged into ``--out`` (``few_shot.py --merge``), which also rebuilds the tables and
plots. Rerunning resumes: finished seeds are skipped.

Example::

    python benchmarks/few_shot_parallel.py --tasks bbc_news chinese_reviews \\
        --methods pet_kit_ensemble pet_kit_lora --workers 8
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from few_shot import RESULTS
from few_shot_methods import ENSEMBLE_ROWS, ZERO_SHOT_ONLY

HERE = Path(__file__).resolve().parent
log = logging.getLogger("few_shot_parallel")

#: Rough relative cost of one seed (CPU seconds of a Rotten Tomatoes run at K=16), only
#: used to start the longest cells first.
COST = {
    "pet_kit_ensemble": 300,
    "pet_kit_demos": 100,
    "pet_kit_full": 120,
    "pet_kit_lora": 40,
    "pet_kit_head": 32,
    "pet_kit_head_hard": 30,
    "pet_kit_head_only": 30,
    "pet_kit_deep": 35,
    "pet_kit": 30,
}
#: Tasks with more classes (K examples per class) or longer texts cost more per seed.
TASK_COST = {"bbc_news": 3.0}


def missing_cells(
    results: dict, tasks: list[str], methods: list[str], ks: list[int], seeds: list[int]
) -> list[tuple[str, str, int, list[int]]]:
    """(task, method, K, seeds still missing) for every cell not complete in ``results``."""
    done = {(r["task"], r["method"], r["k"], r["seed"]) for r in results.get("runs", [])}
    cells = []
    for task in tasks:
        for method in methods:
            # the ensemble row's run also gives the other ensemble rows: look at all of them
            rows = ENSEMBLE_ROWS if method in ENSEMBLE_ROWS else (method,)
            for k in [0] if method in ZERO_SHOT_ONLY else [k for k in ks if k > 0]:
                want = [0] if method in ZERO_SHOT_ONLY else seeds
                todo = [s for s in want if any((task, r, k, s) not in done for r in rows)]
                if todo:
                    cells.append((task, method, k, todo))
    return cells


def split_seeds(
    cells: list[tuple[str, str, int, list[int]]],
) -> list[tuple[str, str, int, list[int]]]:
    """One job per seed: a cell's seeds then run side by side instead of one after another."""
    return [(task, method, k, [seed]) for task, method, k, seeds in cells for seed in seeds]


def cost(cell: tuple[str, str, int, list[int]]) -> float:
    task, method, k, seeds = cell
    return COST.get(method, 10) * TASK_COST.get(task, 1.0) * max(k, 1) / 16 * len(seeds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--methods", nargs="+", required=True)
    p.add_argument("--ks", nargs="+", type=int, default=[8, 16, 32])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--deadline", type=float, default=None, help="seconds; then stop and merge")
    p.add_argument(
        "--order",
        choices=("longest", "shortest", "tasks"),
        default="longest",
        help="longest cells first (shortest total time), shortest first (most cells"
        " complete before a deadline), or tasks in --tasks order, shortest first in each",
    )
    p.add_argument(
        "--per-seed",
        action="store_true",
        help="run each seed as its own worker (more workers busy; each loads the model)",
    )
    p.add_argument("--out", default=str(RESULTS / "few_shot.json"))
    p.add_argument("--work-dir", default=str(RESULTS / "parallel"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.monotonic()
    out, work = Path(args.out), Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    # what earlier (stopped) workers finished counts as done too
    for f in sorted(work.glob("cell_*.json")):
        results.setdefault("runs", []).extend(json.loads(f.read_text())["runs"])
    cells = missing_cells(results, args.tasks, args.methods, args.ks, args.seeds)
    if args.per_seed:
        cells = split_seeds(cells)
    if args.order == "tasks":
        cells.sort(key=lambda c: (args.tasks.index(c[0]), cost(c)))
    else:
        cells.sort(key=cost, reverse=args.order == "longest")
    log.info("%d jobs to run with %d workers", len(cells), args.workers)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: list[tuple[subprocess.Popen, str]] = []
    queue = list(cells)
    stopped = False
    while queue or running:
        over = args.deadline is not None and time.monotonic() - t0 > args.deadline
        if over and not stopped:
            log.warning(
                "deadline: stopping %d workers, %d jobs not started", len(running), len(queue)
            )
            for proc, _ in running:
                proc.terminate()
            queue, stopped = [], True
        while queue and len(running) < args.workers:
            task, method, k, seeds = queue.pop(0)
            name = f"cell_{task}_{method}_{k}" + (f"_s{seeds[0]}" if args.per_seed else "")
            cmd = [
                sys.executable,
                str(HERE / "few_shot.py"),
                *("--tasks", task, "--methods", method, "--ks", str(k), "--threads", "1"),
                *("--seeds", *map(str, seeds), "--out", str(work / f"{name}.json")),
            ]
            with open(work / f"{name}.log", "ab") as fh:
                running.append((subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env), name))
            log.info("started %s seeds %s", name, seeds)
        for proc, name in list(running):
            if proc.poll() is not None:
                log.info(
                    "%s ended (exit %s) at %.0fs", name, proc.returncode, time.monotonic() - t0
                )
                running.remove((proc, name))
        time.sleep(1)
    parts = sorted(str(f) for f in work.glob("cell_*.json"))
    if parts:
        subprocess.run(
            [sys.executable, str(HERE / "few_shot.py"), "--out", str(out), "--merge", *parts],
            check=True,
            env=env,
        )
    log.info("done in %.0fs", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
