"""Prediction spread over processes, and put back in input order.

Shards
    ``predict_file(..., num_shards=N, shard_index=k)`` in N processes (e.g. one per GPU)
    each writes the chunks ``i % N == k`` of a file with a ``row`` column;
    :func:`merge_shards` merges their outputs back into input order (a streaming k-way
    merge), the file an unsharded run writes.
Workers that return chunks in any order (a Ray Data actor pool: ``examples/ray_predict.py``)
    :func:`numbered_chunks` numbers the input's rows, a :class:`ChunkWorker` in each
    worker classifies them exactly as ``pet-kit predict`` does, and
    :func:`write_in_order` writes what comes back in input order (holding only the rows
    that arrive early): with the chunks ``pet-kit predict --chunk-size`` predicts, the
    same bytes.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..estimators.prompt_classifier import PromptClassifier
from ..io.atomic import replacing
from ..io.inputs import check_positive_int
from ..io.tables import check_input_path, check_output_path, iter_table_chunks
from .chunks import ROW_COLUMN, RoundedProbabilities, TableFormatter, predict_chunk
from .job import check_output_target, progress_path

__all__ = [
    "ORDER_COLUMN",
    "ChunkWorker",
    "in_input_order",
    "merge_shards",
    "numbered_chunks",
    "shard_path",
    "write_in_order",
]

log = logging.getLogger(__name__)

ORDER_COLUMN = "_pet_kit_row"
"""The 0-based input row number that :func:`numbered_chunks` adds (never written)."""


def write_frames(frames: Iterable[pd.DataFrame], out: Path) -> int:
    """Write ``frames`` one after the other as the CSV/TSV/JSONL file ``out`` (one
    header), replacing it in one step when all are written; returns the rows."""
    formatter = TableFormatter(out.suffix)
    rows = 0
    with replacing(out) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        for df in frames:
            fh.write(formatter.format(df, f"{out}: rows {rows}-{rows + len(df) - 1}"))
            rows += len(df)
    return rows


# -------------------------------------------------------------------- shards
def shard_path(output_path: str | os.PathLike[str], shard_index: int, num_shards: int) -> Path:
    """A conventional per-shard output name: ``preds.csv`` -> ``preds.shard1-of-4.csv``."""
    p = Path(output_path)
    return p.with_name(f"{p.stem}.shard{shard_index}-of-{num_shards}{p.suffix}")


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
    streams = [_shard_records(p, chunk_size) for p in paths]

    def batches() -> Iterator[pd.DataFrame]:
        expected, batch = 0, []
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
                yield pd.DataFrame.from_records(batch)
                batch = []
        if batch:
            yield pd.DataFrame.from_records(batch)

    try:
        rows = write_frames(batches(), out)
    finally:
        for s in streams:
            s.close()
    log.info("merged %d shard outputs (%d rows) into %s", len(paths), rows, out)
    return rows


# ------------------------------------------------------- workers in any order
def numbered_chunks(path: str | os.PathLike[str], chunk_size: int) -> Iterator[pd.DataFrame]:
    """The input's rows, ``chunk_size`` at a time (read as ``pet-kit predict`` reads
    them), with their 0-based row number in an :data:`ORDER_COLUMN` column first.

    Raises
    ------
    InputError
        The input has a column of that name.
    """
    first = 0
    for chunk in iter_table_chunks(path, chunk_size):
        if ORDER_COLUMN in chunk.columns:
            raise InputError(f"{path}: the input has a column {ORDER_COLUMN!r}; rename that column")
        chunk.insert(0, ORDER_COLUMN, range(first, first + len(chunk)))
        first += len(chunk)
        yield chunk


class ChunkWorker:
    """Classifies numbered chunks (:func:`numbered_chunks`) as ``pet-kit predict`` does.

    Parameters
    ----------
    prompt : str, PathLike or fitted classifier
        A prompt folder (loaded here: in a worker process, on the worker), or a fitted
        estimator (an unpickled :class:`~pet_kit.PromptClassifier` rebuilds its
        backbone on first use).
    digits : int
        Significant digits of the probabilities, as ``pet-kit predict --digits``.
    threads : int, optional
        torch CPU threads of the prompt (``None``: leave the setting).
    """

    def __init__(self, prompt: Any, digits: int = 6, threads: int | None = None) -> None:
        if isinstance(prompt, (str, os.PathLike)):
            prompt = PromptClassifier.load(prompt)
        if threads is not None and "n_threads" in prompt.get_params():
            prompt.set_params(n_threads=threads)
        self.clf = RoundedProbabilities(prompt, digits)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus ``prediction`` and ``proba_<class>``; its :data:`ORDER_COLUMN`
        stays first, and messages name the input rows."""
        rows = frame.pop(ORDER_COLUMN) if ORDER_COLUMN in frame.columns else None
        first = int(rows.iloc[0]) if rows is not None and len(rows) else 0
        out = predict_chunk(self.clf, frame, first)
        if rows is not None:
            out.insert(0, ORDER_COLUMN, rows.to_numpy())
        return out


def in_input_order(frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Runs of consecutive rows, in :data:`ORDER_COLUMN` order, from frames in any order.

    A frame is split into runs of consecutive row numbers; a run that arrives before its
    turn waits in a heap, so memory holds only the rows that arrived early.

    Raises
    ------
    RuntimeError
        Rows are missing at the end.
    """
    expected = 0
    waiting: list[tuple[int, int, pd.DataFrame]] = []
    tie = 0  # heap tie-breaker: frames do not compare
    for frame in frames:
        if not len(frame):
            continue
        frame = frame.sort_values(ORDER_COLUMN, kind="stable")
        rows = frame[ORDER_COLUMN].to_numpy()
        starts = [0, *(i for i in range(1, len(rows)) if rows[i] != rows[i - 1] + 1)]
        for start, end in zip(starts, [*starts[1:], len(rows)], strict=True):
            heapq.heappush(waiting, (int(rows[start]), tie, frame.iloc[start:end]))
            tie += 1
        while waiting and waiting[0][0] == expected:
            _, _, run = heapq.heappop(waiting)
            expected += len(run)
            yield run
    if waiting:
        raise RuntimeError(
            f"rows {expected} onwards are missing from the workers' output (next found:"
            f" {waiting[0][0]})"
        )


def write_in_order(frames: Iterable[pd.DataFrame], output_path: str | os.PathLike[str]) -> int:
    """Write predicted numbered frames, returned in any order, to ``output_path`` in input
    order without their :data:`ORDER_COLUMN`; the file is replaced in one step when all
    rows are in.

    Returns
    -------
    int
        Rows written.
    """
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = (run.drop(columns=ORDER_COLUMN) for run in in_input_order(frames))
    return write_frames(runs, out)
