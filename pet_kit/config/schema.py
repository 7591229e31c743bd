"""Strict schemas of the YAML/inline specification files.

Three shapes exist:

* a **verbalizer** (``verbalizers/*.yaml``): ``labels`` mapping each label to words;
* a **template** file (``templates/*.yaml``): one or more ``patterns`` plus the
  ``verbalizer`` they go with;
* a **PVP** (a file or an inline ``dict``): one ``pattern`` and one ``verbalizer``.

Unknown keys are rejected with a suggestion of the closest valid key.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .yaml_source import YamlSource

__all__ = [
    "FieldOptions",
    "PVPSpec",
    "PatternEntry",
    "TemplateFile",
    "VerbalizerSpec",
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

    Raises
    ------
    ConfigError
        Located at the offending key, with a suggestion for misspelled keys.
    """
    data = source.data
    for part in base:
        data = data[part]
    if wrap is not None:
        data = {wrap: data}
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise source.error(
            f"expected a {what} (a YAML mapping with keys {', '.join(model.model_fields)}),"
            f" got {kind}",
            base,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown key explains a "missing" one (a misspelling): report it first
        errors.sort(key=lambda e: e["type"] != "extra_forbidden")
        err = errors[0]
        loc = tuple(err["loc"])
        kind = err["type"]
        if (loc and loc[-1] in _UNION_TAGS) or (
            loc and isinstance(loc[-1], str) and loc[-1].startswith(("dict[", "list["))
        ):
            loc = loc[:-1]  # pydantic's union-member suffix, e.g. labels.str
        if kind == "extra_forbidden":
            bad = str(loc[-1])
            valid = _valid_keys(model, loc)
            close = difflib.get_close_matches(bad, valid, n=1)
            if not close:
                required = [k for k, f in _model_at(model, loc).items() if f.is_required()]
                close = difflib.get_close_matches(bad, required, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problem = f"unknown key '{bad}' in {what}{hint} (valid keys: {', '.join(valid)})"
        elif kind == "missing":
            problem = f"required key '{loc[-1]}' is missing from the {what}"
        else:
            value = err.get("input")
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            problem = f"{err['msg']} (got {shown})"
            if isinstance(value, bool):
                problem += (
                    "; YAML reads unquoted yes/no/true/false/on/off as booleans: quote the"
                    ' word, e.g. "yes"'
                )
            if loc and loc[-1] == "aggregate":
                problem += "; use one of: mean, max, logsumexp"
        more = len(errors) - 1
        if more:
            problem += f" [+{more} more problem(s)]"
        if wrap is not None and loc and loc[0] == wrap:
            loc = loc[1:]
        raise source.error(problem, (*base, *loc)) from exc


class DataSpec(_Strict):
    """Where ``pet-kit train`` gets its examples.

    Either a file (``train``; CSV/TSV/JSONL with a label column) or a built-in task
    from :mod:`pet_kit.io.datasets` (``task`` with ``k`` examples per class).
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
