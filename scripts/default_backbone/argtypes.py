"""Argparse types for the default-backbone scripts' numbers: a loss weight, learning rate
or time box of ``nan``, ``inf`` or below zero is refused when the command line is parsed,
not found minutes into a run that trained on a NaN loss or never stops."""

from __future__ import annotations

import argparse
import math

__all__ = ["fraction", "named_weight", "non_negative", "positive"]


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0: loss weights (0 turns a term off) and learning rates."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number > 0: time boxes in minutes."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text!r}")
    return value


def fraction(text: str) -> float:
    """A finite number from 0 to 1: shares such as a warm-up's part of the steps."""
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text!r}")
    return value


def decay(text: str) -> float:
    """A :func:`fraction` below 1: a moving average's decay (0: none; 1 never moves it)."""
    value = fraction(text)
    if value == 1:
        raise argparse.ArgumentTypeError(
            f"must be below 1 (a decay of 1 never moves the average), not {text!r}"
        )
    return value


def named_weight(text: str) -> tuple[str, float]:
    """``NAME=WEIGHT`` with a finite weight > 0: a corpus source's sampling weight."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"write it as NAME=WEIGHT (chitchat=9), not {text!r}")
    try:
        return name, positive(value)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: the weight {err}") from None
