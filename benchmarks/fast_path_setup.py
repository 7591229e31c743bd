"""What the opt-in fast paths cost before the first prediction: time and memory.

For each backbone (the embedded default; a randomly initialised BERT with bert-base's
shapes, as in ``speed.py``) and each mode of ``PromptClassifier.optimize``: the seconds
from ``optimize(mode)`` to the end of the first one-text prediction (minus that of a
float32 one-text prediction, so only the path's own set-up is counted), the extra memory
the mode holds (the int8 copy of the encoder; bf16 copies nothing), and what it writes to
disk (nothing: neither mode exports or saves anything; a prompt saved afterwards is the
float32 prompt). Writes ``benchmarks/results/fast_path_setup.{json,md}``::

    python benchmarks/fast_path_setup.py --threads 1
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine, markdown_table, write_json
from speed import model_folder

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("bf16", "int8")

log = logging.getLogger("fast_path_setup")


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers, quantized packed weights included."""
    total = 0
    for value in module.state_dict().values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, tuple):  # packed quantized linear: (weight, bias)
            total += sum(v.numel() * v.element_size() for v in value if torch.is_tensor(v))
    return total


def measure(name: str, workdir: Path) -> dict[str, Any]:
    from pet_kit import PromptClassifier
    from pet_kit.model import fast_inference

    pvp = {
        "pattern": "[SOFT*2] {text} It was [MASK].",
        "verbalizer": {"pos": ["great"], "neg": ["terrible"]},
    }
    clf = PromptClassifier(pvp=pvp, model=model_folder(name, workdir), verbose=0).fit(None)
    clf.predict_proba(["warm-up"])
    t0 = time.perf_counter()
    clf.predict_proba(["one text"])
    one = time.perf_counter() - t0
    base = clf.model_.backbone.model
    rows: dict[str, Any] = {"float32_model_mb": tensor_bytes(base) / 2**20}
    for mode in MODES:
        fast_inference._CACHE.clear()  # every mode pays its own set-up
        t0 = time.perf_counter()
        clf.optimize(mode).predict_proba(["one text"])
        setup = time.perf_counter() - t0 - one
        extra = fast_inference._CACHE.get(base, {}).get(mode)
        rows[mode] = {
            "setup_seconds": round(max(setup, 0.0), 3),
            "extra_memory_mb": round(tensor_bytes(extra.model) / 2**20, 1) if extra else 0.0,
            "disk_mb": 0.0,
        }
        log.info("%s %s: %s", name, mode, rows[mode])
        clf.optimize(None)
    rows["float32_model_mb"] = round(rows["float32_model_mb"], 1)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["default", "bert-base"])
    p.add_argument("--threads", type=int)
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "pet_kit_speed"))
    p.add_argument("--out", default=str(RESULTS / "fast_path_setup.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "models": {m: measure(m, workdir) for m in args.models},
    }
    out = Path(args.out)
    write_json(out, data)
    rows = [
        [
            name,
            mode,
            f"{r[mode]['setup_seconds']:.2f}",
            f"{r[mode]['extra_memory_mb']:.1f} (float32 model {r['float32_model_mb']:.1f})",
            f"{r[mode]['disk_mb']:.0f}",
        ]
        for name, r in data["models"].items()
        for mode in MODES
    ]
    header = ["model", "mode", "set-up seconds", "extra memory MB", "disk MB"]
    text = (
        f"Torch threads {data['threads']}; set-up = optimize(mode) + first prediction - a"
        " float32 prediction of one text.\n\n" + "\n".join(markdown_table(header, rows)) + "\n"
    )
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
