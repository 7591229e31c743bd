"""Normalising ``X`` and ``y`` given to the estimators.

``X`` may be a list/tuple of str, a 1-D numpy array or pandas Series of str (for
patterns with one field), a pandas DataFrame or ``datasets.Dataset`` (columns named
like the pattern's fields), a 2-D array / list of tuples (columns in the order the
fields first appear in the pattern), or a list of dicts.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "check_label",
    "check_positive_int",
    "check_sample_weight",
    "check_text",
    "check_threads",
    "is_real_number",
    "label_vector",
    "looks_continuous",
    "to_label_indices",
    "to_records",
]

log = logging.getLogger(__name__)

#: A lone UTF-16 surrogate: what os.fsdecode / errors="surrogateescape" make of bytes that
#: are not UTF-8; no tokenizer (and no UTF-8 writer) accepts it.
SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE = SURROGATE


def is_real_number(value: Any) -> bool:
    """A real number (not a bool, not NaN)."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and not math.isnan(value)
    )


def check_positive_int(name: str, value: Any, *, none_ok: bool = False) -> None:
    """Raise :class:`InputError` unless ``value`` is an integer >= 1 (booleans are not).

    With ``none_ok``, ``None`` passes too (and the message says so).
    """
    if none_ok and value is None:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        what = "None or a positive integer" if none_ok else "a positive integer"
        raise InputError(f"{name} must be {what}, got {value!r}")


#: The most CPU threads pet_kit gives torch: far more than any machine's cores (more
#: threads than cores only slow torch down), far fewer than the thousands at which
#: starting them fails (OpenMP aborts the process, or it segfaults).
MAX_THREADS = 1024


def check_threads(name: str, value: Any, *, none_ok: bool = True) -> int | None:
    """``value`` as a torch thread count from 1 to :data:`MAX_THREADS` (``None`` passes
    with ``none_ok``), else :class:`InputError`."""
    if none_ok and value is None:
        return None
    check_positive_int(name, value, none_ok=none_ok)
    if value > MAX_THREADS:
        raise InputError(
            f"{name}={value!r} is more threads than torch can start safely; use at most"
            f" {MAX_THREADS} (this machine has {os.cpu_count()} CPU cores: more threads than"
            " cores only slow it down)"
        )
    return int(value)


#: pandas' missing-value markers (``pd.NA``, ``pd.NaT``), by type name: this module does
#: not import pandas.
_PANDAS_MISSING = ("NAType", "NaTType")


def _is_missing(value: Any) -> bool:
    """None, a float NaN, or pandas' ``pd.NA`` / ``pd.NaT``."""
    if value is None or type(value).__name__ in _PANDAS_MISSING:
        return True
    try:
        return isinstance(value, float) and math.isnan(value)
    except TypeError:
        return False


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_text(value: Any, where: str) -> str:
    """``value`` as a text to tokenize, or :class:`InputError` naming ``where``.

    NUL characters become spaces. Refused: bytes, missing values (None, NaN), non-str
    values, and lone surrogates (undecodable bytes smuggled in by ``surrogateescape``).
    """
    return _check_text(value, where)


def _check_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        bad = _SURROGATE.search(value)
        if bad is not None:
            raise InputError(
                f"{where} has a lone surrogate {bad.group()!r} at character {bad.start()}"
                " (bytes that are not UTF-8, decoded with errors='surrogateescape', e.g. by"
                " os.fsdecode); decode the original bytes with errors='replace' (or fix the"
                " file's encoding to UTF-8), e.g. text.encode('utf-8', 'surrogateescape')"
                ".decode('utf-8', 'replace')"
            )
        if "\x00" in value:
            value = value.replace("\x00", " ")
        return value
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        raise InputError(f"{where} is bytes, not str; decode it first, e.g. x.decode('utf-8')")
    if _is_missing(value):
        raise InputError(f"{where} is missing ({value!r}); drop or fill missing texts first")
    raise InputError(f"{where} must be a str, got {type(value).__name__} ({value!r:.40})")


def _columns_of(X: Any) -> list[str] | None:
    cols = getattr(X, "columns", None)  # pandas DataFrame
    if cols is not None:
        return [str(c) for c in cols]
    names = getattr(X, "column_names", None)  # datasets.Dataset
    if isinstance(names, list):
        return names
    return None


def to_records(X: Any, fields: Sequence[str], name: str = "X") -> list[dict[str, str]]:
    """Convert ``X`` into one ``{field: text}`` dict per example.

    Parameters
    ----------
    X : array-like, DataFrame, Dataset or list of dict
    fields : sequence of str
        The pattern's field names (order of first appearance).
    name : str, default "X"
        What the caller calls ``X``, for the messages (e.g. ``"X_unlabeled"``).

    Raises
    ------
    InputError
        Missing columns, non-str values, wrong number of columns.
    TypeError
        ``X`` is a bare string (a common slip: pass a list).
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a list of texts, not a single string; wrap it: [text]")
    fields = list(fields)
    cols = _columns_of(X)
    if cols is not None:
        repeated = sorted(c for c, n in Counter(cols).items() if n > 1)
        if repeated:
            raise InputError(
                f"{name} has several columns named {repeated} (its columns are {cols}), so it is"
                " ambiguous which one holds the text; rename or drop the extra column(s),"
                " e.g. X.loc[:, ~X.columns.duplicated()]"
            )
        missing = [f for f in fields if f not in cols]
        if missing:
            if len(fields) == 1 and len(cols) == 1:
                log.info(
                    "%s has one column, %r: it is read as the pattern's field %r",
                    name,
                    cols[0],
                    fields[0],
                )
                data = {fields[0]: list(X[X.columns[0]] if hasattr(X, "columns") else X[cols[0]])}
            else:
                raise InputError(
                    f"{name} has no column(s) {missing} used by the pattern; its columns are"
                    f" {cols}."
                    " Rename the columns or change the pattern's {field} names"
                )
        else:
            data = {f: list(X[f]) for f in fields}
        n = len(next(iter(data.values())))
        return [
            {f: _check_text(data[f][i], f"{name}[{i}][{f!r}]") for f in fields} for i in range(n)
        ]
    if isinstance(X, Mapping):
        raise InputError(
            f"{name} is a {type(X).__name__} (keys {list(X)[:5]}), which would be read as its keys;"
            " pass a DataFrame (pandas.DataFrame(X)) or a list of dicts, one per example"
        )
    if isinstance(X, (set, frozenset)):
        raise InputError(
            f"{name} is a set, whose order is arbitrary (it would not line up with y or the"
            " predictions); pass a list"
        )
    if hasattr(X, "ndim") and getattr(X, "ndim", 1) == 2:
        X = np.asarray(X, dtype=object).tolist()
    if hasattr(X, "tolist") and not isinstance(X, list):
        X = X.tolist()
    if not isinstance(X, Sequence):
        try:
            X = list(X)
        except TypeError as exc:
            raise InputError(
                f"{name} must be a list of texts, an array, a DataFrame or a Dataset (got"
                f" {type(X).__name__})"
            ) from exc
    out = []
    for i, item in enumerate(X):
        if isinstance(item, Mapping):
            missing = [f for f in fields if f not in item]
            if missing:
                raise InputError(
                    f"{name}[{i}] has no key(s) {missing} used by the pattern (it has"
                    f" {sorted(item)})"
                )
            out.append({f: _check_text(item[f], f"{name}[{i}][{f!r}]") for f in fields})
        elif isinstance(item, (list, tuple)):
            if len(item) != len(fields):
                raise InputError(
                    f"{name}[{i}] has {len(item)} values but the pattern has {len(fields)} field(s)"
                    f" {fields}; pass one value per field, in that order"
                )
            out.append(
                {
                    f: _check_text(v, f"{name}[{i}][{j}]")
                    for j, (f, v) in enumerate(zip(fields, item, strict=True))
                }
            )
        else:
            if len(fields) != 1:
                raise InputError(
                    f"the pattern has {len(fields)} fields {fields} but {name}[{i}] is a single"
                    " text; pass a DataFrame with those columns or (a, b) tuples"
                )
            out.append({fields[0]: _check_text(item, f"{name}[{i}]")})
    return out


def _is_fraction(value: Any) -> bool:
    return (
        isinstance(value, (float, np.floating))
        and math.isfinite(value)
        and not float(value).is_integer()
    )


def looks_continuous(labels: Any) -> bool:
    """Whether ``labels`` hold a finite number with a fractional part (``0.37``): regression
    targets rather than class labels."""
    return any(_is_fraction(v) for v in labels)


#: The hint added to a label error when :func:`looks_continuous`.
CONTINUOUS_HINT = (
    "y looks continuous (numbers with a fractional part): a classifier needs class"
    " labels, not regression targets"
)

_COLUMN_VECTOR = (
    "A column-vector y was passed when a 1d array was expected. Please change the shape"
    " of y to (n_samples,), for example using ravel() (for a DataFrame: select its column,"
    " df[name]); it is read as labels"
)


def label_vector(y: Any) -> Any:
    """``y`` as scikit-learn reads labels: a column of labels made 1-D.

    An object exposing only ``__array__`` (no length) becomes an array; an ``(n, 1)``
    array, a one-column DataFrame or a list of one-item rows becomes its single column,
    with scikit-learn's ``DataConversionWarning`` (as its own classifiers do). Anything
    else (1-D labels, ``(n, n_classes)`` soft labels, ``None``) is returned unchanged.

    Parameters
    ----------
    y : array-like or None

    Returns
    -------
    array-like or None
    """
    if y is None or isinstance(y, (str, bytes)):
        return y
    if not hasattr(y, "__len__") and hasattr(y, "__array__"):
        y = np.asarray(y)
    columns = getattr(y, "columns", None)
    if columns is not None and getattr(y, "ndim", 2) == 2 and len(columns) == 1:
        _warn_column_vector()
        return y.iloc[:, 0] if hasattr(y, "iloc") else y[columns[0]]
    if isinstance(y, np.ndarray):
        if y.ndim == 2 and y.shape[1] == 1:
            _warn_column_vector()
            return y[:, 0]
        return y
    if (
        isinstance(y, (list, tuple))
        and y
        and all(isinstance(r, (list, tuple, np.ndarray)) and len(r) == 1 for r in y)
    ):
        _warn_column_vector()
        return [r[0] for r in y]
    return y


def _warn_column_vector() -> None:
    import warnings

    from sklearn.exceptions import DataConversionWarning

    warnings.warn(_COLUMN_VECTOR, DataConversionWarning, stacklevel=3)


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    """``sample_weight`` for ``n`` examples as a new float64 array (``None``: not given).

    Accepts what scikit-learn passes: a list, an array, a Series, an object exposing
    only ``__array__``. The input is never changed.

    Raises
    ------
    InputError
        Not numbers, not 1-D, a length other than ``n``, a value that is NaN, infinite
        or negative, or every weight 0.
    """
    if sample_weight is None:
        return None
    try:
        w = np.array(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"sample_weight must hold numbers (one weight >= 0 per example), got"
            f" {sample_weight!r:.80}"
        ) from exc
    if w.ndim != 1:
        raise InputError(f"sample_weight must be 1-D, one weight per example; got shape {w.shape}")
    if len(w) != n:
        raise InputError(
            f"sample_weight has {len(w)} values but X has {n} examples; pass one weight per example"
        )
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"sample_weight[{i}] is {float(w[i])!r}; every weight must be a finite number >= 0"
            " (0 leaves the example out of training)"
        )
    if n and not w.any():
        raise InputError(
            "every sample_weight is 0, so nothing would be trained; give some examples a"
            " positive weight (or fit(None) for zero-shot)"
        )
    return w


def check_label(label: Any, i: int) -> None:
    """Refuse ``y[i] = label`` when it is missing (None, NaN) or an infinite number.

    Raises
    ------
    InputError
    """
    if _is_missing(label):
        raise InputError(f"y[{i}] is missing ({label!r}); drop unlabeled rows before fit")
    if isinstance(label, (float, np.floating)) and not math.isfinite(label):
        raise InputError(f"y[{i}] is {float(label)!r}, not a label; drop or fix that row")


def to_label_indices(y: Any, classes: Sequence[Hashable], n: int) -> np.ndarray:
    """Map labels to indices into ``classes``.

    Labels match by equality (``5.0`` and ``numpy.int64(5)`` match ``5``); when a label
    is not found but its string form equals a class's string form (``1`` vs ``"1"``), it
    is matched too. Booleans match only boolean classes (``True`` never matches ``1``).
    ``y`` may mix types this way; a label that matches no class is an error. A column of
    labels (an ``(n, 1)`` array, a one-column DataFrame) is read as its labels
    (:func:`label_vector`).

    Raises
    ------
    InputError
        Length mismatch, missing labels, labels the verbalizer does not cover.
    """
    y = label_vector(y)
    if hasattr(y, "tolist"):
        y = y.tolist()
    y = list(y)
    if len(y) != n:
        raise InputError(f"X has {n} examples but y has {len(y)} labels; they must match")
    lookup: dict[Any, int] = {}
    by_str: dict[str, int] = {}
    for i, c in enumerate(classes):
        lookup[c] = i
        by_str.setdefault(str(c), i)
    out = np.empty(len(y), dtype=np.int64)
    unknown: dict[str, int] = {}
    fractional = False  # an unknown label such as 0.37: regression targets?
    for i, label in enumerate(y):
        check_label(label, i)
        try:
            idx = lookup.get(label)
        except TypeError as exc:
            raise InputError(
                f"y[{i}] = {label!r:.60} is not a hashable label; y must be a 1-D sequence of"
                " labels"
            ) from exc
        if idx is not None and _is_bool(label) != _is_bool(classes[idx]):
            idx = None  # True == 1 in Python, but a boolean is not the class 1
        if idx is None:
            idx = by_str.get(str(label))
        if idx is None:
            unknown.setdefault(repr(label), i)
            fractional = fractional or _is_fraction(label)
            continue
        out[i] = idx
    if unknown:
        shown = ", ".join(list(unknown)[:5])
        hint = f". {CONTINUOUS_HINT}" if fractional else ""
        tips = _label_suggestions(unknown, y, classes)
        raise InputError(
            f"y has label(s) {shown} that the verbalizer does not define (its labels:"
            f" {list(classes)}){tips}{' Otherwise' if tips else ';'} add them to the"
            f" verbalizer's 'labels' with label words{hint}"
        )
    return out


def _label_suggestions(unknown: dict[str, int], y: list[Any], classes: Sequence[Any]) -> str:
    """``"; did you mean 'x'?"`` for a misspelt label (``unknown``: its ``repr`` -> its
    first index in ``y``), one per label (the first five) when there are several."""
    from ..config.schema import did_you_mean  # pydantic: only when a label is unknown

    tips = {key: did_you_mean(y[i], classes) for key, i in list(unknown.items())[:5]}
    tips = {key: tip for key, tip in tips.items() if tip}
    if len(unknown) == 1:
        return next(iter(tips.values()), "")
    return "".join(f"; {key}: {tip[2:]}" for key, tip in tips.items())
