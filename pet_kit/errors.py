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
