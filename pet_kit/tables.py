"""Reading and writing example tables (CSV, TSV, JSON Lines, plain text).

Used by the CLI; plain-text files hold one example per line in a ``text`` column.
:func:`iter_table_chunks` reads the same formats lazily, a fixed number of rows at a
time, for files too large to hold in memory.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from .errors import InputError

__all__ = ["iter_table_chunks", "read_table", "table_records", "write_table"]

OUTPUT_SUFFIXES = (".csv", ".tsv", ".jsonl")

_READERS = {
    ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
    ".tsv": lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False),
    ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
    ".txt": lambda p: pd.DataFrame(
        {"text": [ln for ln in Path(p).read_text(encoding="utf-8").splitlines() if ln.strip()]}
    ),
}


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV/TSV/JSONL/TXT file into a DataFrame.

    Raises
    ------
    InputError
        Unknown extension, missing file, or a file that cannot be parsed.
    """
    p = check_input_path(path)
    reader = _READERS[p.suffix.lower()]
    try:
        return reader(p)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot parse as {p.suffix} ({exc})") from None


def check_input_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path if it is an existing file of a readable type.

    Raises
    ------
    InputError
        Unknown extension or missing file.
    """
    p = Path(path)
    if p.suffix.lower() not in _READERS:
        raise InputError(f"{p}: unsupported file type {p.suffix!r}; use .csv, .tsv, .jsonl or .txt")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    return p


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path if its extension is a writable table type.

    Raises
    ------
    InputError
        Unknown extension.
    """
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"{p}: unsupported output type {p.suffix!r}; use .csv, .tsv or .jsonl")
    return p


def _raw_chunks(p: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The format's own chunks (row counts may differ from ``chunk_size``)."""
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        with pd.read_csv(
            p, sep=sep, dtype=str, keep_default_na=False, chunksize=chunk_size
        ) as reader:
            yield from reader
    elif suffix == ".jsonl":
        with pd.read_json(p, lines=True, dtype=False, chunksize=chunk_size) as reader:
            yield from reader
    else:  # .txt: one example per non-blank line, read line by line
        lines: list[str] = []
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                # splitlines() as read_table does: it also splits at \v, \f, \u2028, ...
                lines.extend(ln for ln in line.splitlines() if ln.strip())
                if len(lines) >= chunk_size:
                    yield pd.DataFrame({"text": lines})
                    lines = []
        if lines:
            yield pd.DataFrame({"text": lines})


def iter_table_chunks(path: str | os.PathLike[str], chunk_size: int) -> Iterator[pd.DataFrame]:
    """Read a CSV/TSV/JSONL/TXT file lazily, ``chunk_size`` rows at a time.

    Values are read as :func:`read_table` reads them (CSV/TSV cells as ``str`` with no
    missing-value guessing; JSON values as parsed; TXT lines in a ``text`` column), but
    only about one chunk is in memory at a time. Every chunk but the last has exactly
    ``chunk_size`` rows; chunks are indexed from 0 (the row number within the chunk).
    A file without rows yields nothing.

    JSONL caveat: records may have different keys; a chunk has the columns of the
    keys its own records use (:func:`read_table` has the union over the whole file),
    and numeric columns are typed per chunk.

    Parameters
    ----------
    path : str or PathLike
        ``.csv``, ``.tsv``, ``.jsonl`` or ``.txt`` file.
    chunk_size : int
        Rows per chunk (>= 1).

    Yields
    ------
    pandas.DataFrame

    Raises
    ------
    InputError
        Bad ``chunk_size``, unknown extension, missing file, or a part of the file that
        cannot be parsed (raised when the reader reaches it).
    """
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    p = check_input_path(path)
    return _rechunk(p, chunk_size)


def _rechunk(p: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    pending: list[pd.DataFrame] = []
    n_pending = 0
    rows = 0
    raw = _raw_chunks(p, chunk_size)
    try:
        while True:
            try:
                frame = next(raw)
            except StopIteration:
                break
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                read = rows + n_pending
                where = f" after data row {read - 1} (0-based)" if read else ""
                raise InputError(f"{p}: cannot parse as {p.suffix}{where} ({exc})") from None
            if not len(frame):
                continue
            pending.append(frame)
            n_pending += len(frame)
            while n_pending >= chunk_size:
                joined = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
                out = joined.iloc[:chunk_size].reset_index(drop=True)
                rest = joined.iloc[chunk_size:]
                pending = [rest] if len(rest) else []
                n_pending = len(rest)
                rows += len(out)
                yield out
    finally:
        raw.close()
    if n_pending:
        joined = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
        yield joined.reset_index(drop=True)


def table_records(df: pd.DataFrame) -> Iterator[str]:
    """One JSON Lines line (with its newline) per row, as :func:`write_table` writes them.

    Missing values (NaN, None) are written as JSON ``null`` (``NaN`` is not JSON).
    """
    for rec in df.to_dict(orient="records"):
        clean = {k: None if _is_nan(v) else v for k, v in rec.items()}
        yield json.dumps(clean, ensure_ascii=False, default=str, allow_nan=False) + "\n"


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` as CSV/TSV/JSONL depending on the extension (atomically)."""
    p = Path(path)
    suffix = p.suffix.lower()
    tmp = p.with_name(f".{p.name}.tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    elif suffix == ".tsv":
        df.to_csv(tmp, sep="\t", index=False)
    elif suffix == ".jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(table_records(df))
    else:
        raise InputError(f"{p}: unsupported output type {p.suffix!r}; use .csv, .tsv or .jsonl")
    os.replace(tmp, p)
