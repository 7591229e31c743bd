"""Never quietly worse than untrained: the training guard, measured.

For every (task, K, seed) on the splits of ``few_shot.py`` — the K-shot sample
``sample_k_shot(load_task(task, "train"), K, seed)`` and the fixed test subset
``load_task(task, "test", max_size=--test-size)`` — this trains the task's soft pattern
(``TASK#soft``) with pet_kit's defaults and records:

* the **untrained** prompt's accuracy (``epochs=0``: the slots at their initialisation,
  what the guard keeps; it depends on the seed, not on K);
* the prompt trained **without** the guard (``guard=None``) and its fit time;
* for each guard mode (``--guards``), what its check found (held-out scores of the
  untrained prompt and the probes) and the check's time.

A guarded fit ends either with the untrained prompt or, bit for bit, with the unguarded
one (tested; here checked once per task on the first K and seed against a full guarded
fit). So a guard's outcome under any decision rule is read off the recorded scores, and
its fit time is the check's (a fit whose rule is made to say "keep untrained", which
stops after the probes) plus the unguarded fit's when it trains. Times are process CPU
seconds on one thread (wall seconds recorded too: the machine is shared).

A **dev** sample drawn from the train split (disjoint from every K-shot sample of the
seed) is scored too: the guard modes and decision rules are compared there, never on the
test split. The hard (zero-shot) default pattern of each task is scored once for context.

``--probe-steps fit`` adds checks whose probes train as many optimizer steps as the fit
(pet_kit's probes train the fit's epochs on their part: fewer steps on fewer examples),
recorded beside the others (``2fold+fit-steps``); runs already recorded only get the
new check (the same fits: their untrained scores must match).

``--soft-pattern`` trains another pattern string with each task's shipped verbalizer
instead of ``TASK#soft`` (as ``--prompt-init`` and ``--model``, into its own ``--out``).

``--cv-ks`` also measures ``PromptClassifierCV``'s cost per K with its defaults (hard
patterns and the untrained prompt among the candidates) on ``--cv-task``.

Results are appended to the JSON as they finish (a rerun skips what is there); the tables
go to ``benchmarks/results/never_worse.md`` (included by docs/training.md).

Example::

    OMP_NUM_THREADS=1 python benchmarks/never_worse.py --threads 1
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
from unittest import mock

from _common import (
    backbone_label,
    backbone_mismatch,
    machine,
    markdown_table,
    resolve_backbone,
    write_json,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

log = logging.getLogger("never_worse")

#: The guard's decision rules compared on the dev sample (the first is pet_kit's:
#: ``pet_kit.train.guard.training_helps``).
RULES = {
    # the Brier score: bounded per example, so one confident mistake weighs less than in
    # the log-loss
    "brier_and_accuracy": lambda u, t: t["brier"] < u["brier"] and t["accuracy"] >= u["accuracy"],
    "loss_and_accuracy": lambda u, t: (
        t["log_loss"] < u["log_loss"] and t["accuracy"] >= u["accuracy"]
    ),
    "loss": lambda u, t: t["log_loss"] < u["log_loss"],
    "accuracy": lambda u, t: t["accuracy"] > u["accuracy"],
    "accuracy_then_loss": lambda u, t: (
        t["accuracy"] > u["accuracy"]
        or (t["accuracy"] == u["accuracy"] and t["log_loss"] < u["log_loss"])
    ),
}
PET_KIT_RULE = "brier_and_accuracy"


def _clf(pvp: str, seed: int, max_length: int, **kw: Any) -> Any:
    from pet_kit import PromptClassifier

    return PromptClassifier(
        pvp=pvp, max_length=max_length, random_state=seed, verbose=0, device="cpu", **kw
    )


def _soft(args: argparse.Namespace) -> dict[str, Any]:
    """The soft pattern's settings besides the seed: the backbone and ``prompt_init``."""
    return {"model": args.model, "prompt_init": args.prompt_init}


def soft_pvp(task: str, pattern: str | None) -> Any:
    """The PVP trained for ``task``: its shipped ``TASK#soft``, or ``pattern`` (a pattern
    string, ``--soft-pattern``) with the task's shipped verbalizer."""
    if pattern is None:
        return f"{task}#soft"
    return {"pattern": pattern, "verbalizer": task}


def setting_mismatch(
    out: Path, data: dict[str, Any], key: str, value: Any, default: Any
) -> str | None:
    """Why ``out`` (holding ``data``) must not take runs with ``key=value``, or ``None``.

    The default results file is kept for pet_kit's defaults, and a file is never
    continued with another setting than its runs' (a file records ``key`` only when it
    is not ``default``)."""
    default_file = out.resolve() == (RESULTS / "never_worse.json").resolve()
    recorded = data.get(key, default)
    held = recorded if data.get("runs") or default_file else value
    if held == value:
        return None
    return (
        f"{out} holds (or is kept for) runs with {key}={held!r}, not {value!r}:"
        " name another results file with --out"
    )


def _default_guard() -> str:
    from pet_kit.config.settings import DEFAULTS

    return str(DEFAULTS["guard"])


def _default_init() -> str:
    from pet_kit.config.settings import DEFAULTS

    return str(DEFAULTS["prompt_init"])


def _check_only() -> Any:
    """Guarded fits stop after the check: its rule says "keep the untrained prompt"."""
    from pet_kit.train import guard

    return mock.patch.object(guard, "training_helps", lambda untrained, trained: False)


def _probe_steps(steps: str) -> Any:
    """The guard's probes train ``steps`` long (``guard.PROBE_STEPS``) meanwhile."""
    from pet_kit.train import guard

    return mock.patch.object(guard, "PROBE_STEPS", steps)


def guard_key(mode: str, probe_steps: str) -> str:
    """Where a guard's check is recorded in a run: its mode, with ``+fit-steps`` when its
    probes trained as many steps as the fit (``--probe-steps fit``)."""
    return mode if probe_steps == "epochs" else f"{mode}+{probe_steps}-steps"


def guard_label(key: str) -> str:
    """``guard='2fold'``, or ``guard='2fold', probes at the fit's steps`` for a key of
    :func:`guard_key`."""
    mode, _, steps = key.partition("+")
    return f"guard={mode!r}" + (", probes at the fit's steps" if steps else "")


def _timed(fit: Any, *args: Any) -> tuple[Any, float, float]:
    """``fit(*args)``, its wall and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fit(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _same(a: Any, b: Any) -> bool:
    """Whether two fitted prompts predict alike for sure: equal tensors."""
    import torch

    ta, tb = a.model_.tensors(), b.model_.tensors()
    ta.pop("slots_init", None)
    tb.pop("slots_init", None)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _dev(train_all: Any, ks: list[int], seed: int, size: int) -> Any:
    from pet_kit.datasets import sample_k_shot

    used = set()
    for k in ks:
        used |= set(sample_k_shot(train_all, k, seed=seed).index)
    rest = train_all.drop(index=sorted(used))
    return rest.sample(n=min(size, len(rest)), random_state=1000 + seed)


def _decides(rule: str, check: dict[str, Any]) -> bool:
    """Whether ``check`` recorded every score ``rule`` reads (``brier`` is newer)."""
    try:
        RULES[rule](check["untrained"], check["trained"])
    except KeyError:
        return False
    return True


def _recorded_rules(runs: list[dict[str, Any]], mode: str) -> list[str]:
    """The rules that every run's ``mode`` check recorded the scores for."""
    checks = [
        c for r in runs if (c := r["guards"][mode]["check"]) and c.get("untrained") is not None
    ]
    return [rule for rule in RULES if all(_decides(rule, c) for c in checks)]


def helps(check: dict[str, Any] | None, rule: str = PET_KIT_RULE) -> bool:
    """Whether a guard that recorded ``check`` trains, under ``rule``."""
    if not check or check.get("untrained") is None:  # no check (skipped): it trains
        return True
    if not _decides(rule, check):
        return bool(check["helps"])  # recorded before the rule's scores: what the guard did
    return bool(RULES[rule](check["untrained"], check["trained"]))


def run_task(task: str, seed: int, args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Every K of ``task`` and ``seed`` missing from ``data``."""
    from pet_kit.datasets import load_task, sample_k_shot

    train_all = load_task(task, "train")
    test = load_task(task, "test", max_size=args.test_size)
    soft = soft_pvp(task, args.soft_pattern)
    hard_key = f"{task}/hard"
    if hard_key not in data["context"]:
        # the default (hard) pattern
        clf = _clf(task, 0, args.max_length, model=args.model).fit(None)
        data["context"][hard_key] = {
            "pvp": task,
            "pattern": clf.pvp_.pattern.text,
            "test_accuracy": clf.score(test["text"], test["label"]),
            "n_test": len(test),
        }
        write_json(Path(args.out), data)
    keys = [guard_key(mode, args.probe_steps) for mode in args.guards]
    rows = {(r["task"], r["k"], r["seed"]): r for r in data["runs"]}

    def complete(k: int) -> bool:
        row = rows.get((task, k, seed))
        return row is not None and all(key in row["guards"] for key in keys)

    if all(complete(k) for k in args.ks):
        return
    dev = _dev(train_all, args.ks, seed, args.dev_size)
    first = sample_k_shot(train_all, args.ks[0], seed=seed)
    untrained = _clf(soft, seed, args.max_length, epochs=0, **_soft(args)).fit(
        first["text"], first["label"]
    )
    u_test = untrained.score(test["text"], test["label"])
    u_dev = untrained.score(dev["text"], dev["label"])
    for k in args.ks:
        if complete(k):
            continue
        train = sample_k_shot(train_all, k, seed=seed)
        X, y = train["text"], train["label"]
        row = rows.get((task, k, seed))
        plain = None
        if row is None:  # a new run: the unguarded fit first
            plain, wall, cpu = _timed(
                _clf(soft, seed, args.max_length, guard=None, **_soft(args)).fit, X, y
            )
            row = {
                "task": task,
                "k": k,
                "seed": seed,
                "n_train": len(train),
                "n_test": len(test),
                "n_dev": len(dev),
                "untrained_test": u_test,
                "untrained_dev": u_dev,
                "trained_test": plain.score(test["text"], test["label"]),
                "trained_dev": plain.score(dev["text"], dev["label"]),
                "steps": plain.history_["steps"],
                "fit_wall_no_guard": wall,
                "fit_cpu_no_guard": cpu,
                "guards": {},
            }
            data["runs"].append(row)
            rows[(task, k, seed)] = row
        elif (row["untrained_test"], row["untrained_dev"]) != (u_test, u_dev):
            raise SystemExit(
                f"{task} K={k} seed={seed}: the untrained prompt scores"
                f" {u_test:.3f}/{u_dev:.3f} (test/dev), the recorded run"
                f" {row['untrained_test']:.3f}/{row['untrained_dev']:.3f}: not the same"
                " fits, so a guard cannot be added to it"
            )
        for mode, key in zip(args.guards, keys, strict=True):
            if key in row["guards"]:
                continue
            with _check_only(), _probe_steps(args.probe_steps):
                checked, c_wall, c_cpu = _timed(
                    _clf(soft, seed, args.max_length, guard=mode, **_soft(args)).fit, X, y
                )
            check = checked.fit_summary_["guard"]
            if check.get("skipped") is None and not _same(checked, untrained):
                raise AssertionError(f"{task} K={k} seed={seed} {key}: not the untrained prompt")
            trains = helps(check)
            # the fit stopped after the check; record the real rule's answer
            check = {**check, "helps": trains, "kept_untrained": not trains}
            row["guards"][key] = {
                "check": check,
                "check_wall": c_wall,
                "check_cpu": c_cpu,
                "trains": trains,
                "fit_cpu": c_cpu + (row["fit_cpu_no_guard"] if trains else 0.0),
            }
            if plain is not None and k == args.ks[0] and seed == args.seeds[0]:
                # the composition, checked in full on each task's first new run
                with _probe_steps(args.probe_steps):
                    full, f_wall, f_cpu = _timed(
                        _clf(soft, seed, args.max_length, guard=mode, **_soft(args)).fit, X, y
                    )
                expected = plain if trains else untrained
                row.setdefault("validation", {})[key] = {
                    "fit_wall": f_wall,
                    "fit_cpu": f_cpu,
                    "as_composed": _same(full, expected),
                }
        log.info(
            "%s K=%d seed=%d: untrained %.3f, trained %.3f (%.0f CPU s); guard trains: %s",
            task,
            k,
            seed,
            u_test,
            row["trained_test"],
            row["fit_cpu_no_guard"],
            {m: (g["trains"], round(g["check_cpu"])) for m, g in row["guards"].items()},
        )
        write_json(Path(args.out), data)


def run_cv(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """PromptClassifierCV's fit seconds per K (defaults) on ``--cv-task``."""
    from pet_kit import PromptClassifierCV
    from pet_kit.datasets import load_task, sample_k_shot

    task = args.cv_task
    train_all = load_task(task, "train")
    test = load_task(task, "test", max_size=args.test_size)
    done = {(r["task"], r["k"], r["seed"]) for r in data["cv"]}
    for seed in args.cv_seeds:
        for k in args.cv_ks:
            if (task, k, seed) in done:
                continue
            train = sample_k_shot(train_all, k, seed=seed)
            cv = PromptClassifierCV(
                _clf(f"{task}#soft", seed, args.max_length, model=args.model),
                random_state=seed,
                verbose=0,
            )
            _, wall, cpu = _timed(cv.fit, train["text"], train["label"])
            res = cv.cv_results_
            trained = [i for i, p in enumerate(res["params"]) if p.get("epochs", None) != 0]
            row = {
                "task": task,
                "k": k,
                "seed": seed,
                "n_train": len(train),
                "fit_wall": wall,
                "fit_cpu": cpu,
                "n_candidates": len(res["params"]),
                "n_trained_candidates": len(trained),
                "n_splits": cv.n_splits_,
                "n_repeats": cv.n_repeats_,
                "candidates": [{k: str(v) for k, v in p.items()} for p in res["params"]],
                "mean_fit_seconds": [float(v) for v in res["mean_fit_time"]],
                "chosen": {k: str(v) for k, v in cv.best_params_.items()},
                "cv_accuracy": cv.best_score_,
                "test_accuracy": cv.score(test["text"], test["label"]),
                "n_test": len(test),
            }
            log.info("CV %s K=%d seed=%d: %.0f CPU s, chose %s", task, k, seed, cpu, row["chosen"])
            data["cv"].append(row)
            write_json(Path(args.out), data)


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


def outcome(row: dict[str, Any], mode: str | None, split: str, rule: str = PET_KIT_RULE) -> float:
    """The accuracy on ``split`` of the prompt a fit with ``guard=mode`` ends with."""
    if mode is None or helps(row["guards"][mode]["check"], rule):
        return row[f"trained_{split}"]
    return row[f"untrained_{split}"]


def _cost(row: dict[str, Any], mode: str, rule: str = PET_KIT_RULE) -> float:
    """CPU seconds of a fit with ``guard=mode`` under ``rule``."""
    g = row["guards"][mode]
    return g["check_cpu"] + (row["fit_cpu_no_guard"] if helps(g["check"], rule) else 0.0)


def _plain(row: dict[str, Any]) -> float:
    return float(row["fit_cpu_no_guard"])


def _worse(rows: list[dict[str, Any]], mode: str | None, split: str = "test", **kw: Any) -> int:
    return sum(outcome(r, mode, split, **kw) < r[f"untrained_{split}"] for r in rows)


def report(data: dict[str, Any], out: Path) -> str:
    """The Markdown tables (also written next to the JSON) from ``data``."""
    runs = data["runs"]
    default = _default_guard()
    # the guard checks every run has (a check being added to recorded runs is left out)
    modes = [m for m in (runs[0]["guards"] if runs else []) if all(m in r["guards"] for r in runs)]
    cells = sorted({(r["task"], r["k"]) for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    n_test = "/".join(map(str, sorted({r["n_test"] for r in runs})))
    n_dev = "/".join(map(str, sorted({r["n_dev"] for r in runs})))
    pattern = "(`TASK#soft`)"
    if data.get("soft_pattern"):
        pattern = (
            f"`{data['soft_pattern']}` (`--soft-pattern`, each task's verbalizer;"
            " pet_kit ships `TASK#soft`)"
        )
    lines = [
        f"<!-- generated by benchmarks/never_worse.py from {out.name}; do not edit -->",
        f"Soft pattern {pattern}, pet_kit defaults (20 epochs, learning rate 0.03),"
        f" max_length 128, K examples per class; test subset of {n_test} texts; mean ± std"
        f" over seeds {seeds}. *Worse*: seeds whose final prompt scored below the untrained"
        f" prompt on the test subset. *Kept*: seeds where the guard (`guard={default!r}`,"
        " the default) kept the untrained prompt. Fit times: CPU seconds on one thread.",
        "",
    ]
    if data.get("model"):
        lines[-1:-1] = [f"Backbone: `{backbone_label(data['model'])}` (`--model`)."]
    if data.get("prompt_init"):
        lines[-1:-1] = [
            f"Free slots started with `prompt_init={data['prompt_init']!r}` (`--prompt-init`;"
            f" pet_kit's default: `{_default_init()!r}`)."
        ]
    rows = []
    for task, k in cells:
        rs = [r for r in runs if r["task"] == task and r["k"] == k]
        plain = [r["fit_cpu_no_guard"] for r in rs]
        guarded = [_cost(r, default) for r in rs]
        rows.append(
            [
                task,
                str(k),
                _ms([r["untrained_test"] for r in rs]),
                _ms([outcome(r, None, "test") for r in rs]),
                _ms([outcome(r, default, "test") for r in rs]),
                f"{sum(not helps(r['guards'][default]['check']) for r in rs)} of {len(rs)}",
                f"{_worse(rs, None)} of {len(rs)}",
                f"{_worse(rs, default)} of {len(rs)}",
                f"{statistics.fmean(plain):.0f}",
                f"{statistics.fmean(guarded):.0f}",
                f"{statistics.fmean(g / p for g, p in zip(guarded, plain, strict=True)):.2f}",
            ]
        )
    lines += markdown_table(
        [
            "task",
            "K",
            "untrained",
            "guard=None",
            f"guard={default!r}",
            "kept",
            "worse, guard=None",
            "worse, guard",
            "fit s, guard=None",
            "fit s, guard",
            "cost ratio",
        ],
        rows,
    )
    hard = data.get("context", {})
    if hard:
        lines += [
            "",
            "The task's hard default pattern zero-shot, for context: "
            + ", ".join(
                f"{key.split('/')[0]} {v['test_accuracy']:.3f} (`{v['pattern']}`)"
                for key, v in sorted(hard.items())
            )
            + ".",
        ]
    lines += [
        "",
        f"Guard modes and decision rules on the same probes ({len(runs)} runs), compared"
        f" on the **dev** sample ({n_dev} texts from the train split, disjoint from the"
        " K-shot samples: the default was chosen there), the test subset for reference."
        " *Worse*: runs below the untrained prompt. Cost: mean CPU-time ratio to"
        " `guard=None`.",
        "",
    ]
    choice = []
    for mode in modes:
        for rule in _recorded_rules(runs, mode):
            pet = " (pet_kit)" if (mode, rule) == (default, PET_KIT_RULE) else ""
            choice.append(
                [
                    f"{guard_label(mode)}, {rule}{pet}",
                    f"{statistics.fmean(outcome(r, mode, 'dev', rule) for r in runs):.3f}",
                    str(_worse(runs, mode, "dev", rule=rule)),
                    f"{statistics.fmean(outcome(r, mode, 'test', rule) for r in runs):.3f}",
                    str(_worse(runs, mode, "test", rule=rule)),
                    f"{statistics.fmean(_cost(r, mode, rule) / _plain(r) for r in runs):.2f}",
                ]
            )
    for name, key in (("never train (untrained)", "untrained"), ("guard=None", "trained")):
        choice.append(
            [
                name,
                f"{statistics.fmean(r[f'{key}_dev'] for r in runs):.3f}",
                str(sum(r[f"{key}_dev"] < r["untrained_dev"] for r in runs)),
                f"{statistics.fmean(r[f'{key}_test'] for r in runs):.3f}",
                str(sum(r[f"{key}_test"] < r["untrained_test"] for r in runs)),
                "0" if key == "untrained" else "1.00",
            ]
        )
    lines += markdown_table(
        ["guard and rule", "dev mean", "dev: worse", "test mean", "test: worse", "cost"],
        choice,
    )
    checked = [(r, mode, v) for r in runs for mode, v in r.get("validation", {}).items()]
    if checked:
        lines += [
            "",
            "Full guarded fits (not composed) on the first K and seed of each task: "
            + ", ".join(
                f"{r['task']} {mode} {v['fit_cpu']:.0f} s vs composed"
                f" {_cost(r, mode):.0f} s ({'same prompt' if v['as_composed'] else 'DIFFERENT'})"
                for r, mode, v in checked
            )
            + ".",
        ]
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    if data.get("cv"):
        cv_text = cv_report(data, out.name)
        out.with_name(out.stem + "_cv.md").write_text(cv_text)
        text += "\n" + cv_text
    return text


def cv_report(data: dict[str, Any], source: str = "never_worse.json") -> str:
    """The cost table of ``PromptClassifierCV`` (``never_worse_cv.md``)."""
    runs = data["runs"]
    lines = [
        f"<!-- generated by benchmarks/never_worse.py from {source}; do not edit -->",
        "`PromptClassifierCV` with its defaults (2 repeats x up to 4 folds; candidates: the"
        " untrained soft prompt and the template's hard patterns, raw and calibrated, and"
        " three learning rates) on the soft pattern, max_length 128, against one plain fit"
        " (`guard=None`) of the same K-shot sample; CPU seconds on one thread; test subset"
        f" of {'/'.join(map(str, sorted({r['n_test'] for r in data['cv']})))} texts.",
        "",
    ]
    cv_rows = []
    for r in sorted(data["cv"], key=lambda r: (r["task"], r["k"], r["seed"])):
        plain = [
            x["fit_cpu_no_guard"]
            for x in runs
            if (x["task"], x["k"], x["seed"]) == (r["task"], r["k"], r["seed"])
        ]
        cv_rows.append(
            [
                r["task"],
                str(r["k"]),
                str(r["seed"]),
                f"{r['n_candidates']} ({r['n_trained_candidates']} trained)",
                f"{r['n_repeats']} x {r['n_splits']}",
                f"{r['fit_cpu']:.0f}",
                f"{plain[0]:.0f}" if plain else "—",
                f"{r['fit_cpu'] / plain[0]:.1f}" if plain else "—",
                ", ".join(f"{k}={v}" for k, v in r["chosen"].items()),
                f"{r['test_accuracy']:.3f}",
            ]
        )
    lines += markdown_table(
        [
            "task",
            "K",
            "seed",
            "candidates",
            "repeats x folds",
            "CV fit s",
            "plain fit s",
            "ratio",
            "chosen",
            "test",
        ],
        cv_rows,
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["rotten_tomatoes", "subjectivity", "bbc_news"])
    p.add_argument("--ks", nargs="+", type=int, default=[8, 16])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--dev-size", type=int, default=100)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--guards", nargs="+", default=["holdout", "2fold"])
    p.add_argument(
        "--probe-steps",
        choices=("epochs", "fit"),
        default="epochs",
        help="the guard's probes train the fit's epochs on their part (pet_kit's) or as"
        " many steps as the fit; recorded apart (guard MODE+fit-steps), so the same file"
        " takes both",
    )
    p.add_argument("--cv-task", default="rotten_tomatoes")
    p.add_argument("--cv-ks", nargs="*", type=int, default=[8, 16])
    p.add_argument("--cv-seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--model",
        default=None,
        help="another backbone (a model folder); --out must then name its own results file",
    )
    from pet_kit.config.settings import INIT_STRATEGIES

    p.add_argument(
        "--prompt-init",
        default=_default_init(),
        choices=INIT_STRATEGIES,
        help="the free slots' start (default: pet_kit's); another needs its own --out",
    )
    p.add_argument(
        "--soft-pattern",
        default=None,
        help="a pattern string trained instead of each task's TASK#soft (with the task's"
        " verbalizer); needs its own --out",
    )
    p.add_argument("--out", default=str(RESULTS / "never_worse.json"))
    p.add_argument("--report-only", action="store_true", help="rebuild the tables from the JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.report_only:
        print(report(json.loads(out.read_text()), out))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pet_kit").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = json.loads(out.read_text()) if out.exists() else {}
    if args.model is not None:
        args.model = resolve_backbone(args.model, out, RESULTS / "never_worse.json")
    mismatch = backbone_mismatch(out, data, args.model)
    if mismatch:
        raise SystemExit(mismatch)
    if args.model is not None:
        data["model"] = args.model
    for key, value, default in (
        ("prompt_init", args.prompt_init, _default_init()),
        ("soft_pattern", args.soft_pattern, None),
    ):
        mismatch = setting_mismatch(out, data, key, value, default)
        if mismatch:
            raise SystemExit(mismatch)
        if value != default:
            data[key] = value
    data.setdefault("runs", [])
    data.setdefault("cv", [])
    data.setdefault("context", {})
    config = {k: v for k, v in vars(args).items() if k not in ("out", "report_only")}
    data.setdefault("invocations", []).append(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "config": config, "machine": machine()}
    )
    for seed in args.seeds:  # every task's seed 0 first
        for task in args.tasks:
            run_task(task, seed, args, data)
    if args.cv_ks:
        run_cv(args, data)
    print(report(data, out))


if __name__ == "__main__":
    main()
