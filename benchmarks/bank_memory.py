"""Memory of one backbone + N prompts (PromptBank) against N separate backbones.

Each side runs in a fresh process: it loads N saved prompts and predicts a few texts
with every one of them, then reports its peak resident memory (``VmHWM``). The
prompts are trained briefly on Rotten Tomatoes with different seeds (their content does
not change memory). Writes ``benchmarks/results/bank_memory.{json,md}``.

    python benchmarks/bank_memory.py --n 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import machine, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PVP = str(REPO / "templates" / "rotten_tomatoes.yaml#soft")
TEXTS = ["a gripping, beautifully acted film", "a tedious mess", "it was fine"] * 4


def _status_mib(key: str) -> float:
    """A memory figure of this process from /proc (VmHWM: peak RSS since exec; unlike
    ru_maxrss it is not inherited from the parent process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status (Linux only)")


def child(mode: str, folder: str, n: int) -> None:
    """Load N prompts (shared or separate backbones), predict, print peak RSS (MiB)."""
    from transformers import AutoModelForMaskedLM

    from pet_kit import PromptClassifier
    from pet_kit.model.default_backbone import default_model_path
    from pet_kit.serving.bank import PromptBank

    base = _status_mib("VmRSS")
    names = [f"task_{i}" for i in range(n)]
    if mode == "bank":
        bank = PromptBank.from_folder(folder)
        for name in names:
            bank.predict(TEXTS, name)
    else:
        for name in names:
            model = AutoModelForMaskedLM.from_pretrained(str(default_model_path()))
            clf = PromptClassifier.load(Path(folder) / name, model=model)
            clf.predict(TEXTS)
            globals().setdefault("_keep", []).append(clf)  # all N stay loaded
    print(json.dumps({"peak_mib": _status_mib("VmHWM"), "imports_mib": base}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--out", default=str(RESULTS / "bank_memory.json"))
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        child(args.child[0], args.child[1], args.n)
        return
    from pet_kit import PromptClassifier
    from pet_kit.datasets import load_task, sample_k_shot

    train = sample_k_shot(load_task("rotten_tomatoes", "train"), 8, seed=0)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            clf = PromptClassifier(pvp=PVP, max_steps=2, random_state=i, verbose=0)
            clf.fit(train["text"], train["label"]).save(Path(tmp) / f"task_{i}")
        for mode in ("bank", "separate"):
            cmd = [sys.executable, __file__, "--n", str(args.n), "--child", mode, tmp]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
    ratio = rows["separate"]["peak_mib"] / rows["bank"]["peak_mib"]
    data = {"machine": machine(), "n_prompts": args.n, "rows": rows, "separate_over_bank": ratio}
    write_json(Path(args.out), data)
    bank, sep = rows["bank"], rows["separate"]
    over = (sep["peak_mib"] - sep["imports_mib"]) / (bank["peak_mib"] - bank["imports_mib"])
    data["separate_over_bank_above_imports"] = over
    write_json(Path(args.out), data)
    text = (
        f"| {args.n} prompts | peak RSS | above the imports |\n|---|---:|---:|\n"
        f"| one backbone (PromptBank) | {bank['peak_mib']:.0f} MiB |"
        f" {bank['peak_mib'] - bank['imports_mib']:.0f} MiB |\n"
        f"| {args.n} backbones | {sep['peak_mib']:.0f} MiB |"
        f" {sep['peak_mib'] - sep['imports_mib']:.0f} MiB |\n"
        f"| ratio | {ratio:.2f}x | {over:.2f}x |\n"
    )
    Path(args.out).with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
