"""Tuning methods: what ``tuning=`` trains, one module per method, one table.

:data:`METHODS` is the table: a method's ``tuning=`` name to its
:class:`~pet_kit.tuning.base.TuningMethod`. The settings (``Tuning``'s fields and
checks), the model (backbone copy, saving and loading) and the trainer (what trains)
read the method from here and ask it; none compares mode names. Adding a method is
adding a module and a row (docs/development.md shows how).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .base import Field, Tuned, TuningMethod
from .full import FULL
from .head import HEAD, PROMPT_HEAD
from .lora import LORA
from .prompt import PROMPT

__all__ = ["FIELDS", "METHODS", "Field", "Tuned", "TuningMethod", "method"]

#: Every tuning method, by its ``tuning=`` name, in the order the docs list them.
METHODS: Mapping[str, TuningMethod] = MappingProxyType(
    {m.name: m for m in (PROMPT, PROMPT_HEAD, HEAD, LORA, FULL)}
)


def _fields() -> tuple[Field, ...]:
    """Every method's fields in table order, a field two methods share once."""
    out: dict[str, Field] = {}
    for m in METHODS.values():
        for f in m.fields:
            if out.setdefault(f.name, f) is not f:
                raise TypeError(f"tuning methods declare two different fields {f.name!r}")
    return tuple(out.values())


#: The fields of ``Tuning`` after ``mode``: every method's own settings.
FIELDS: tuple[Field, ...] = _fields()


def method(name: str) -> TuningMethod:
    """The method named ``name`` (a checked ``Tuning.mode``).

    Raises
    ------
    KeyError
        No method has that name (settings are checked before they get here).
    """
    return METHODS[name]
