"""The estimator's hyper-parameters: one table of defaults and constraints, grouped settings.

:class:`~pet_kit.PromptClassifier` takes a few scalar parameters (``learning_rate``,
``epochs``...) and a few *grouped settings*, small dataclasses that bundle what belongs
together. Each group parameter also accepts a shorthand:

============== ========================================== ===============================
parameter      shorthand                                  group object
============== ========================================== ===============================
tuning         ``"prompt"``, ``"prompt+head"``, ``"head"``, :class:`Tuning`
               ``"lora"``, ``"full"`` (the mode)
deep_prompt    an int (slots; ``0`` or ``None``: off)     :class:`DeepPrompt`
early_stopping ``True`` (defaults); ``False``/``None``:   :class:`EarlyStopping`
               off
calibration    ``"content_free"``, ``"unlabeled"``;       :class:`Calibration`
               ``None``: off
demonstrations ``"random"``, ``"similar"``; ``None``: off :class:`Demonstrations`
checkpoint     a folder path; ``None``: off               :class:`Checkpoints`
batching       ``None``: the defaults                     :class:`Batching`
============== ========================================== ===============================

Group objects are nested scikit-learn parameters: they have ``get_params`` and
``set_params``, so ``sklearn.base.clone`` copies them and a search can tune their fields
(``GridSearchCV(est, {"tuning__rank": [4, 8]})`` with ``tuning=Tuning("lora")``).
Like scikit-learn estimators, they store what they are given; :func:`resolve` checks
every parameter (raising :class:`~pet_kit.errors.InputError` naming the first bad one,
group fields in dotted form: ``tuning.rank``) and returns :class:`Settings`, where every
shorthand is replaced by its group object (or ``None`` for "off").

:func:`to_json` and :func:`from_json` convert parameters to and from the JSON object
saved with a prompt. :func:`from_json` also reads the flat parameters written by earlier
versions (``lora_rank``, ``checkpoint_dir``, ``calibration_texts``...).

This module imports neither torch nor scikit-learn (:func:`check_device` imports torch
when called with a device to check).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, cast

import numpy as np

from ..errors import InputError
from ..io.inputs import MAX_THREADS, check_threads
from ..tuning import FIELDS as TUNING_FIELDS
from ..tuning import METHODS as TUNING_METHODS
from ..tuning import Field as TuningField

__all__ = [
    "CALIBRATIONS",
    "DEEP_ENCODERS",
    "DEFAULTS",
    "DEMO_MODES",
    "FALLBACK_BACKBONE_LR",
    "GROUPS",
    "GUARDS",
    "INIT_STRATEGIES",
    "OBJECT_PARAMS",
    "PARAMETERS",
    "PROMPT_ENCODERS",
    "TUNINGS",
    "Batching",
    "Calibration",
    "Checkpoints",
    "DeepPrompt",
    "Demonstrations",
    "EarlyStopping",
    "Param",
    "Settings",
    "SettingsGroup",
    "Tuning",
    "as_group",
    "check_device",
    "from_json",
    "is_transfer",
    "resolve",
    "to_json",
]

# ------------------------------------------------------------------ vocabularies
#: ``prompt_init``: initialisation of slots without init words.
INIT_STRATEGIES = ("vocab", "random", "text", "mean")
#: ``prompt_encoder``: reparameterisation of the slots while training: P-tuning's MLP or
#: LSTM, or ``"rank1"``: the starting vectors frozen and scaled by a trained rank-1 matrix
#: (multi-task prompt tuning's per-task part; use it with ``prompt_init=<saved prompt>``).
PROMPT_ENCODERS = (None, "mlp", "lstm", "rank1")
#: ``deep_prompt.encoder``: reparameterisation of the deep states while training.
DEEP_ENCODERS = (None, "mlp")
#: ``demonstrations`` (``None``: none; the others are :attr:`Demonstrations.mode`).
DEMO_MODES = (None, "random", "similar")
#: ``tuning`` modes (:attr:`Tuning.mode`): the names of :data:`pet_kit.tuning.METHODS`.
TUNINGS = tuple(TUNING_METHODS)
#: The backbone learning rate of the modes without a default of their own (no backbone
#: trains): see :attr:`Tuning.backbone_learning_rate`.
FALLBACK_BACKBONE_LR = 1e-4
#: ``guard``: how ``fit`` checks on the labelled examples that training beats the untrained
#: prompt (``"holdout"``: a stratified hold-out of them; ``"2fold"``: two stratified
#: halves, each held out in turn; ``"4fold"``: four stratified folds, each held out in
#: turn; ``None``: no check, always train).
GUARDS = (None, "holdout", "2fold", "4fold")
#: ``calibration`` (``None``: none; the others are :attr:`Calibration.mode`).
CALIBRATIONS = (None, "content_free", "unlabeled")
#: Parameters that are objects (a PVP, a model, a tokenizer): not checked here, not in
#: :class:`Settings`, not saved by :func:`to_json`.
OBJECT_PARAMS = ("pvp", "model", "tokenizer")

_G = TypeVar("_G", bound="SettingsGroup")


# ----------------------------------------------------------------- value checks
def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not _is_bool(value)


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (booleans are not ints), else :class:`InputError`.

    The message for ``minimum=1`` is that of :func:`pet_kit.io.inputs.check_positive_int`
    ("must be a positive integer"); otherwise "must be an integer >= minimum".
    """
    if not _is_int(value) or value < minimum:
        raise InputError(f"{name} must be {_int_text(minimum)}, got {value!r}")
    return int(value)


def _check_optional_int(name: str, value: Any, minimum: int = 1) -> int | None:
    """``None``, or ``value`` as an int >= ``minimum``, else :class:`InputError`."""
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        raise InputError(f"{name} must be None or {_int_text(minimum)}, got {value!r}")
    return int(value)


def _int_text(minimum: int) -> str:
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def _check_float(
    name: str, value: Any, ok: Callable[[float], bool], what: str, default: Any
) -> float:
    """``value`` as a finite float with ``ok``, else :class:`InputError`.

    ``what`` describes the valid range (``"> 0"``); a non-finite value's message gives
    ``default``. Text that reads as a number gets a hint: YAML 1.1 reads ``1e-3`` as text.
    """
    if not isinstance(value, (int, float, np.integer, np.floating)) or _is_bool(value):
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = " (text, not a number: YAML reads 1e-3 as text; write 1.0e-3 or 0.001)"
            except ValueError:
                pass
        raise InputError(f"{name} must be a number {what}, got {value!r}{hint}")
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        as_float = math.inf
    if not math.isfinite(as_float):
        raise InputError(
            f"{name}={as_float!r} is not a finite number; {name} must be a finite number"
            f" {what} (the default is {default!r})"
        )
    if not ok(as_float):
        raise InputError(f"{name} must be a number {what}, got {value!r}")
    return as_float


def _did_you_mean(value: Any, choices: tuple[Any, ...]) -> str:
    """``"; did you mean 'x'?"`` for a misspelt string ``value`` among ``choices``."""
    if not isinstance(value, str):
        return ""
    from .schema import did_you_mean  # pydantic: only on this error path

    return did_you_mean(value, [c for c in choices if isinstance(c, str)])


def _check_choice(name: str, value: Any, choices: tuple[Any, ...], fix: str = "") -> Any:
    """``value`` if it is one of ``choices`` (None or str), else :class:`InputError`."""
    if (value is None or isinstance(value, str)) and value in choices:
        return None if value is None else str(value)
    tip = _did_you_mean(value, choices)
    raise InputError(f"{name} must be one of {choices}, got {value!r}{tip}{fix}")


def _check_bool(name: str, value: Any) -> bool:
    if not _is_bool(value):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_texts(name: str, texts: Any) -> list[str] | None:
    if texts is not None and (
        isinstance(texts, (str, bytes))
        or not hasattr(texts, "__len__")
        or len(texts) == 0
        or not all(isinstance(t, str) for t in texts)
    ):
        raise InputError(f"{name} must be None or a non-empty list of strings, got {texts!r}")
    return None if texts is None else [str(t) for t in texts]


def is_seed(value: Any) -> bool:
    """Whether ``value`` is an integer seed numpy accepts (0 to 2**32 - 1; bools pass, as
    scikit-learn lets them, as 0 and 1)."""
    if not isinstance(value, (int, np.integer)):
        return False
    try:
        np.random.RandomState(value)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _check_random_state(name: str, value: Any) -> Any:
    """What ``sklearn.utils.check_random_state`` accepts (without importing sklearn)."""
    if value is None or value is np.random or isinstance(value, np.random.RandomState):
        return value
    if is_seed(value):
        return value if _is_bool(value) else int(value)
    raise InputError(f"{name} must be None, an integer or a numpy RandomState, got {value!r}")


def check_device(device: Any) -> None:
    """Refuse a device torch does not know, or CUDA on a machine without it.

    Parameters
    ----------
    device : None, str or torch.device
        ``None`` and ``"auto"`` (automatic) pass without importing torch.

    Raises
    ------
    InputError
        ``device`` is not a torch device, or is a CUDA device and CUDA is not available.
    """
    if device is None or device == "auto":
        return
    import torch  # only here: this module stays free of torch at import time

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(
            f"device {device!r} is not a torch device; use None (automatic), 'cpu' or 'cuda'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device={device!r} but CUDA is not available on this machine; use device='cpu'"
            " or None (automatic)"
        )


def _default(group: type[SettingsGroup], field_name: str) -> Any:
    """The dataclass default of ``group.field_name`` (for messages)."""
    return next(f.default for f in dataclasses.fields(cast(Any, group)) if f.name == field_name)


# ---------------------------------------------------------------- grouped settings
class SettingsGroup:
    """Base of the grouped settings: nested scikit-learn parameters.

    ``get_params`` returns the dataclass fields and ``set_params`` sets them, so an
    estimator holding a group passes ``sklearn.base.clone`` and routes ``group__field``
    parameters (``GridSearchCV``, ``est.set_params(tuning__rank=4)``) to it. A group
    stores what it is given; :func:`resolve` checks it.
    """

    #: The forms the estimator parameter accepts, for messages.
    _forms: ClassVar[str] = ""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The group's fields, by name.

        Parameters
        ----------
        deep : bool, default=True
            Accepted for scikit-learn; groups hold no nested objects.

        Returns
        -------
        dict
            Field name -> value.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(cast(Any, self))}

    def set_params(self: _G, **params: Any) -> _G:
        """Set fields by name (no field is set if a name is unknown).

        Parameters
        ----------
        **params
            Field name -> new value.

        Returns
        -------
        self

        Raises
        ------
        InputError
            A name is not a field of the group (the message lists the valid ones).
        """
        valid = list(self.get_params())
        for key in params:
            if key not in valid:
                raise InputError(
                    f"{type(self).__name__} has no parameter {key!r}; valid parameters:"
                    f" {', '.join(valid)}"
                )
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def _checked(self: _G, name: str) -> _G:
        """A checked, normalised copy; ``name`` is the estimator parameter (messages)."""
        raise NotImplementedError


def _check_method_field(name: str, value: Any, field: TuningField) -> Any:
    """``value`` of a tuning method's field, checked as the field declares."""
    if field.optional and value is None:
        return None
    if field.minimum is not None:
        return _check_int(name, value, field.minimum)
    assert field.ok is not None  # a field is an integer or a number
    return _check_float(name, value, field.ok, field.what, field.default)


def _indented(text: str) -> str:
    return "\n".join(f"        {line}" for line in text.splitlines())


def _with_method_fields(cls: type[_G]) -> type[_G]:
    """Give the ``Tuning`` group (before it becomes a dataclass) every tuning method's
    own fields (:data:`pet_kit.tuning.FIELDS`, defaults and types), and complete its
    docstring from the methods and fields."""
    names = ", ".join(f'"{name}"' for name in TUNING_METHODS)
    lines = [f'    mode : {{{names}}}, default="prompt"']
    lines += [_indented(f'``"{m.name}"``: {m.summary}') for m in TUNING_METHODS.values()]
    for field in TUNING_FIELDS:
        cls.__annotations__[field.name] = field.annotation
        setattr(cls, field.name, field.default)
        lines += [f"    {field.name} : {field.spec}", _indented(field.doc)]
    cls.__doc__ = (cls.__doc__ or "").rstrip(" ") + "\n".join(lines) + "\n    "
    shown = ", ".join(f"{f.name}={f.default_text}" for f in TUNING_FIELDS)
    cls._forms = f"one of {TUNINGS} or a Tuning(mode, {shown})"
    return cls


@dataclass
@_with_method_fields
class Tuning(SettingsGroup):
    """What training changes, and the settings of the tuning methods.

    Shorthand: ``tuning="lora"`` means ``tuning=Tuning("lora")``. Each mode is a
    tuning method of :mod:`pet_kit.tuning` (one module each); after ``mode`` come the
    methods' own fields, in the order of :data:`pet_kit.tuning.METHODS`. A method
    reads only its own fields; all are checked whatever the mode.

    Parameters
    ----------
    """

    mode: str = "prompt"

    @property
    def backbone_learning_rate(self) -> float:
        """The backbone's effective learning rate: ``learning_rate`` or the mode's default."""
        learning_rate = getattr(self, "learning_rate", None)
        if learning_rate is not None:
            return float(learning_rate)
        method = TUNING_METHODS.get(self.mode)
        default = None if method is None else method.learning_rate
        return FALLBACK_BACKBONE_LR if default is None else default

    def _checked(self, name: str) -> Tuning:
        values = {"mode": _check_choice(f"{name}.mode", self.mode, TUNINGS)}
        for field in TUNING_FIELDS:
            value = getattr(self, field.name)
            values[field.name] = _check_method_field(f"{name}.{field.name}", value, field)
        return Tuning(**values)


@dataclass
class DeepPrompt(SettingsGroup):
    """A deep prompt (P-tuning v2 / prefix tuning in hidden-state form).

    Shorthand: ``deep_prompt=4`` means ``deep_prompt=DeepPrompt(4)``; ``0`` or ``None``:
    no deep prompt.

    Parameters
    ----------
    length : int
        ``P`` soft slots in front of the pattern whose states are also trainable at the
        input of every layer; an integer >= 1.
    encoder : {None, "mlp"}, default=None
        Reparameterise the deep states by a residual MLP while training (only the final
        states are kept).
    """

    length: int
    encoder: str | None = None

    _forms: ClassVar[str] = (
        "an integer >= 0 (slots; 0: none), None or a DeepPrompt(length, encoder=None)"
    )

    def _checked(self, name: str) -> DeepPrompt:
        length = self.length
        if not _is_int(length) or length < 1:
            raise InputError(
                f"{name}.length must be an integer >= 1 (slots), got {length!r}; for no deep"
                f" prompt use {name}=None (or 0)"
            )
        return DeepPrompt(
            length=int(length),
            encoder=_check_choice(f"{name}.encoder", self.encoder, DEEP_ENCODERS),
        )


@dataclass
class EarlyStopping(SettingsGroup):
    """Early stopping on held-out training data.

    Shorthand: ``early_stopping=True`` means ``EarlyStopping()``; ``False`` or ``None``:
    off.

    Parameters
    ----------
    validation_fraction : float, default=0.2
        Fraction of the training data held out (stratified); the prompt of the best
        held-out accuracy is kept. In (0, 1).
    n_iter_no_change : int, default=5
        Stop after this many epochs without improvement; an integer >= 1.
    """

    validation_fraction: float = 0.2
    n_iter_no_change: int = 5

    _forms: ClassVar[str] = (
        "True, False, None or an EarlyStopping(validation_fraction=0.2, n_iter_no_change=5)"
    )

    def _checked(self, name: str) -> EarlyStopping:
        return EarlyStopping(
            validation_fraction=_check_float(
                f"{name}.validation_fraction",
                self.validation_fraction,
                lambda v: 0 < v < 1,
                "in (0, 1)",
                _default(EarlyStopping, "validation_fraction"),
            ),
            n_iter_no_change=_check_int(f"{name}.n_iter_no_change", self.n_iter_no_change),
        )


@dataclass
class Calibration(SettingsGroup):
    """Contextual calibration (Zhao et al., 2021) of the predicted probabilities.

    Shorthand: ``calibration="content_free"`` means ``Calibration("content_free")``;
    ``None``: no calibration.

    Parameters
    ----------
    mode : {"content_free", "unlabeled"}, default="content_free"
        ``"content_free"``: the class prior is the mean prediction on content-free
        ``texts``; ``"unlabeled"``: on the texts of ``fit(..., X_unlabeled=...)`` (or the
        training texts).
    texts : list of str, optional
        Content-free inputs for ``"content_free"`` (default: ``"N/A"``, ``""`` and the
        mask token); None or a non-empty list of strings.
    """

    mode: str = "content_free"
    texts: list[str] | None = None

    _forms: ClassVar[str] = f"one of {CALIBRATIONS} or a Calibration(mode, texts=None)"

    def _checked(self, name: str) -> Calibration:
        return Calibration(
            mode=_check_choice(
                f"{name}.mode",
                self.mode,
                CALIBRATIONS[1:],
                f"; for no calibration use {name}=None",
            ),
            texts=_check_texts(f"{name}.texts", self.texts),
        )


@dataclass
class Demonstrations(SettingsGroup):
    """LM-BFF in-context demonstrations: one labelled example per class after the input.

    Shorthand: ``demonstrations="random"`` means ``Demonstrations("random")``; ``None``:
    no demonstrations.

    Parameters
    ----------
    mode : {"random", "similar"}, default="random"
        How each class's example is chosen: at random (deterministically per input and
        ``random_state``) or the most similar one.
    max_tokens : int, optional
        Tokens kept of each demonstration's text; None (an equal share of
        ``max_length``) or an integer >= 1.
    """

    mode: str = "random"
    max_tokens: int | None = None

    _forms: ClassVar[str] = f"one of {DEMO_MODES} or a Demonstrations(mode, max_tokens=None)"

    def _checked(self, name: str) -> Demonstrations:
        return Demonstrations(
            mode=_check_choice(
                f"{name}.mode", self.mode, DEMO_MODES[1:], f"; for none use {name}=None"
            ),
            max_tokens=_check_optional_int(f"{name}.max_tokens", self.max_tokens),
        )


@dataclass
class Checkpoints(SettingsGroup):
    """A prompt folder ``fit`` keeps up to date while training.

    Shorthand: ``checkpoint="ckpt/"`` means ``Checkpoints("ckpt/")``; ``None``: no
    checkpoints.

    Parameters
    ----------
    dir : str or PathLike
        The folder (the format of ``save``, written atomically): written every
        ``every`` optimizer steps, at the end of training and when training is
        interrupted.
    every : int, optional
        Optimizer steps between checkpoints; None (at the end of every epoch) or an
        integer >= 1.
    overwrite : bool
        Replace a prompt of another task found in ``dir`` (one of the same PVP, left by
        an earlier run, is always replaced). Off by default: ``fit`` then refuses such a
        folder before anything trains.
    """

    dir: str | os.PathLike[str]
    every: int | None = None
    overwrite: bool = False

    _forms: ClassVar[str] = (
        "None, a folder path (str or PathLike) or a Checkpoints(dir, every=None, overwrite=False)"
    )

    def _checked(self, name: str) -> Checkpoints:
        if not isinstance(self.dir, (str, os.PathLike)):
            raise InputError(
                f"{name}.dir must be a folder path (str or PathLike), got {self.dir!r}; for no"
                f" checkpoints use {name}=None"
            )
        return Checkpoints(
            dir=self.dir,
            every=_check_optional_int(f"{name}.every", self.every),
            overwrite=_check_bool(f"{name}.overwrite", self.overwrite),
        )


@dataclass
class Batching(SettingsGroup):
    """How examples are batched (none of these changes what is learnt).

    ``batching=None`` means ``Batching()``.

    Parameters
    ----------
    eval_batch_size : int, default=32
        Examples per forward pass when predicting; an integer >= 1.
    gradient_accumulation_steps : int, default=1
        Split each training batch into this many forward/backward passes (same result,
        less memory); an integer >= 1, at most the estimator's ``batch_size``.
    group_by_length : bool or "auto", default="auto"
        Training batches of similar lengths (less padding); ``"auto"`` groups only when
        the training set holds more than 50 batches.
    """

    eval_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    group_by_length: bool | str = "auto"

    _forms: ClassVar[str] = (
        "None or a Batching(eval_batch_size=32, gradient_accumulation_steps=1,"
        " group_by_length='auto')"
    )

    def _checked(self, name: str) -> Batching:
        group = self.group_by_length
        if not (_is_bool(group) or (isinstance(group, str) and group == "auto")):
            raise InputError(f"{name}.group_by_length must be True, False or 'auto', got {group!r}")
        return Batching(
            eval_batch_size=_check_int(f"{name}.eval_batch_size", self.eval_batch_size),
            gradient_accumulation_steps=_check_int(
                f"{name}.gradient_accumulation_steps", self.gradient_accumulation_steps
            ),
            group_by_length="auto" if isinstance(group, str) else bool(group),
        )


#: Group parameter -> its class.
GROUPS: Mapping[str, type[SettingsGroup]] = MappingProxyType(
    {
        "tuning": Tuning,
        "deep_prompt": DeepPrompt,
        "early_stopping": EarlyStopping,
        "calibration": Calibration,
        "demonstrations": Demonstrations,
        "checkpoint": Checkpoints,
        "batching": Batching,
    }
)


def _bad_group(name: str, value: Any) -> InputError:
    return InputError(f"{name} must be {GROUPS[name]._forms}, got {value!r}")


def _group_from_mapping(name: str, data: Mapping[str, Any]) -> SettingsGroup:
    """The group object for a dict of its fields (a YAML ``params:`` entry)."""
    group = GROUPS[name]
    names = [f.name for f in dataclasses.fields(cast(Any, group))]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise InputError(
            f"{name} has no field(s) {unknown}; its fields: {', '.join(names)}"
            f" (e.g. {name}: {{{names[0]}: ...}})"
        )
    required = [
        f.name
        for f in dataclasses.fields(cast(Any, group))
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in data]
    if missing:
        raise InputError(
            f"{name} must be {group._forms}, got {dict(data)!r}: the field(s) {missing}"
            " are required"
        )
    return group(**data)


def as_group(name: str, value: Any, fields: Mapping[str, Any]) -> SettingsGroup:
    """Group parameter ``name`` as its group object with ``fields`` set.

    ``value`` may be the group object (copied), a shorthand (``"lora"``, ``4``,
    ``True``...), a dict of fields, or "off" (``None``, ``0``, ``False``: the group is
    then built from ``fields`` alone, so they must include its required fields). This
    is what ``set_params(tuning__rank=4)`` does when ``tuning`` is a shorthand.

    Raises
    ------
    InputError
        An invalid shorthand, an unknown field, or a required field missing.
    """
    if isinstance(value, SettingsGroup):
        group = copy.deepcopy(value)
    elif isinstance(value, Mapping):
        group = _group_from_mapping(name, value)
    else:
        resolved = PARAMETERS[name].check(name, value)  # type: ignore[misc]
        if resolved is None:
            return _group_from_mapping(name, fields)
        group = resolved
    return group.set_params(**fields)


# ------------------------------------------------- group parameters and shorthands
def _tuning(name: str, value: Any) -> Tuning:
    if isinstance(value, Tuning):
        return value._checked(name)
    if isinstance(value, str) and value in TUNINGS:
        return Tuning(mode=str(value))
    tip = _did_you_mean(value, TUNINGS)
    raise InputError(f"{_bad_group(name, value)}{tip}") if tip else _bad_group(name, value)


def _deep_prompt(name: str, value: Any) -> DeepPrompt | None:
    if isinstance(value, DeepPrompt):
        return value._checked(name)
    if value is None or (_is_int(value) and value == 0):
        return None
    if _is_int(value) and value > 0:
        return DeepPrompt(int(value))
    raise _bad_group(name, value)


def _early_stopping(name: str, value: Any) -> EarlyStopping | None:
    if isinstance(value, EarlyStopping):
        return value._checked(name)
    if value is None or (_is_bool(value) and not value):
        return None
    if _is_bool(value):
        return EarlyStopping()
    raise _bad_group(name, value)


def _calibration(name: str, value: Any) -> Calibration | None:
    if isinstance(value, Calibration):
        return value._checked(name)
    if value is None:
        return None
    if isinstance(value, str) and value in CALIBRATIONS:
        return Calibration(mode=str(value))
    raise _bad_group(name, value)


def _demonstrations(name: str, value: Any) -> Demonstrations | None:
    if isinstance(value, Demonstrations):
        return value._checked(name)
    if value is None:
        return None
    if isinstance(value, str) and value in DEMO_MODES:
        return Demonstrations(mode=str(value))
    raise _bad_group(name, value)


def _checkpoint(name: str, value: Any) -> Checkpoints | None:
    if isinstance(value, Checkpoints):
        return value._checked(name)
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return Checkpoints(dir=value)
    raise _bad_group(name, value)


def _batching(name: str, value: Any) -> Batching:
    if isinstance(value, Batching):
        return value._checked(name)
    if value is None:
        return Batching()
    raise _bad_group(name, value)


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class Param:
    """One constructor parameter: its default and what it accepts.

    Parameters
    ----------
    default : object
        The constructor's default.
    constraint : str
        What the parameter accepts, in words (for documentation).
    check : callable or None
        ``check(name, value) -> value``: the checked, normalised value (a shorthand
        becomes its group object), or :class:`~pet_kit.errors.InputError`. ``None``:
        the parameter is an object not checked here (:data:`OBJECT_PARAMS`).
    """

    default: Any
    constraint: str
    check: Callable[[str, Any], Any] | None = None


def _int_param(default: int | None, minimum: int = 1) -> Param:
    if default is None:
        what = f"None or {_int_text(minimum)}"
        return Param(default, what, lambda name, v: _check_optional_int(name, v, minimum))
    return Param(default, _int_text(minimum), lambda name, v: _check_int(name, v, minimum))


def _float_param(default: float, ok: Callable[[float], bool], what: str) -> Param:
    return Param(
        default, f"a finite number {what}", lambda name, v: _check_float(name, v, ok, what, default)
    )


def _prompt_init(name: str, value: Any) -> str:
    """A strategy name, or the path of a saved prompt folder (prompt transfer)."""
    if isinstance(value, str) and value in INIT_STRATEGIES:
        return value
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise InputError(
        f"{name} must be one of {INIT_STRATEGIES} or the path of a saved prompt folder to"
        f" start from, got {value!r}"
    )


def is_transfer(prompt_init: str) -> bool:
    """Whether a resolved ``prompt_init`` names a saved prompt folder (not a strategy)."""
    return prompt_init not in INIT_STRATEGIES


def _choice_param(default: str | None, choices: tuple[str | None, ...]) -> Param:
    return Param(default, f"one of {choices}", lambda name, v: _check_choice(name, v, choices))


def _group_param(
    default: Any, check: Callable[[str, Any], Any], group: type[SettingsGroup]
) -> Param:
    return Param(default, group._forms, check)


def _verbose(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)):  # bools pass, as 0 and 1
        raise InputError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _device(name: str, value: Any) -> Any:
    check_device(value)
    return value


#: Every constructor parameter of the estimator, in signature order: its default, what
#: it accepts, and its check.
PARAMETERS: Mapping[str, Param] = MappingProxyType(
    {
        "pvp": Param(None, "a PVP, a YAML path or an inline dict (checked when loaded)"),
        "model": Param(None, "None, a hub name, a folder or a model (checked when loaded)"),
        "tokenizer": Param(None, "None, a name, a folder or a tokenizer (checked when loaded)"),
        "max_length": _int_param(256),
        "learning_rate": _float_param(3e-2, lambda v: v > 0, "> 0"),
        "epochs": _int_param(20, minimum=0),
        "max_steps": _int_param(None, minimum=0),
        "batch_size": _int_param(8),
        "weight_decay": _float_param(0.0, lambda v: v >= 0, ">= 0"),
        "prompt_init": Param(
            "vocab",
            f"one of {INIT_STRATEGIES}, or a saved prompt folder to start from",
            _prompt_init,
        ),
        "prompt_encoder": _choice_param(None, PROMPT_ENCODERS),
        "tuning": _group_param("prompt", _tuning, Tuning),
        "deep_prompt": _group_param(0, _deep_prompt, DeepPrompt),
        "early_stopping": _group_param(False, _early_stopping, EarlyStopping),
        "guard": _choice_param("2fold", GUARDS),
        "calibration": _group_param(None, _calibration, Calibration),
        "demonstrations": _group_param(None, _demonstrations, Demonstrations),
        "checkpoint": _group_param(None, _checkpoint, Checkpoints),
        "batching": Param(
            None,
            Batching._forms + "; batching.gradient_accumulation_steps <= batch_size",
            _batching,
        ),
        "warm_start": Param(False, "True or False", _check_bool),
        "temperature": _float_param(1.0, lambda v: v > 0, "> 0"),
        "random_state": Param(None, "None, an integer or a numpy RandomState", _check_random_state),
        "device": Param(None, "None, 'auto' or a torch device ('cpu', 'cuda'...)", _device),
        "n_threads": Param(
            None, f"None or a positive integer (at most {MAX_THREADS})", check_threads
        ),
        "verbose": Param(1, "an integer (0: silent)", _verbose),
    }
)

#: Parameter -> default, for the estimator's signature and the training loop.
DEFAULTS: Mapping[str, Any] = MappingProxyType({k: p.default for k, p in PARAMETERS.items()})


@dataclass(frozen=True)
class Settings:
    """Checked hyper-parameters, shorthands replaced by group objects.

    Made by :func:`resolve` (``resolve({})``: the defaults). Scalars are plain Python
    values (numpy scalars converted); group fields are fresh copies, so changing the
    estimator's parameters later does not change a ``Settings``.

    Parameters
    ----------
    max_length, learning_rate, epochs, max_steps, batch_size, weight_decay
        As the estimator's parameters.
    prompt_init, prompt_encoder, warm_start, temperature, random_state, device
        As the estimator's parameters.
    n_threads, verbose
        As the estimator's parameters.
    tuning : Tuning
    deep_prompt : DeepPrompt or None
        ``None``: no deep prompt.
    early_stopping : EarlyStopping or None
        ``None``: no early stopping.
    guard : str or None
        ``"holdout"``, ``"2fold"`` or ``"4fold"``: keep the untrained prompt unless
        training beats it on held-out training examples; ``None``: always train.
    calibration : Calibration or None
        ``None``: no calibration.
    demonstrations : Demonstrations or None
        ``None``: no demonstrations.
    checkpoint : Checkpoints or None
        ``None``: no checkpoints.
    batching : Batching
    """

    max_length: int
    learning_rate: float
    epochs: int
    max_steps: int | None
    batch_size: int
    weight_decay: float
    prompt_init: str
    prompt_encoder: str | None
    tuning: Tuning
    deep_prompt: DeepPrompt | None
    early_stopping: EarlyStopping | None
    guard: str | None
    calibration: Calibration | None
    demonstrations: Demonstrations | None
    checkpoint: Checkpoints | None
    batching: Batching
    warm_start: bool
    temperature: float
    random_state: Any
    device: Any
    n_threads: int | None
    verbose: int


def resolve(params: Mapping[str, Any]) -> Settings:
    """Check the estimator's parameters and normalise their shorthands.

    Parameters
    ----------
    params : mapping
        Parameter name -> value, e.g. ``est.get_params(deep=False)``. Missing names take
        their :data:`DEFAULTS`; names not in :data:`PARAMETERS` (and the object
        parameters ``pvp``, ``model``, ``tokenizer``) are ignored.

    Returns
    -------
    Settings
        The checked values, every group parameter as its group object or ``None``.

    Raises
    ------
    InputError
        For the first invalid parameter (in signature order), named in the message
        (a group's field in dotted form, ``tuning.rank``), with what it accepts.
    """
    values: dict[str, Any] = {}
    for name, param in PARAMETERS.items():
        if param.check is None:
            continue
        value = params.get(name, param.default)
        if name in GROUPS and isinstance(value, Mapping):
            value = _group_from_mapping(name, value)
        values[name] = param.check(name, value)
    accumulation = values["batching"].gradient_accumulation_steps
    if accumulation > values["batch_size"]:
        raise InputError(
            "batching.gradient_accumulation_steps cannot exceed batch_size"
            f" ({accumulation} > {values['batch_size']})"
        )
    return Settings(**values)


# ---------------------------------------------------------------------- JSON
_NOT_JSON = object()


def _json_value(value: Any) -> Any:
    """``value`` as JSON data, or ``_NOT_JSON``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return path if isinstance(path, str) else _NOT_JSON
    if isinstance(value, (SettingsGroup, Mapping)):
        items = value.get_params() if isinstance(value, SettingsGroup) else value
        fields = {str(k): _json_value(v) for k, v in items.items()}
        return _NOT_JSON if any(v is _NOT_JSON for v in fields.values()) else fields
    if isinstance(value, (list, tuple)):
        items = [_json_value(v) for v in value]
        return _NOT_JSON if any(v is _NOT_JSON for v in items) else items
    return _NOT_JSON


def to_json(settings: Settings | Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as a JSON object (for the metadata of a saved prompt).

    Parameters
    ----------
    settings : Settings or mapping
        A :class:`Settings`, or parameters by name (``est.get_params(deep=False)``),
        shorthands and all: they are written as given.

    Returns
    -------
    dict
        Parameter name -> JSON value: a group object becomes a dict of its fields (a
        nested object keyed by the parameter's name, without a type marker), a path a
        str, numpy scalars Python ones, tuples lists. Left out: names not in
        :data:`PARAMETERS`, the object parameters ``pvp``, ``model``, ``tokenizer``, and
        values with no JSON form (a numpy ``RandomState``, a ``torch.device``...), which
        :func:`from_json` then leaves to their defaults.
    """
    if isinstance(settings, Settings):
        items = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    else:
        items = dict(settings)
    out: dict[str, Any] = {}
    for name, value in items.items():
        if name not in PARAMETERS or name in OBJECT_PARAMS:
            continue
        data = _json_value(value)
        if data is not _NOT_JSON:
            out[name] = data
    return out


def _group_from_json(group: type[SettingsGroup], data: Mapping[str, Any]) -> Any:
    """``group(**data)`` (unknown keys ignored), or ``data`` itself if that fails."""
    names = {f.name for f in dataclasses.fields(cast(Any, group))}
    try:
        return group(**{k: v for k, v in data.items() if k in names})
    except TypeError:  # a required field is missing: resolve() reports the dict
        return dict(data)


def from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor parameters from :func:`to_json`'s object.

    Parameters
    ----------
    data : mapping
        Parameter name -> JSON value, as read from a saved prompt.

    Returns
    -------
    dict
        Parameter name -> value, with a dict under a group parameter rebuilt as its group
        object (its unknown keys ignored). Unknown names and the object parameters are
        left out. Values are not checked: :func:`resolve` reports bad ones (a group dict
        missing a required field is passed on as the dict).

    Raises
    ------
    InputError
        ``data`` is not a mapping.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"saved parameters must be a JSON object, got {data!r}")
    params = {k: v for k, v in data.items() if k in PARAMETERS and k not in OBJECT_PARAMS}
    for name, group in GROUPS.items():
        value = params.get(name)
        if isinstance(value, Mapping):
            params[name] = _group_from_json(group, value)
    return params
