"""Batch prediction: classifying files of any size with a saved prompt, as
``pet-kit predict`` does: chunk by chunk (:mod:`~pet_kit.batch.chunks`), as a
resumable job (:mod:`~pet_kit.batch.job`), spread over shards or workers and put back in
input order (:mod:`~pet_kit.batch.parallel`)."""

from ..io.tables import iter_table_chunks
from .chunks import (
    ROW_COLUMN,
    RoundedProbabilities,
    TableFormatter,
    check_digits,
    count_rows,
    predict_chunk,
    predict_iter,
)
from .job import (
    PredictFileResult,
    check_output_target,
    check_predict_job,
    predict_file,
    predict_to_stream,
    progress_path,
)
from .parallel import (
    ORDER_COLUMN,
    ChunkWorker,
    in_input_order,
    merge_shards,
    numbered_chunks,
    shard_path,
    write_in_order,
)

__all__ = [
    "ORDER_COLUMN",
    "ROW_COLUMN",
    "ChunkWorker",
    "PredictFileResult",
    "RoundedProbabilities",
    "TableFormatter",
    "check_digits",
    "check_output_target",
    "check_predict_job",
    "count_rows",
    "in_input_order",
    "iter_table_chunks",
    "merge_shards",
    "numbered_chunks",
    "predict_chunk",
    "predict_file",
    "predict_iter",
    "predict_to_stream",
    "progress_path",
    "shard_path",
    "write_in_order",
]
