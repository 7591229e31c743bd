"""Speed and memory: pet_kit's cloze scoring against the bare encoder and its peers.

Everything timed runs in one process, one after the other, on the same texts and the
same torch thread count, so the *ratios* are meaningful even on a noisy machine.

Backbones (``--models``):

``default``    the embedded default (MiniLM-L6, hidden 384, + pet_kit's MLM head);
``bert-base``  a randomly initialised ``BertForMaskedLM`` with bert-base's shapes (12
               layers, hidden 768, 30,522-token vocabulary): same cost as the real one.

Rows, per backbone and N (``--ns``; texts = Rotten Tomatoes train snippets, a fixed
shuffle), every inference row over the same N texts with batches of ``--batch-size``:

``bare_encoder``   ``AutoModel`` forward pass on exactly pet_kit's token ids and batches
                   (pre-tokenized): the physical floor;
``pet_kit``        ``PromptClassifier.predict_proba`` (tokenization included) with the
                   soft pattern ``[SOFT*2] {text} It was [MASK].``;
``fill_mask``      ``pipeline("fill-mask", targets=label_words, batch_size=...)`` on the
                   hard pattern ``{text} It was [MASK].`` (two tokens shorter), class =
                   the best label word (same verbalizer: one word per class);
``setfit``         ``SetFitModel.predict`` on the same encoder (raw texts: no pattern, so
                   ~8 tokens shorter), logistic head fitted on 16 examples beforehand;
``pet_kit_bf16``   the same prompt after ``optimize("bf16")`` (bfloat16 autocast), and
``pet_kit_int8``   after ``optimize("int8")`` (int8 dynamic quantization of the encoder's
                   linear layers): each interleaved with its own bare-encoder run like
                   ``pet_kit``, with its label agreement and largest probability
                   difference against float32 ``pet_kit`` on the same texts;
``train_epoch``    one pet_kit training epoch over the same N labelled texts, with
                   ``batch_size`` 8 (pet_kit's default) and ``--batch-size``, random
                   batches (``Batching(group_by_length=False)``) and length-grouped ones
                   (``True``; the default ``"auto"`` picks it above 50 batches per epoch).

``bare_encoder`` and ``pet_kit`` (the headline ratio) are timed interleaved, slice by
slice (``--slice`` texts: bare encoder, then pet_kit, on the same slice), so that a
noisy neighbour slows both alike; the whole is repeated ``--repeats`` times and the best
total kept. The other rows run once, over all N texts at a time.

Models named in ``--slim`` (default: ``bert-base``, for CPU time) time only the bare
encoder and pet_kit, once, above ``--full-max-n`` texts (that row still checks that
time grows linearly with N), and skip random-batch training at the large batch size.

A sequence-length sweep (``--lengths``, ``--length-n`` texts: BBC News articles cut to
each length) times ``bare_encoder``, ``pet_kit`` and ``fill_mask`` again.

Peak memory (RSS high-water mark, Linux ``VmHWM``) of pet_kit predict vs one training
epoch is measured in a fresh child process per phase that loads only pet_kit's backbone
(a process that had loaded every peer's model, or had already run the other phase,
would hide the difference), at N = ``--memory-n``.

Writes ``benchmarks/results/speed.json`` (+ ``.md`` table and ``.png`` plots)::

    python benchmarks/speed.py --threads 2
    python benchmarks/speed.py --report-only      # rebuild table + plots from the JSON
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import multiprocessing as mp
import os
import pickle
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORDS = {"positive": ["great"], "negative": ["terrible"]}
SOFT_PATTERN = "[SOFT*2] {text} It was [MASK]."
#: The opt-in fast inference paths measured against float32 (PromptClassifier.optimize).
FAST = ("bf16", "int8")
HARD_PATTERN = "{text} It was [MASK]."

log = logging.getLogger("speed")


# ------------------------------------------------------------------ utilities
def rss_mb(field: str = "VmRSS") -> float:
    """Current RSS (``VmRSS``) or its high-water mark (``VmHWM``) in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


def model_folder(name: str, workdir: Path) -> str:
    """A folder holding the backbone ``name`` (built once for ``bert-base``)."""
    from pet_kit.model.default_backbone import default_model_path

    default = default_model_path()
    if name == "default":
        return str(default)
    if name != "bert-base":
        raise SystemExit(f"unknown model {name!r}; use default or bert-base")
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    out = workdir / "bert-base-random"
    if not (out / "config.json").exists():
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig())  # bert-base-uncased shapes
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(default).save_pretrained(out)
    return str(out)


def rt_texts(n: int) -> tuple[list[str], list[str]]:
    from pet_kit.datasets import load_task

    df = load_task("rotten_tomatoes", "train").sample(frac=1.0, random_state=0)
    if n > len(df):
        raise SystemExit(f"N={n} exceeds the {len(df)} Rotten Tomatoes train texts")
    return df["text"].tolist()[:n], df["label"].tolist()[:n]


def cut_texts(n: int, length: int, tokenizer: Any) -> list[str]:
    """``n`` BBC News texts cut to about ``length`` tokens including the pattern."""
    from pet_kit.datasets import load_task

    df = load_task("bbc_news", "train", max_chars=None).sample(frac=1.0, random_state=0)
    budget = max(1, length - 8)  # [CLS] [SOFT] [SOFT] ... it was [MASK] . [SEP]
    out = []
    for text in df["text"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= budget:
            out.append(tokenizer.decode(ids[:budget]))
        if len(out) == n:
            return out
    raise SystemExit(f"not enough BBC texts of {length} tokens")


def timed(fn: Any) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- the runners
class Bench:
    """Every method's model for one backbone, loaded once."""

    def __init__(self, folder: str, batch_size: int) -> None:
        from transformers import AutoModel, pipeline

        from pet_kit import Batching, PromptClassifier

        self.folder = folder
        self.batch_size = batch_size
        self.clf = PromptClassifier(
            pvp={"pattern": SOFT_PATTERN, "verbalizer": WORDS},
            model=folder,
            batching=Batching(eval_batch_size=batch_size),
            device="cpu",
            verbose=0,
            random_state=0,
        ).fit(None)
        self.encoder = self.clf.model_.encoder
        # the same prompt on the opt-in fast paths (PromptClassifier.optimize)
        self.fast = {mode: pickle.loads(pickle.dumps(self.clf)).optimize(mode) for mode in FAST}
        self.bare = AutoModel.from_pretrained(folder).eval()
        self.pipe = pipeline("fill-mask", model=folder, device=-1)
        self.setfit = None
        try:
            from setfit import SetFitModel

            self.setfit = SetFitModel.from_pretrained(folder)
        except ImportError:
            log.warning("setfit is not installed: no setfit row")

    # the bare encoder on exactly pet_kit's batches
    def bare_batches(self, texts: list[str]) -> list[dict[str, torch.Tensor]]:
        examples = self.encoder.encode([{"text": t} for t in texts])
        order = sorted(range(len(examples)), key=lambda i: examples[i].length())
        batches = []
        for s in range(0, len(order), self.batch_size):
            b = self.encoder.collate([examples[i] for i in order[s : s + self.batch_size]], 1)
            batches.append({"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]})
        return batches

    def run_bare(self, batches: list[dict[str, torch.Tensor]]) -> None:
        with torch.inference_mode():
            for b in batches:
                self.bare(**b)

    def run_pet_kit(self, texts: list[str]) -> np.ndarray:
        return self.clf.predict_proba(texts)

    def run_fast(self, mode: str, texts: list[str]) -> np.ndarray:
        return self.fast[mode].predict_proba(texts)

    def run_fill_mask(self, texts: list[str], batch_size: int | None = None) -> list[str]:
        words = [w for ws in WORDS.values() for w in ws]
        label_of = {w: lab for lab, ws in WORDS.items() for w in ws}
        mask = self.pipe.tokenizer.mask_token
        filled = [HARD_PATTERN.format(text=t).replace("[MASK]", mask) for t in texts]
        out = self.pipe(
            filled, targets=words, top_k=len(words), batch_size=batch_size or self.batch_size
        )
        if filled and isinstance(out[0], dict):  # a single text gives a flat list
            out = [out]
        return [label_of[max(o, key=lambda d: d["score"])["token_str"].strip()] for o in out]

    def fit_setfit_head(self, texts: list[str], labels: list[str]) -> None:
        emb = self.setfit.model_body.encode(texts, batch_size=self.batch_size)
        self.setfit.model_head.fit(emb, labels)

    def run_setfit(self, texts: list[str]) -> Any:
        return self.setfit.predict(texts, batch_size=self.batch_size)

    def run_train(
        self, texts: list[str], labels: list[str], batch_size: int, grouped: bool = False
    ) -> None:
        from sklearn.base import clone

        params = {"epochs": 1, "batch_size": batch_size, "batching__group_by_length": grouped}
        clone(self.clf).set_params(**params).fit(texts, labels)


def interleaved(
    bench: Bench, texts: list[str], size: int, repeats: int, run: Any = None
) -> tuple[list[float], list[float]]:
    """Total seconds of the bare encoder and of pet_kit over ``texts``, per repeat.

    The length-sorted texts are cut into slices of ``size`` (a multiple of the batch
    size); each slice is run by the bare encoder
    (on the batches pet_kit builds for that slice) and then by pet_kit, so both see
    the same machine state.
    """
    # slices of the length-sorted texts: pet_kit's batches within each slice are then
    # the very batches it builds when it sorts all N texts at once
    examples = bench.encoder.encode([{"text": t} for t in texts])
    order = sorted(range(len(texts)), key=lambda i: examples[i].length())
    ordered = [texts[i] for i in order]
    size = max(size, bench.batch_size)
    size -= size % bench.batch_size
    slices = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    slice_batches = [bench.bare_batches(s) for s in slices]
    run = run or bench.run_pet_kit
    bare_s, pk_s = [], []
    for _ in range(repeats):
        tb = tp = 0.0
        for part, batches in zip(slices, slice_batches, strict=True):
            tb += timed(partial(bench.run_bare, batches))
            tp += timed(partial(run, part))
        bare_s.append(tb)
        pk_s.append(tp)
    return bare_s, pk_s


def bench_model(
    name: str, folder: str, args: argparse.Namespace, rows: list[dict[str, Any]], save: Any
) -> None:
    """Time every row for one backbone, appending to ``rows`` (saved as they come)."""
    bench = Bench(folder, args.batch_size)
    warm, warm_y = rt_texts(2 * args.batch_size)
    bench.run_bare(bench.bare_batches(warm))
    bench.run_pet_kit(warm)
    bench.run_fill_mask(warm)
    if bench.setfit is not None:
        bench.fit_setfit_head(warm[:16], warm_y[:16])
        bench.run_setfit(warm)

    def add(n: int, method: str, secs: float, **extra: Any) -> None:
        row = {"model": name, "n": n, "method": method, "seconds": secs, "texts_per_s": n / secs}
        row.update(extra)
        rows.append(row)
        save()
        log.info("%-9s N=%-5d %-18s %8.2fs %8.1f texts/s", name, n, method, secs, n / secs)

    for n in args.ns:
        texts, labels = rt_texts(n)
        t0 = time.perf_counter()
        batches = bench.bare_batches(texts)
        tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        padded = sum(b["input_ids"].numel() for b in batches)
        tok_secs = time.perf_counter() - t0
        # warm-up on this N's longest texts: allocator and kernels see the largest shapes
        longest = sorted(texts, key=len)[-args.batch_size :]
        bench.run_bare(batches[-1:])
        bench.run_pet_kit(longest)
        bench.run_fill_mask(longest)
        if bench.setfit is not None:
            bench.run_setfit(longest)
        slim = name in args.slim and n > args.full_max_n
        # the headline ratio's two rows, interleaved slice by slice (a noisy neighbour
        # slows both alike), best of --repeats
        bare_s, pk_s = interleaved(bench, texts, args.slice, 1 if slim else args.repeats)
        add(
            n,
            "bare_encoder",
            min(bare_s),
            tokens=tokens,
            padded_tokens=padded,
            tokenize_seconds=tok_secs,
            all_seconds=bare_s,
        )
        add(n, "pet_kit", min(pk_s), all_seconds=pk_s)
        exact = bench.run_pet_kit(texts)
        for mode in FAST:  # each fast path interleaved with the bare encoder, like pet_kit
            bench.run_fast(mode, longest)
            run = partial(bench.run_fast, mode)
            bare_m, fast_s = interleaved(bench, texts, args.slice, 1 if slim else args.repeats, run)
            fast = bench.run_fast(mode, texts)
            add(
                n,
                f"pet_kit_{mode}",
                min(fast_s),
                all_seconds=fast_s,
                bare_seconds=min(bare_m),
                label_agreement=float(np.mean(fast.argmax(1) == exact.argmax(1))),
                max_proba_diff=float(np.abs(fast - exact).max()),
            )
        if slim:
            log.info("%s N=%d: only bare_encoder and pet_kit (--slim)", name, n)
            continue
        preds: list[str] = []
        add(n, "fill_mask", timed(lambda t=texts, p=preds: p.extend(bench.run_fill_mask(t))))
        if n <= args.unbatched_max_n:
            add(n, "fill_mask_unbatched", timed(partial(bench.run_fill_mask, texts, 1)))
        if bench.setfit is not None:
            add(n, "setfit", timed(partial(bench.run_setfit, texts)))
        if n in args.train_ns:
            for bs in sorted({8, args.batch_size}):
                for grouped in (False, True):
                    if name in args.slim and bs != 8 and not grouped:
                        continue  # random large batches: the slowest, measured on default
                    method = f"train_epoch_bs{bs}_" + ("grouped" if grouped else "random")
                    run = partial(bench.run_train, texts, labels, bs, grouped)
                    add(n, method, timed(run))
        # sanity: pet_kit's hard-pattern zero-shot predictions equal the pipeline's
        if n == min(args.ns):
            from pet_kit import PromptClassifier

            hard = PromptClassifier(
                pvp={"pattern": HARD_PATTERN, "verbalizer": WORDS},
                model=folder,
                device="cpu",
                verbose=0,
            ).fit(None)
            agree = float(np.mean(hard.predict(texts) == np.asarray(preds)))
            rows.append(
                {"model": name, "n": n, "method": "agreement_pet_kit_vs_fill_mask", "value": agree}
            )
            log.info("pet_kit hard-pattern predictions == fill-mask pipeline's: %.4f", agree)

    for length in args.lengths:
        texts = cut_texts(args.length_n, length, bench.encoder.tokenizer)
        batches = bench.bare_batches(texts)
        mean_len = sum(int(b["attention_mask"].sum()) for b in batches) / len(texts)
        for method, fn in (
            ("bare_encoder", partial(bench.run_bare, batches)),
            ("pet_kit", partial(bench.run_pet_kit, texts)),
            ("fill_mask", partial(bench.run_fill_mask, texts)),
            *((f"pet_kit_{m}", partial(bench.run_fast, m, texts)) for m in FAST),
        ):
            secs = timed(fn)
            rows.append(
                {
                    "model": name,
                    "n": args.length_n,
                    "length": length,
                    "mean_tokens": mean_len,
                    "method": method,
                    "seconds": secs,
                    "texts_per_s": args.length_n / secs,
                    "sweep": "length",
                }
            )
            log.info("%-9s L=%-4d %-14s %8.2fs", name, length, method, secs)
    return {"rows": rows}


# ------------------------------------------------------------------ memory
def _memory_child(folder: str, phase: str, n: int, batch_size: int, threads: int, q: Any) -> None:
    torch.set_num_threads(threads)
    from pet_kit import Batching, PromptClassifier

    texts, labels = rt_texts(n)
    clf = PromptClassifier(
        pvp={"pattern": SOFT_PATTERN, "verbalizer": WORDS},
        model=folder,
        device="cpu",
        verbose=0,
        random_state=0,
        batching=Batching(eval_batch_size=batch_size),
    ).fit(None)
    clf.predict_proba(texts[:8])  # backbone loaded, kernels initialised
    gc.collect()
    base = rss_mb()
    reset_peak()
    if phase == "predict":
        clf.predict_proba(texts)
    else:
        clf.set_params(epochs=1, batch_size=8, batching__group_by_length=False).fit(texts, labels)
    q.put({"phase": phase, "baseline_mb": base, "peak_mb": rss_mb("VmHWM")})


def measure_memory(name: str, folder: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    out = []
    for phase in ("predict", "train_epoch_bs8_random"):
        q = ctx.Queue()
        p = ctx.Process(
            target=_memory_child,
            args=(folder, phase, args.memory_n, args.batch_size, args.threads, q),
        )
        p.start()
        res = q.get()
        p.join()
        res.update(model=name, n=args.memory_n, method=f"peak_rss_{phase}")
        res["delta_mb"] = res["peak_mb"] - res["baseline_mb"]
        log.info(
            "%-9s %s peak RSS %.0f MiB (+%.0f over the loaded model)",
            name,
            phase,
            res["peak_mb"],
            res["delta_mb"],
        )
        out.append(res)
    return out


# ------------------------------------------------------------------ report
def _get(rows: list[dict[str, Any]], model: str, n: int, method: str) -> dict[str, Any] | None:
    for r in rows:
        if r["model"] == model and r["n"] == n and r["method"] == method and "sweep" not in r:
            return r
    return None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios per (model, N) and the targets they are checked against."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    out: dict[str, Any] = {}
    for m in models:
        ns = sorted(
            {r["n"] for r in rows if r["model"] == m and "seconds" in r and "sweep" not in r}
        )
        per_n = {}
        for n in ns:
            pk, bare, fm = (_get(rows, m, n, k) for k in ("pet_kit", "bare_encoder", "fill_mask"))
            entry: dict[str, Any] = {}
            if pk and bare:
                entry["pet_kit_over_bare_encoder"] = pk["texts_per_s"] / bare["texts_per_s"]
            if pk and fm:
                entry["pet_kit_over_fill_mask"] = pk["texts_per_s"] / fm["texts_per_s"]
            fmu = _get(rows, m, n, "fill_mask_unbatched")
            if pk and fmu:
                entry["pet_kit_over_fill_mask_unbatched"] = pk["texts_per_s"] / fmu["texts_per_s"]
            for mode in FAST:
                fr = _get(rows, m, n, f"pet_kit_{mode}")
                if fr and "bare_seconds" in fr:  # interleaved with its own bare-encoder run
                    entry[f"pet_kit_{mode}_over_bare_encoder"] = fr["bare_seconds"] / fr["seconds"]
                    if pk:
                        entry[f"pet_kit_{mode}_over_pet_kit"] = pk["seconds"] / fr["seconds"]
                    entry[f"pet_kit_{mode}_label_agreement"] = fr["label_agreement"]
                    entry[f"pet_kit_{mode}_max_proba_diff"] = fr["max_proba_diff"]
            sf = _get(rows, m, n, "setfit")
            if pk and sf:
                entry["pet_kit_over_setfit"] = pk["texts_per_s"] / sf["texts_per_s"]
            for r in rows:
                if r["model"] == m and r["n"] == n and r["method"].startswith("train_epoch") and pk:
                    entry[f"{r['method']}_over_inference"] = r["seconds"] / pk["seconds"]
            per_n[str(n)] = entry
        secs = {
            n: _get(rows, m, n, "pet_kit")["seconds"] for n in ns if _get(rows, m, n, "pet_kit")
        }
        lin = {}
        if len(secs) >= 2:
            n0 = min(secs)
            lin = {str(n): (secs[n] / n) / (secs[n0] / n0) for n in sorted(secs)}
        mem = {r["method"]: r for r in rows if r["model"] == m and r["method"].startswith("peak")}
        memory = {}
        if len(mem) == 2:
            pr, tr = mem["peak_rss_predict"], mem["peak_rss_train_epoch_bs8_random"]
            memory = {
                "predict_peak_mb": pr["peak_mb"],
                "train_peak_mb": tr["peak_mb"],
                "train_over_predict_peak": tr["peak_mb"] / pr["peak_mb"],
                "predict_delta_mb": pr["delta_mb"],
                "train_delta_mb": tr["delta_mb"],
            }
        out[m] = {"per_n": per_n, "seconds_per_text_vs_smallest_n": lin, "memory": memory}
    return out


TARGETS = (
    ("pet_kit_over_bare_encoder", ">=", 0.9),
    *((f"pet_kit_{m}_over_bare_encoder", ">=", 2.0) for m in ("bf16", "int8")),
    *((f"pet_kit_{m}_label_agreement", ">=", 0.995) for m in ("bf16", "int8")),
    ("pet_kit_over_fill_mask", ">=", 3.0),
    ("train_epoch_bs8_random_over_inference", "<=", 2.5),
    ("train_epoch_bs8_grouped_over_inference", "<=", 2.5),
    ("train_epoch_bs32_random_over_inference", "<=", 2.5),
    ("train_epoch_bs32_grouped_over_inference", "<=", 2.5),
)


def table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [
        "| model | N | method | seconds | texts/s |",
        "|---|---:|---|---:|---:|",
    ]
    for r in rows:
        if "seconds" in r and "sweep" not in r:
            lines.append(
                f"| {r['model']} | {r['n']} | {r['method']} | {r['seconds']:.2f} |"
                f" {r['texts_per_s']:.1f} |"
            )
    lines += ["", "| model | N | ratio | value | target |", "|---|---:|---|---:|---|"]
    for m, s in summary.items():
        for n, entry in s["per_n"].items():
            for key, value in entry.items():
                target = next((f"{op} {v}" for k, op, v in TARGETS if k == key), "")
                ok = ""
                if target:
                    op, v = target.split()
                    ok = " ✓" if (value >= float(v) if op == ">=" else value <= float(v)) else " ✗"
                lines.append(f"| {m} | {n} | {key} | {value:.2f} | {target}{ok} |")
        for n, v in s["seconds_per_text_vs_smallest_n"].items():
            lines.append(
                f"| {m} | {n} | pet_kit seconds/text vs smallest N | {v:.2f} | ≈ 1 (linear) |"
            )
        mem = s["memory"]
        if mem:
            ok = " ✓" if mem["train_over_predict_peak"] <= 1.3 else " ✗"
            lines.append(
                f"| {m} | | peak RSS train / predict ({mem['train_peak_mb']:.0f} /"
                f" {mem['predict_peak_mb']:.0f} MiB; +{mem['train_delta_mb']:.0f} /"
                f" +{mem['predict_delta_mb']:.0f} over the loaded model) |"
                f" {mem['train_over_predict_peak']:.2f} | <= 1.3{ok} |"
            )
    agree = [r for r in rows if r["method"] == "agreement_pet_kit_vs_fill_mask"]
    for r in agree:
        lines.append(
            f"| {r['model']} | {r['n']} | same predictions as fill-mask (hard pattern) |"
            f" {r['value']:.4f} | 1.0 |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 8), squeeze=False)
    by_n = [
        k
        for k in dict.fromkeys(r["method"] for r in rows)
        if not k.startswith(("train", "peak", "agree"))
    ]
    panels = (  # (row of axes, methods, x key, sweep, x label, title)
        (0, by_n, "n", None, "N texts (Rotten Tomatoes)", "throughput vs N"),
        (
            1,
            ["bare_encoder", "pet_kit", "fill_mask"],
            "mean_tokens",
            "length",
            "tokens per text (BBC News, cut)",
            "throughput vs sequence length",
        ),
    )
    for j, m in enumerate(models):
        for i, methods, xkey, sweep, xlabel, title in panels:
            ax = axes[i][j]
            for k in methods:
                pts = sorted(
                    (r[xkey], r["texts_per_s"])
                    for r in rows
                    if r["model"] == m and r["method"] == k and r.get("sweep") == sweep
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=k)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):  # plain numbers, not 2^8 or 10^2
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(xlabel)
            ax.set_ylabel("texts / second")
            ax.set_title(f"{m}: {title}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(data: dict[str, Any], out: Path) -> None:
    data["summary"] = summarize(data["rows"])
    write_json(out, data)
    text = table(data["rows"], data["summary"])
    print(text)
    m = data.get("machine", {})
    head = (
        f"Generated by `benchmarks/speed.py` ({data.get('started', '')}); machine:"
        f" {m.get('cpu_count')} CPUs, torch {m.get('torch')} with"
        f" {data.get('config', {}).get('threads')} threads, {m.get('platform')}.\n\n"
    )
    out.with_suffix(".md").write_text(head + text + "\n", encoding="utf-8")
    try:
        plot(data["rows"], out.with_suffix(".png"))
    except ImportError:
        log.warning("matplotlib is not installed: no plot")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["default", "bert-base"])
    p.add_argument("--ns", nargs="+", type=int, default=[256, 1024, 4096])
    p.add_argument(
        "--train-ns",
        nargs="+",
        type=int,
        default=[256, 1024],
        help="N at which a training epoch is timed",
    )
    p.add_argument(
        "--unbatched-max-n",
        type=int,
        default=256,
        help="time the pipeline with batch_size=1 (its default) up to this N",
    )
    p.add_argument(
        "--slim",
        nargs="*",
        default=["bert-base"],
        help="models timed more sparingly (CPU time): above --full-max-n only the bare"
        " encoder and pet_kit, once; no random-batch training at the large batch size",
    )
    p.add_argument("--full-max-n", type=int, default=1024)
    p.add_argument("--lengths", nargs="*", type=int, default=[32, 64, 128, 256])
    p.add_argument("--length-n", type=int, default=128)
    p.add_argument("--memory-n", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--repeats", type=int, default=2, help="bare encoder and pet_kit: best of this many"
    )
    p.add_argument("--slice", type=int, default=64, help="interleaving slice (texts)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "pet_kit_speed"))
    p.add_argument("--out", default=str(RESULTS / "speed.json"))
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("transformers", "sentence_transformers", "setfit", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    if args.report_only:
        report(json.loads(out.read_text()), out)
        return
    torch.set_num_threads(args.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("out", "report_only", "workdir")}
    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "config": config,
        "rows": [],
    }

    def save() -> None:
        write_json(out, data)

    for name in args.models:
        folder = model_folder(name, workdir)
        if args.memory_n:
            data["rows"] += measure_memory(name, folder, args)
            save()
        bench_model(name, folder, args, data["rows"], save)
    data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    report(data, out)


if __name__ == "__main__":
    main()
