"""The offline benchmark tasks' earlier address: :mod:`pet_kit.datasets` holds them.

Kept so that code written as ``from pet_kit.io.datasets import load_task`` keeps working.
"""

from __future__ import annotations

from typing import Any

from .. import datasets as _moved

__all__ = list(_moved.__all__)


def __getattr__(name: str) -> Any:
    """A public name of :mod:`pet_kit.datasets` (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_moved, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
