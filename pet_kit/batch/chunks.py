"""Predicting a table chunk by chunk: each chunk's columns plus ``prediction`` and one
``proba_<class>`` column per class (the format ``pet-kit predict`` writes), rounded as
it rounds them, as CSV/TSV/JSON Lines text.

Row numbers in messages are 0-based data rows (a CSV/TSV header is not a row; for TXT
files, blank lines are not rows), the same numbers as the ``row`` column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.tables import iter_table_chunks, table_records

__all__ = [
    "ROW_COLUMN",
    "RoundedProbabilities",
    "TableFormatter",
    "check_digits",
    "count_rows",
    "predict_chunk",
    "predict_iter",
]

ROW_COLUMN = "row"
"""Name of the 0-based input row column written in sharded mode."""


def check_digits(digits: Any) -> None:
    """Raise :class:`InputError` unless ``digits`` is significant digits, 1 to 17."""
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise InputError(f"digits must be an integer from 1 to 17, got {digits!r}")


class RoundedProbabilities:
    """A fitted classifier whose probabilities are rounded to ``digits`` significant
    digits (what ``pet-kit predict --digits`` writes). A row whose rounding would change
    its top class keeps its exact values, so predictions never change.

    Parameters
    ----------
    clf : fitted classifier
        Anything with ``predict_proba`` and ``classes_``.
    digits : int
        Significant digits, 1 to 17.
    """

    def __init__(self, clf: Any, digits: int) -> None:
        check_digits(digits)
        self.clf = clf
        self.digits = digits

    def __getattr__(self, name: str) -> Any:
        return getattr(self.clf, name)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The wrapped classifier's probabilities, rounded."""
        exact = np.asarray(self.clf.predict_proba(X), dtype=np.float64)
        flat = [float(f"{v:.{self.digits}g}") for v in exact.ravel().tolist()]
        rounded = np.asarray(flat, dtype=np.float64).reshape(exact.shape)
        if len(exact):
            tied = rounded.argmax(1) != exact.argmax(1)
            rounded[tied] = exact[tied]
        return rounded


_X_INDEX = re.compile(r"\bX\[(\d+)\](?:\[('[^']*'|\d+)\])?")
_EXAMPLE_INDEX = re.compile(r"\bexample (\d+)\b")


def _global_rows(message: str, first_row: int) -> str:
    """Rewrite chunk-local example indices (``X[3]['text']``) as input row numbers."""

    def x_index(m: re.Match[str]) -> str:
        col = f" (column {m.group(2)})" if m.group(2) else ""
        return f"row {first_row + int(m.group(1))}{col}"

    message = _X_INDEX.sub(x_index, message)
    return _EXAMPLE_INDEX.sub(lambda m: f"row {first_row + int(m.group(1))}", message)


def predict_chunk(
    clf: Any,
    chunk: pd.DataFrame,
    first_row: int = 0,
    *,
    source: str | os.PathLike[str] | None = None,
    row_column: bool = False,
) -> pd.DataFrame:
    """Predict one chunk: its columns plus ``prediction`` and ``proba_<class>``.

    Parameters
    ----------
    clf : fitted classifier
        Anything with ``predict_proba`` and ``classes_`` (e.g. a loaded
        :class:`~pet_kit.PromptClassifier`).
    chunk : pandas.DataFrame
        Rows to classify (columns named like the pattern's fields).
    first_row : int
        Input row number of the chunk's first row (for messages and ``row``).
    source : str or PathLike, optional
        The input file, named in error messages.
    row_column : bool
        Add a ``row`` column (first) with the input row numbers.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        A row cannot be classified; the message names the input rows.
    """
    n = len(chunk)
    where = f"{source}: " if source is not None else ""
    classes = clf.classes_
    try:
        proba = np.asarray(clf.predict_proba(chunk)) if n else np.zeros((0, len(classes)))
    except InputError as exc:
        raise InputError(
            f"{where}data rows {first_row}-{first_row + n - 1} (0-based):"
            f" {_global_rows(str(exc), first_row)}"
        ) from exc
    out = chunk.copy()
    out["prediction"] = classes[proba.argmax(1)]
    for j, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, j]
    if row_column:
        if ROW_COLUMN in chunk.columns:
            raise InputError(
                f"{where}the input has a column {ROW_COLUMN!r}, which sharded prediction adds"
                " (the input row number); rename that column"
            )
        out.insert(0, ROW_COLUMN, np.arange(first_row, first_row + n, dtype=np.int64))
    return out


def predict_iter(
    clf: Any,
    chunks: Iterable[pd.DataFrame],
    *,
    first_row: int = 0,
    source: str | os.PathLike[str] | None = None,
    row_column: bool = False,
) -> Iterator[pd.DataFrame]:
    """Predict chunks lazily: yields :func:`predict_chunk` of each input chunk.

    Parameters
    ----------
    clf : fitted classifier
    chunks : iterable of pandas.DataFrame
        E.g. ``iter_table_chunks(path, 1000)``; consumed one chunk at a time.
    first_row : int
        Input row number of the first chunk's first row.
    source : str or PathLike, optional
        The input file, named in error messages.
    row_column : bool
        Add the ``row`` column.

    Yields
    ------
    pandas.DataFrame
    """
    row = first_row
    for chunk in chunks:
        yield predict_chunk(clf, chunk, row, source=source, row_column=row_column)
        row += len(chunk)


class TableFormatter:
    """Formats output chunks as CSV/TSV/JSONL text; a CSV/TSV header comes once."""

    def __init__(self, suffix: str, columns: list[str] | None = None) -> None:
        self.suffix = suffix.lower()
        self.columns = columns  # CSV/TSV: the header written (None: not yet)

    def format(self, df: pd.DataFrame, where: str) -> str:
        if self.suffix == ".jsonl":
            return "".join(table_records(df))
        names = [str(c) for c in df.columns]
        header = self.columns is None
        if header:
            self.columns = names
        elif names != self.columns:
            extra = [c for c in names if c not in self.columns]
            if extra:
                raise InputError(
                    f"{where}: column(s) {extra} appear that earlier rows lack; a"
                    f" {self.suffix} output has one header ({self.columns}). Write a .jsonl"
                    " output instead, or give every input record the same keys"
                )
            df = df.reindex(columns=self.columns)
        sep = "\t" if self.suffix == ".tsv" else ","
        return df.to_csv(None, sep=sep, index=False, header=header)


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """The data rows of a CSV/TSV/JSONL/TXT file, as :func:`iter_table_chunks` reads
    them (a progress bar's total: one quick pass, no model); ``None`` when a part of
    the file cannot be read (the prediction then reports it where it is)."""
    try:
        return sum(len(chunk) for chunk in iter_table_chunks(path, 50_000))
    except InputError:
        return None


def own_bars_off(clf: Any) -> Callable[[], None]:
    """Turn the classifier's own ``predict`` bars (its ``verbose``) off while a file's
    bar runs; returns what restores its setting."""
    inner = clf.clf if isinstance(clf, RoundedProbabilities) else clf
    get = getattr(inner, "get_params", None)
    verbose = get(deep=False).get("verbose") if callable(get) else None
    if not verbose:
        return lambda: None
    inner.set_params(verbose=0)
    return lambda: inner.set_params(verbose=verbose)
