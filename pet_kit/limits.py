"""Size and time limits that an environment variable may override."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["env_limit"]


def env_limit(env: str, default: Any, fail: Callable[[str], Exception], kind: type = int) -> Any:
    """The limit from environment variable ``env``, or ``default`` when it is unset.

    Parameters
    ----------
    env : str
        The variable's name.
    default : int or float
    fail : callable
        Builds the error raised (with the variable's raw value) when it is set but is not
        a positive ``kind``.
    kind : type
        ``int`` or ``float``.
    """
    raw = os.environ.get(env)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise fail(raw)
    return value
