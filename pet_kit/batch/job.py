"""Prediction jobs over files of any size: bounded memory, resumable, shardable.

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
    processes (e.g. one per GPU) can share a file;
    :func:`pet_kit.batch.parallel.merge_shards` merges their outputs back into input
    order.

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
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..errors import InputError
from ..estimators.prompt_classifier import PromptClassifier

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: jobs go unlocked
    fcntl = None  # type: ignore[assignment]
from ..io.atomic import fsync_dir, replacing
from ..io.inputs import check_positive_int
from ..io.tables import check_input_path, check_output_path, iter_table_chunks, read_columns
from .chunks import (
    RoundedProbabilities,
    TableFormatter,
    count_rows,
    own_bars_off,
    predict_chunk,
    predict_iter,
)

__all__ = [
    "PredictFileResult",
    "check_output_target",
    "check_predict_job",
    "predict_file",
    "predict_to_stream",
    "progress_path",
]

log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------- checks
def progress_path(output_path: str | os.PathLike[str]) -> Path:
    """The sidecar progress file of an output: ``<output>.progress.json``."""
    p = Path(output_path)
    return p.with_name(p.name + ".progress.json")


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
    if _same_file(out, inp):  # by any name: a symbolic or hard link too
        raise InputError(f"{out}: the output is the input file; choose another output path")
    check_output_target(out)
    if progress_path(out).is_dir():
        raise InputError(
            f"{progress_path(out)}: the progress file's path is a folder; remove that folder"
            " or choose another output path"
        )
    return inp, out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


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


# ----------------------------------------------------------------- streaming
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
    formatter = TableFormatter(fmt)
    rows = 0
    total = count_rows(inp) if progress else None
    bar = tqdm(
        desc=f"predict {inp.name}",
        unit="text",
        total=total,
        disable=not progress,
        dynamic_ncols=True,
    )
    restore = own_bars_off(clf)
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


# ---------------------------------------------------------------- the job
def _prompt_identity(clf: Any) -> str:
    """A hash of what determines the predictions: the classes, and of a
    :class:`~pet_kit.PromptClassifier` its slot vectors, PVP, backbone and settings."""
    if isinstance(clf, RoundedProbabilities):  # the rounding is the job's "digits"
        clf = clf.clf
    h = hashlib.sha256()
    meta: dict[str, Any] = {
        "type": f"{type(clf).__module__}.{type(clf).__qualname__}",
        "classes": [repr(c) for c in np.asarray(clf.classes_).tolist()],
    }
    if isinstance(clf, PromptClassifier):
        meta["pvp"] = clf.pvp_.to_dict()
        meta["backbone"] = clf.backbone_fingerprint_
        meta["inference"] = clf.model_.options.inference  # bf16 / int8 change digits
        meta["max_length"] = clf.max_length
        prior = clf.calibration_prior_
        meta["calibration_prior"] = None if prior is None else [float(p) for p in prior]
        with torch.no_grad():
            slots = clf.prompt_().detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(slots.tobytes())
    h.update(json.dumps(meta, sort_keys=True, default=str).encode("utf-8"))
    return "sha256:" + h.hexdigest()


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
    """Replace the sidecar in one step (:func:`~pet_kit.io.atomic.replacing`)."""
    state = {**state, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with replacing(path) as tmp:
        tmp.write_bytes((json.dumps(state, indent=2, ensure_ascii=False) + "\n").encode())


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
    for key in keys[1:]:
        value = state[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(
                f"{path}: {key} is {value!r}, not a count (an integer >= 0); the file was"
                f" edited or damaged. {_FIX[0].upper()}{_FIX[1:]}"
            )
    columns = state.get("columns")
    if columns is not None and not (
        isinstance(columns, list) and all(isinstance(c, str) for c in columns)
    ):
        raise InputError(
            f"{path}: columns is {columns!r:.80}, not a list of column names; the file was"
            f" edited or damaged. {_FIX[0].upper()}{_FIX[1:]}"
        )
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


def shard_rows(rows: int | None, chunk_size: int, num_shards: int, shard_index: int) -> int | None:
    """Of ``rows`` rows cut into chunks of ``chunk_size``, the rows in the chunks
    ``i % num_shards == shard_index``."""
    if rows is None or num_shards == 1:
        return rows
    n_chunks = -(-rows // chunk_size)
    return sum(
        min(chunk_size, rows - i * chunk_size) for i in range(shard_index, n_chunks, num_shards)
    )


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
    check_is_fitted(clf, "classes_")
    with _job_lock(out):
        return _run_job(
            clf, inp, out, chunk_size, resume, overwrite, progress, num_shards, shard_index
        )


@contextmanager
def _job_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the output file for the job, so that a second job
    writing the same output at the same time is refused instead of interleaving its
    chunks (and the progress file) with the first's. The output is created empty when
    missing, and removed again when the job fails before writing to it; an output that
    is a symbolic link (replaced by the job, never written through) and platforms
    without ``flock`` go unlocked."""
    if fcntl is None or out.is_symlink():
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    created = False
    try:
        try:
            fd = os.open(out, flags | os.O_CREAT | os.O_EXCL, 0o666)
            created = True
        except FileExistsError:
            fd = os.open(out, flags)
    except OSError:  # not writable, ...: the job itself says what is wrong
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{out}: another prediction job is writing this output now; wait for it to"
                " finish (run the same command again afterwards to resume or check it), or"
                " choose another output path"
            ) from None
        except OSError:  # e.g. a file system without flock: go on unlocked
            pass
        try:
            yield
        except BaseException:
            if created and os.fstat(fd).st_size == 0:  # nothing written: as it was
                out.unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)


def _run_job(
    clf: Any,
    inp: Path,
    out: Path,
    chunk_size: int,
    resume: bool,
    overwrite: bool,
    progress: bool,
    num_shards: int,
    shard_index: int,
) -> PredictFileResult:
    """:func:`predict_file` proper, under :func:`_job_lock`."""
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
    formatter = TableFormatter(out.suffix, state.get("columns"))
    sharded = num_shards > 1
    next_chunk = int(state["next_chunk"])
    total = count_rows(inp) if progress else None
    bar = tqdm(
        desc=f"predict {inp.name}" + (f" [shard {shard_index}/{num_shards}]" if sharded else ""),
        unit="text",
        total=shard_rows(total, chunk_size, num_shards, shard_index),
        initial=rows_resumed,
        disable=not progress,
        dynamic_ncols=True,
    )
    append = resumed and (out.exists() or out.is_symlink())
    rows_read = 0
    index = -1
    restore = own_bars_off(clf)
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
