"""Saved artefact size per tuning mode (and for the distilled linear student).

Each mode is trained briefly (sizes do not depend on how long) on Rotten Tomatoes K=8 with
the embedded default backbone and saved; the table lists the folder size on disk, the
number of trained numbers and the share of the backbone's size. Writes
``benchmarks/results/artefact_sizes.{json,md}``.

    python benchmarks/artefact_sizes.py
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from _common import machine, write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PVP = str(REPO / "templates" / "rotten_tomatoes.yaml#soft")
MODES = ("prompt", "prompt+head", "lora", "full")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(RESULTS / "artefact_sizes.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pet_kit import LinearStudent, PromptClassifier
    from pet_kit.datasets import load_task, sample_k_shot

    train = sample_k_shot(load_task("rotten_tomatoes", "train"), 8, seed=0)
    X, y = train["text"].tolist(), train["label"].tolist()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        backbone_bytes = None
        for mode in MODES:
            clf = PromptClassifier(pvp=PVP, tuning=mode, max_steps=1, verbose=0, random_state=0)
            clf.fit(X, y)
            folder = clf.save(Path(tmp) / mode.replace("+", "_"))
            model = clf.model_.backbone.model
            if backbone_bytes is None:
                # unique parameters (the tied decoder counted once)
                backbone_bytes = sum(t.numel() * t.element_size() for t in model.parameters())
            trained = clf.n_slots_ * model.get_input_embeddings().weight.shape[1]
            if clf.label_head_ is not None:
                trained += sum(t.numel() for t in clf.label_head_.parameters())
            if clf.backbone_delta_ is not None:
                trained += sum(t.numel() for t in clf.backbone_delta_.values())
            rows.append(
                {
                    "artefact": f"tuning={mode!r}",
                    "bytes": folder_bytes(folder),
                    "trained_numbers": int(trained),
                }
            )
        student = LinearStudent(classes=sorted(set(y))).fit(X, y)
        folder = student.save(Path(tmp) / "student")
        rows.append(
            {
                "artefact": "LinearStudent (distill='linear')",
                "bytes": folder_bytes(folder),
                "trained_numbers": int(student.coef_.size + student.intercept_.size),
            }
        )
    for r in rows:
        r["share_of_backbone"] = r["bytes"] / backbone_bytes
    data = {"machine": machine(), "backbone_bytes": backbone_bytes, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, data)
    lines = [
        f"Backbone (default, float32 parameters): {backbone_bytes / 2**20:.1f} MiB",
        "",
        "| artefact | saved folder | trained numbers | share of backbone |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        size = r["bytes"]
        human = f"{size / 2**20:.1f} MiB" if size > 2**20 else f"{size / 1024:.1f} KiB"
        lines.append(
            f"| {r['artefact']} | {human} | {r['trained_numbers']:,} |"
            f" {100 * r['share_of_backbone']:.3f}% |"
        )
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
