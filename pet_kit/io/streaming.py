"""Streaming prediction's earlier address: :mod:`pet_kit.batch` holds it.

Kept so that code written as ``from pet_kit.io.streaming import predict_file`` keeps
working. The names are looked up on first use (PEP 562): ``pet_kit.io`` sits below the
estimators that batch prediction loads, and importing it loads none of them.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The names this address has always offered.
_NAMES = (
    "ROW_COLUMN",
    "PredictFileResult",
    "RoundedProbabilities",
    "check_predict_job",
    "count_rows",
    "iter_table_chunks",
    "merge_shards",
    "predict_chunk",
    "predict_file",
    "predict_iter",
    "predict_to_stream",
    "progress_path",
    "shard_path",
)
__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    """A name of :data:`__all__`, from :mod:`pet_kit.batch`."""
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("pet_kit.batch"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
