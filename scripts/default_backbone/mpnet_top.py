"""Capacity beyond the head: train all-mpnet-base-v2's top encoder layer together with its
distilled MLM head (the alternative default of :mod:`mpnet_head`).

Measured with the head alone: the distillation and the MLM loss compete for the head's
768 × 768 transform (without MLM the head fits the teacher far better and forgets
fill-mask). The top layer adds capacity where a cloze reads it — at the mask. The encoder
below it stays exactly as packaged, so the layer trains on cached inputs (``mpnet_head.py
cache --top``: the top layer's input, whole sequences, of every distillation pair and of the
MLM windows that run cached) and is computed only where a loss reads it: keys and values at
every position, the rest at the masks (:func:`top_at`, equal to the layer's own forward
there). The other positions' outputs feed no cloze score, but they are the sentence space
that mean pooling (and so the teacher itself, and peers such as SetFit on this backbone)
reads: a hold term keeps them at the packaged layer's outputs. ``--weight-offset`` adds a
term for each candidate word's bias across texts (:func:`mpnet_head.offset_loss`);
``--offset-ema`` has that term read each pattern's offsets averaged over batches rather than
one batch's few texts (:class:`mpnet_head.RunningOffset`).

    python scripts/default_backbone/mpnet_head.py --mlm-windows 48000 cache --top
    python scripts/default_backbone/mpnet_head.py cache-eval --top
    python scripts/default_backbone/mpnet_top.py --init VARIANTS/K/model-16 \\
        --models VARIANTS/top-K train
    python scripts/default_backbone/mpnet_head.py --models VARIANTS/top-K --epochs 8 \\
        evaluate --fast

(VARIANTS: ``~/.cache/pet_kit/mpnet_head/variants``.) Runs of one recipe that differ only in
seed average into one model (a weight soup, measured like any other candidate):

    python scripts/default_backbone/mpnet_top.py --models VARIANTS/soup --epochs 2 \\
        soup VARIANTS/top-K/model-2 VARIANTS/top-K-s1/model-2

The model is a plain ``MPNetForMaskedLM``. ``cache-eval --top`` stores the top layer's
inputs at every evaluation input, so the states above a trained layer are computed from them
(:func:`eval_states`, tested equal to running the model): the training history screens
the development tasks, held-out MLM and fact probes every ``--screen-every`` epochs, and
``evaluate --fast`` measures the gates in a minute; ``evaluate`` without it runs the model
through pet_kit as a user would.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import copy
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import argtypes  # noqa: E402
import distill_cloze as dc  # noqa: E402
import mpnet_head as mh  # noqa: E402

log = logging.getLogger("mpnet_top")


def top_at(model: Any, h: Any, attention_mask: Any, rows: Any, pos: Any, layer: Any = None) -> Any:
    """The top encoder layer's output at positions ``(rows[i], pos[i])`` of the inputs
    ``h`` (``(batch, length, hidden)``, the layer's input), shape ``(len(rows), hidden)``;
    ``layer``: another layer in its place (the packaged one, for the hold term).

    The same numbers as the layer's forward over whole sequences (tested), at the cost of
    keys and values for every position and the rest for the asked positions only.
    """
    import torch

    enc = model.mpnet.encoder
    layer = enc.layer[-1] if layer is None else layer
    attn = layer.attention.attn
    n_heads, d = attn.num_attention_heads, attn.attention_head_size
    length = h.shape[1]
    k = attn.k(h).view(*h.shape[:2], n_heads, d)  # (B, L, H, d)
    v = attn.v(h).view(*h.shape[:2], n_heads, d)
    hq = h[rows, pos]  # (N, D)
    q = attn.q(hq).view(-1, n_heads, d)
    scores = torch.einsum("nhd,nlhd->nhl", q, k[rows]) / math.sqrt(d)
    rel = torch.arange(length)[None, :] - pos[:, None]  # memory − context
    n_buckets = enc.relative_attention_bias.num_embeddings
    bucket = enc.relative_position_bucket(rel, num_buckets=n_buckets)
    scores = scores + enc.relative_attention_bias(bucket).permute(0, 2, 1)
    scores = scores.masked_fill(attention_mask[rows][:, None, :] == 0, torch.finfo(h.dtype).min)
    ctx = torch.einsum("nhl,nlhd->nhd", scores.softmax(-1), v[rows]).reshape(len(rows), -1)
    a = layer.attention.LayerNorm(attn.o(ctx) + hq)
    return layer.output(layer.intermediate(a), a)


def load_eval(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``cache-eval --top``'s two files: the top layer's inputs and the frozen states."""
    import torch

    path = out / mh.EVAL_TOP
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `mpnet_head.py cache-eval --top` first")
    return torch.load(path), torch.load(out / mh.EVAL_STATES)


def eval_states(model: Any, top: dict[str, Any], cached: dict[str, Any]) -> dict[str, Any]:
    """``cache-eval``'s payload ``cached`` with the states above ``model``'s top layer,
    computed from that layer's cached inputs ``top`` (:func:`load_eval`): what
    :class:`mpnet_head.Screen` measures, the same numbers as running the model."""
    import torch

    def at(b: dict[str, Any], rows: Any, pos: Any) -> Any:
        return top_at(model, b["h"].float(), b["attention_mask"], rows, pos)

    with torch.no_grad():
        sets = {name: {**d, "states": torch.cat([at(b, torch.arange(len(b["h"])), b["mask_pos"])
                                                 for b in top["sets"][name]])}
                for name, d in cached["sets"].items()}  # fmt: skip
        mlm = torch.cat([at(b, *b["masked"].nonzero(as_tuple=True)) for b in top["mlm"]])
        probes = {text: at({**p, "attention_mask": torch.ones(p["h"].shape[:2], dtype=torch.long)},
                           torch.tensor([0]), torch.tensor([p["pos"]]))[0]
                  for text, p in top["probes"].items()}  # fmt: skip
    return {"sets": sets, "mlm_states": mlm, "mlm_labels": cached["mlm_labels"], "probes": probes}


def load_top(folder: Path) -> list[dict[str, Any]]:
    """A folder's cached top-layer inputs, memory-mapped: they are copied once into the
    training tensors, so reading them costs page cache instead of a second copy in memory."""
    import torch

    return [torch.load(f, mmap=True) for f in sorted(folder.glob("*.pt"))]


def cmd_train(args: argparse.Namespace) -> int:
    """Train the top layer and the head; write ``MODELS/model-EPOCHS`` with provenance."""
    import torch
    import torch.nn.functional as F
    from transformers import MPNetForMaskedLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dest = mh.fresh_dest(args.models, args.epochs)  # refused before training, not after
    if args.offset_ema and not args.weight_offset:
        raise SystemExit(f"--offset-ema {args.offset_ema:g} averages the offset term, which"
                         " --weight-offset 0 leaves out: give the term a weight"
                         " (the recipe's is 5) or drop --offset-ema")  # fmt: skip
    base, tok = mh.base_model(args.out)
    model = MPNetForMaskedLM.from_pretrained(str(args.init)) if args.init else base
    model.train(False)
    data = mh.Data(args.run, args.texts, tok, args.patterns_per_text)
    top = args.out / "top"
    pairs = load_top(top / mh.states_name(args.texts, data.per_text))
    if len(pairs) * mh.CHUNK < len(data.pairs):
        raise SystemExit("the top layer's inputs are not cached: run `mpnet_head.py cache --top`")
    windows = load_top(top / "mlm")
    if not windows:
        raise SystemExit("no MLM windows with top-layer inputs: run `mpnet_head.py cache --top`")
    # pair i lives in file i // CHUNK, row i % CHUNK (files are padded per chunk)
    width = max(p["h"].shape[1] for p in pairs)
    H = torch.zeros(len(data.pairs), width, pairs[0]["h"].shape[2], dtype=torch.float16)
    A = torch.zeros(len(data.pairs), width, dtype=torch.long)
    P = torch.cat([p["mask_pos"] for p in pairs])[: len(data.pairs)]
    for j, p in enumerate(pairs):
        n = min(mh.CHUNK, len(data.pairs) - j * mh.CHUNK)
        H[j * mh.CHUNK : j * mh.CHUNK + n, : p["h"].shape[1]] = p["h"][:n]
        A[j * mh.CHUNK : j * mh.CHUNK + n, : p["h"].shape[1]] = p["attention_mask"][:n]
    lengths = A.sum(1)
    WH = torch.cat([w["h"] for w in windows])
    WA = torch.cat([w["attention_mask"] for w in windows])
    WM = torch.cat([w["masked"] for w in windows])
    WL = torch.cat([w["labels"] for w in windows])
    del pairs, windows  # the loaded files, now copied into H/A/P and WH/WA/WM/WL
    starts = torch.cat([torch.zeros(1, dtype=torch.long), WM.sum(1).cumsum(0)])
    n_held = max(1, len(WH) // 20)  # the last windows measure MLM, never trained on
    n_train = len(WH) - n_held
    head = model.lm_head
    E = model.mpnet.embeddings.word_embeddings.weight.detach()
    for p in model.parameters():
        p.requires_grad_(False)
    layer = model.mpnet.encoder.layer[-1]
    packaged = copy.deepcopy(base.mpnet.encoder.layer[-1])  # what the hold term keeps
    head_params = [head.dense.weight, head.dense.bias, head.layer_norm.weight,
                   head.layer_norm.bias, head.bias]  # fmt: skip
    for p in [*head_params, *layer.parameters()]:
        p.requires_grad_(True)
    opt = torch.optim.Adam([{"params": head_params, "lr": args.lr},
                            {"params": list(layer.parameters()), "lr": args.lr_layer}])  # fmt: skip
    perm = torch.randperm(len(data.pairs), generator=torch.Generator().manual_seed(1))
    val, train = perm[: len(perm) // 10], perm[len(perm) // 10 :]
    tids, targets = data.token_ids, mh.teacher_logits(data)
    patterns = torch.tensor([p for _, p in data.pairs])

    def transform(x: Any) -> Any:
        return head.layer_norm(F.gelu(head.dense(x)))

    def pair_logits(idx: Any) -> Any:
        w = int(lengths[idx].max())
        h = H[idx, :w].float()
        x = top_at(model, h, A[idx, :w], torch.arange(len(idx)), P[idx])
        return transform(x) @ E[tids].T + head.bias[tids]

    # the training batches' offset term; the validation pairs always take the plain one,
    # which leaves a running average alone
    train_offset = mh.offset_loss
    if args.offset_ema:
        train_offset = mh.RunningOffset(int(patterns.max()) + 1, len(tids), args.offset_ema)

    def pair_loss(
        idx: Any, chunk: int | None = None, offset: Any = mh.offset_loss
    ) -> tuple[Any, Any, Any]:
        """The three pair losses of ``idx``, the top layer run ``chunk`` pairs at a time
        (the validation pairs: the same losses, a fraction of the memory), the offset term
        by ``offset``."""
        parts = idx.split(chunk) if chunk else [idx]
        logits = torch.cat([pair_logits(part) for part in parts])
        kl, shape = mh.distill_losses(logits, targets[idx])
        return kl, shape, offset(logits, targets[idx], patterns[idx])

    def vocab_logits(x: Any) -> Any:
        return transform(x) @ E.T + head.bias

    def mlm_logits(h: Any, att: Any, masked: Any) -> Any:
        return vocab_logits(top_at(model, h.float(), att, *masked.nonzero(as_tuple=True)))

    def window_losses(h: Any, att: Any, masked: Any, labels: Any) -> tuple[Any, Any]:
        """MLM cross-entropy at the masks, and the hold term: relative squared error of the
        layer's output against the packaged layer's at 4 random unmasked positions of each
        window (the sentence space stays in place). One pass of the layer serves both."""
        h = h.float()
        rows, pos = masked.nonzero(as_tuple=True)
        n_mlm = len(rows)
        if args.weight_hold:
            free = (att.bool() & ~masked).float()
            hpos = torch.multinomial(free, 4).flatten()
            hrows = torch.arange(len(h)).repeat_interleave(4)
            rows, pos = torch.cat([rows, hrows]), torch.cat([pos, hpos])
        out = top_at(model, h, att, rows, pos)
        mlm = F.cross_entropy(vocab_logits(out[:n_mlm]), labels)
        if not args.weight_hold:
            return mlm, torch.zeros(())
        with torch.no_grad():
            old = top_at(model, h, att, hrows, hpos, layer=packaged)
        return mlm, F.mse_loss(out[n_mlm:], old) / old.var()

    def held_mlm() -> float:
        right = 0
        with torch.no_grad():
            for s in range(n_train, len(WH), 64):
                e = min(s + 64, len(WH))
                pred = mlm_logits(WH[s:e], WA[s:e], WM[s:e]).argmax(-1)
                right += int((pred == WL[starts[s] : starts[e]]).sum())
        return right / int(starts[-1] - starts[n_train])

    screen_inputs = None
    if args.screen_every and (args.out / mh.EVAL_TOP).is_file():
        screen_inputs = load_eval(args.out)
    elif args.screen_every:
        log.warning("no %s: the history will not screen the development tasks", mh.EVAL_TOP)
    per_step = max(1, round(args.mlm_batch / float(WM.sum(1).float().mean())))
    t0, history = time.time(), [{"epoch": 0, "held_mlm": round(held_mlm(), 4)}]
    log.info("start: %s", history[-1])
    for epoch in range(args.epochs):
        order = train[torch.randperm(len(train))]
        wperm = torch.randperm(n_train)
        for i, s in enumerate(range(0, len(order), 128)):
            kl, shape, offset = pair_loss(order[s : s + 128], offset=train_offset)
            at = (i * per_step) % n_train
            wi = wperm[at : at + per_step]
            labels = torch.cat([WL[starts[j] : starts[j + 1]] for j in wi.tolist()])
            mlm, hold = window_losses(WH[wi], WA[wi], WM[wi], labels)
            loss = args.weight_kl * kl + args.weight_shape * shape + args.weight_mlm * mlm
            loss = loss + args.weight_hold * hold + args.weight_offset * offset
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            vkl, vshape, voffset = pair_loss(val, chunk=256)
        history.append({"epoch": epoch + 1, "val_kl": round(float(vkl), 4),
                        "val_shape": round(float(vshape), 4),
                        "val_offset": round(float(voffset), 4),
                        "train_mlm": round(float(mlm.detach()), 4),
                        "train_hold": round(float(hold.detach()), 4),
                        "held_mlm": round(held_mlm(), 4)})  # fmt: skip
        last = epoch + 1 == args.epochs
        if screen_inputs is not None and ((epoch + 1) % args.screen_every == 0 or last):
            screen = mh.Screen(eval_states(model, *screen_inputs), tok)
            history[-1].update(screen.selection(transform, E, head.bias.detach()))
        log.info("epoch %d: %s (%.0f s)", epoch + 1, history[-1], time.time() - t0)
    for p in model.parameters():
        p.requires_grad_(False)
    provenance = {
        "name": "all-mpnet-base-v2 + distilled top layer and MLM head",
        "encoder": str(dc.teacher_path("mpnet")),
        "trained": "encoder.layer[-1] and lm_head.dense, lm_head.layer_norm, lm_head.bias"
                   " (decoder tied to the frozen word embeddings; layers below as packaged)",
        "top_layer": True, "init": str(args.init) if args.init else "base (new head)",
        "init_top_layer": bool(args.init) and mh.init_is_top_layer(args.init),
        "teacher": "the same encoder (as packaged), mean-pooled", "tau": dc.Config.tau,
        "texts": args.texts, "patterns_per_text": data.per_text, "pairs": len(data.pairs),
        "validation_pairs": len(val), "run": str(args.run), "text_mix": mh.text_mix(data.info),
        "candidates": len(data.keep), "patterns_sha256": data.info["patterns_sha256"],
        "mlm_windows": n_train, "mlm_positions": int(starts[n_train]),
        "mlm_held_windows": n_held,
        "mlm_batch": args.mlm_batch, "steps": args.epochs * -(-len(train) // 128),
        "losses": {"kl": args.weight_kl, "shape": args.weight_shape, "mlm": args.weight_mlm,
                   "hold": args.weight_hold, "offset": args.weight_offset,
                   **({"offset_ema": args.offset_ema} if args.offset_ema else {})},
        "epochs": args.epochs, "lr": args.lr, "lr_layer": args.lr_layer, "seed": args.seed,
        "train_seconds": round(time.time() - t0, 1), "history": history,
    }  # fmt: skip
    mh.write_model(model, tok, dest, provenance)
    return 0


# provenance keys on which every member of a soup must agree: the same recipe, other seeds
SOUP_SAME = ("top_layer", "init", "texts", "text_mix", "pairs", "candidates", "patterns_sha256",
             "mlm_windows", "losses", "epochs", "lr", "lr_layer")  # fmt: skip


def cmd_soup(args: argparse.Namespace) -> int:
    """The uniform weight average of top-layer runs of one recipe (seeds apart): one model
    with the runs' common direction and less of each seed's own, measured like any other."""
    from transformers import AutoTokenizer, MPNetForMaskedLM

    if len(args.members) < 2:
        raise SystemExit("soup needs at least two member models")
    if len({m.resolve() for m in args.members}) < len(args.members):
        raise SystemExit("a member is named twice: each run counts once in a soup")
    dest = mh.fresh_dest(args.models, args.epochs)  # refused before loading, not after
    provs = []
    for member in args.members:
        path = member / "pet_kit_provenance.json"
        try:
            provs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: not a trained model's provenance ({err})") from None
    for key in SOUP_SAME:
        values = {json.dumps(p.get(key), sort_keys=True) for p in provs}
        if len(values) > 1:
            raise SystemExit(
                f"the members differ in {key!r} ({', '.join(sorted(values))}):"
                " a soup averages runs of one recipe that differ only in seed"
            )
    if not provs[0].get("top_layer"):
        raise SystemExit("the members are not top-layer models (mpnet_top.py train)")
    model = MPNetForMaskedLM.from_pretrained(str(args.members[0]))
    own = model.state_dict()
    total = {k: v.detach().clone().double() for k, v in own.items()}
    for member in args.members[1:]:
        other = MPNetForMaskedLM.from_pretrained(str(member)).state_dict()
        for k in total:
            total[k] += other[k].double()
    model.load_state_dict({k: (v / len(args.members)).to(own[k].dtype) for k, v in total.items()})
    provenance = {
        **{k: provs[0][k] for k in provs[0] if k not in ("seed", "history", "train_seconds")},
        "name": f"uniform weight average of {len(provs)} top-layer runs",
        "soup_of": [str(m) for m in args.members], "seed": [p.get("seed") for p in provs],
        "train_seconds": round(sum(p["train_seconds"] for p in provs), 1),
        "history": [p.get("history", [])[-1:] for p in provs],  # each member's last epoch
    }  # fmt: skip
    mh.write_model(model, AutoTokenizer.from_pretrained(str(args.members[0])), dest, provenance)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=dc.DEFAULT_RUN, help="the prepared run")
    p.add_argument("--out", type=Path, default=mh.DEFAULT_OUT, help="mpnet_head's cache folder")
    p.add_argument("--models", type=Path, required=True, help="where model-EPOCHS goes")
    p.add_argument("--init", type=Path, help="a trained mpnet_head model to start from")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--texts", type=int, default=3072)
    p.add_argument("--patterns-per-text", type=int, default=2, help="as mpnet_head.py's")
    p.add_argument("--epochs", type=int, default=8)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the top layer and the head")
    t.add_argument("--lr", type=mh.weight, default=1e-3, help="the head's learning rate")
    t.add_argument("--lr-layer", type=mh.weight, default=1e-4, help="the top layer's")
    t.add_argument("--weight-kl", type=mh.weight, default=1.0)
    t.add_argument("--weight-shape", type=mh.weight, default=1.0)
    t.add_argument("--weight-mlm", type=mh.weight, default=1.0)
    t.add_argument("--weight-hold", type=mh.weight, default=1.0,
                   help="the top layer's outputs at unmasked positions stay the packaged"
                        " layer's (relative squared error)")  # fmt: skip
    t.add_argument("--weight-offset", type=mh.weight, default=0.0,
                   help="each candidate word's mean standardised logit per pattern matches"
                        " the teacher's (a label word's bias across texts)")  # fmt: skip
    t.add_argument("--offset-ema", type=argtypes.decay, default=0.0,
                   help="the offset term (--weight-offset) reads each pattern's offsets"
                        " averaged over batches with this decay (0: each batch's own)")  # fmt: skip
    t.add_argument("--mlm-batch", type=int, default=1024, help="masked positions per step")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--screen-every", type=int, default=2,
                   help="record development tasks, held-out MLM and fact probes every N epochs"
                        " and at the end (from cache-eval --top's inputs; 0: none)")  # fmt: skip
    t.set_defaults(func=cmd_train)
    u = sub.add_parser("soup", help="average the weights of runs that differ only in seed")
    u.add_argument("members", type=Path, nargs="+", help="model folders (VARIANT/model-2)")
    u.set_defaults(func=cmd_soup)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
