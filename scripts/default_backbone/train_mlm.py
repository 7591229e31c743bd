"""Continue the MLM training of pet_kit's default backbone on the offline English corpus,
in time-boxed runs that resume, and measure what a new default must pass before it ships.

The corpus comes from ``scripts/default_backbone/build_corpus.py`` (sources, licences and
token counts: ``docs/mlm_corpus.md``). Training is :func:`pet_kit.train.adapt.adapt` on the
current default (``model=None``): the last two encoder layers and the MLM head, as shipped
today, so a new default costs the package no more megabytes. Each ``train`` call works for at most
``--max-minutes`` and leaves a checkpoint; calling it again continues (bit-identically) until
``--max-steps``, when the model folder is written. Run it wherever there is time: in the
background of a session, or on a GPU machine when one is lent (``--device cuda``).

    python scripts/default_backbone/build_corpus.py                     # once
    python scripts/default_backbone/train_mlm.py train --max-minutes 120  # repeat until complete
    python scripts/default_backbone/train_mlm.py evaluate                 # the gates, old vs new

``evaluate`` writes ``RUN/evaluation.json`` and prints the gates: held-out MLM accuracy on
the corpus's held-out texts (≥ 0.45), zero-shot Rotten Tomatoes with the shipped hard
pattern on the fixed 1,000 test texts (≥ 0.65), and evaluative adjectives among the top 5
fill-mask answers for "The movie was [MASK]." — for the current default and the new model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argtypes  # noqa: E402

DEFAULT_CORPUS = Path("~/.cache/pet_kit/mlm_corpus").expanduser()
DEFAULT_RUN = Path("~/.cache/pet_kit/default_mlm_run").expanduser()
EVALUATIVE = {
    "good", "great", "bad", "terrible", "excellent", "awful", "fine", "wonderful", "boring",
    "amazing", "brilliant", "poor", "fantastic", "horrible", "perfect", "funny", "beautiful",
    "nice", "interesting", "dull", "superb", "weak", "strong", "fun", "disappointing", "ok",
    "okay", "decent", "mediocre", "awesome", "entertaining", "stupid", "worse", "better",
    "best", "worst", "impressive", "lovely", "enjoyable", "silly", "sad", "brutal",
}  # fmt: skip
PROBES = (
    "The movie was [MASK].",
    "This is the best movie I have ever seen. It was [MASK].",
    "This is the worst movie I have ever seen. It was [MASK].",
    "The food was terrible. It was [MASK].",
    "The capital of France is [MASK].",
)

log = logging.getLogger("train_default_mlm")


def corpus_texts(corpus: Path, seed: int) -> tuple[list[str], dict[str, Any]]:
    """Every unit of every source in ``corpus`` (one per line), shuffled by ``seed``."""
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    texts: list[str] = []
    for name in sorted(manifest["sources"]):
        lines = (corpus / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        texts.extend(line for line in lines if line.strip())
        log.info("%s: %d units", name, len(lines))
    random.Random(seed).shuffle(texts)
    return texts, manifest


def cmd_train(args: argparse.Namespace) -> int:
    from pet_kit.train.adapt import adapt

    texts, _ = corpus_texts(args.corpus, args.seed)
    result = adapt(
        texts,
        args.run / "model",
        model=None,
        train=args.train,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        pack=True,
        heldout_fraction=0.01,
        checkpoint_dir=args.run / "checkpoint",
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        verbose=1 if sys.stderr.isatty() else 0,
    )
    state = "complete" if result.complete else "unfinished (run again to continue)"
    log.info(
        "step %d of %d, %.0f s in all: %s; held-out before %s",
        result.steps,
        result.max_steps,
        result.seconds,
        state,
        result.heldout_before,
    )
    return 0


def fill_mask(model: Any, tokenizer: Any, k: int = 5) -> dict[str, list[str]]:
    import torch

    out = {}
    with torch.no_grad():
        for text in PROBES:
            enc = tokenizer(text, return_tensors="pt")
            pos = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
            logits = model(**enc).logits[0, pos]
            out[text] = tokenizer.convert_ids_to_tokens(logits.topk(k).indices.tolist())
    return out


def hard_pattern() -> str:
    """The shipped Rotten Tomatoes template file's first hard pattern (as the benchmark)."""
    from pet_kit import load_pvps

    path = REPO / "templates" / "rotten_tomatoes.yaml"
    hard = next(p for p in load_pvps(str(path)) if not p.pattern.has_soft)
    return f"{path}#{hard.name.split('#', 1)[1]}"


def evaluate_one(model_ref: str | None) -> dict[str, Any]:
    """The gates for one backbone (``None``: the current default)."""
    from pet_kit import PromptClassifier
    from pet_kit.io import datasets
    from pet_kit.model.backbone import load_backbone

    test = datasets.load_task("rotten_tomatoes", "test", max_size=1000)
    clf = PromptClassifier(pvp=hard_pattern(), model=model_ref, verbose=0)
    accuracy = clf.fit(None).score(test["text"].tolist(), test["label"].tolist())
    backbone = load_backbone(model_ref, device="cpu")
    answers = fill_mask(backbone.model, backbone.tokenizer)
    movie = answers[PROBES[0]]
    return {
        "zero_shot_rotten_tomatoes": round(float(accuracy), 4),
        "fill_mask_top5": answers,
        "evaluative_in_top5": sorted(set(movie) & EVALUATIVE),
    }


def snapshot_checkpoint(args: argparse.Namespace) -> Path:
    """The unfinished run's current weights as a model folder (the run goes on as before)."""
    from pet_kit.train.adapt import snapshot

    meta = json.loads((args.run / "checkpoint" / "adapt_state.json").read_text(encoding="utf-8"))
    out = args.run / f"snapshot-{meta['step']}"
    if not (out / "pet_kit_adapt.json").is_file():
        texts, _ = corpus_texts(args.corpus, args.seed)
        snapshot(texts, out, checkpoint_dir=args.run / "checkpoint", heldout_fraction=0.01)
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    model_dir = snapshot_checkpoint(args) if args.checkpoint else args.run / "model"
    report: dict[str, Any] = {"current_default": evaluate_one(None), "model": str(model_dir)}
    if (model_dir / "pet_kit_adapt.json").is_file():
        info = json.loads((model_dir / "pet_kit_adapt.json").read_text(encoding="utf-8"))
        report["steps"] = f"{info['steps']} of {info['settings']['max_steps']}"
        report["new"] = evaluate_one(str(model_dir))
        report["heldout_mlm"] = {"before": info["heldout_before"], "after": info["heldout_after"]}
        new = report["new"]
        report["gates"] = {
            "heldout_mlm_accuracy_ge_0.45": info["heldout_after"]["accuracy"] >= 0.45,
            "zero_shot_rt_ge_0.65": new["zero_shot_rotten_tomatoes"] >= 0.65,
            "evaluative_adjective_in_top5": bool(new["evaluative_in_top5"]),
        }
    report["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out = args.run / ("evaluation-checkpoint.json" if args.checkpoint else "evaluation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--run", type=Path, default=DEFAULT_RUN, help="checkpoint + model folder")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (resumes a checkpoint of the same run)")
    t.add_argument("--max-steps", type=int, default=20_000)
    t.add_argument("--max-minutes", type=argtypes.positive, help="time box of this call")
    t.add_argument("--train", default="top2", help="what trains (default: as shipped)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--learning-rate", type=argtypes.non_negative, default=1e-4)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int)
    t.add_argument("--device")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="measure the gates (current default vs the new model)")
    e.add_argument(
        "--checkpoint",
        action="store_true",
        help="measure the unfinished run's checkpoint (written as RUN/snapshot-STEP)",
    )
    e.add_argument("--seed", type=int, default=0, help="the train run's --seed")
    e.set_defaults(func=cmd_evaluate)
    return p


def steady_malloc() -> bool:
    """Keep glibc from hoarding freed memory over a long run (Linux only; else a no-op).

    Every step masks a different number of tokens, so the tensors change size step to
    step; with glibc's adaptive mmap threshold the freed blocks stay in the heap and the
    process grew 2–7 MB a step (the default run: 2.9 → 7.2 GB in its first 35 minutes).
    A fixed threshold (64 KiB) and trim threshold (128 KiB) kept it flat in a 275-step
    probe: ``MALLOC_MMAP_THRESHOLD_=65536
    MALLOC_TRIM_THRESHOLD_=131072`` in the environment does the same for any program.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-3, 65536)) and bool(libc.mallopt(-1, 131072))
    except (OSError, AttributeError):  # not glibc
        return False


def main(argv: list[str] | None = None) -> int:
    steady_malloc()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
