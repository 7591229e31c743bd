"""Exceptions raised by pet_kit.

Every error a user can trigger derives from :class:`PetKitError`, which is also a
:class:`ValueError`, so generic ``except ValueError`` code (e.g. scikit-learn's
``error_score`` handling) keeps working. Messages name the file, key or value at
fault and say how to fix it; a :class:`ConfigError` lists every :class:`Problem` found in
a specification, one per line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar


class PetKitError(ValueError):
    """Base class of all pet_kit errors caused by user input."""


_C = TypeVar("_C", bound="ConfigError")


def display_path(path: str) -> str:
    """``path`` as shown in messages: normalised, relative to the working folder if inside it.

    ``/work/templates/../verbalizers/v.yaml`` is shown as ``verbalizers/v.yaml`` when the
    working folder is ``/work``, and as ``/work/verbalizers/v.yaml`` elsewhere. Names that
    are no paths (``"<inline>"``, an environment variable) are returned unchanged.

    Parameters
    ----------
    path : str
        A file path, or a name such as ``"<inline>"``.

    Returns
    -------
    str
    """
    if not path or path.startswith("<"):
        return path
    shown = os.path.normpath(path)
    if os.path.isabs(shown):
        try:
            relative = os.path.relpath(shown)
        except (ValueError, OSError):  # another drive (Windows), no working folder
            return shown
        if relative != os.curdir and not relative.startswith(os.pardir):
            return relative
    return shown


@dataclass(frozen=True)
class Problem:
    """One problem found in a specification.

    Attributes
    ----------
    message : str
        What is wrong and how to fix it.
    source : str, optional
        File path (or ``"<inline>"``) the specification came from.
    line : int, optional
        1-based line number in ``source``.
    column : int, optional
        1-based column in ``line`` (not part of the message).
    key : str, optional
        Dotted path of the offending key, e.g. ``patterns.0.pattern``.
    """

    message: str
    source: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = display_path(self.source) if self.source else "<inline>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(PetKitError):
    """A YAML/inline PVP specification is invalid.

    The error carries every problem found (:attr:`problems`); ``str(exc)`` shows them one
    per line as ``file:line: key: problem``. The attributes ``problem``, ``source``,
    ``line``, ``column`` and ``key`` are those of the first problem.

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
    column : int, optional
        1-based column in ``line``.
    more : sequence of Problem
        Further problems found in the same specification (see :meth:`from_problems`).

    Attributes
    ----------
    problems : tuple of Problem
        Every problem, the first one being ``problem`` at ``source:line``.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        line: int | None = None,
        key: str | None = None,
        column: int | None = None,
        more: Sequence[Problem] = (),
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.column = column
        self.key = key
        first = Problem(problem, source=source, line=line, column=column, key=key)
        self.problems: tuple[Problem, ...] = (first, *more)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def from_problems(cls: type[_C], problems: Sequence[Problem]) -> _C:
        """An error holding ``problems`` (at least one), the first one as its own.

        Parameters
        ----------
        problems : sequence of Problem

        Returns
        -------
        ConfigError
            Of the class this is called on (``PatternError.from_problems(...)``).
        """
        if not problems:
            raise ValueError("from_problems needs at least one problem")
        first, *more = problems
        return cls(
            first.message,
            source=first.source,
            line=first.line,
            key=first.key,
            column=first.column,
            more=more,
        )

    def __reduce__(self) -> tuple[object, ...]:
        # picklable with every problem (errors travel between processes in searches)
        return (_config_error, (type(self), self.problems))


def _config_error(cls: type[ConfigError], problems: tuple[Problem, ...]) -> ConfigError:
    """Unpickle a :class:`ConfigError` (or a subclass) with its problems."""
    return cls.from_problems(problems)


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


class NothingTrainedWarning(UserWarning):
    """``fit`` was given labelled examples but had nothing to train.

    A pattern without ``[SOFT]`` slots under ``tuning="prompt"`` (which trains only soft
    slots): the fitted classifier is the zero-shot one. The message says how to train on
    the examples (add ``[SOFT]`` slots, or ``tuning="head"`` / ``"prompt+head"``);
    ``fit(None)`` asks for the zero-shot classifier without it. A ``UserWarning``, so
    ``warnings.simplefilter("ignore", NothingTrainedWarning)`` silences it.
    """


class TrainingDivergedError(PetKitError):
    """Training produced a non-finite loss or non-finite trained parameters.

    Raised by :func:`~pet_kit.train.loop.train_prompt` (and so by every ``fit`` that
    trains) as soon as it happens, after the trained parameters were reset to their
    last finite state. The usual cause is a learning rate that is too high.

    Parameters
    ----------
    message : str
        What happened, at which step, and how to fix it.
    step : int
        The optimizer step whose update made the loss or the parameters non-finite
        (0: they were non-finite before any update).
    loss : float
        The training loss that was found non-finite (or the last finite one when the
        parameters became non-finite first).
    learning_rates : dict of str to float
        The learning rate(s) in use: ``learning_rate`` (the estimator's) and, when a
        backbone copy trains, ``backbone_learning_rate`` (set by ``tuning.learning_rate``,
        see :class:`~pet_kit.Tuning`).
    result : object, optional
        The training loop's :class:`~pet_kit.train.loop.TrainResult` so far.
    """

    def __init__(
        self,
        message: str,
        *,
        step: int = 0,
        loss: float = float("nan"),
        learning_rates: dict[str, float] | None = None,
        result: object = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.loss = loss
        self.learning_rates = dict(learning_rates or {})
        self.result = result

    def __reduce__(self) -> tuple[object, ...]:
        # picklable with its fields (GridSearchCV(n_jobs=...) sends errors between processes)
        fields = {"step": self.step, "loss": self.loss, "learning_rates": self.learning_rates}
        return (_diverged, (str(self), fields))

    def within(self, where: str) -> TrainingDivergedError:
        """The same error, its message prefixed by ``where`` (e.g. an ensemble member)."""
        return TrainingDivergedError(
            f"{where}: {self}",
            step=self.step,
            loss=self.loss,
            learning_rates=self.learning_rates,
            result=self.result,
        )


def _diverged(message: str, fields: dict[str, object]) -> TrainingDivergedError:
    """Unpickle a :class:`TrainingDivergedError` (its ``result`` is not carried)."""
    return TrainingDivergedError(message, **fields)  # type: ignore[arg-type]
