"""Reading and writing example tables (CSV, TSV, JSON Lines, plain text).

Used by the CLI; plain-text files hold one example per line in a ``text`` column.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .errors import InputError

__all__ = ["read_table", "write_table"]

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
    p = Path(path)
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise InputError(f"{p}: unsupported file type {p.suffix!r}; use .csv, .tsv, .jsonl or .txt")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        return reader(p)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot parse as {p.suffix} ({exc})") from None


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
            for rec in df.to_dict(orient="records"):
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    else:
        raise InputError(f"{p}: unsupported output type {p.suffix!r}; use .csv, .tsv or .jsonl")
    os.replace(tmp, p)
