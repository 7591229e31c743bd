"""Exceptions raised by pet_kit.

Every error a user can trigger derives from :class:`PetKitError`, which is also a
:class:`ValueError`, so generic ``except ValueError`` code (e.g. scikit-learn's
``error_score`` handling) keeps working. Messages name the file, key or value at
fault and say how to fix it.
"""

from __future__ import annotations


class PetKitError(ValueError):
    """Base class of all pet_kit errors caused by user input."""


class ConfigError(PetKitError):
    """A YAML/inline PVP specification is invalid.

    Parameters
    ----------
    problem : str
        What is wrong and how to fix it.
    source : str, optional
        File path (or ``"<inline>"``) the specification came from.
    line : int, optional
        1-based line number in ``source``.
    key : str, optional
        Dotted path of the offending key, e.g. ``patterns.0.pattern``.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.key = key
        where = source or "<inline>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(prefix + problem)


class PatternError(ConfigError):
    """A pattern string is malformed (no mask, unbalanced braces, bad slot...)."""


class VerbalizerError(ConfigError):
    """A verbalizer is invalid for the data or the tokenizer."""


class BackboneError(PetKitError):
    """The backbone cannot be used (not a masked LM, missing MLM head, ...)."""


class BackboneMismatchError(PetKitError):
    """A saved prompt was trained on a different backbone than the one given."""


class SavedPromptError(PetKitError):
    """A saved prompt folder is missing, corrupted, or from an unsupported version."""


class InputError(PetKitError):
    """``X`` or ``y`` passed to an estimator is unusable."""
