"""Run :mod:`distill_cloze` on a lent GPU machine: pack what the run needs into a bundle
small enough to travel (64 MiB a call), train there, bring the trained layers back.

The teacher (all-mpnet-base-v2, 438 MB) cannot travel, so the bundle carries what the
teacher *says* instead of the teacher:

* ``encode`` — the teacher's embeddings of a seeded subset of the distillation texts, on
  this machine's CPU, in chunks that resume (``RUN/bundle-src/``);
* ``pack`` — the fills and the text embeddings projected on the top ``--rank`` principal
  directions of the candidate fills (centred per pattern: a softmax over candidates does
  not see a shift shared by all of them), stored as int8 with one scale per row; the
  student in float16; pre-tokenised MLM windows; the measured fidelity of the compressed
  teacher (KL to the exact one) in the manifest;
* ``train`` — on the device: :class:`distill_cloze.Run` fed from the bundle (``--teacher
  bundle``) or with the student's own frozen encoder as teacher (``--teacher minilm-live``,
  all-MiniLM-L6-v2 exactly, so nothing extra travels), the step count fitted to a time box;
  writes the trained tensors (float16) to ``--out``;
* ``encode-extra`` — more texts for the mix, windows of named corpus sources (e.g. the
  opinionated ones: conversation, fortunes, fiction) with the teacher's embeddings, on this
  machine's CPU; ``train --extra DIR`` adds them to the bundle's texts (``--extra-repeat``
  times), ``--init RUN`` starts the student where an earlier run ended (a later stage);
* ``import`` — turns what came back into a run folder that ``distill_cloze.py evaluate``,
  ``report`` and ``export`` read.

The bundle (~85 MiB) travels in two calls: the student folder first, copied out of the working
tree (``cp -r .gpu/a /tmp/stage_a``: a folder carried into one call is gone by the next), then
the rest with ``ln -s /tmp/stage_a/student BUNDLE/student && gpu_variants.sh BUNDLE OUT MIN``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import hashlib
import json
import logging
import lzma
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import argtypes  # noqa: E402
import distill_cloze as dc  # noqa: E402

log = logging.getLogger("distill_bundle")
ENCODE_CHUNK = 512
PACE_FROM, PACE_TO = 50, 150  # steps over which `train` measures its pace


def subset_ids(n_texts: int, total: int, seed: int) -> np.ndarray:
    """The seeded subset of distillation texts a bundle carries (a prefix of one fixed
    permutation, so a larger subset extends a smaller one)."""
    return np.random.default_rng([seed, 7]).permutation(total)[:n_texts]


def cmd_encode(args: argparse.Namespace) -> int:
    """Teacher embeddings of the subset, chunk by chunk (each chunk one atomic file)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    prep = args.run / "prepared"
    info = json.loads((prep / "manifest.json").read_text(encoding="utf-8"))
    texts = (prep / "texts.txt").read_text(encoding="utf-8").splitlines()
    ids = subset_ids(args.texts, len(texts), info["seed"])
    out = args.run / "bundle-src" / f"text-emb-{info['teacher']}"
    out.mkdir(parents=True, exist_ok=True)
    teacher = dc.Teacher(info["teacher"])
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else float("inf")
    t0, done = time.time(), 0
    for start in range(0, len(ids), ENCODE_CHUNK):
        path = out / f"{start:07d}.npy"
        if path.is_file():
            continue
        if time.time() > deadline:
            break
        chunk = [
            " ".join(texts[i].split()[: args.max_text_words])
            for i in ids[start : start + ENCODE_CHUNK]
        ]
        order = np.argsort([len(t) for t in chunk])
        emb = teacher.encode([chunk[i] for i in order], batch_size=64).numpy()
        emb = emb[np.argsort(order)].astype(np.float16)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, path)
        done += len(chunk)
        log.info("encoded %d texts (%.1f texts/s)", start + len(chunk), done / (time.time() - t0))
    return 0


def cmd_encode_extra(args: argparse.Namespace) -> int:
    """Windows of ``--sources`` (``name:weight``) from the corpus, kept apart from the
    development tasks, with the teacher's embeddings (chunks that resume)."""
    import dev_tasks
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out, rng = args.out, np.random.default_rng([args.seed, 11])
    emb_dir = out / "emb"
    if not (out / "texts.txt").is_file():
        blocklist = dev_tasks.ngram_blocklist(dev_tasks.load_all())
        weights = dict((s.split(":")[0], float(s.split(":")[1]) if ":" in s else 1.0)
                       for s in args.sources)  # fmt: skip
        texts, counts = [], {}
        for name, w in weights.items():
            units = (args.corpus / f"{name}.txt").read_text(encoding="utf-8").split("\n")
            pool = [t for u in units if u.strip() for t in dc.windows(u, 48)
                    if not dev_tasks.blocked(t, blocklist)]  # fmt: skip
            n = min(len(pool), round(args.texts * w / sum(weights.values())))
            texts += [pool[i] for i in rng.choice(len(pool), n, replace=False)]
            counts[name] = {"weight": w, "windows": len(pool), "taken": n}
        texts = [texts[i] for i in rng.permutation(len(texts))]
        out.mkdir(parents=True, exist_ok=True)
        info = {"sources": counts, "texts": len(texts), "teacher": args.teacher,
                "corpus": str(args.corpus), "seed": args.seed,
                "max_text_words": args.max_text_words}  # fmt: skip
        dc.atomic_write_text(out / "manifest.json", json.dumps(info, indent=1) + "\n")
        dc.atomic_write_text(out / "texts.txt", "\n".join(texts) + "\n")
    texts = (out / "texts.txt").read_text(encoding="utf-8").splitlines()
    emb_dir.mkdir(exist_ok=True)
    teacher, t0 = dc.Teacher(args.teacher), time.time()
    for start in range(0, len(texts), ENCODE_CHUNK):
        path = emb_dir / f"{start:07d}.npy"
        if path.is_file():
            continue
        chunk = [" ".join(t.split()[: args.max_text_words]) for t in texts[start : start + 512]]
        emb = teacher.encode(chunk, batch_size=64).numpy().astype(np.float16)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, path)
        log.info("encoded %d of %d texts (%.0f s)", start + len(chunk), len(texts),
                 time.time() - t0)  # fmt: skip
    return 0


class ExtraSignal:
    """A signal's texts plus ``encode-extra`` texts (``repeat`` times) with their exact
    teacher embeddings; the rest (fills, MLM units) is the base signal's."""

    def __init__(self, base: Any, extra: Path, repeat: int) -> None:
        import torch

        files = sorted((extra / "emb").glob("*.npy"))
        emb = torch.from_numpy(np.concatenate([np.load(f) for f in files])).float()
        texts = (extra / "texts.txt").read_text(encoding="utf-8").splitlines()[: len(emb)]
        self.base, self.n_base = base, len(base.texts)
        self.extra_emb = emb
        self.texts = base.texts + texts * repeat
        self.info = {**base.info, "extra": {
            **json.loads((extra / "manifest.json").read_text(encoding="utf-8")),
            "encoded": len(emb), "repeat": repeat}}  # fmt: skip
        self.fill_single, self.fill_multi = base.fill_single, base.fill_multi
        self.mlm_units = base.mlm_units

    def embed(self, ids: list[int], texts: list[str]) -> Any:
        import torch

        base = [k for k, i in enumerate(ids) if i < self.n_base]
        out = torch.empty(len(ids), self.extra_emb.shape[1])
        if base:  # one call for the base signal's rows (a live teacher encodes them together)
            got = self.base.embed([ids[k] for k in base], [texts[k] for k in base])
            out[base] = got.float().cpu()
        for k, i in enumerate(ids):
            if i >= self.n_base:
                out[k] = self.extra_emb[(i - self.n_base) % len(self.extra_emb)]
        return out


def read_xz(path: Path) -> list[str]:
    return lzma.decompress(path.read_bytes()).decode("utf-8").splitlines()


def write_xz(path: Path, lines: list[str]) -> None:
    dc.atomic_write_bytes(path, lzma.compress(("\n".join(lines) + "\n").encode("utf-8"), preset=9))


def quantise(x: Any) -> tuple[Any, Any]:
    """int8 values and one float16 scale per row (last axis)."""
    import torch

    scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale.half()


def dequantise(q: Any, scale: Any) -> Any:
    return q.float() * scale.float()


def teacher_fidelity(
    exact_fill: Any, exact_text: Any, fill: Any, text: Any, tau: float, seed: int = 0, n: int = 500
) -> dict[str, float]:
    """KL(exact ‖ packed) and top-10 overlap of the teacher's candidate distribution on
    ``n`` random (text, pattern) pairs."""
    import torch

    rng = np.random.default_rng(seed)
    rows = rng.choice(len(exact_text), min(n, len(exact_text)), replace=False)
    pats = rng.integers(0, exact_fill.shape[0], len(rows))
    a = torch.stack([exact_text[i] @ exact_fill[p].T for i, p in zip(rows, pats, strict=True)])
    b = torch.stack([text[i] @ fill[p].T for i, p in zip(rows, pats, strict=True)])
    la, lb = (a / tau).log_softmax(-1), (b / tau).log_softmax(-1)
    kl = float((la.exp() * (la - lb)).sum(-1).mean())
    top = [
        len(set(x.topk(10).indices.tolist()) & set(y.topk(10).indices.tolist())) / 10
        for x, y in zip(a, b, strict=True)
    ]
    return {"kl": round(kl, 4), "top10_overlap": round(float(np.mean(top)), 3), "pairs": len(rows)}


def cmd_pack(args: argparse.Namespace) -> int:
    """Write the bundle folder (student, compressed teacher, texts, MLM units, manifest)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from pet_kit.model.default_backbone import default_model_path

    prep = args.run / "prepared"
    info = json.loads((prep / "manifest.json").read_text(encoding="utf-8"))
    cfg = dc.Config()
    texts = (prep / "texts.txt").read_text(encoding="utf-8").splitlines()
    ids = subset_ids(max(args.texts, args.live_texts), len(texts), info["seed"])
    chosen = [" ".join(texts[i].split()[: cfg.max_text_words]) for i in ids]
    src = args.run / "bundle-src" / f"text-emb-{info['teacher']}"
    chunks = []
    for start in range(0, args.texts, ENCODE_CHUNK):
        path = src / f"{start:07d}.npy"
        if not path.is_file():
            break
        chunks.append(np.load(path))
    if not chunks:
        raise SystemExit(f"no teacher embeddings in {src}: run `distill_bundle.py encode` first")
    text_exact = torch.from_numpy(np.concatenate(chunks)[: args.texts]).float()
    n_taught = len(text_exact)
    out = args.out
    if out.exists():
        raise SystemExit(f"{out} exists: choose another --out (a bundle is never overwritten)")
    staged = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staged, ignore_errors=True)
    (staged / "student").mkdir(parents=True)
    # student: the run's starting weights in float16 (the decoder is tied to the embeddings)
    model, _ = dc.build_student(cfg.start)
    state = {
        k: v.half().contiguous()
        for k, v in model.state_dict().items()
        if k != "cls.predictions.decoder.weight"
    }
    save_file(state, str(staged / "student" / "model.safetensors"), metadata={"format": "pt"})
    for f in default_model_path().iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copyfile(f, staged / "student" / f.name)
    # teacher: fills and texts on the top principal directions of the centred fills
    fills = load_file(str(prep / f"fills-{info['teacher']}.safetensors"))
    centred = {g: fills[g].float() - fills[g].float().mean(1, keepdim=True) for g in fills}
    flat = torch.cat([centred["single"], centred["multi"]], 1).reshape(-1, text_exact.shape[1])
    sample = flat[
        torch.from_numpy(np.random.default_rng(0).choice(len(flat), 40_000, replace=False))
    ]
    _, vectors = torch.linalg.eigh(sample.T @ sample)
    basis = vectors[:, -args.rank :].flip(1)  # (D, R), largest first
    tensors, packed = {}, {}
    for g in ("single", "multi"):
        q, sc = quantise(centred[g] @ basis)
        tensors[f"{g}_q"], tensors[f"{g}_s"] = q, sc
        packed[g] = dequantise(q, sc)
    q, sc = quantise(text_exact @ basis)
    tensors["text_q"], tensors["text_s"] = q, sc
    fidelity = teacher_fidelity(
        fills["single"].float(), text_exact, packed["single"], dequantise(q, sc), cfg.tau
    )
    save_file(tensors, str(staged / "teacher.safetensors"), metadata={"format": "pt"})
    write_xz(staged / "texts.txt.xz", chosen)
    units = (prep / "mlm_units.txt").read_text(encoding="utf-8").splitlines()[: args.mlm_units]
    write_xz(staged / "mlm_units.txt.xz", units)
    manifest = {
        "words": info["words"],
        "multi_words": info["multi_words"],
        "patterns": info["patterns"],
        "patterns_sha256": info["patterns_sha256"],
        "teacher": info["teacher"],
        "prepared_seed": info["seed"],
        "texts": len(chosen),
        "texts_taught": n_taught,
        "mlm_units": len(units),
        "rank": args.rank,
        "fidelity": fidelity,
        "start": cfg.start,
        "corpus": info["corpus"],
    }
    digest = hashlib.sha256()
    for name in ("teacher.safetensors", "texts.txt.xz", "mlm_units.txt.xz"):
        digest.update(dc.file_sha256(staged / name).encode())
    manifest["id"] = digest.hexdigest()[:12]
    (staged / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(staged, out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    log.info(
        "bundle %s: %.1f MiB; %d texts (%d with teacher embeddings), rank %d: %s",
        out,
        size,
        len(chosen),
        n_taught,
        args.rank,
        fidelity,
    )
    return 0


# --------------------------------------------------------------------------- signals
class BundleSignal:
    """The packed teacher: texts' and fills' projections (int8) dotted as the exact
    embeddings would be."""

    def __init__(self, bundle: Path) -> None:
        from safetensors.torch import load_file

        self.info = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        t = load_file(str(bundle / "teacher.safetensors"))
        self.fill_single = dequantise(t["single_q"], t["single_s"])
        self.fill_multi = dequantise(t["multi_q"], t["multi_s"])
        self.text_emb = dequantise(t["text_q"], t["text_s"])
        self.texts = read_xz(bundle / "texts.txt.xz")[: len(self.text_emb)]
        self.mlm_units = read_xz(bundle / "mlm_units.txt.xz")

    def embed(self, ids: list[int], texts: list[str]) -> Any:
        return self.text_emb[ids]


class LiveSignal:
    """all-MiniLM-L6-v2 itself as the teacher: a frozen copy of the student's starting
    encoder, mean-pooled and normalised as sentence-transformers does."""

    def __init__(self, bundle: Path, model: Any, tok: Any, device: Any) -> None:
        import copy

        import torch

        self.info = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        self.info = {**self.info, "teacher": "minilm-live"}
        self.encoder = copy.deepcopy(model.bert).to(device).eval().requires_grad_(False)
        self.tok, self.device = tok, device
        self.texts = read_xz(bundle / "texts.txt.xz")
        self.mlm_units = read_xz(bundle / "mlm_units.txt.xz")
        self.fill_single, self.fill_multi = (
            torch.stack([self.encode([dc.pattern_phrase(p, w) for w in words])
                         for p in self.info["patterns"]])  # (P, W, D), on the device
            for words in (self.info["words"], self.info["multi_words"])
        )  # fmt: skip

    def encode(self, texts: list[str], batch_size: int = 512) -> Any:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                enc = self.tok(
                    texts[i : i + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.encoder(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
                ).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out)

    def embed(self, ids: list[int], texts: list[str]) -> Any:
        return self.encode(texts)


# ----------------------------------------------------------------------------- train
def load_student(bundle: Path) -> tuple[Any, Any]:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    folder = bundle / "student"
    model = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(str(folder)))
    state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if m != "cls.predictions.decoder.weight"]:
        raise SystemExit(f"student weights do not fit: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if (
        model.cls.predictions.decoder.weight.data_ptr()
        != model.bert.embeddings.word_embeddings.weight.data_ptr()
    ):
        raise SystemExit("the decoder is not tied to the word embeddings")
    return model.to(torch.float32), AutoTokenizer.from_pretrained(str(folder))


def continue_from(model: Any, run: Path) -> dict[str, Any]:
    """Load the trained tensors of ``run``'s checkpoint into ``model`` (a later stage starts
    where that run ended); what was loaded, for the provenance."""
    import torch
    from safetensors import safe_open

    path = run / dc.CHECKPOINT
    names = dict(model.named_parameters())
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["state"])
        keys = [k for k in fh.keys() if k.startswith("p.")]
        with torch.no_grad():
            for k in keys:
                if k[2:] not in names:
                    raise SystemExit(f"{path}: {k[2:]} is not a tensor of the student")
                names[k[2:]].copy_(fh.get_tensor(k).float())
    log.info("started from %s (step %d, %d tensors)", path, meta["step"], len(keys))
    return {"run": str(run), "step": meta["step"], "config": meta["config"], "tensors": len(keys)}


def cmd_train(args: argparse.Namespace) -> int:
    """Train on the bundle for ``--fit-minutes``, fitting ``max_steps`` to the measured pace,
    and write the trained tensors (float16, files of at most 15 MiB) to ``--out``."""
    import dataclasses

    import torch
    from safetensors.torch import save_file

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    bundle = args.bundle
    model, tok = load_student(bundle)
    init = continue_from(model, args.init) if args.init else None
    device = torch.device(args.device)
    if args.teacher == "bundle":
        signal: Any = BundleSignal(bundle)
    else:
        signal = LiveSignal(bundle, model, tok, device)
    if args.extra:
        if (
            signal.info["teacher"]
            != json.loads((args.extra / "manifest.json").read_text(encoding="utf-8"))["teacher"]
        ):
            raise SystemExit(f"{args.extra} was encoded by another teacher")
        signal = ExtraSignal(signal, args.extra, args.extra_repeat)
    overrides = {
        k: getattr(args, k)
        for k in dc.Config.__dataclass_fields__
        if getattr(args, k, None) is not None
    }
    cfg = dc.Config(
        **{
            **overrides,
            "teacher": signal.info["teacher"],
            "source": f"bundle:{signal.info['id']}",
            "start": signal.info["start"],
        }
    )
    args.run.mkdir(parents=True, exist_ok=True)
    args.mlm_units = len(signal.mlm_units)
    run = dc.Run(args, cfg, student=(model, tok), signal=signal)
    log.info("%s ready in %.0f s", args.name, time.time() - t_start)
    # the pace is measured once every process sharing the device is past its set-up
    run.train(None, 10**9, stop_at=PACE_FROM)
    t_from = time.time()
    run.train(None, 10**9, stop_at=PACE_TO)
    pace = (time.time() - t_from) / (PACE_TO - PACE_FROM)
    left = 60 * args.fit_minutes - (time.time() - t_start)
    steps = PACE_TO + max(0, int(0.97 * left / pace))
    run.cfg = dataclasses.replace(run.cfg, max_steps=steps)
    log.info("%s: %.3f s/step -> max_steps %d", args.name, pace, steps)
    run.train(max(0.1, left / 60 + 0.5), args.checkpoint_every)
    trained = {n: p.detach().half().cpu().contiguous() for n, p in run.params.items()}
    meta = {
        "name": args.name,
        "step": run.step,
        "seconds": round(run.seconds, 1),
        "config": dataclasses.asdict(run.cfg),
        "config_key": run.cfg.key(),
        "history": run.history,
        "pace_s_per_step": round(pace, 4),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "init": init,
        "bundle": {
            k: v
            for k, v in signal.info.items()
            if k not in ("words", "multi_words", "patterns", "corpus")
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    part, size, parts = {}, 0, []
    for n, t in trained.items():
        if part and size + t.numel() * 2 > 15 * 2**20:
            parts.append(part)
            part, size = {}, 0
        part[n] = t
        size += t.numel() * 2
    parts.append(part)
    for i, p in enumerate(parts):
        save_file(p, str(args.out / f"{args.name}-{i}.safetensors"), metadata={"format": "pt"})
    (args.out / f"{args.name}.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    log.info("%s: %d steps in %.0f s -> %s", args.name, run.step, run.seconds, args.out)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """A run folder for ``distill_cloze.py evaluate`` from what a device run sent back."""
    import shutil

    import torch
    from safetensors.torch import load_file

    meta = json.loads((args.src / f"{args.name}.json").read_text(encoding="utf-8"))
    trained: dict[str, Any] = {}
    for f in sorted(args.src.glob(f"{args.name}-*.safetensors")):
        trained.update({f"p.{k}": v.to(torch.float32) for k, v in load_file(str(f)).items()})
    run_dir = args.dest / args.name
    (run_dir / "prepared").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run / "prepared" / "heldout.txt", run_dir / "prepared" / "heldout.txt")
    # the prepared run's provenance, with the teacher and the bundle this run learnt from
    info = json.loads((args.run / "prepared" / "manifest.json").read_text(encoding="utf-8"))
    info.update(teacher=meta["config"]["teacher"], bundle=meta["bundle"])
    dc.atomic_write_text(run_dir / "prepared" / "manifest.json", json.dumps(info, indent=1) + "\n")
    base = args.run / "evaluation-current-default.json"
    if base.is_file():
        shutil.copyfile(base, run_dir / base.name)
    state = {
        "step": meta["step"],
        "seconds": meta["seconds"],
        "config": meta["config"],
        "config_key": meta["config_key"],
        "adam_steps": {},
        "history": meta["history"],
        "device_run": {
            k: meta.get(k) for k in ("name", "pace_s_per_step", "device", "bundle", "init")
        },
    }
    dc.atomic_save_tensors(run_dir / dc.CHECKPOINT, trained, {"state": json.dumps(state)})
    log.info(
        "imported %s (%d tensors, step %d) into %s", args.name, len(trained), meta["step"], run_dir
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=dc.DEFAULT_RUN, help="run folder (prepared)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode", help="teacher embeddings of the bundle's texts (resumes)")
    e.add_argument("--texts", type=int, default=16_384)
    e.add_argument("--max-text-words", type=int, default=dc.Config.max_text_words)
    e.add_argument("--max-minutes", type=argtypes.positive)
    e.set_defaults(func=cmd_encode)
    k = sub.add_parser("pack", help="write the bundle folder")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--texts", type=int, default=16_384, help="texts with teacher embeddings")
    k.add_argument("--live-texts", type=int, default=120_000, help="texts for minilm-live")
    k.add_argument("--mlm-units", type=int, default=60_000)
    k.add_argument("--rank", type=int, default=192)
    k.set_defaults(func=cmd_pack)
    t = sub.add_parser("train", help="train on a bundle (on the device)")
    t.add_argument("--bundle", type=Path, required=True)
    t.add_argument("--teacher", choices=("bundle", "minilm-live"), default="bundle")
    t.add_argument("--device", default="cuda")
    t.add_argument("--fit-minutes", type=argtypes.positive, required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--checkpoint-every", type=int, default=500)
    t.add_argument("--init", type=Path, help="start from this run's checkpoint (a later stage)")
    t.add_argument("--extra", type=Path, help="an encode-extra folder: more texts for the mix")
    t.add_argument("--extra-repeat", type=int, default=1, help="times the extra texts count")
    for name, field in dc.Config.__dataclass_fields__.items():
        if name not in ("teacher", "source", "start", "max_steps"):
            t.add_argument("--" + name.replace("_", "-"), type=type(field.default), dest=name)
    t.set_defaults(func=cmd_train)
    x = sub.add_parser("encode-extra", help="more texts for the mix, with teacher embeddings")
    x.add_argument("--sources", nargs="+", required=True, help="corpus sources, name[:weight]")
    x.add_argument("--texts", type=int, default=4096)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--corpus", type=Path, default=dc.DEFAULT_CORPUS)
    x.add_argument("--teacher", default="mpnet", choices=("minilm", "mpnet"))
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--max-text-words", type=int, default=dc.Config.max_text_words)
    x.set_defaults(func=cmd_encode_extra)
    m = sub.add_parser("import", help="a run folder from what the device sent back")
    m.add_argument("--src", type=Path, required=True)
    m.add_argument("--name", required=True)
    m.add_argument("--dest", type=Path, default=dc.DEFAULT_RUN.parent / "cloze_distill_gpu")
    m.set_defaults(func=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
