"""The few-shot benchmark's report: summary, tables, paired comparison and plots.

From the recorded runs (``few_shot.json``): the mean ± std over seeds of every (task,
method, K) cell, written back into the JSON (``summary``) and as Markdown tables
(``few_shot.md``: pet_kit and its peers; ``few_shot_pet.md``: the PET family and prompt
mechanics rows, with each row's paired comparison against ``pet_kit``; ``few_shot_cv.md``:
the cross-validated row against the better of zero-shot and the default), a plain-text
table on stdout and plots of accuracy vs K (when matplotlib is installed).
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import backbone_label, markdown_table, write_json
from few_shot_methods import METHODS, ZERO_SHOT_ONLY

#: The peers comparison (few_shot.md) and the PET family / prompt mechanics rows
#: (few_shot_pet.md, with the pet_kit row for reference).
PEER_METHODS = METHODS[: METHODS.index("zero_shot_calibrated")]
TRANSFER_ROWS = (
    "pet_kit_transfer",
    "pet_kit_transfer_rank1",
    "pet_kit_prefix_rank1",
    "pet_kit_transfer_like",
    "pet_kit_transfer_like_rank1",
)
PET_METHODS = ("zero_shot", "pet_kit", *METHODS[METHODS.index("zero_shot_calibrated") :])

log = logging.getLogger("few_shot")


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["method"], r["k"])].append(r)
    out: dict[str, Any] = defaultdict(lambda: defaultdict(dict))
    for (task, method, k), rs in sorted(groups.items()):
        accs = [r["accuracy"] for r in rs]
        out[task][method][k] = {
            "mean": statistics.fmean(accs),
            "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
            "n_seeds": len(accs),
            "seconds_mean": statistics.fmean(r["seconds"] for r in rs),
        }
    return {t: dict(m) for t, m in out.items()}


def paired(rows: list[dict[str, Any]], base: str = "pet_kit") -> dict[str, dict[str, Any]]:
    """Each row against ``base`` on the same task, K > 0 and seed (so the same split).

    Returns ``{task: {method: {...}}}`` with the mean and std of the paired accuracy
    differences, ``wins`` (pairs where the method beat ``base``) out of ``n``, and
    ``std_smaller`` (K values whose std over seeds is below the base's) out of ``n_k``.
    """
    acc = {(r["task"], r["method"], r["k"], r["seed"]): r["accuracy"] for r in rows if r["k"] > 0}
    # (task, method) -> K -> [(the method's accuracy, the base's), ...] in seed order
    grouped: dict[tuple[str, str], dict[int, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for (task, method, k, seed), a in sorted(acc.items()):
        b = acc.get((task, base, k, seed))
        if method != base and b is not None:
            grouped[(task, method)][k].append((a, b))
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (task, method), by_k in grouped.items():
        deltas = [a - b for pairs in by_k.values() for a, b in pairs]
        multi = [pairs for pairs in by_k.values() if len(pairs) > 1]
        out[task][method] = {
            "mean_delta": statistics.fmean(deltas),
            "std_delta": statistics.pstdev(deltas) if len(deltas) > 1 else 0.0,
            "wins": sum(d > 0 for d in deltas),
            "n": len(deltas),
            "std_smaller": sum(
                statistics.pstdev([a for a, _ in pairs]) < statistics.pstdev([b for _, b in pairs])
                for pairs in multi
            ),
            "n_k": len(multi),
        }
    return dict(out)


def paired_markdown(
    pairs: dict[str, dict[str, Any]], methods: tuple[str, ...], base: str = "pet_kit"
) -> str:
    """The paired comparison with ``base`` as one Markdown table (methods x tasks)."""
    tasks = sorted(t for t in pairs if any(m in pairs[t] for m in methods))
    shown = [m for m in methods if any(m in pairs[t] for t in tasks)]
    if not shown:
        return ""
    lines = [
        "",
        f"**Paired with {base}** (same task, K and seed, hence the same training split):"
        " mean ± std of the accuracy difference over all (K > 0, seed) pairs; wins = pairs"
        f" where the row beat {base}; σ↓ = K values where the row's std over seeds is"
        f" below {base}'s.",
        "",
    ]
    rows = []
    for method in shown:
        cells = [method]
        for task in tasks:
            c = pairs[task].get(method)
            if c is None:
                cells.append("")
                continue
            delta = round(c["mean_delta"], 3) + 0.0  # no "-0.000"
            cells.append(
                f"{delta:+.3f} ± {c['std_delta']:.3f}, wins {c['wins']}/{c['n']},"
                f" σ↓ {c['std_smaller']}/{c['n_k']}"
            )
        rows.append(cells)
    return "\n".join(lines + markdown_table(["method", *tasks], rows)) + "\n"


#: The rows of PromptClassifierCV (each gets its own check table).
CV_METHODS = ("pet_kit_cv", "pet_kit_cv_head", "pet_kit_cv_r2")
#: The untrained rows the CV row is held against (with the default-trained ``pet_kit``).
CV_REFERENCES = ("zero_shot", "zero_shot_calibrated")


def cv_choices(rows: list[dict[str, Any]], method: str = "pet_kit_cv") -> dict[tuple, list]:
    """Per (task, K): how many of ``method``'s runs that recorded their choice (the
    ``chosen`` parameters) chose a trained candidate, and how many recorded one."""
    out: dict[tuple, list] = {}
    for r in rows:
        if r["method"] == method and isinstance(r.get("chosen"), dict):
            counts = out.setdefault((r["task"], r["k"]), [0, 0])
            counts[0] += r["chosen"].get("epochs") != 0
            counts[1] += 1
    return out


def cv_check(
    summary: dict[str, Any],
    method: str = "pet_kit_cv",
    runs: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``method`` against the better of the zero-shot rows and the default-trained prompt.

    Per task and K where ``method`` ran: its mean and std over seeds, the reference (the
    best mean among :data:`CV_REFERENCES` at K = 0 and ``pet_kit`` at this K, and which one
    it is), ``within_one_std`` (``method``'s mean is at most one of its stds below the
    reference) and ``beats_default`` (its mean is above ``pet_kit``'s at this K); with
    ``runs``, also ``trained_chosen`` / ``choices_recorded`` (:func:`cv_choices`).
    """
    choices = cv_choices(runs or [], method)
    out = []
    for task, by_method in summary.items():
        for k, c in sorted(by_method.get(method, {}).items()):
            refs = {m: by_method[m][0]["mean"] for m in CV_REFERENCES if 0 in by_method.get(m, {})}
            default = by_method.get("pet_kit", {}).get(k)
            if default is not None:
                refs["pet_kit"] = default["mean"]
            if not refs:
                continue
            best = max(refs, key=refs.__getitem__)
            out.append(
                {
                    "task": task,
                    "k": k,
                    "mean": c["mean"],
                    "std": c["std"],
                    "n_seeds": c["n_seeds"],
                    "reference": best,
                    "reference_mean": refs[best],
                    "within_one_std": c["mean"] >= refs[best] - c["std"],
                    "default_mean": None if default is None else default["mean"],
                    "beats_default": None if default is None else c["mean"] > default["mean"],
                    "trained_chosen": choices.get((task, k), [None, 0])[0],
                    "choices_recorded": choices.get((task, k), [None, 0])[1],
                }
            )
    return out


def cv_markdown(rows: list[dict[str, Any]], method: str = "pet_kit_cv") -> str:
    """:func:`cv_check` as a Markdown table."""
    if not rows:
        return ""
    recorded = any(r.get("choices_recorded") for r in rows)  # else no choice column
    lines = [
        "<!-- generated by benchmarks/few_shot.py from few_shot.json; do not edit -->",
        f"{method} against the better of zero-shot ({', '.join(CV_REFERENCES)}, K = 0) and"
        " the default-trained pet_kit row at the same K (mean ± std over seeds; n = seeds"
        " when fewer than 5). *Within 1 std*: the CV row's mean is at most one of its stds"
        " below that reference."
        + (
            " *Trained chosen*: in how many of the seeds that recorded their choice"
            " cross-validation chose a trained candidate over the untrained prompt."
            if recorded
            else ""
        ),
        "",
    ]
    body = []
    for r in rows:
        n = f" (n={r['n_seeds']})" if r["n_seeds"] < 5 else ""
        default = "" if r["default_mean"] is None else f"{r['default_mean']:.3f}"
        beats = "" if r["beats_default"] is None else ("yes" if r["beats_default"] else "no")
        body.append(
            [
                r["task"],
                str(r["k"]),
                f"{r['mean']:.3f} ± {r['std']:.3f}{n}",
                default,
                beats,
                f"{r['reference_mean']:.3f} ({r['reference']})",
                "yes" if r["within_one_std"] else "**no**",
            ]
        )
        if recorded:
            body[-1].append(
                f"{r['trained_chosen']} of {r['choices_recorded']}"
                if r.get("choices_recorded")
                else "not recorded"
            )
    header = [
        "task",
        "K",
        method,
        "pet_kit",
        "beats pet_kit",
        "better reference",
        "within 1 std",
        *(["trained chosen"] if recorded else []),
    ]
    return "\n".join(lines + markdown_table(header, body)) + "\n"


def table(summary: dict[str, Any]) -> str:
    lines = []
    max_seeds = max(
        (c["n_seeds"] for m in summary.values() for cells in m.values() for c in cells.values()),
        default=0,
    )
    for task, methods in summary.items():
        ks = sorted({k for m in methods.values() for k in m})
        lines.append(f"\n{task}")
        lines.append(
            f"{'method':<22}" + "".join(f"{'K=' + str(k):>18}" for k in ks) + f"{'s/run':>9}"
        )
        for method in METHODS:
            if method not in methods:
                continue
            cells = []
            for k in ks:
                c = methods[method].get(k)
                # a trailing (n) marks a cell with fewer seeds than the others
                seeds = "" if not c or c["n_seeds"] >= max_seeds or k == 0 else f"({c['n_seeds']})"
                text = f"{c['mean']:.3f} ± {c['std']:.3f}{seeds}" if c else ""
                cells.append(text.rjust(18))
            secs = statistics.fmean(c["seconds_mean"] for c in methods[method].values())
            lines.append(f"{method:<22}" + "".join(cells) + f"{secs:>9.1f}")
    return "\n".join(lines)


def threads_note(data: dict[str, Any]) -> str:
    """Which torch thread counts the runs used, per task (wall times depend on it)."""
    per_task: dict[str, set[int]] = defaultdict(set)
    for r in data["runs"]:
        per_task[r["task"]].add(int(r.get("threads", 2)))
    return "; ".join(
        f"{task} {'/'.join(str(t) for t in sorted(ts))}" for task, ts in per_task.items()
    )


def machines_note(data: dict[str, Any]) -> str:
    """The distinct machines that produced the runs (the file's own and merged ones)."""
    seen: list[str] = []
    for m in [data.get("machine", {})] + [
        i.get("machine") or {} for i in data.get("invocations", [])
    ]:
        if not m:
            continue
        text = (
            f"{m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs, torch {m.get('torch', '?')}"
        )
        if m.get("cuda"):
            text += f", GPU {m['cuda']}"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) or "?"


def devices_note(data: dict[str, Any]) -> str:
    """Where the runs ran, per task (a run without a record ran on the CPU)."""
    per_task: dict[str, set[str]] = defaultdict(set)
    for r in data["runs"]:
        per_task[r["task"]].add(r.get("device", "cpu"))
    return "; ".join(f"{task} {' + '.join(sorted(ds))}" for task, ds in per_task.items())


def markdown(
    summary: dict[str, Any],
    data: dict[str, Any],
    methods: tuple[str, ...] = METHODS,
    source: str = "few_shot.json",
) -> str:
    """The summary as Markdown tables (mean ± std over seeds; s = mean seconds per run)."""
    lines = [
        f"<!-- generated by benchmarks/few_shot.py from {source}; do not edit -->",
        f"Machines: {machines_note(data)}. Torch threads per run: {threads_note(data)};"
        f" devices: {devices_note(data)}."
        " Accuracy on the fixed test subset, mean ± std over seeds (n = seeds when fewer"
        " than 5); s = mean wall seconds per run (fit + predict) on whichever device ran"
        " the cell's seeds: compare times only between rows of one device.",
    ]
    if data.get("model"):
        lines.append(f"Backbone of every row: `{backbone_label(data['model'])}` (`--model`).")
    for task, by_method in summary.items():
        if not any(by_method.get(m) for m in methods if m not in ("zero_shot", "pet_kit")):
            continue
        ks = sorted({k for cells in by_method.values() for k in cells})
        n_test = next((r["n_test"] for r in data["runs"] if r["task"] == task), "?")
        lines += [
            "",
            f"**{task}** ({n_test} test examples)",
            "",
        ]
        rows = []
        for method in methods:
            cells = by_method.get(method)
            if not cells:
                continue
            row = [method]
            for k in ks:
                c = cells.get(k)
                if c is None:
                    row.append("")
                    continue
                few = c["n_seeds"] < 5 and method not in ZERO_SHOT_ONLY
                n = f" (n={c['n_seeds']})" if few else ""
                row.append(f"{c['mean']:.3f} ± {c['std']:.3f}{n}")
            secs = statistics.fmean(c["seconds_mean"] for c in cells.values())
            rows.append([*row, f"{secs:.1f}"])
        lines += markdown_table(["method", *(f"K={k}" for k in ks), "s/run"], rows)
        info = data.get("adapt", {}).get(task)
        if info and any(m.endswith("_adapted") and by_method.get(m) for m in methods):
            before, after = info["heldout_mlm_before"], info["heldout_mlm_after"]
            lines += [
                "",
                f"Adapted rows: the backbone after {info['steps']} continued-MLM steps on the"
                f" {info['train_texts']} train texts ({info['seconds'] / 60:.1f} min on"
                f" {info['device']}, {info['threads']} thread(s)); held-out MLM accuracy"
                f" {before['accuracy']:.3f} -> {after['accuracy']:.3f}.",
            ]
        for suffix, rows in (("", "pet_kit_transfer"), ("/like", "pet_kit_transfer_like")):
            source = data.get("transfer", {}).get(task + suffix)
            shown = [m for m in methods if m.startswith(rows) and by_method.get(m)]
            if suffix == "":
                shown = [m for m in shown if not m.startswith("pet_kit_transfer_like")]
            if source and shown:
                lines += [
                    "",
                    f"{'/'.join(shown)}: the source prompt was trained on"
                    f" {', '.join(source['sources'])} ({source['settings']['per_class']}"
                    f" examples per class each, {source['settings']['max_steps']} steps;"
                    f" {source['seconds'] / 60:.1f} min).",
                ]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path, methods: tuple[str, ...] = METHODS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = [m for m in methods if m not in ("zero_shot", "pet_kit")]
    tasks = [t for t in summary if any(summary[t].get(m) for m in extra)]
    if not tasks:  # e.g. a run of peer rows only: nothing for the PET-family plot
        log.info("no results for %s: %s not drawn", ", ".join(extra), path.name)
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab20")
    colors = {m: cmap(i % 20) for i, m in enumerate(METHODS)}
    for ax, task in zip(axes[0], tasks, strict=True):
        for method in methods:
            cells = summary[task].get(method)
            if not cells:
                continue
            ks = sorted(cells)
            mean = np.array([cells[k]["mean"] for k in ks])
            std = np.array([cells[k]["std"] for k in ks])
            if method in ZERO_SHOT_ONLY:
                ax.axhline(mean[0], ls="--", lw=1, label=method, color=colors[method])
                continue
            ax.errorbar(
                ks, mean, yerr=std, marker="o", capsize=3, label=method, color=colors[method]
            )
        ax.set_title(task)
        ax.set_xlabel("K (labelled examples per class)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def report(data: dict[str, Any], out: Path) -> None:
    """Write the summary into the JSON, print the table, draw the plot."""
    summary = summarize(data["runs"])
    data["summary"] = summary
    pairs = paired(data["runs"])
    data["paired_with_pet_kit"] = pairs
    transfer = paired(data["runs"], base="pet_kit_prefix")
    transfer = {
        t: {m: c for m, c in ms.items() if m in TRANSFER_ROWS} for t, ms in transfer.items()
    }
    transfer = {t: ms for t, ms in transfer.items() if ms}
    if transfer:
        data["paired_with_pet_kit_prefix"] = transfer
    by_method = {m: cv_check(summary, m, runs=data["runs"]) for m in CV_METHODS}
    by_method = {m: rows for m, rows in by_method.items() if rows}
    checks = [{"method": m, **r} for m, rows in by_method.items() for r in rows]
    if checks:
        data["cv_check"] = checks
    write_json(out, data)
    print(table(summary))
    peers = markdown(summary, data, PEER_METHODS, out.name)
    out.with_suffix(".md").write_text(peers, encoding="utf-8")
    pet = out.with_name(out.stem + "_pet.md")
    pet_rows = tuple(m for m in PET_METHODS if m not in ("zero_shot", "pet_kit"))
    pet.write_text(
        markdown(summary, data, PET_METHODS, out.name)
        + paired_markdown(pairs, pet_rows)
        + paired_markdown(transfer, TRANSFER_ROWS, base="pet_kit_prefix"),
        encoding="utf-8",
    )
    if checks:
        tables = "\n".join(cv_markdown(rows, m) for m, rows in by_method.items())
        out.with_name(out.stem + "_cv.md").write_text(tables, encoding="utf-8")
    try:
        plot(summary, out.with_suffix(".png"), PEER_METHODS)
        plot(summary, out.with_name(out.stem + "_pet.png"), PET_METHODS)
    except ImportError:
        log.warning("matplotlib is not installed: no plot")
