"""Classify a large file with a saved prompt on several processes (e.g. one per GPU).

Each process predicts every N-th chunk of the input (N = number of processes) into its
own shard output with a ``row`` column; the shards are then merged into OUTPUT in input
order. Runs are resumable: start the same command again after a crash and each shard
continues after its last finished chunk.

One process (no launcher; writes OUTPUT directly)::

    python examples/predict_sharded.py PROMPT_DIR INPUT OUTPUT

N processes with torch's launcher (or ``accelerate launch``, which sets the same
variables)::

    torchrun --nproc_per_node N examples/predict_sharded.py PROMPT_DIR INPUT OUTPUT
    accelerate launch --multi_gpu --num_processes N \
        examples/predict_sharded.py PROMPT_DIR INPUT OUTPUT

The launcher sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``: process
RANK uses GPU ``cuda:LOCAL_RANK`` (CPU without CUDA), writes
``OUTPUT-stem.shardRANK-of-N.suffix``, and after a barrier (torch.distributed, gloo
backend) rank 0 merges the shards into OUTPUT. Without ``MASTER_ADDR`` (processes
started by hand or by a job scheduler with ``RANK``/``WORLD_SIZE`` set) there is no
barrier: merge once every shard has finished with::

    python examples/predict_sharded.py --merge N PROMPT_DIR INPUT OUTPUT
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

import torch

from pet_kit import PromptClassifier
from pet_kit.batch import merge_shards, predict_file, shard_path

log = logging.getLogger("predict_sharded")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        sys.exit(f"error: environment variable {name}={value!r} is not an integer")


def _device(local_rank: int) -> str:
    if not torch.cuda.is_available():
        return "cpu"
    # more processes than GPUs share them round-robin
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def _merge(output: str, world_size: int, chunk_size: int) -> None:
    shards = [shard_path(output, k, world_size) for k in range(world_size)]
    rows = merge_shards(shards, output, chunk_size=chunk_size, overwrite=True)
    for shard in shards:
        shard.unlink()
    print(f"merged {world_size} shards: {rows} predictions in {output}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt_dir", help="folder written by PromptClassifier.save")
    parser.add_argument("input", help="CSV/TSV/JSONL/TXT file to classify")
    parser.add_argument("output", help=".csv/.tsv/.jsonl file for the merged predictions")
    parser.add_argument("--chunk-size", type=int, default=1000, help="rows per chunk")
    parser.add_argument("--model", help="backbone (default: the one recorded in the prompt)")
    parser.add_argument("--no-resume", dest="resume", action="store_false")
    parser.add_argument(
        "--merge",
        type=int,
        metavar="N",
        help="only merge the finished shards of an N-process run into OUTPUT",
    )
    parser.add_argument(
        "--barrier-hours",
        type=float,
        default=48.0,
        help="how long the processes wait for each other before merging (default 48)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.merge is not None:
        _merge(args.output, args.merge, args.chunk_size)
        return 0

    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = _device(local_rank)
    clf = PromptClassifier.load(args.prompt_dir, model=args.model, device=device)

    if world_size == 1:
        result = predict_file(
            clf, args.input, args.output, chunk_size=args.chunk_size, resume=args.resume
        )
        print(f"wrote {result.rows_total} predictions to {args.output}")
        return 0

    shard = shard_path(args.output, rank, world_size)
    result = predict_file(
        clf,
        args.input,
        shard,
        chunk_size=args.chunk_size,
        resume=args.resume,
        progress=local_rank == 0,  # one progress bar per machine
        num_shards=world_size,
        shard_index=rank,
    )
    print(f"[rank {rank}/{world_size} on {device}] wrote {result.rows_total} rows to {shard}")

    if "MASTER_ADDR" not in os.environ or not torch.distributed.is_available():
        if rank == 0:
            print(
                "no launcher rendezvous (MASTER_ADDR unset): when every shard has finished,"
                f" merge with: python {sys.argv[0]} --merge {world_size} {args.prompt_dir}"
                f" {args.input} {args.output}"
            )
        return 0
    # gloo works on CPU and GPU machines; the barrier waits for the slowest shard
    torch.distributed.init_process_group(
        backend="gloo", timeout=timedelta(hours=args.barrier_hours)
    )
    try:
        torch.distributed.barrier()
        if rank == 0:
            _merge(args.output, world_size, args.chunk_size)
    finally:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
