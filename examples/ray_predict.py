"""Classify a file with Ray Data, on a Ray cluster or locally, as ``pet-kit predict`` does.

Needs the ``ray`` extra (``pip install "pet_kit[ray]"``). This example is the Ray glue
only; what it runs is pet_kit's (:mod:`pet_kit.batch.parallel`): the driver numbers the
input's rows (:func:`~pet_kit.batch.numbered_chunks`, pet_kit's own reader, so cells are
parsed exactly as ``pet-kit predict`` parses them), each Ray worker is an actor holding
one loaded prompt (:class:`Predictor`, a :class:`~pet_kit.batch.ChunkWorker`) that
``map_batches`` sends batches of rows, and the driver writes what comes back in input
order (:func:`~pet_kit.batch.write_in_order`: Ray does not keep row order between
operators by default; only batches that arrive early are held). With ``--batch-size B``
the output file is the one ``pet-kit predict PROMPT_DIR INPUT --output OUTPUT
--chunk-size B`` writes, byte for byte (tested in ``tests/test_ray.py``; both default to
1000 rows). With other chunks the probabilities agree to float32 precision, not to the
last printed digit: a prompt scores texts in groups padded to a common length, and other
groups round differently::

    python examples/ray_predict.py PROMPT_DIR input.csv --output out.csv --workers 2
    python examples/ray_predict.py PROMPT_DIR input.csv --output out.csv --pickled
    python examples/ray_predict.py PROMPT_DIR input.csv --output out.csv --address auto

Two ways to get the prompt onto the workers:

* default: each worker loads the prompt folder itself (``PromptClassifier.load``); on a
  multi-machine cluster the folder must be readable at the same path on every node.
* ``--pickled``: the driver loads the prompt once and ships the fitted estimator through
  Ray's object store (``ray.put``). A pickled ``PromptClassifier`` carries its soft
  prompt but not its backbone: each worker rebuilds the backbone from the recorded model
  reference (a hub name, the embedded default, or a local folder, which must then exist
  on every node) on first use, so no shared storage is needed for the prompt.

The input goes to the workers through the object store (Ray spills it to disk when it is
larger than memory). Inputs: ``.csv``, ``.tsv`` or ``.txt`` (one text per line);
outputs: ``.csv`` or ``.tsv``.

With ``--address`` unset a local Ray instance starts with ``--workers`` x
``--cpus-per-worker`` CPUs; ``--address auto`` joins a running cluster (``ray start``).
Each worker reserves ``--cpus-per-worker`` CPUs and runs torch on that many threads;
``--gpus-per-worker 1`` gives each its own GPU, where the prompt loads on CUDA (untested:
the test machine has no GPU).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

from pet_kit import PromptClassifier
from pet_kit.batch import (
    ChunkWorker,
    check_digits,
    check_predict_job,
    numbered_chunks,
    write_in_order,
)
from pet_kit.errors import InputError

log = logging.getLogger("ray_predict")

INPUTS = (".csv", ".tsv", ".txt")
OUTPUTS = (".csv", ".tsv")


class Predictor(ChunkWorker):
    """A Ray Data worker: a :class:`~pet_kit.batch.ChunkWorker` on pyarrow batches.

    Parameters
    ----------
    prompt : str, PathLike, ray.ObjectRef or fitted classifier
        What a :class:`~pet_kit.batch.ChunkWorker` takes (a prompt folder, loaded here on
        the worker, or a fitted estimator), or a reference to an estimator in Ray's
        object store (``ray.put(clf)``).
    digits : int
        Significant digits of the probabilities, as ``pet-kit predict --digits``.
    threads : int, optional
        torch CPU threads on this worker (``None``: leave torch's setting).
    """

    def __init__(self, prompt: Any, digits: int = 6, threads: int | None = None) -> None:
        import ray

        if isinstance(prompt, ray.ObjectRef):
            prompt = ray.get(prompt)
        super().__init__(prompt, digits, threads)
        self.pid = os.getpid()

    def __call__(self, batch: pa.Table) -> pa.Table:  # type: ignore[override]
        """``batch`` plus ``prediction`` and ``proba_<class>`` (its row numbers kept).

        Batches are pyarrow tables converted with pyarrow's own ``to_pandas``, which gives
        the same frame as pet_kit's reader whatever Ray's pandas conversion (Ray 2.56
        and later hand pandas batches with Arrow-backed dtypes).
        """
        import pyarrow as pa

        return pa.Table.from_pandas(super().__call__(batch.to_pandas()), preserve_index=False)


def predict_dataset(
    ds: Any,
    prompt: Any,
    *,
    workers: int = 1,
    batch_size: int = 1000,
    digits: int = 6,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
) -> Any:
    """Add ``prediction`` and ``proba_<class>`` columns to a Ray Dataset, lazily.

    Parameters
    ----------
    ds : ray.data.Dataset
        Rows with the prompt's pattern fields as columns (any other columns, such as
        a row number, pass through).
    prompt : str, PathLike, ray.ObjectRef or fitted classifier
        What :class:`Predictor` takes: a folder each worker loads, or an estimator (put
        it in the object store once with ``ray.put`` when it is large).
    workers : int
        Actors in the pool, each with its own copy of the backbone.
    batch_size : int
        Rows per ``map_batches`` call.
    digits : int
        Significant digits of the probabilities.
    cpus_per_worker, gpus_per_worker : float
        Resources each actor reserves; torch uses ``cpus_per_worker`` threads (at
        least one).

    Returns
    -------
    ray.data.Dataset
        Not yet executed; the row order is not guaranteed.
    """
    import ray.data

    threads = max(1, int(cpus_per_worker))
    return ds.map_batches(
        Predictor,
        fn_constructor_args=(prompt, digits, threads),
        # ActorPoolStrategy(size=N): `concurrency=N` is deprecated in recent Ray releases
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
    )


def predict_file_ray(
    prompt: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    workers: int = 1,
    batch_size: int = 1000,
    digits: int = 6,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    overwrite: bool = False,
) -> int:
    """Classify a file with Ray Data; the output equals ``pet-kit predict``'s.

    Ray must be initialised (``ray.init``) or it starts a local instance on first use.

    Parameters
    ----------
    prompt : str, PathLike or fitted classifier
        A prompt folder (each worker loads it) or a fitted estimator (shipped pickled
        through the object store; each worker rebuilds its backbone).
    input_path : str or PathLike
        ``.csv``, ``.tsv`` or ``.txt``.
    output_path : str or PathLike
        ``.csv`` or ``.tsv``; written to a temporary file and renamed when complete.
    workers, batch_size, digits, cpus_per_worker, gpus_per_worker
        As in :func:`predict_dataset`. The input is split into blocks of ``batch_size``
        rows, one batch each: the chunks ``pet-kit predict --chunk-size batch_size``
        predicts, hence the same bytes.
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    InputError
        Unsupported file types, an existing output without ``overwrite``, or what
        ``pet-kit predict`` refuses (bad digits, unreadable input, ...).
    """
    import ray
    import ray.data

    inp, out = check_predict_job(input_path, output_path, chunk_size=batch_size)
    if out is None:  # pragma: no cover - check_predict_job returns the path it was given
        raise InputError("predict_file_ray needs an output path")
    check_digits(digits)  # before any work
    if inp.suffix.lower() not in INPUTS or out.suffix.lower() not in OUTPUTS:
        raise InputError(
            f"inputs: {', '.join(INPUTS)}; outputs: {', '.join(OUTPUTS)} (got {inp.suffix}"
            f" -> {out.suffix}); use pet-kit predict for JSON Lines"
        )
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if not isinstance(prompt, (str, os.PathLike)):
        prompt = ray.put(prompt)  # pickled once; the workers share this copy
    refs = [ray.put(chunk) for chunk in numbered_chunks(inp, batch_size)]
    if not refs:  # no rows: what pet-kit predict writes for an empty input
        return write_in_order([], out)
    ds = ray.data.from_pandas_refs(refs)
    predicted = predict_dataset(
        ds,
        prompt,
        workers=workers,
        batch_size=batch_size,
        digits=digits,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
    )
    batches = (
        table.to_pandas()
        for table in predicted.iter_batches(batch_format="pyarrow", batch_size=None)
    )
    return write_in_order(batches, out)


def missing_ray() -> str | None:
    """The first of Ray, Ray Data and pyarrow that cannot be imported (``None``: all can)."""
    import importlib

    for module in ("ray", "ray.data", "pyarrow"):
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt_dir", help="folder written by PromptClassifier.save")
    parser.add_argument("input", help=".csv, .tsv or .txt file to classify")
    parser.add_argument("--output", required=True, help=".csv or .tsv output file")
    parser.add_argument("--workers", type=int, default=1, help="Ray actors (default 1)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="rows per batch (default 1000, pet-kit predict's --chunk-size)",
    )
    parser.add_argument("--digits", type=int, default=6, help="significant digits (default 6)")
    parser.add_argument(
        "--pickled",
        action="store_true",
        help="load the prompt here and ship the pickled estimator (not the folder path)",
    )
    parser.add_argument("--cpus-per-worker", type=float, default=1, help="default 1")
    parser.add_argument("--gpus-per-worker", type=float, default=0, help="default 0")
    parser.add_argument("--address", help="a running Ray cluster ('auto'); default: local")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.workers < 1 or args.batch_size < 1:
        parser.error("--workers and --batch-size must be positive integers")
    missing = missing_ray()
    if missing is not None:
        print(
            f"error: this example needs Ray Data, and {missing!r} is not installed:"
            ' pip install "ray[data]" (or pet_kit\'s extra: pip install "pet_kit[ray]")',
            file=sys.stderr,
        )
        return 1

    import ray

    started = not ray.is_initialized()  # e.g. a notebook's or a test's own instance
    if started and args.address:
        ray.init(address=args.address)
    elif started:
        ray.init(
            num_cpus=max(1, int(args.workers * args.cpus_per_worker)),
            include_dashboard=False,
        )
    try:
        prompt: Any = args.prompt_dir
        if args.pickled:
            prompt = PromptClassifier.load(args.prompt_dir)
        start = time.perf_counter()
        rows = predict_file_ray(
            prompt,
            args.input,
            args.output,
            workers=args.workers,
            batch_size=args.batch_size,
            digits=args.digits,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            overwrite=args.overwrite,
        )
        seconds = time.perf_counter() - start
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if started:
            ray.shutdown()
    rate = rows / seconds if seconds > 0 else float("inf")
    print(
        f"wrote {rows} predictions to {args.output} with {args.workers} Ray worker(s) in"
        f" {seconds:.1f} s ({rate:.1f} rows/s, worker start-up included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
