"""The alternative default the cloze-distillation issue asks to measure: all-mpnet-base-v2
as the backbone, its encoder exactly as packaged (frozen), with an MLM head distilled from
the encoder's own sentence space.

all-mpnet-base-v2 ships without an MLM head. Its encoder is frozen, so the head learns from
cached states: for each distillation text and a pattern of the generic library, the state
at the pattern's mask; the target is the teacher's distribution over the candidate words
(the same encoder, mean-pooled: cos(text, pattern's words with the candidate in the slot) /
τ, as in :mod:`distill_cloze`). The loss is KL plus the ``shape`` term (per-text
correlation of all candidates' logits with the teacher's), plus the ordinary MLM loss on
masked corpus windows so that fill-mask works. The texts, their teacher embeddings, the
patterns, the candidates and the MLM units are those of the prepared run of
``distill_cloze.py prepare`` / ``distill_bundle.py encode`` (nothing from a benchmark task).

    python scripts/default_backbone/mpnet_head.py cache      # states, resumable (~15 CPU-min)
    python scripts/default_backbone/mpnet_head.py train      # the head (~11 CPU-min, 16 epochs)
    python scripts/default_backbone/mpnet_head.py cache-eval # evaluation states (~12 CPU-min)
    python scripts/default_backbone/mpnet_head.py evaluate   # the gates, as distill_cloze
    python scripts/default_backbone/distill_cloze.py report --also ~/.cache/pet_kit/mpnet_head

The encoder is frozen, so its states at every evaluation input are the same for every head:
``cache-eval`` stores them once (the development tasks' and the gates' texts at their PVPs'
masks, encoded by pet_kit as a user's classifier encodes them; the held-out MLM tokens under
:func:`distill_cloze.heldout_mlm`'s masking; the fill-mask probes), and a head is then measured on
them in seconds, with the same numbers as running it (:class:`Screen`). ``train`` records the
development tasks, held-out MLM accuracy and fact probes every ``--screen-every`` epochs in
the provenance's history (what a variant is chosen by; the gates are not in it), and
``evaluate --fast`` writes the full evaluation from the cached states.

``evaluate`` writes ``evaluation-EPOCHS.json`` in :mod:`distill_cloze`'s format beside
``model-EPOCHS`` (in ``--models``, default ``--out``), so the candidate is published beside
the MiniLM students by ``distill_cloze.py report``. The measured variants used
``--mlm-windows 12000`` or ``24000`` and ``train --mlm-batch 1024 --epochs 16`` (K: with
``--weight-mlm 0.3``: the MLM loss competes with the distillation for the head).
``cache --top`` also stores the top layer's inputs, for training that layer with the head
(:mod:`mpnet_top`).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import argtypes  # noqa: E402
import distill_bundle as db  # noqa: E402
import distill_cloze as dc  # noqa: E402

log = logging.getLogger("mpnet_head")
DEFAULT_OUT = dc.DEFAULT_RUN.parent / "mpnet_head"
CHUNK = 64  # pairs per forward pass and per cache file
MLM_CHUNK = 256  # MLM windows per cache file


def base_folder(out: Path) -> Path:
    """``OUT/base``: all-mpnet-base-v2 as a masked LM (the packaged encoder, a new head seeded
    0), written once from the packaged teacher and reused."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer, MPNetForMaskedLM

    folder = out / "base"
    if not (folder / "model.safetensors").is_file():
        src = dc.teacher_path("mpnet")
        torch.manual_seed(0)
        model = MPNetForMaskedLM(AutoConfig.from_pretrained(str(src)))
        state = {f"mpnet.{k}": v for k, v in load_file(str(src / "model.safetensors")).items()}
        missing, _ = model.load_state_dict(state, strict=False)
        if [m for m in missing if not m.startswith("lm_head.")]:
            raise SystemExit(f"{src}: encoder tensors missing: {missing[:3]}")
        staged = out / ".base-staged"
        model.save_pretrained(staged)
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(staged)
        os.replace(staged, folder)
    return folder


def base_model(out: Path) -> tuple[Any, Any]:
    """all-mpnet-base-v2 as a masked LM: the packaged encoder, a new head (``RUN/base``)."""
    from transformers import AutoTokenizer, MPNetForMaskedLM

    folder = base_folder(out)
    model = MPNetForMaskedLM.from_pretrained(str(folder)).eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


class Data:
    """The prepared run's texts, teacher embeddings, fills and candidates, and the
    (text, pattern) pairs whose states are cached.

    Each text has two patterns; ``per_text`` > 2 appends each text's further patterns
    (other patterns of the library, drawn on their own seed) after all of those, so the
    first ``2 * n_texts`` pairs, and the cache files holding them, are the two-pattern run's.
    """

    def __init__(self, run: Path, n_texts: int, tok: Any, per_text: int = 2) -> None:
        import torch
        from safetensors.torch import load_file

        prep = run / "prepared"
        self.info = json.loads((prep / "manifest.json").read_text(encoding="utf-8"))
        if self.info["teacher"] != "mpnet":
            raise SystemExit(f"{prep} was prepared for {self.info['teacher']}, not mpnet")
        self.fills = load_file(str(prep / "fills-mpnet.safetensors"))["single"].float()
        keep, ids = [], []
        for i, w in enumerate(self.info["words"]):
            t = tok(w, add_special_tokens=False)["input_ids"]
            if len(t) == 1:
                keep.append(i)
                ids.append(t[0])
        self.keep, self.token_ids = torch.tensor(keep), torch.tensor(ids)
        every = (prep / "texts.txt").read_text(encoding="utf-8").splitlines()
        rows = db.subset_ids(n_texts, len(every), self.info["seed"])
        self.texts = [" ".join(every[i].split()[: dc.Config.max_text_words]) for i in rows]
        src = sorted((run / "bundle-src" / "text-emb-mpnet").glob("*.npy"))
        emb = np.concatenate([np.load(f) for f in src[: -(-n_texts // db.ENCODE_CHUNK)]])
        if len(emb) < n_texts:
            raise SystemExit(f"only {len(emb)} texts encoded: run distill_bundle.py encode")
        self.emb = torch.from_numpy(emb[:n_texts]).float()
        rng = np.random.default_rng(0)
        n_pat = len(self.info["patterns"])
        if not 2 <= per_text <= n_pat:
            raise SystemExit(f"--patterns-per-text {per_text}: choose 2 to {n_pat}"
                             " (the library's patterns)")  # fmt: skip
        firsts = [rng.choice(n_pat, 2, replace=False) for _ in range(n_texts)]
        self.pairs = [(t, int(p)) for t in range(n_texts) for p in firsts[t]]
        more = np.random.default_rng(1)
        for t in range(n_texts):
            rest = np.setdiff1d(np.arange(n_pat), firsts[t])
            self.pairs += [(t, int(p)) for p in more.choice(rest, per_text - 2, replace=False)]
        self.per_text = per_text
        self.mlm_units = (prep / "mlm_units.txt").read_text(encoding="utf-8").splitlines()


def states_name(n_texts: int, per_text: int) -> str:
    """The cache folder of the pairs' states: ``states-TEXTS`` (two patterns a text) or
    ``states-TEXTS-pPER_TEXT``."""
    return f"states-{n_texts}" + (f"-p{per_text}" if per_text != 2 else "")


def link_two_pattern_files(folder: Path, n_texts: int, per_text: int) -> int:
    """Hard-link into ``folder`` (a ``states-TEXTS-pN`` cache) the whole files of the same
    texts' two-pattern cache beside it: the same pairs, already computed. Returns how many
    were linked; a file already there is kept."""
    src = folder.parent / states_name(n_texts, 2)
    if per_text == 2 or not src.is_dir():
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    linked = 0
    for start in range(0, 2 * n_texts - CHUNK + 1, CHUNK):  # whole files only
        name = f"{start:07d}.pt"
        if (src / name).is_file() and not (folder / name).exists():
            os.link(src / name, folder / name)
            linked += 1
    return linked


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` of cached states in one rename (a killed run leaves no partial file)."""
    import torch

    torch.save(obj, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


def head_fn(model: Any) -> tuple[Any, Any, Any]:
    """``(transform, weight, bias)`` of a masked LM's head, split as pet_kit scores with it."""
    from pet_kit.model.backbone import head_parts

    parts = head_parts(model)
    return parts.transform, parts.weight, parts.bias


def teacher_logits(data: Data) -> Any:
    """Every pair's teacher logits over the kept candidates, ``(pairs, candidates)``:
    cos(text, pattern filled with the word) / τ (computed once: gathering each batch's fills
    cost most of a step)."""
    import torch

    pt = torch.tensor([p for _, p in data.pairs])
    tt = torch.tensor([t for t, _ in data.pairs])
    targets = torch.empty(len(data.pairs), len(data.keep))
    fills = data.fills[:, data.keep]
    for p in range(len(fills)):
        rows = (pt == p).nonzero().squeeze(1)
        targets[rows] = data.emb[tt[rows]] @ fills[p].T / dc.Config.tau
    return targets


def distill_losses(logits: Any, target: Any) -> tuple[Any, Any]:
    """``(KL, shape)`` of the student's candidate logits against the teacher's: KL of the
    distributions, and one minus the per-text correlation over all candidates."""
    import torch.nn.functional as F

    kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(target, -1), log_target=True,
                  reduction="batchmean")  # fmt: skip
    return kl, 1 - dc.correlation(logits, target, dim=1).mean()


def offset_loss(logits: Any, target: Any, patterns: Any) -> Any:
    """Each candidate word's *offset* error: per pattern, the mean over the batch's texts of
    the student's standardised logit of the word minus the teacher's, squared, averaged over
    the words and the batch's patterns. KL weighs a word by its (often tiny) teacher
    probability and the shape term counts it once among thousands per text; a label word's
    bias across texts is what this term teaches. Standardised per text, as the shape term
    compares them (a text's scale does not change which word wins)."""
    return pattern_offsets(logits, target, patterns)[1].pow(2).mean()


def pattern_offsets(logits: Any, target: Any, patterns: Any) -> tuple[Any, Any]:
    """``(groups, offsets)``: the batch's patterns and, per pattern, the mean over its texts
    of the student's standardised logit of each candidate minus the teacher's,
    ``(len(groups), candidates)`` (what :func:`offset_loss` squares)."""
    import torch

    def z(x: Any) -> Any:
        x = x - x.mean(1, keepdim=True)
        return x / x.std(1, keepdim=True).clamp_min(1e-6)

    diff = z(logits) - z(target)
    groups, inverse = patterns.unique(return_inverse=True)
    sums = torch.zeros(len(groups), diff.shape[1]).index_add(0, inverse, diff)
    counts = torch.bincount(inverse, minlength=len(groups)).to(diff.dtype)
    return groups, sums / counts[:, None]


class RunningOffset:
    """The offset term with each pattern's offsets averaged over batches.

    A batch holds a few texts of each pattern (128 pairs over 24 patterns: about five), so
    the square of a batch's mean is as much those texts' own spread as a word's bias across
    texts. This keeps an exponential moving average of each pattern's offsets (``beta`` a
    batch, debiased for its start as Adam debiases its moments) and returns
    ``mean(2 m o - m²)`` over the batch's patterns and words, with ``m`` the updated average
    (held constant) and ``o`` the batch's offsets: its value is ``mean(m²)`` when the batch
    agrees with the average, its gradient that of ``mean(o²)`` with the estimate of the
    bias in place of the batch's noisy one.
    """

    def __init__(self, n_patterns: int, n_words: int, beta: float) -> None:
        import torch

        if not 0.0 < beta < 1.0:
            raise ValueError(f"beta must lie strictly between 0 and 1, not {beta}")
        self.beta = beta
        self.avg = torch.zeros(n_patterns, n_words)
        self.updates = torch.zeros(n_patterns)

    def __call__(self, logits: Any, target: Any, patterns: Any) -> Any:
        import torch

        groups, offsets = pattern_offsets(logits, target, patterns)
        with torch.no_grad():
            self.avg[groups] = self.beta * self.avg[groups] + (1 - self.beta) * offsets
            self.updates[groups] += 1
            m = self.avg[groups] / (1 - self.beta ** self.updates[groups])[:, None]
        return (2 * m * offsets - m * m).mean()


def fresh_dest(models: Path, epochs: int) -> Path:
    """``MODELS/model-EPOCHS``, refused when it exists (a finished model is never replaced)."""
    dest = models / f"model-{epochs}"
    if dest.exists():
        raise SystemExit(f"{dest} exists: move it away (or use another --epochs or --models)")
    return dest


def write_model(model: Any, tok: Any, dest: Path, provenance: dict[str, Any]) -> None:
    """The trained model, tokenizer and provenance into ``dest`` in one rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.parent / f".{dest.name}-staged"
    model.save_pretrained(staged)
    tok.save_pretrained(staged)
    (staged / "pet_kit_provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    os.replace(staged, dest)
    log.info("wrote %s", dest)


def cmd_cache(args: argparse.Namespace) -> int:
    """States at the mask of every pair, and at the masked tokens of MLM windows."""
    import torch

    from pet_kit.train.adapt import _chunks, _mask_batch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model, tok = base_model(args.out)
    data = Data(args.run, args.texts, tok, args.patterns_per_text)
    bank = dc.PatternBank(data.info["patterns"], tok, dc.Config.max_length)
    pair_dir = states_name(args.texts, args.patterns_per_text)
    for folder in (args.out / pair_dir, args.out / "top" / pair_dir):
        if n := link_two_pattern_files(folder, args.texts, args.patterns_per_text):
            log.info("%s: %d files linked from the two-pattern cache", folder, n)
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else float("inf")
    t0 = time.time()

    def hidden(batch: dict[str, Any]) -> tuple[Any, Any]:
        """The encoder's output and the input of its top layer."""
        with torch.no_grad():
            out = model.mpnet(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_hidden_states=True,
            )
        return out.last_hidden_state, out.hidden_states[-2]

    def pending(folder: Path, total: int, step: int) -> Any:
        """(start, path) of each cache file still missing, until the time box ends."""
        folder.mkdir(exist_ok=True)
        for start in range(0, total, step):
            path = folder / f"{start:07d}.pt"
            if path.is_file():
                continue
            if time.time() > deadline:
                raise TimeoutError
            yield start, path
            log.info("%s: %d of %d (%.0f s)", folder.name, min(start + step, total), total,
                     time.time() - t0)  # fmt: skip

    # whole files only: a file's windows never depend on --mlm-windows, so a larger sample
    # later extends the cache instead of leaving a short file inside it
    n_windows = -(-args.mlm_windows // MLM_CHUNK) * MLM_CHUNK
    pick = np.random.default_rng(5).permutation(len(data.mlm_units))[: 3 * n_windows]
    chunks = _chunks(tok, [data.mlm_units[i] for i in pick], 64, pack=True)
    chunks = chunks[:n_windows]
    top = args.out / "top"

    def save_top(b: dict[str, Any], below: Any, path: Path) -> None:
        """A pair file's top-layer inputs, whole sequences (for mpnet_top.py)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save({"h": below.half(), "attention_mask": b["attention_mask"],
                     "mask_pos": b["mask_pos"]}, path)  # fmt: skip

    try:
        for start, path in pending(args.out / pair_dir, len(data.pairs), CHUNK):
            items = [(p, data.texts[t]) for t, p in data.pairs[start : start + CHUNK]]
            b = bank.batch(items, 1)
            h, below = hidden(b)
            if args.top:  # from the same pass (the loop below completes what this missed)
                save_top(b, below, top / path.parent.name / path.name)
            atomic_save(h[torch.arange(len(h)), b["mask_pos"]].half().clone(), path)
        for start, path in pending(args.out / "mlm", len(chunks), MLM_CHUNK):
            gen = torch.Generator().manual_seed(start)  # each file's masking on its own seed
            states, labels, inputs = [], [], []
            for b0 in range(start, min(start + MLM_CHUNK, len(chunks)), 32):
                b = _mask_batch(chunks[b0 : min(b0 + 32, start + MLM_CHUNK)], tok, gen, 0.15,
                                whole_word=True)  # fmt: skip
                m = b["labels"] != -100
                h, below = hidden(b)
                states.append(h[m].half())
                labels.append(b["labels"][m])
                if args.top:
                    inputs.append({"h": below.half(), "attention_mask": b["attention_mask"],
                                   "masked": m, "labels": b["labels"][m]})  # fmt: skip
            if args.top:  # the same windows and masking, for training the top layer
                (top / "mlm").mkdir(parents=True, exist_ok=True)
                atomic_save({k: torch.cat([x[k] for x in inputs]) for k in inputs[0]},
                            top / "mlm" / path.name)  # fmt: skip
            atomic_save((torch.cat(states), torch.cat(labels)), path)
        if args.top:
            for start, path in pending(top / pair_dir, len(data.pairs), CHUNK):
                items = [(p, data.texts[t]) for t, p in data.pairs[start : start + CHUNK]]
                b = bank.batch(items, 1)
                save_top(b, hidden(b)[1], path)
    except TimeoutError:
        log.info("time box over: run again to continue")
        return 0
    log.info("cached in %.0f s", time.time() - t0)
    return 0


EVAL_STATES = "eval-states.pt"
EVAL_TOP = "eval-top.pt"


def eval_sets() -> list[tuple[str, Any, list[str], list[Any]]]:
    """What a head is measured on, as ``(name, pvp, texts, labels)``: the gates' test subsets
    (names as in :data:`distill_cloze.GATES`) and the development tasks."""
    from pet_kit.io.datasets import load_task

    sets = []
    for ref in dc.GATES:
        test = load_task(ref.split("#")[0], "test", max_size=dc.GATE_TEST_SIZE)
        sets.append((ref, ref, test["text"].tolist(), test["label"].tolist()))
    for task in dc.dev_tasks.load_all():
        sets.append((task.name, task.pvp(), task.texts, task.labels))
    return sets


def cmd_cache_eval(args: argparse.Namespace) -> int:
    """The frozen encoder's states at every evaluation input (``OUT/eval-states.pt``); with
    ``--top`` also the top layer's inputs there (``OUT/eval-top.pt``, for :mod:`mpnet_top`)."""
    import torch

    from pet_kit import PromptClassifier

    torch.set_num_threads(args.threads)
    model, tok = base_model(args.out)
    sets: dict[str, Any] = {}
    top: dict[str, Any] = {"sets": {}, "mlm": [], "probes": {}}
    for name, pvp, texts, labels in eval_sets():
        clf = PromptClassifier(pvp=pvp, model=str(args.out / "base"), verbose=0).fit(None)
        scorer = clf.model_.scorer
        if [g.length for g in scorer.groups] != [1]:
            raise SystemExit(f"{name}: screening reads one-token label words only")
        examples = clf.model_.encode(texts)
        states, inputs = [], []
        for i in range(0, len(examples), 32):
            hook = _top_input(scorer.model) if args.top else contextlib.nullcontext([])
            with torch.no_grad(), hook as seen:
                states.append(scorer.mask_states(examples[i : i + 32], None))
            if args.top:
                batch = scorer.encoder.collate(examples[i : i + 32], 1)
                inputs.append({"h": seen[0].half(), "attention_mask": batch["attention_mask"],
                               "mask_pos": batch["mask_pos"]})  # fmt: skip
        classes = list(clf.classes_)
        sets[name] = {"states": torch.cat(states).half(),
                      "word_ids": scorer.groups[0].full_ids[:, 0].cpu(),
                      "word_label": scorer.word_label.cpu(), "n_labels": len(classes),
                      "y": torch.tensor([classes.index(v) for v in labels])}  # fmt: skip
        top["sets"][name] = inputs
        log.info("%s: %d texts", name, len(texts))
    heldout = (args.run / "prepared" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    mlm_h, mlm_y, probes = [], [], {}
    with torch.no_grad():
        for b in dc.heldout_batches(tok, heldout):
            m = b["labels"] != -100
            h = model.mpnet(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                            output_hidden_states=args.top)  # fmt: skip
            mlm_h.append(h.last_hidden_state[m].half())
            mlm_y.append(b["labels"][m])
            if args.top:
                top["mlm"].append({"h": h.hidden_states[-2].half(), "masked": m,
                                   "attention_mask": b["attention_mask"]})  # fmt: skip
        for text in dc.SHOW_PROBES:  # the fact probes and the rest of the report's
            enc, pos = dc.probe_input(tok, text)
            h = model.mpnet(**enc, output_hidden_states=args.top)
            probes[text] = h.last_hidden_state[0, pos]
            if args.top:
                top["probes"][text] = {"h": h.hidden_states[-2], "pos": pos}
    payload = {"sets": sets, "mlm_states": torch.cat(mlm_h), "mlm_labels": torch.cat(mlm_y),
               "probes": probes}  # fmt: skip
    atomic_save(payload, args.out / EVAL_STATES)
    log.info("wrote %s", args.out / EVAL_STATES)
    if args.top:
        atomic_save(top, args.out / EVAL_TOP)
        log.info("wrote %s", args.out / EVAL_TOP)
    return 0


@contextlib.contextmanager
def _top_input(model: Any) -> Iterator[list[Any]]:
    """The input of the encoder's top layer in the passes made inside the block (a list
    that a forward pre-hook fills)."""
    seen: list[Any] = []
    layer = model.base_model.encoder.layer[-1]
    handle = layer.register_forward_pre_hook(lambda _m, a, kw: seen.append(
        a[0] if a else kw["hidden_states"]), with_kwargs=True)  # fmt: skip
    try:
        yield seen
    finally:
        handle.remove()


class Screen:
    """A head measured on the cached evaluation states (``cache-eval``): the same numbers
    as running the model, since the encoder is frozen."""

    def __init__(self, cached: Path | dict[str, Any], tok: Any) -> None:
        import torch

        if isinstance(cached, Path):
            if not cached.is_file():
                raise SystemExit(f"{cached} is missing: run `cache-eval` first")
            cached = torch.load(cached)
        self.cached = cached  # a cache-eval payload (or one with another top layer's states)
        self.tok = tok

    def class_scores(self, name: str, transform: Any, weight: Any, bias: Any) -> Any:
        """Class scores ``(texts, classes)`` of evaluation set ``name``: the mean over each
        class's label words of the head's logits at the mask, as pet_kit scores them."""
        import torch

        d = self.cached["sets"][name]
        with torch.no_grad():
            words = transform(d["states"].float()) @ weight[d["word_ids"]].T
            words = words + bias[d["word_ids"]]
        onehot = torch.zeros(len(d["word_label"]), d["n_labels"])
        onehot[torch.arange(len(d["word_label"])), d["word_label"]] = 1.0
        return words @ (onehot / onehot.sum(0))

    def measure(self, transform: Any, weight: Any, bias: Any) -> dict[str, Any]:
        """``{"gates", "dev", "heldout_mlm", "fill_mask_top5"}`` of the head
        ``transform(h) @ weight.T + bias`` (the report format of :mod:`distill_cloze`)."""
        import torch

        out: dict[str, Any] = {"gates": {}, "dev": {}}
        with torch.no_grad():
            for name, d in self.cached["sets"].items():
                scores = self.class_scores(name, transform, weight, bias)
                acc = round(float((scores.argmax(1) == d["y"]).float().mean()), 4)
                out["gates" if name in dc.GATES else "dev"][name] = acc
            h, y = self.cached["mlm_states"], self.cached["mlm_labels"]
            correct = 0
            for i in range(0, len(y), 4096):
                logits = transform(h[i : i + 4096].float()) @ weight.T + bias
                correct += int((logits.argmax(1) == y[i : i + 4096]).sum())
            out["heldout_mlm"] = {"accuracy": round(correct / len(y), 4), "tokens": len(y)}
            out["fill_mask_top5"] = {
                text: self.tok.convert_ids_to_tokens(
                    (transform(state[None].float()) @ weight.T + bias)[0].topk(5).indices.tolist()
                )
                for text, state in self.cached["probes"].items()
            }
        return out

    def selection(self, transform: Any, weight: Any, bias: Any) -> dict[str, Any]:
        """What a variant is chosen by (development tasks, held-out MLM accuracy, fact
        probes kept; no gate), for a training history."""
        got = self.measure(transform, weight, bias)
        facts = sum(dc.keeps_fact(p, got["fill_mask_top5"][p]) for p in dc.FACT_PROBES)
        return {"dev": got["dev"], "heldout_mlm": got["heldout_mlm"]["accuracy"],
                "facts": f"{facts}/{len(dc.FACT_PROBES)}"}  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    """Train the head on the cached states; write ``RUN/model-EPOCHS`` with provenance."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dest = fresh_dest(args.models, args.epochs)  # refused before training, not after
    model, tok = base_model(args.out)
    data = Data(args.run, args.texts, tok, args.patterns_per_text)
    files = sorted((args.out / states_name(args.texts, data.per_text)).glob("*.pt"))
    if len(files) * CHUNK < len(data.pairs):
        raise SystemExit("the states are not all cached: run `cache` first")
    H = torch.cat([torch.load(f) for f in files])
    parts = sorted((args.out / "mlm").glob("*.pt"))[: -(-args.mlm_windows // MLM_CHUNK)]
    if len(parts) * MLM_CHUNK < args.mlm_windows:
        raise SystemExit("the MLM states are not all cached: run `cache` first")
    loaded = [torch.load(f) for f in parts]
    MH, ML = torch.cat([h for h, _ in loaded]), torch.cat([y for _, y in loaded])
    head = model.lm_head
    E = model.mpnet.embeddings.word_embeddings.weight.detach()
    for p in model.parameters():
        p.requires_grad_(False)
    params = [head.dense.weight, head.dense.bias, head.layer_norm.weight,
              head.layer_norm.bias, head.bias]  # fmt: skip
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=args.lr)
    perm = torch.randperm(len(data.pairs), generator=torch.Generator().manual_seed(1))
    val, train = perm[: len(perm) // 10], perm[len(perm) // 10 :]
    tids, targets = data.token_ids, teacher_logits(data)

    def transform(h: Any) -> Any:
        return head.layer_norm(F.gelu(head.dense(h.float())))

    def pair_loss(idx: Any) -> tuple[Any, Any]:
        return distill_losses(transform(H[idx]) @ E[tids].T + head.bias[tids], targets[idx])

    screen_path = args.out / EVAL_STATES
    screen = Screen(screen_path, tok) if args.screen_every and screen_path.is_file() else None
    t0, history = time.time(), []
    for epoch in range(args.epochs):
        order = train[torch.randperm(len(train))]
        mperm = torch.randperm(len(MH))
        for i, s in enumerate(range(0, len(order), 128)):
            kl, shape = pair_loss(order[s : s + 128])
            at = (i * args.mlm_batch) % len(MH)
            mi = mperm[at : at + args.mlm_batch]
            mlm = F.cross_entropy(transform(MH[mi]) @ E.T + head.bias, ML[mi])
            loss = args.weight_kl * kl + args.weight_shape * shape + args.weight_mlm * mlm
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            vkl, vshape = pair_loss(val)
        history.append({"epoch": epoch + 1, "val_kl": round(float(vkl), 4),
                        "val_shape": round(float(vshape), 4),
                        "train_mlm": round(float(mlm.detach()), 4)})  # fmt: skip
        if screen is not None and (
            (epoch + 1) % args.screen_every == 0 or epoch + 1 == args.epochs
        ):
            history[-1].update(screen.selection(transform, E, head.bias.detach()))
        log.info("epoch %d: %s (%.0f s)", epoch + 1, history[-1], time.time() - t0)
    provenance = {
        "name": "all-mpnet-base-v2 + distilled MLM head",
        "encoder": str(dc.teacher_path("mpnet")),
        "trained": "lm_head.dense, lm_head.layer_norm, lm_head.bias (decoder tied to the"
                   " frozen word embeddings; the encoder exactly as packaged)",
        "teacher": "the same encoder, mean-pooled", "tau": dc.Config.tau,
        "texts": args.texts, "pairs": len(data.pairs), "validation_pairs": len(val),
        "run": str(args.run), "text_mix": text_mix(data.info),
        "candidates": len(data.keep), "patterns_sha256": data.info["patterns_sha256"],
        "mlm_windows": args.mlm_windows, "mlm_positions": len(MH),
        "mlm_batch": args.mlm_batch, "steps": args.epochs * -(-len(train) // 128),
        "losses": {"kl": args.weight_kl, "shape": args.weight_shape, "mlm": args.weight_mlm},
        "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
        "train_seconds": round(time.time() - t0, 1), "history": history,
    }  # fmt: skip
    write_model(model, tok, dest, provenance)
    return 0


def init_is_top_layer(init: Path) -> bool:
    """Whether ``init`` is a top-layer model (its provenance says so); False when absent."""
    try:
        more = json.loads((init / "pet_kit_provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(more.get("top_layer"))


def text_mix(info: dict[str, Any]) -> dict[str, float] | None:
    """The source weights a prepared run drew its distillation texts with, where they differ
    from its corpus manifest's (``distill_cloze.py prepare --distill-weight``); None when the
    manifest's weights drew them."""
    weights = info.get("distill_weights")
    if not weights:
        return None
    try:
        corpus = Path(info["corpus"]["path"]) / "manifest.json"
        base = dc.distill_weights(json.loads(corpus.read_text(encoding="utf-8")), [])
    except (KeyError, OSError, ValueError):
        return dict(weights)  # the corpus is gone: every weight, not only the changed ones
    return {k: w for k, w in weights.items() if w != base.get(k, 1.0)}


def describe(prov: dict[str, Any]) -> str:
    """A trained head in one line, from its provenance (the report's candidate legend)."""
    weight = prov.get("losses", {}).get("mlm", 1.0)
    scaled = "" if weight == 1.0 else f", MLM loss × {weight:g}"
    offset = prov.get("losses", {}).get("offset", 0.0)
    scaled += f", offset term × {offset:g}" if offset else ""
    ema = prov.get("losses", {}).get("offset_ema")
    scaled += f" on offsets averaged over batches (decay {ema:g})" if offset and ema else ""
    if prov.get("top_layer"):
        init = Path(prov.get("init", ""))
        start = init.parent.name
        continued = prov.get("init_top_layer")  # recorded at training since it was added
        if continued is None:
            continued = init_is_top_layer(init)  # older provenance: the init's, on disk
        since = "continued from" if continued else "from head"
        trained = "(top layer and head trained" + (f", {since} {start})" if start else ")")
    else:
        trained = "(encoder frozen), distilled head"
    words = f" over {prov['candidates']:,} candidate words" if "candidates" in prov else ""
    n = prov.get("patterns_per_text", 2)
    per_text = f" ({n} patterns a text)" if n != 2 else ""
    if "soup_of" in prov:  # mpnet_top.py soup: one seed a member
        seeds = ", ".join(str(s) for s in prov["seed"])
        seed = f"seeds {seeds}, the {len(prov['soup_of'])} runs' weights averaged"
    else:
        seed = f"seed {prov.get('seed', 'none')}"
    mix = prov.get("text_mix")
    if mix:
        per_text += (
            " (distillation texts drawn with source weights "
            + ", ".join(f"{k} {w:g}" for k, w in sorted(mix.items()))
            + ")"
        )
    return (
        f"all-mpnet-base-v2 backbone {trained}: {prov['pairs']:,}"
        f" text-pattern pairs{per_text}{words}, {prov['mlm_positions']:,} masked corpus tokens"
        f" ({prov.get('mlm_batch', 256)} a step{scaled}),"
        f" {prov['epochs']} epoch{'s' if prov['epochs'] != 1 else ''}, {seed},"
        f" {prov['train_seconds'] / 60:.0f} CPU-min after caching"
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """The gates of :mod:`distill_cloze` for ``RUN/model-EPOCHS`` (its report format)."""
    import torch

    torch.set_num_threads(args.threads)
    model = args.models / f"model-{args.epochs}"
    prov = json.loads((model / "pet_kit_provenance.json").read_text(encoding="utf-8"))
    heldout = (args.run / "prepared" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    old = dc.baseline(args.run, heldout)
    if args.fast:
        from transformers import AutoTokenizer, MPNetForMaskedLM

        trained = MPNetForMaskedLM.from_pretrained(str(model))
        cached: Path | dict[str, Any] = args.out / EVAL_STATES
        if prov.get("top_layer"):  # the states above a trained top layer, from its inputs
            import mpnet_top

            cached = mpnet_top.eval_states(trained, *mpnet_top.load_eval(args.out))
        screen = Screen(cached, AutoTokenizer.from_pretrained(str(model)))
        new = screen.measure(*head_fn(trained))
    else:
        new = dc.evaluate_model(str(model), heldout)
    checks = dc.gate_checks(old, new)
    report = {"step": args.epochs, "of": args.epochs,
              "trained_seconds": prov["train_seconds"],
              "config": {"teacher": "mpnet (itself)", "epochs": args.epochs},
              "measured": "from cached encoder states (cache-eval)" if args.fast
                          else "by running the model",
              "description": describe(prov),
              "model": str(model), "current_default": old, "new": new, "checks": checks,
              "ship": all(checks.values()),
              "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    out = args.models / f"evaluation-{args.epochs}.json"
    dc.atomic_write_text(out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for k, v in checks.items():
        log.info("%s %s", "PASS" if v else "FAIL", k)
    return 0


#: The loss weights' and learning rates' argparse type (``mpnet_top.py`` uses it too).
weight = argtypes.non_negative


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=dc.DEFAULT_RUN, help="the prepared run")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="this candidate's folder")
    p.add_argument("--models", type=Path,
                   help="where train writes model-EPOCHS and evaluate its evaluation (default:"
                        " --out); one folder per variant, as distill_cloze.py report reads"
                        " the latest evaluation of each folder")  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--texts", type=int, default=3072, help="distillation texts")
    p.add_argument("--patterns-per-text", type=int, default=2,
                   help="pairs a text (its first two are the same at every setting)")  # fmt: skip
    p.add_argument("--mlm-windows", type=int, default=1200)
    p.add_argument("--epochs", type=int, default=8)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="encoder states at the masks (resumable)")
    c.add_argument("--max-minutes", type=argtypes.positive)
    c.add_argument("--top", action="store_true",
                   help="also store the top layer's inputs (whole sequences) of the MLM windows"
                        " this run caches and of every pair, for mpnet_top.py")  # fmt: skip
    c.set_defaults(func=cmd_cache)
    t = sub.add_parser("train", help="train the head on the cached states")
    t.add_argument("--lr", type=weight, default=1e-3)
    t.add_argument("--weight-kl", type=weight, default=1.0)
    t.add_argument("--weight-shape", type=weight, default=1.0)
    t.add_argument("--weight-mlm", type=weight, default=1.0)
    t.add_argument("--mlm-batch", type=int, default=256, help="masked positions per step")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train)
    t.add_argument("--screen-every", type=int, default=4,
                   help="epochs between development-task / MLM measurements in the history"
                        " (from cache-eval's states; 0: none)")  # fmt: skip
    e = sub.add_parser("evaluate", help="the ship gates, as distill_cloze evaluate")
    e.add_argument(
        "--fast", action="store_true", help="from cache-eval's states (seconds; the same numbers)"
    )
    e.set_defaults(func=cmd_evaluate)
    c = sub.add_parser("cache-eval", help="the encoder's states at every evaluation input")
    c.add_argument("--top", action="store_true",
                   help="also the top layer's inputs (for mpnet_top.py's screening)")  # fmt: skip
    c.set_defaults(func=cmd_cache_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    args.models = args.models or args.out
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
