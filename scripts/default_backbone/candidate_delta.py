"""An all-mpnet-base-v2 candidate as the tensors its training changed, so that it outlives the
machine that trained it.

A candidate of :mod:`mpnet_head` / :mod:`mpnet_top` is a 420 MB model folder, but only its
top encoder layer and MLM head differ from the base the recipe builds on every machine
(``mpnet_head.base_model``: the packaged encoder and a head seeded 0). ``pack`` keeps those
tensors, bit for bit, in one safetensors file (~31 MB for a top-layer candidate: small
enough to keep beside the results, or to carry to a lent device), with the candidate's
config and provenance and a digest of each tensor it left to the base. ``unpack`` rebuilds
the model folder from the base here and refuses a base whose tensors differ from the one it
was packed against, naming the first that differs.

    python scripts/default_backbone/candidate_delta.py pack VARIANTS/NAME/model-2 NAME.safetensors
    python scripts/default_backbone/candidate_delta.py unpack NAME.safetensors VARIANTS/NAME/model-2

(VARIANTS: ``~/.cache/pet_kit/mpnet_head/variants``; ``--out`` is the folder whose ``base``
model ``unpack`` builds on, as in ``mpnet_head.py``.) Both write atomically: a file or
folder appears whole or not at all, and an existing one is never replaced.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import distill_cloze as dc  # noqa: E402

log = logging.getLogger("candidate_delta")
WEIGHTS = "model.safetensors"
PROVENANCE = "pet_kit_provenance.json"
# files of a model folder that the delta carries itself; the rest (tokenizer) come from the base
OWN_FILES = (WEIGHTS, "config.json", PROVENANCE)


def digests(tensors: dict[str, Any], names: list[str]) -> dict[str, str]:
    """sha256 of each of ``names``: its dtype, shape and bytes."""
    import torch

    out = {}
    for name in sorted(names):
        t = tensors[name].contiguous()
        h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    path = folder / WEIGHTS
    if not path.is_file():
        raise SystemExit(f"{folder}: no {WEIGHTS} there (a model folder is expected)")
    return load_file(str(path))


def pack(model_dir: Path, base_dir: Path, out: Path) -> list[str]:
    """Write ``out``: the tensors of ``model_dir`` that differ from ``base_dir``'s, with the
    model's config and provenance and a digest of each tensor left to the base; returns the
    names packed."""
    import torch

    if out.exists() or out.is_symlink():
        raise SystemExit(f"{out} exists: pack writes a new file (move it away or name another)")
    model, base = _weights(model_dir), _weights(base_dir)
    if set(model) != set(base):
        odd = sorted(set(model) ^ set(base))
        raise SystemExit(f"{model_dir} and the base {base_dir} hold different tensors ({odd[:3]}"
                         "…): not a candidate of this base")  # fmt: skip
    for name, t in model.items():
        if t.shape != base[name].shape or t.dtype != base[name].dtype:
            raise SystemExit(f"{model_dir}: {name} is {t.dtype} {tuple(t.shape)}, the base's"
                             f" {base[name].dtype} {tuple(base[name].shape)}")  # fmt: skip
    changed = sorted(k for k, t in model.items() if not torch.equal(t, base[k]))
    kept = sorted(set(model) - set(changed))
    provenance = model_dir / PROVENANCE
    meta = {
        "format": "pt",
        "config": (model_dir / "config.json").read_text(encoding="utf-8"),
        "provenance": provenance.read_text(encoding="utf-8") if provenance.is_file() else "{}",
        "base_tensors": json.dumps(digests(base, kept)),
        "packed_from": str(model_dir),
    }
    dc.atomic_save_tensors(out, {k: model[k] for k in changed}, meta)
    log.info("packed %d of %d tensors of %s into %s (%.1f MB)", len(changed), len(model),
             model_dir, out, out.stat().st_size / 1e6)  # fmt: skip
    return changed


def unpack(delta: Path, base_dir: Path, dest: Path) -> None:
    """Rebuild the model folder ``dest`` from ``base_dir`` and the packed ``delta``; refused,
    with nothing written, when the base's unchanged tensors are not the ones packed against."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    if dest.exists() or dest.is_symlink():
        raise SystemExit(f"{dest} exists: unpack writes a new folder (move it away)")
    if not delta.is_file():
        raise SystemExit(f"{delta}: no such packed candidate")
    with safe_open(str(delta), framework="pt") as fh:
        meta = fh.metadata() or {}
    if "base_tensors" not in meta:
        raise SystemExit(f"{delta}: not a file written by candidate_delta.py pack")
    changed, base = load_file(str(delta)), _weights(base_dir)
    packed_base = json.loads(meta["base_tensors"])
    kept = sorted(packed_base)
    missing = sorted((set(changed) | set(kept)) - set(base))
    if missing:
        raise SystemExit(f"the base {base_dir} lacks {missing[:3]}: packed against another model")
    here = digests(base, kept)
    odd = [k for k in kept if here[k] != packed_base[k]]
    if odd:
        raise SystemExit(f"the base {base_dir} differs from the one {delta.name} was packed"
                         f" against in {len(odd)} of the {len(kept)} tensors it gives (first:"
                         f" {odd[0]}): rebuild the base as the recipe does, or pack again on"
                         " this machine")  # fmt: skip
    state = {**{k: base[k] for k in kept}, **changed}
    staged = dest.parent / f".{dest.name}-staged"
    if staged.exists():
        raise SystemExit(f"{staged} exists (an interrupted unpack leaves it): remove it first")
    staged.mkdir(parents=True)
    for f in base_dir.iterdir():  # the tokenizer's files
        if f.is_file() and f.name not in OWN_FILES:
            shutil.copy2(f, staged / f.name)
    save_file({k: v.contiguous() for k, v in state.items()}, str(staged / WEIGHTS),
              metadata={"format": "pt"})  # fmt: skip
    (staged / "config.json").write_text(meta["config"], encoding="utf-8")
    provenance = {**json.loads(meta["provenance"]), "unpacked_from": str(delta)}
    (staged / PROVENANCE).write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    os.replace(staged, dest)
    log.info("unpacked %s onto %s: %s", delta, base_dir, dest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="mpnet_head.py's folder, whose base model the"
                   " delta builds on (default: mpnet_head.py's)")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("pack", help="a candidate model folder -> the tensors it changed")
    k.add_argument("model", type=Path)
    k.add_argument("delta", type=Path)
    u = sub.add_parser("unpack", help="a packed candidate -> its model folder")
    u.add_argument("delta", type=Path)
    u.add_argument("model", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    import mpnet_head as mh

    base_dir = mh.base_folder(args.out or mh.DEFAULT_OUT)  # built once, as the recipe does
    if args.command == "pack":
        pack(args.model, base_dir, args.delta)
    else:
        unpack(args.delta, base_dir, args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
