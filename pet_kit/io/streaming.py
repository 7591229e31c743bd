"""Streaming, bounded-memory, resumable prediction over large files.

:func:`predict_file` classifies a CSV/TSV/JSONL/TXT file a chunk of rows at a time and
appends each chunk's predictions to the output, so memory stays bounded by the chunk
size whatever the file's size. The output has the input's columns plus ``prediction``
and one ``proba_<class>`` column per class (the format ``pet-kit predict`` writes).

Resuming
    After each chunk is written and flushed to disk, a sidecar file
    ``<output>.progress.json`` records the rows done and the output's size in bytes
    (replaced atomically). Run the same job again and it truncates the output to that
    size (dropping a half-written chunk) and goes on after the last finished chunk.
    The sidecar also records the job (input file, its size and modification time, the
    prompt, chunk size and sharding); resuming a different job is refused. It is
    deleted when the job finishes.

Sharding
    With ``num_shards=N``, process ``k`` (``shard_index=k``) predicts the chunks
    ``i`` with ``i % N == k`` and writes a ``row`` column (the 0-based input row), so N
    processes (e.g. one per GPU) can share a file; :func:`merge_shards` merges their
    outputs back into input order.

Row numbers in messages are 0-based data rows (a CSV/TSV header is not a row; for
TXT files, blank lines are not rows), the same numbers as the ``row`` column.

Symbolic links
    pet_kit never writes *through* a symbolic link. An output path that is a link is
    treated as an existing output: it is refused unless ``overwrite=True`` (or
    ``resume=False``), and then the link itself is replaced by a new regular file (its
    target is left unchanged). Resuming into an output that has become a link is
    refused. The progress file and merged outputs are written to a temporary file and
    renamed onto their path, which likewise replaces a link instead of following it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import InputError
from .atomic import fsync_dir
from .inputs import check_positive_int
from .tables import (
    check_input_path,
    check_output_path,
    iter_table_chunks,
    read_columns,
    table_records,
)

__all__ = [
    "ROW_COLUMN",
    "PredictFileResult",
    "RoundedProbabilities",
    "check_predict_job",
    "count_rows",
    "iter_table_chunks",
    "merge_shards",
    "predict_chunk",
    "predict_file",
    "predict_iter",
    "predict_to_stream",
    "progress_path",
    "shard_path",
]

log = logging.getLogger(__name__)

ROW_COLUMN = "row"
"""Name of the 0-based input row column written in sharded mode."""

_SIDECAR_FORMAT = "pet_kit.predict_progress"
_SIDECAR_VERSION = 1


@dataclass(frozen=True)
class PredictFileResult:
    """What :func:`predict_file` did.

    Attributes
    ----------
    output : Path
        The output file.
    rows_written : int
        Rows predicted and written by this call.
    rows_resumed : int
        Rows already in the output from an interrupted earlier run of the same job
        (kept, not recomputed).
    chunks_written : int
        Chunks predicted and written by this call.
    chunks_resumed : int
        Chunks kept from the earlier run.
    """

    output: Path
    rows_written: int
    rows_resumed: int
    chunks_written: int
    chunks_resumed: int

    @property
    def rows_total(self) -> int:
        """Rows in the output: resumed plus written."""
        return self.rows_written + self.rows_resumed


# ------------------------------------------------------------------- paths
def progress_path(output_path: str | os.PathLike[str]) -> Path:
    """The sidecar progress file of an output: ``<output>.progress.json``."""
    p = Path(output_path)
    return p.with_name(p.name + ".progress.json")


def shard_path(output_path: str | os.PathLike[str], shard_index: int, num_shards: int) -> Path:
    """A conventional per-shard output name: ``preds.csv`` -> ``preds.shard1-of-4.csv``."""
    p = Path(output_path)
    return p.with_name(f"{p.stem}.shard{shard_index}-of-{num_shards}{p.suffix}")


def check_predict_job(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None,
    *,
    chunk_size: int = 1000,
    num_shards: int = 1,
    shard_index: int = 0,
) -> tuple[Path, Path | None]:
    """Validate a prediction job's arguments, reading only the start of the input.

    Called by :func:`predict_file`; call it yourself to fail fast before loading a model.
    The input's header (CSV/TSV) or first record (JSON Lines) is checked as
    :func:`pet_kit.io.tables.read_table` checks it; the output must be a file path whose
    folder can be created (not a folder, not under a file).

    Returns
    -------
    (Path, Path or None)
        The input and output paths.

    Raises
    ------
    InputError
        Bad chunk size or sharding, unknown file types, missing input, a mis-split or
        ambiguous input header, output equal to the input, an output (or its progress
        file) that is a folder or lies under a file.
    """
    check_positive_int("chunk_size", chunk_size)
    check_positive_int("num_shards", num_shards)
    if (
        not isinstance(shard_index, (int, np.integer))
        or isinstance(shard_index, (bool, np.bool_))
        or not 0 <= shard_index < num_shards
    ):
        raise InputError(
            f"shard_index must be an integer from 0 to num_shards - 1 = {num_shards - 1},"
            f" got {shard_index!r}"
        )
    inp = check_input_path(input_path)
    read_columns(inp)  # a mis-split or ambiguous header fails here, before a model loads
    if output_path is None:
        return inp, None
    out = check_output_path(output_path)
    if out.exists() and out.resolve() == inp.resolve():
        raise InputError(f"{out}: the output is the input file; choose another output path")
    check_output_target(out)
    if progress_path(out).is_dir():
        raise InputError(
            f"{progress_path(out)}: the progress file's path is a folder; remove that folder"
            " or choose another output path"
        )
    return inp, out


def check_output_target(out: Path) -> None:
    """Raise :class:`InputError` unless ``out`` can be written as a file.

    ``out`` must not be a folder (or a link to one), and its nearest existing ancestor
    must be a folder (so that the missing folders can be created).
    """
    if out.is_dir():
        raise InputError(
            f"{out}: is a folder, not a file; give the output file's path, e.g."
            f" {out / ('predictions' + (out.suffix or '.csv'))}"
        )
    parent = out.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(
            f"{out}: cannot create the output's folder because {parent} is a file; choose"
            " another output path"
        )


def _open_no_follow(path: Path, *, append: bool) -> Any:
    """Open ``path`` for binary writing without ever following a symbolic link.

    ``append``: open the existing file for reading and writing (no truncation); else
    create or truncate it.
    """
    flags = os.O_RDWR if append else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    link = (
        f"{path}: the interrupted run's output is now a symbolic link; pet_kit never writes"
        " through links. Pass resume=False (--no-resume) to start over, replacing the link"
        " by a new file (its target is left unchanged), or remove the link"
    )
    if path.is_symlink():  # O_NOFOLLOW is missing on some platforms: check as well
        raise InputError(link)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if path.is_symlink():  # made between the check and the open
            raise InputError(link) from exc
        raise InputError(f"{path}: cannot open the output for writing ({exc.strerror})") from exc
    return os.fdopen(fd, "r+b" if append else "wb")


def _non_empty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _fresh_temp(path: Path) -> Any:
    """Create ``path`` (a temporary file) anew for text writing, never through a link."""
    path.unlink(missing_ok=True)  # a left-over from a crash, or a planted link
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8", newline="")


# -------------------------------------------------------------- prediction
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


class _TableFormatter:
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


def predict_to_stream(
    clf: Any,
    input_path: str | os.PathLike[str],
    stream: TextIO | None = None,
    *,
    chunk_size: int = 1000,
    fmt: str = ".csv",
    progress: bool = False,
) -> int:
    """Stream predictions of a file to a text stream (default: stdout), chunk by chunk.

    Parameters
    ----------
    clf : fitted classifier
    input_path : str or PathLike
    stream : text stream, optional
        Default ``sys.stdout``; flushed after each chunk.
    chunk_size : int
    fmt : {".csv", ".tsv", ".jsonl"}
    progress : bool, default=False
        Show a progress bar on stderr (unit: texts, with the file's row count as its
        total and an ETA). The classifier's own ``predict`` bars are off either way.

    Returns
    -------
    int
        Rows written.
    """
    inp, _ = check_predict_job(input_path, None, chunk_size=chunk_size)
    out = stream if stream is not None else sys.stdout
    formatter = _TableFormatter(fmt)
    rows = 0
    total = count_rows(inp) if progress else None
    bar = tqdm(
        desc=f"predict {inp.name}",
        unit="text",
        total=total,
        disable=not progress,
        dynamic_ncols=True,
    )
    restore = _own_bars_off(clf)
    try:
        for df in predict_iter(clf, iter_table_chunks(inp, chunk_size), source=inp):
            out.write(formatter.format(df, f"{inp}: data rows {rows}-{rows + len(df) - 1}"))
            out.flush()
            rows += len(df)
            bar.update(len(df))
    finally:
        bar.close()
        restore()
    return rows


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """The data rows of a CSV/TSV/JSONL/TXT file, as :func:`iter_table_chunks` reads
    them (a progress bar's total: one quick pass, no model); ``None`` when a part of
    the file cannot be read (the prediction then reports it where it is)."""
    try:
        return sum(len(chunk) for chunk in iter_table_chunks(path, 50_000))
    except InputError:
        return None


def _shard_rows(rows: int | None, chunk_size: int, num_shards: int, shard_index: int) -> int | None:
    """Of ``rows`` rows cut into chunks of ``chunk_size``, the rows in the chunks
    ``i % num_shards == shard_index``."""
    if rows is None or num_shards == 1:
        return rows
    n_chunks = -(-rows // chunk_size)
    return sum(
        min(chunk_size, rows - i * chunk_size) for i in range(shard_index, n_chunks, num_shards)
    )


def _own_bars_off(clf: Any) -> Callable[[], None]:
    """Turn the classifier's own ``predict`` bars (its ``verbose``) off while a file's
    bar runs; returns what restores its setting."""
    inner = clf.clf if isinstance(clf, RoundedProbabilities) else clf
    get = getattr(inner, "get_params", None)
    verbose = get(deep=False).get("verbose") if callable(get) else None
    if not verbose:
        return lambda: None
    inner.set_params(verbose=0)
    return lambda: inner.set_params(verbose=verbose)


# ---------------------------------------------------------------- the job
def _prompt_identity(clf: Any) -> str:
    """A hash of what determines the predictions (prompt vectors, PVP, backbone, classes)."""
    if isinstance(clf, RoundedProbabilities):  # the rounding is the job's "digits"
        clf = clf.clf
    h = hashlib.sha256()
    meta: dict[str, Any] = {
        "type": f"{type(clf).__module__}.{type(clf).__qualname__}",
        "classes": [repr(c) for c in np.asarray(clf.classes_).tolist()],
    }
    prompt = getattr(clf, "prompt_", None)
    if prompt is not None:
        import torch

        pvp = getattr(clf, "pvp_", None)
        meta["pvp"] = pvp.to_dict() if pvp is not None else None
        meta["backbone"] = getattr(clf, "backbone_fingerprint_", None)
        options = getattr(getattr(clf, "model_", None), "options", None)
        meta["inference"] = getattr(options, "inference", None)  # bf16 / int8 change digits
        meta["max_length"] = getattr(clf, "max_length", None)
        prior = getattr(clf, "calibration_prior_", None)
        meta["calibration_prior"] = None if prior is None else [float(p) for p in prior]
        with torch.no_grad():
            slots = prompt().detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(slots.tobytes())
    h.update(json.dumps(meta, sort_keys=True, default=str).encode("utf-8"))
    return "sha256:" + h.hexdigest()


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
        if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
            raise InputError(f"digits must be an integer from 1 to 17, got {digits!r}")
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


def _job_identity(
    clf: Any, inp: Path, chunk_size: int, num_shards: int, shard_index: int
) -> dict[str, Any]:
    st = inp.stat()
    digits = clf.digits if isinstance(clf, RoundedProbabilities) else None
    return {
        "digits": digits,  # a resumed output keeps its rounding
        "input": str(inp.resolve()),
        "input_size": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "prompt": _prompt_identity(clf),
        "chunk_size": int(chunk_size),
        "num_shards": int(num_shards),
        "shard_index": int(shard_index),
    }


def _write_sidecar(path: Path, state: dict[str, Any]) -> None:
    """Replace the sidecar atomically (temp file, fsync, rename, fsync the folder)."""
    state = {**state, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = path.with_name(path.name + ".tmp")
    with _fresh_temp(tmp) as fh:
        json.dump(state, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


_FIX = "delete it to start over (or pass resume=False / --no-resume)"


def _read_sidecar(path: Path, job: dict[str, Any], out: Path) -> dict[str, Any]:
    """Load and check a sidecar against this job; raise if it is not resumable."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable progress file ({exc}); {_FIX}") from exc
    keys = ("job", "next_chunk", "rows_read", "rows_written", "chunks_written", "output_bytes")
    if (
        not isinstance(state, dict)
        or state.get("format") != _SIDECAR_FORMAT
        or state.get("format_version") != _SIDECAR_VERSION
        or not all(k in state for k in keys)
        or not isinstance(state["job"], dict)
    ):
        raise InputError(f"{path}: not a pet_kit progress file of this version; {_FIX}")
    recorded = state["job"]
    differ = [k for k in job if recorded.get(k) != job[k]]
    if differ:
        shown = "; ".join(f"{k}: recorded {recorded.get(k)!r}, now {job[k]!r}" for k in differ)
        raise InputError(
            f"{path}: the interrupted run in this progress file was a different job"
            f" ({shown}); it cannot be resumed with these settings. Rerun it with the"
            f" recorded input, prompt, chunk size and sharding, or {_FIX}"
        )
    size = out.stat().st_size if out.exists() else 0
    if size < state["output_bytes"]:
        raise InputError(
            f"{path}: records {state['output_bytes']} bytes of output but {out} has"
            f" {size}; the output was truncated or replaced since. {_FIX[0].upper()}{_FIX[1:]}"
        )
    return state


def predict_file(
    clf: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_size: int = 1000,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    num_shards: int = 1,
    shard_index: int = 0,
) -> PredictFileResult:
    """Classify a large file chunk by chunk, appending to the output; resumable.

    Memory stays bounded by ``chunk_size`` rows: chunks are read lazily, predicted,
    appended to the output and dropped. After each chunk the output is fsynced and the
    sidecar ``<output>.progress.json`` is atomically updated with the rows done and the
    output's byte size; it is deleted when the job finishes.

    Parameters
    ----------
    clf : fitted classifier
        A fitted or loaded :class:`~pet_kit.PromptClassifier` (or any classifier with
        ``predict_proba`` and ``classes_``).
    input_path : str or PathLike
        ``.csv``, ``.tsv``, ``.jsonl`` or ``.txt`` file (read as
        :func:`pet_kit.io.tables.read_table` reads it).
    output_path : str or PathLike
        ``.csv``, ``.tsv`` or ``.jsonl`` file: the input columns plus ``prediction`` and
        ``proba_<class>`` columns (plus a first ``row`` column when sharded).
    chunk_size : int
        Rows per chunk.
    resume : bool
        If a sidecar of an interrupted run of the same job exists, truncate the output
        to its last finished chunk and continue from there. An output without a sidecar
        (a finished run or another file) is refused unless ``overwrite``. ``False``:
        start over, replacing the output and any sidecar.
    overwrite : bool
        With ``resume=True``, replace an existing output that has no sidecar. An output
        path that is a symbolic link counts as an existing output; replacing it replaces
        the link itself by a new file and leaves the link's target unchanged (pet_kit
        never writes through a link, see the module docstring).
    progress : bool
        Show a tqdm progress bar on stderr (unit: texts; its total is the file's row
        count, or this shard's, from one quick pass over the file; with an ETA). The
        classifier's own ``predict`` bars are off either way.
    num_shards, shard_index : int
        Process chunk ``i`` only if ``i % num_shards == shard_index``. With
        ``num_shards > 1`` a ``row`` column holds the input row numbers so the shards'
        outputs can be merged (:func:`merge_shards`).

    Returns
    -------
    PredictFileResult

    Raises
    ------
    InputError
        Bad arguments or input; an output that exists without a sidecar (and
        ``overwrite=False``); a sidecar of a different job or that does not match the
        output; an interrupted run's output that has become a symbolic link. Prediction
        errors name the input rows.
    """
    inp, out = check_predict_job(
        input_path,
        output_path,
        chunk_size=chunk_size,
        num_shards=num_shards,
        shard_index=shard_index,
    )
    if out is None:  # pragma: no cover - check_predict_job returns one for a path
        raise InputError("predict_file needs an output path")
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(clf, "classes_")
    sidecar = progress_path(out)
    job = _job_identity(clf, inp, chunk_size, num_shards, shard_index)
    state: dict[str, Any] | None = None
    if resume and sidecar.exists():
        state = _read_sidecar(sidecar, job, out)
    elif resume and not overwrite and (out.is_symlink() or _non_empty(out)):
        link = f" (a symbolic link to {os.readlink(out)})" if out.is_symlink() else ""
        raise InputError(
            f"{out} already exists{link} and has no progress file ({sidecar.name}), so it is"
            " a finished run's output or another file; refusing to overwrite it. Pass"
            " overwrite=True (--overwrite) to replace it, or choose another output path"
        )
    resumed = state is not None
    if state is None and out.is_symlink():
        log.info("%s: replacing the symbolic link by a new file (its target is unchanged)", out)
        out.unlink()
    if state is None:
        state = {
            "format": _SIDECAR_FORMAT,
            "format_version": _SIDECAR_VERSION,
            "job": job,
            "next_chunk": 0,
            "rows_read": 0,
            "rows_written": 0,
            "chunks_written": 0,
            "output_bytes": 0,
            "columns": None,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_sidecar(sidecar, state)  # before the output is touched: a crash resumes
    rows_resumed, chunks_resumed = int(state["rows_written"]), int(state["chunks_written"])
    if resumed:
        log.info(
            "%s: resuming after %d rows (%d chunks) already written",
            out,
            rows_resumed,
            chunks_resumed,
        )
    formatter = _TableFormatter(out.suffix, state.get("columns"))
    sharded = num_shards > 1
    next_chunk = int(state["next_chunk"])
    total = count_rows(inp) if progress else None
    bar = tqdm(
        desc=f"predict {inp.name}" + (f" [shard {shard_index}/{num_shards}]" if sharded else ""),
        unit="text",
        total=_shard_rows(total, chunk_size, num_shards, shard_index),
        initial=rows_resumed,
        disable=not progress,
        dynamic_ncols=True,
    )
    append = resumed and (out.exists() or out.is_symlink())
    rows_read = 0
    index = -1
    restore = _own_bars_off(clf)
    try:
        with _open_no_follow(out, append=append) as fh:
            fh.truncate(int(state["output_bytes"]))
            fh.seek(int(state["output_bytes"]))
            for index, chunk in enumerate(iter_table_chunks(inp, chunk_size)):
                first, rows_read = rows_read, rows_read + len(chunk)
                if index < next_chunk:
                    continue  # done in the interrupted run
                if index == next_chunk and resumed and first != state["rows_read"]:
                    raise InputError(f"{sidecar}: the input's rows changed since; {_FIX}")
                if index % num_shards != shard_index:
                    continue  # another process's chunk
                df = predict_chunk(clf, chunk, first, source=inp, row_column=sharded)
                text = formatter.format(df, f"{inp}: data rows {first}-{rows_read - 1}")
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
                state.update(
                    next_chunk=index + 1,
                    rows_read=rows_read,
                    rows_written=int(state["rows_written"]) + len(chunk),
                    chunks_written=int(state["chunks_written"]) + 1,
                    output_bytes=fh.tell(),
                    columns=formatter.columns,
                )
                _write_sidecar(sidecar, state)
                bar.update(len(chunk))
            if index + 1 < next_chunk:
                raise InputError(f"{sidecar}: the input has fewer rows than recorded; {_FIX}")
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        bar.close()
        restore()
    sidecar.unlink()
    fsync_dir(out.parent)
    result = PredictFileResult(
        output=out,
        rows_written=int(state["rows_written"]) - rows_resumed,
        rows_resumed=rows_resumed,
        chunks_written=int(state["chunks_written"]) - chunks_resumed,
        chunks_resumed=chunks_resumed,
    )
    log.info("%s: %d rows written, %d resumed", out, result.rows_written, result.rows_resumed)
    return result


# ------------------------------------------------------------------ merging
def _shard_records(path: Path, chunk_size: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row, record without ``row``) of a shard output, in file order, lazily."""
    if path.suffix.lower() == ".jsonl":
        # json.loads keeps every value exactly as written (pandas may re-round floats)
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{n}: not valid JSON ({exc})") from exc
                yield _pop_row(rec, path), rec
        return
    if path.stat().st_size == 0:
        return  # a shard that got no chunks
    for chunk in iter_table_chunks(path, chunk_size):
        for rec in chunk.to_dict(orient="records"):
            yield _pop_row(rec, path), rec


def _pop_row(rec: dict[str, Any], path: Path) -> int:
    try:
        return int(rec.pop(ROW_COLUMN))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: a record has no integer {ROW_COLUMN!r} column; merge only outputs of"
            " sharded runs (num_shards > 1)"
        ) from exc


def merge_shards(
    shard_paths: Sequence[str | os.PathLike[str]],
    output_path: str | os.PathLike[str],
    *,
    chunk_size: int = 1000,
    overwrite: bool = False,
) -> int:
    """Merge finished shard outputs into one file in input order, dropping ``row``.

    Streams: each shard output is already in row order, so this is a k-way merge that
    holds about one chunk per shard. The result equals an unsharded run's output.

    Parameters
    ----------
    shard_paths : sequence of str or PathLike
        The outputs of :func:`predict_file` with the same ``num_shards`` and every
        ``shard_index`` (e.g. ``[shard_path(out, k, n) for k in range(n)]``).
    output_path : str or PathLike
        ``.csv``, ``.tsv`` or ``.jsonl``; written atomically.
    chunk_size : int
        Rows per read/write batch.
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    InputError
        A shard is missing or unfinished (its progress file exists), has another file
        type than the output, rows are missing or repeated, or the output exists and
        ``overwrite=False``.
    """
    check_positive_int("chunk_size", chunk_size)
    out = check_output_path(output_path)
    paths = [Path(p) for p in shard_paths]
    if not paths:
        raise InputError("merge_shards: no shard outputs given")
    for p in paths:
        if progress_path(p).exists():
            raise InputError(
                f"{p}: this shard is unfinished ({progress_path(p).name} exists); run it again"
                " to finish it before merging"
            )
        check_input_path(p)
        if p.suffix.lower() != out.suffix.lower():
            raise InputError(
                f"{p}: a {p.suffix} shard cannot be merged into a {out.suffix} output (values"
                " would change type); give the merged output the shards' extension"
            )
        if p.resolve() == out.resolve():
            raise InputError(f"{out}: the merged output cannot be one of the shards")
    check_output_target(out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(f"{out} already exists; pass overwrite=True to replace it")
    formatter = _TableFormatter(out.suffix)
    tmp = out.with_name(f".{out.name}.tmp")
    expected = 0
    batch: list[dict[str, Any]] = []

    def flush(fh: Any) -> None:
        if batch:
            where = f"{out}: rows {expected - len(batch)}-{expected - 1}"
            fh.write(formatter.format(pd.DataFrame.from_records(batch), where))
            batch.clear()

    streams = [_shard_records(p, chunk_size) for p in paths]
    try:
        with _fresh_temp(tmp) as fh:
            for row, rec in heapq.merge(*streams, key=lambda item: item[0]):
                if row != expected:
                    what = "repeated" if row < expected else f"missing (next found: {row})"
                    raise InputError(
                        f"merge_shards: input row {expected} is {what}; pass the outputs of"
                        " every shard of one sharded job, each exactly once"
                    )
                batch.append(rec)
                expected += 1
                if len(batch) >= chunk_size:
                    flush(fh)
            flush(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for s in streams:
            s.close()
    log.info("merged %d shard outputs (%d rows) into %s", len(paths), expected, out)
    return expected
