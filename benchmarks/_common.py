"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch


def machine() -> dict[str, Any]:
    """What the timings depend on: platform, CPUs, torch and its thread count."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": gpu_name(),
    }


def gpu_name() -> str | None:
    """The name of the GPU that torch would use, or None without one."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def device_name() -> str:
    """Where pet_kit's default ``device=None`` runs in this process: ``cpu`` or ``cuda (GPU)``."""
    gpu = gpu_name()
    return f"cuda ({gpu})" if gpu else "cpu"


def markdown_table(header: list[str], rows: list[list[str]], rule: str = " --- ") -> list[str]:
    """A Markdown table's lines: ``header``, a rule of ``rule`` per column, the ``rows``."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([rule] * len(header)) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file + rename): a killed run never
    leaves a half-written results file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def resolve_backbone(model: str, out: Path, default_out: Path) -> str:
    """A script's ``--model`` as an absolute model folder, refused where its runs would be
    filed wrongly: no model folder there, or ``out`` is the script's default results file
    (which holds the default backbone's runs)."""
    folder = Path(model).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise SystemExit(f"--model {model}: no model folder there (config.json missing)")
    if out.resolve() == default_out.resolve():
        raise SystemExit(
            "--model: pass --out with a results file of its own (the default one holds the"
            " default backbone's rows)"
        )
    return str(folder)


def backbone_mismatch(out: Path, data: dict[str, Any], model: str | None) -> str | None:
    """Why the runs of ``model`` (``None``: the default backbone) must not go into ``out``,
    whose ``data`` holds another backbone's runs; ``None`` when they may."""
    if not data.get("runs") or data.get("model") == model:
        return None
    return (
        f"{out} holds runs on {data.get('model') or 'the default backbone'}, not on"
        f" {model or 'the default backbone'}: pass the matching --model or another --out"
    )


def backbone_label(model: str) -> str:
    """A ``--model`` folder as a generated table names it: its last two path parts."""
    return "/".join(Path(model).parts[-2:])
