"""Streaming prediction's earlier address: :mod:`pet_kit.batch` holds it.

Kept so that code written as ``from pet_kit.io.streaming import predict_file`` keeps
working. The names are looked up on first use (PEP 562): ``pet_kit.io`` sits below the
estimators that batch prediction loads, and importing it loads none of them.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """A public name of :mod:`pet_kit.batch` (``__all__`` too), looked up on first use."""
    batch = importlib.import_module("pet_kit.batch")
    if name != "__all__" and name not in batch.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(batch, name)
