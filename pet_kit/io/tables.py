"""Reading and writing example tables (CSV, TSV, JSON Lines, plain text).

Used by the CLI; plain-text files hold one example per line in a ``text`` column.
:func:`iter_table_chunks` reads the same formats lazily, a fixed number of rows at a
time, for files too large to hold in memory.

Tables whose columns would be read wrongly without a word are refused (``InputError``):
a CSV/TSV header naming a column twice (pandas would rename the second ``text.1`` and
read the first), a JSON Lines record with a key twice (JSON keeps the last value), a
``.csv`` whose header is one column that looks like names separated by ``;``, a tab or
``|`` (the whole line, label included, would be read as the text; likewise a ``.tsv``
separated by commas), a CSV/TSV whose first data row has more fields than the header
(pandas would read its first field as row labels and shift every column: an unquoted
separator inside a text), a JSON Lines line that is not an object, and an empty
(0-byte) CSV/TSV file.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError, PetKitError
from .atomic import replacing

__all__ = [
    "iter_table_chunks",
    "read_columns",
    "read_table",
    "split_label_column",
    "table_records",
    "write_table",
]

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".tsv", ".jsonl")


def _lines(fh: Iterator[str]) -> Iterator[str]:
    """The lines of a text file opened with ``newline="\n"``, without their line ending.

    Lines end at ``\n`` only (a ``\r\n`` ending loses its ``\r`` too), as ``wc -l`` and
    pandas count them: a form feed, a vertical tab, a lone ``\r`` or a Unicode line or
    paragraph separator (``\u2028``...) inside a line stays part of its text, where
    ``str.splitlines`` would cut it into several lines.
    """
    for line in fh:
        if line.endswith("\n"):
            line = line[:-1]
        yield line[:-1] if line.endswith("\r") else line


def _read_jsonl(p: Path) -> pd.DataFrame:
    with p.open(encoding="utf-8", newline="\n") as fh:
        for n, line in enumerate(_lines(fh), 1):
            _check_json_keys([line], p, n)
    return pd.read_json(p, lines=True, dtype=False)


def _read_txt(p: Path) -> pd.DataFrame:
    """One text per non-blank line (lines as :func:`_lines` splits them)."""
    with p.open(encoding="utf-8", newline="\n") as fh:
        return pd.DataFrame({"text": [ln for ln in _lines(fh) if ln.strip()]})


def _fields_shifted(frame: pd.DataFrame, p: Path) -> pd.DataFrame:
    """``frame``, refused when pandas read the first field of each row as row labels: the
    first data row has more fields than the header (an unquoted separator inside a text),
    so every column would be shifted by one without a word."""
    if isinstance(frame.index, pd.RangeIndex):
        return frame
    sep = "a tab" if p.suffix.lower() == ".tsv" else "','"
    raise InputError(
        f"{p}: the first data row has more fields than the header names columns"
        f" ({list(frame.columns)}), so every column would be read one field off (a text"
        f' holding {sep} without quotes?); quote such texts ("a, b"), as'
        " df.to_csv(path, index=False) writes them"
    )


def _read_csv(p: Path, sep: str) -> pd.DataFrame:
    return _fields_shifted(pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False), p)


_READERS = {
    ".csv": lambda p: _read_csv(p, ","),
    ".tsv": lambda p: _read_csv(p, "\t"),
    ".jsonl": _read_jsonl,
    ".txt": _read_txt,
}
_SEPARATORS = {".csv": ",", ".tsv": "\t"}
_SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "'|'"}
# A column name as people write them: an identifier, maybe quoted, maybe with spaces around.
_NAME = re.compile(r"""\s*(["']?)[^\W\d][\w.\- ]*\1\s*\Z""")


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV/TSV/JSONL/TXT file into a DataFrame.

    Raises
    ------
    InputError
        Unknown extension, missing or empty file, a file that cannot be parsed, or
        columns that would be read wrongly (see the module docstring).
    """
    p = check_input_path(path)
    _check_header(p)
    reader = _READERS[p.suffix.lower()]
    try:
        return reader(p)
    except InputError:
        raise
    except UnicodeEncodeError as exc:  # a str column cannot hold a lone surrogate
        raise InputError(_surrogate_problem(p)) from exc
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot parse as {p.suffix} ({exc})") from exc


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_problem(p: Path) -> str:
    """The message for a JSON Lines file with an escaped lone surrogate (``\\udc80``)."""
    where = ""
    with p.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if "\\u" in line and _SURROGATE.search(
                json.dumps(_loads_or_none(line), ensure_ascii=False)
            ):
                where = f" (line {n})"
                break
    return (
        f"{p}: a value{where} holds a lone surrogate (an escape such as \\udc80: bytes that"
        " are not UTF-8, decoded with errors='surrogateescape' before the file was"
        " written), which is not text; write the file again from texts decoded with"
        " errors='replace'"
    )


def _loads_or_none(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


def read_columns(path: str | os.PathLike[str]) -> list[str]:
    """The column names of a table file, read from its start only.

    CSV/TSV: the header; JSON Lines: the keys of the first record; TXT: ``["text"]``.
    Checked as :func:`read_table` checks them.
    """
    p = check_input_path(path)
    header = _check_header(p)
    if header is not None:
        return header
    if p.suffix.lower() == ".txt":
        return ["text"]
    with p.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                _check_json_keys([line], p, n)
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return []
                return [str(k) for k in record] if isinstance(record, dict) else []
    return []


def _check_header(p: Path) -> list[str] | None:
    """Refuse an empty CSV/TSV file, and a header with a repeated or mis-split name.

    Returns the CSV/TSV header's column names (``None`` for other formats, whose empty
    files simply have no rows).
    """
    suffix = p.suffix.lower()
    sep = _SEPARATORS.get(suffix)
    if sep is None:
        return None
    if p.stat().st_size == 0:
        raise InputError(
            f"{p}: the file is empty (not even a header); a {suffix} file needs a header"
            " line naming its columns, then one row per example"
        )
    with p.open("rb") as fh:
        raw = fh.readline(1 << 20)
    try:
        line = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        return None  # reported by the reader
    names = next(csv.reader([line], delimiter=sep), [])
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"{p}: the header {line!r} names the column(s) {repeated} more than once;"
            " only one would be read (pandas renames the others 'name.1'). Rename or"
            " drop the extra column(s)"
        )
    if len(names) == 1:
        for other in (",", ";", "\t", "|"):
            parts = names[0].split(other)
            if other == sep or len(parts) < 2 or not all(_NAME.match(part) for part in parts):
                continue
            if suffix == ".csv":
                fix = (
                    "Rename it to .tsv, or save it with commas as the separator"
                    if other == "\t"
                    else "Save it with commas as the separator (e.g. pandas"
                    " df.to_csv(path, index=False)), or with tabs as a .tsv file"
                )
            else:
                fix = (
                    "Rename it to .csv"
                    if other == ","
                    else "Save it with tabs as the separator, or with commas as a .csv file"
                )
            raise InputError(
                f"{p}: the header {line!r} is read as a single column, but it looks like the"
                f" columns {parts} separated by {_SEPARATOR_NAMES[other]}; a {suffix} file is"
                f" separated by {_SEPARATOR_NAMES[sep]}, so each whole line (labels included)"
                f" would be read as one text. {fix}"
            )
    return names


def _check_json_keys(lines: list[str], p: Path, first_line: int) -> None:
    """Refuse a JSON Lines record that is not an object (``[1, 2]``: pandas fails with a
    raw TypeError), or that has a key twice (JSON would keep the last value)."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in items]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise _RepeatedKeys(repeated)
        return dict(items)

    for n, line in enumerate(lines, first_line):
        if line.strip() and not line.lstrip().startswith("{"):
            _check_object(line, p, n)
        if not line.strip() or line.count(":") < 2:
            continue  # blank, or too few keys to repeat one
        try:
            json.loads(line, object_pairs_hook=pairs)
        except _RepeatedKeys as exc:
            raise InputError(
                f"{p}:{n}: the record has the key(s) {exc.keys} more than once; JSON keeps"
                " only the last value. Remove or rename the repeated key(s)"
            ) from exc
        except ValueError:
            continue  # not valid JSON: reported by the reader


def _check_object(line: str, p: Path, n: int) -> None:
    """Refuse line ``n``, valid JSON that is not an object (invalid JSON: the reader
    reports it)."""
    try:
        value = json.loads(line)
    except ValueError:
        return
    kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}
    raise InputError(
        f"{p}:{n}: the record is {kind.get(type(value), 'a number')} ({line.strip()[:40]}),"
        ' not an object; each line must be one JSON object such as {"text": "..."}'
    )


class _RepeatedKeys(Exception):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


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
        raise InputError(f"{p}: {_not_a_file(p)}")
    return p


def _not_a_file(p: Path) -> str:
    """Why ``p``, which is no regular file, cannot be read as a table."""
    try:
        mode = p.stat().st_mode
    except (OSError, ValueError):
        return "no such file"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file; pass the data file inside it"
    return (
        "is not a regular file (a named pipe, socket or device); save the data to a file"
        " and pass that"
    )


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
            for frame in reader:
                yield _fields_shifted(frame, p)
    elif suffix == ".jsonl":
        # chunks of raw lines, parsed as pandas' own chunked JSON reader parses them, after
        # the repeated-key check
        with p.open(encoding="utf-8") as fh:
            first = 1
            while True:
                lines = list(itertools.islice(fh, chunk_size))
                if not lines:
                    break
                _check_json_keys(lines, p, first)
                first += len(lines)
                if any(line.strip() for line in lines):
                    yield pd.read_json(io.StringIO("".join(lines)), lines=True, dtype=False)
    else:  # .txt: one example per non-blank line, read line by line as read_table does
        lines: list[str] = []
        with p.open(encoding="utf-8", newline="\n") as fh:
            for line in _lines(fh):
                if line.strip():
                    lines.append(line)
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
    _check_header(p)
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
            except InputError:
                raise
            except UnicodeEncodeError as exc:  # a str column cannot hold a lone surrogate
                raise InputError(_surrogate_problem(p)) from exc
            except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                read = rows + n_pending
                where = f" after data row {read - 1} (0-based)" if read else ""
                raise InputError(f"{p}: cannot parse as {p.suffix}{where} ({exc})") from exc
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


def split_label_column(
    df: pd.DataFrame, label_column: str, fix: str
) -> tuple[pd.DataFrame, list[Any]]:
    """``(X, y)`` of a labelled table: the columns but ``label_column``, and its labels.

    Parameters
    ----------
    df : pandas.DataFrame
    label_column : str
    fix : str
        How to name another label column (a config's key, a command's option), for the
        message.

    Raises
    ------
    PetKitError
        The table has no such column.
    """
    if label_column not in df.columns:
        raise PetKitError(
            f"the data has no label column {label_column!r} (columns: {list(df.columns)}); {fix}"
        )
    return df.drop(columns=[label_column]), df[label_column].tolist()


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` as CSV/TSV/JSONL depending on the extension (atomically).

    A temporary file is written, then renamed onto ``path``: a symbolic link at ``path``
    is replaced by the new file, never written through (its target is left unchanged).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise InputError(f"{p}: unsupported output type {p.suffix!r}; use .csv, .tsv or .jsonl")
    with replacing(p) as tmp:
        if suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                fh.writelines(table_records(df))
        else:
            df.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False)
