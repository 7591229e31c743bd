"""Strict schemas of the YAML/inline specification files.

Three shapes exist:

* a **verbalizer** (``verbalizers/*.yaml``): ``labels`` mapping each label to words;
* a **template** file (``templates/*.yaml``): one or more ``patterns`` plus the
  ``verbalizer`` they go with;
* a **PVP** (a file or an inline ``dict``): one ``pattern`` and one ``verbalizer``.

Unknown keys are rejected with a suggestion of the closest valid key. Every problem of a
document is reported at once (:func:`check_schema`, :func:`validate`);
:func:`detect_kind` tells the kinds of files apart (plus the ``pet-kit train`` config,
:class:`TrainFile`) and :func:`check_train_params` checks a train config's ``params``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError, InputError, Problem
from .yaml_source import YamlSource

__all__ = [
    "KINDS",
    "DataSpec",
    "FieldOptions",
    "PVPSpec",
    "PatternEntry",
    "TemplateFile",
    "TrainFile",
    "VerbalizerSpec",
    "check_schema",
    "check_train_params",
    "detect_kind",
    "did_you_mean",
    "validate",
]

Aggregate = Literal["mean", "max", "logsumexp"]
LabelKey = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldOptions(_Strict):
    """Options for one text field of a pattern.

    Attributes
    ----------
    shortenable : bool
        Whether truncation may cut this field (default ``True``). Pattern literals,
        the mask and soft slots are never cut.
    lowercase_first : bool
        Lower-case the first character (for fields that continue a sentence).
    strip_final_punct : bool
        Remove trailing punctuation (for fields followed by ``?`` in the pattern).
    """

    shortenable: bool = True
    lowercase_first: bool = False
    strip_final_punct: bool = False


class VerbalizerSpec(_Strict):
    """A verbalizer: label -> label words."""

    name: str | None = None
    language: str | None = None
    description: str | None = None
    aggregate: Aggregate = "mean"
    labels: dict[LabelKey, list[str]] = Field(min_length=2)

    @field_validator("labels", mode="before")
    @classmethod
    def _words_as_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value


class PatternEntry(_Strict):
    """One pattern inside a template file."""

    name: str | None = None
    pattern: str
    fields: dict[str, FieldOptions] = Field(default_factory=dict)


class TemplateFile(_Strict):
    """A template file: several patterns that share a verbalizer."""

    name: str | None = None
    language: str | None = None
    description: str | None = None
    verbalizer: str | dict[Any, Any] | None = None
    default: str | None = None
    fields: dict[str, FieldOptions] = Field(default_factory=dict)
    patterns: list[PatternEntry] = Field(min_length=1)


class PVPSpec(_Strict):
    """A single pattern-verbalizer pair (file or inline dict)."""

    name: str | None = None
    language: str | None = None
    description: str | None = None
    pattern: str
    verbalizer: str | dict[Any, Any]
    fields: dict[str, FieldOptions] = Field(default_factory=dict)


# pydantic appends the union member tried to an error's location (e.g. ``verbalizer.str``)
_UNION_TAGS = frozenset({"str", "int", "float", "bool"})


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc`` (for 'did you mean' suggestions)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                current = FieldOptions  # keys under a `fields` mapping
                continue
            ann = info.annotation
            current = _inner_model(ann)
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> dict[str, Any]:
    """Field infos of the schema object that contains ``loc``'s last key."""
    names = _valid_keys(model, loc)
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(str(part)) if isinstance(current, type) else None
        current = _inner_model(info.annotation) if info is not None else FieldOptions
    fields = current.model_fields if isinstance(current, type) else {}
    return {k: fields[k] for k in names if k in fields}


def _inner_model(annotation: Any) -> Any:
    """Return the BaseModel type nested in ``annotation`` (list[...], dict[..., ...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def did_you_mean(name: object, choices: Iterable[object], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``name``, or ``""``.

    Parameters
    ----------
    name : object
        The misspelled name (a key, a label, a parameter...); compared as ``str``.
    choices : iterable
        The names it should have been one of.
    cutoff : float, default=0.6
        Least :class:`difflib.SequenceMatcher` ratio of a suggestion.

    Returns
    -------
    str
        To append to a message.
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=cutoff)
    return f"; did you mean '{close[0]}'?" if close else ""


# what a pydantic type error expects, in words (to merge the errors of a union's members)
_EXPECTED = {
    "string_type": "a string",
    "dict_type": "a mapping",
    "list_type": "a list",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _plain_loc(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """``loc`` without pydantic's union-member suffixes (``verbalizer.str``), and whether
    the error is about a mapping's key (``labels.None.[key]``) rather than its value."""
    parts = list(loc)
    while (
        parts
        and isinstance(parts[-1], str)
        and (parts[-1] in _UNION_TAGS or parts[-1].startswith(("dict[", "list[")))
    ):
        parts.pop()
    is_key = bool(parts) and parts[-1] == "[key]"
    if is_key:
        parts.pop()
    return tuple(parts), is_key


def _value_problem(errors: list[Any], is_key: bool) -> str:
    """The message for the (type, value) errors pydantic gave for one location."""
    value = errors[0].get("input")
    expected = [_EXPECTED.get(e["type"]) for e in errors]
    if len(errors) > 1 and all(expected):
        words = list(dict.fromkeys(w for w in expected if w))
        problem = f"expected {', '.join(words[:-1])} or {words[-1]} (got {_shown(value)})"
    else:
        problem = "; or ".join(dict.fromkeys(e["msg"] for e in errors))
        problem += f" (got {_shown(value)})"
    if is_key:
        return f"the key {_shown(value)} is not valid: {problem}"
    err = errors[0]
    if err["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        problem += f"; use one of: {', '.join(choices)}" + did_you_mean(value, choices)
    if isinstance(value, bool):
        problem += (
            '; YAML reads unquoted yes/no/true/false/on/off as booleans: quote the word, e.g. "yes"'
        )
    if isinstance(value, (list, dict)) and any(e["type"] == "string_type" for e in errors):
        kind = "list" if isinstance(value, list) else "mapping"
        problem += (
            f"; YAML reads an unquoted value starting with '{'[' if kind == 'list' else '{'}'"
            f' as a {kind}: quote the whole value, e.g. pattern: "[MASK] News: {{text}}"'
        )
    return problem


def check_schema(
    model: type[BaseModel],
    source: YamlSource,
    what: str,
    *,
    base: tuple[Any, ...] = (),
    wrap: str | None = None,
) -> tuple[Any, list[Problem]]:
    """Validate the data at ``base`` in ``source`` against ``model``; every problem found.

    Parameters
    ----------
    model : type of BaseModel
        The schema.
    source : YamlSource
        Data plus where it came from (for file/line in errors).
    what : str
        Human name of the expected document ("verbalizer", "template file", ...).
    base : tuple
        Key path of the document inside ``source.data`` (e.g. ``("verbalizer",)``).
    wrap : str, optional
        Validate ``{wrap: data}`` instead of ``data`` (a bare ``labels`` mapping).

    Returns
    -------
    (model instance or None, list of Problem)
        The validated object (``None`` if there are problems) and the problems, in the
        order of their lines; each is located at the offending key, misspelled keys with
        the closest valid key.
    """
    data = source.data
    for part in base:
        data = data[part]
    if wrap is not None:
        data = {wrap: data}
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        problem = (
            f"expected a {what} (a YAML mapping with keys {', '.join(model.model_fields)}),"
            f" got {kind}"
        )
        return None, [source.problem(problem, base)]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
    grouped: dict[tuple[tuple[Any, ...], bool], list[Any]] = {}
    for err in errors:
        grouped.setdefault(_plain_loc(tuple(err["loc"])), []).append(err)
    found: list[tuple[tuple[Any, ...], str, bool]] = []
    explained: set[tuple[Any, ...]] = set()  # required keys that a misspelling explains
    for (loc, is_key), errs in grouped.items():
        kind = errs[0]["type"]
        if kind == "extra_forbidden":
            bad = str(loc[-1])
            valid = _valid_keys(model, loc)
            close = difflib.get_close_matches(bad, valid, n=1)
            if not close:
                required = [k for k, f in _model_at(model, loc).items() if f.is_required()]
                close = difflib.get_close_matches(bad, required, n=1, cutoff=0.5)
            if close:
                explained.add((*loc[:-1], close[0]))
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problem = f"unknown key '{bad}' in {what}{hint} (valid keys: {', '.join(valid)})"
        elif kind == "missing":
            problem = f"required key '{loc[-1]}' is missing from the {what}"
        else:
            problem = _value_problem(errs, is_key)
        found.append((loc, problem, kind == "missing"))
    problems = []
    for loc, problem, missing in found:
        if missing and loc in explained:
            continue  # "unknown key 'patern' ...; did you mean 'pattern'?" says it
        if wrap is not None and loc and loc[0] == wrap:
            loc = loc[1:]
        problems.append(source.problem(problem, (*base, *loc)))
    problems.sort(key=lambda p: p.line or 0)
    return None, problems


def validate(
    model: type[BaseModel],
    source: YamlSource,
    what: str,
    *,
    base: tuple[Any, ...] = (),
    wrap: str | None = None,
) -> Any:
    """Validate the data at ``base`` in ``source`` against ``model``.

    Parameters
    ----------
    model : type of BaseModel
        The schema.
    source : YamlSource
        Data plus where it came from (for file/line in errors).
    what : str
        Human name of the expected document ("verbalizer", "template file", ...).
    base : tuple
        Key path of the document inside ``source.data`` (e.g. ``("verbalizer",)``).
    wrap : str, optional
        Validate ``{wrap: data}`` instead of ``data`` (a bare ``labels`` mapping).

    Returns
    -------
    model instance

    Raises
    ------
    ConfigError
        Listing every problem (see :func:`check_schema`), each located at the offending
        key, with a suggestion for misspelled keys.
    """
    result, problems = check_schema(model, source, what, base=base, wrap=wrap)
    if problems:
        raise ConfigError.from_problems(problems)
    return result


class DataSpec(_Strict):
    """Where ``pet-kit train`` gets its examples.

    Either a file (``train``; CSV/TSV/JSONL with a label column) or a built-in task
    from :mod:`pet_kit.datasets` (``task`` with ``k`` examples per class).
    """

    train: str | None = None
    eval: str | None = None
    label_column: str = "label"
    task: str | None = None
    k: int | None = Field(default=None, ge=0)
    seed: int = 0
    eval_size: int | None = Field(default=None, ge=1)


class TrainFile(_Strict):
    """A ``pet-kit train`` configuration file."""

    pvp: str | dict[str, Any]
    model: str | None = None
    data: DataSpec
    output: str
    params: dict[str, Any] = Field(default_factory=dict)


# ------------------------------------------------------------ kinds of files
#: The kinds of specification files, each with the keys that only it has.
KINDS: dict[str, tuple[str, ...]] = {
    "template file": ("patterns", "default"),
    "PVP": ("pattern",),
    "train config": ("pvp", "data", "output", "params", "model"),
    "verbalizer": ("labels", "aggregate"),
}


def detect_kind(data: Any) -> str | None:
    """What kind of specification ``data`` (a parsed YAML document) is, by its keys.

    A key that only one kind has (:data:`KINDS`) decides, also when it is misspelled
    (``patern`` is a PVP's ``pattern``); ties go to the kind listed first in
    :data:`KINDS`. A document with only shared keys and a ``verbalizer`` is a PVP.

    Parameters
    ----------
    data : object
        The document.

    Returns
    -------
    str or None
        A key of :data:`KINDS` (``"template file"``, ``"PVP"``, ``"train config"``,
        ``"verbalizer"``), or ``None`` when ``data`` is no mapping or its keys say nothing.
    """
    if not isinstance(data, Mapping):
        return None
    own = {key: kind for kind, keys in KINDS.items() for key in keys}
    votes = dict.fromkeys(KINDS, 0)
    for key in map(str, data):
        if key in own:
            votes[own[key]] += 2
            continue
        close = difflib.get_close_matches(key, list(own), n=1, cutoff=0.75)
        if close:
            votes[own[close[0]]] += 1
    best = max(votes, key=lambda kind: votes[kind])  # the first of equals
    if votes[best]:
        return best
    return "PVP" if "verbalizer" in data else None


def check_train_params(
    source: YamlSource, base: tuple[Any, ...] = ("params",), *, values: bool = True
) -> list[Problem]:
    """Every problem of a train config's ``params`` mapping (at ``base`` in ``source``).

    Names are checked against :data:`~pet_kit.config.settings.PARAMETERS` (``pvp`` and
    ``model`` belong at the top level of the config), the keys of a grouped setting's
    mapping (``tuning: {rank: 4}``) against its fields, both with the closest valid name
    for a misspelling. Values are checked as the estimator checks them, except
    ``device`` (checking it imports torch).

    Parameters
    ----------
    source : YamlSource
        The train config.
    base : tuple
        Key path of the ``params`` mapping.
    values : bool, default=True
        Also check the values (``False``: names and fields only, e.g. when the estimator
        checks the values later anyway).

    Returns
    -------
    list of Problem
        Located at the offending parameter or field (empty: no problem, or no mapping at
        ``base``, which :func:`check_schema` reports).
    """
    from .settings import GROUPS, PARAMETERS, as_group, resolve

    params: Any = source.data
    for part in base:
        params = params.get(part) if isinstance(params, Mapping) else None
    if not isinstance(params, Mapping):
        return []
    valid = [name for name in PARAMETERS if name not in ("pvp", "model")]
    problems: list[Problem] = []
    checkable: dict[str, Any] = {}
    for name, value in params.items():
        key = str(name)
        here = (*base, name)
        if key in ("pvp", "model"):
            problems.append(
                source.problem(
                    f"'{key}' belongs at the top level of a train config, not under params;"
                    f" move it up ({key}: ...)",
                    here,
                )
            )
            continue
        if key not in PARAMETERS:
            hint = did_you_mean(key, valid) or f"; valid parameters: {', '.join(valid)}"
            problems.append(source.problem(f"unknown parameter '{key}'{hint}", here))
            continue
        if key in GROUPS and isinstance(value, Mapping):
            fields = [f.name for f in dataclasses.fields(GROUPS[key])]  # type: ignore[arg-type]
            unknown = [f for f in value if str(f) not in fields]
            for field in unknown:
                hint = did_you_mean(field, fields)
                problems.append(
                    source.problem(
                        f"{key} has no field '{field}'{hint} (its fields: {', '.join(fields)})",
                        (*here, field),
                    )
                )
            if unknown:
                continue
        check = PARAMETERS[key].check
        if not values or check is None or key == "device":
            continue
        try:
            check(
                key,
                as_group(key, value, {}) if key in GROUPS and isinstance(value, Mapping) else value,
            )
        except InputError as exc:
            problems.append(source.problem(str(exc), _field_loc(here, value, str(exc), key)))
        else:
            checkable[key] = value
    if values and not problems:
        try:  # what involves several parameters (gradient accumulation <= batch size)
            resolve(checkable)
        except InputError as exc:
            name = re.split(r"[^\w]", str(exc), maxsplit=1)[0]
            here = (*base, name) if name in checkable else base
            problems.append(
                source.problem(str(exc), _field_loc(here, params.get(name), str(exc), name))
            )
    return problems


def _field_loc(here: tuple[Any, ...], value: Any, message: str, name: str) -> tuple[Any, ...]:
    """Where a grouped setting's error is: at the field its message names
    (``tuning.rank must be ...``) if the config sets it, else at the parameter."""
    if isinstance(value, Mapping) and message.startswith(f"{name}."):
        field = re.split(r"[^\w]", message[len(name) + 1 :], maxsplit=1)[0]
        if field in value:
            return (*here, field)
    return here
