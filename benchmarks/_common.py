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
