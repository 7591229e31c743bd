"""Prediction spread over workers that return chunks in any order (pet_kit.batch.parallel),
without Ray: the library part of examples/ray_predict.py (tests/test_ray.py runs it on Ray)."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from conftest import NEG, POS, tiny_clf

from pet_kit import InputError
from pet_kit.batch import ORDER_COLUMN, ChunkWorker, in_input_order, numbered_chunks, write_in_order
from pet_kit.cli import main

TEXTS = [*POS, *NEG, 'great, "really" good', "非常喜欢这个电影", "a line\nbreak in a quoted cell"]


@pytest.fixture(scope="module")
def prompt_dir(tiny_dir, tmp_path_factory):
    clf = tiny_clf(tiny_dir).fit(POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG))
    return clf.save(tmp_path_factory.mktemp("parallel") / "prompt")


def test_rows_are_written_in_input_order_whatever_order_the_workers_return():
    """Frames out of order and split: runs come back in input order."""
    frame = pd.DataFrame({ORDER_COLUMN: range(10), "x": list("abcdefghij")})
    frames = [frame.iloc[[7, 8, 2, 3]], frame.iloc[[9]], frame.iloc[[4, 5, 6, 0, 1]]]
    runs = list(in_input_order(iter(frames)))
    assert pd.concat(runs)[ORDER_COLUMN].tolist() == list(range(10))
    with pytest.raises(RuntimeError, match="rows 2 onwards are missing"):
        list(in_input_order(iter([frame.iloc[[0, 1, 5]]])))


def test_workers_write_what_pet_kit_predict_writes(prompt_dir, tmp_path):
    inp = tmp_path / "in.csv"
    ids = [f"{i:03d}" for i in range(len(TEXTS))]  # leading zeros stay text
    pd.DataFrame({"id": ids, "text": TEXTS}).to_csv(inp, index=False)
    expected = tmp_path / "expected.csv"
    argv = ["predict", str(prompt_dir), str(inp), "--output", str(expected), "--no-progress"]
    assert main([*argv, "--chunk-size", "3"]) == 0

    chunks = list(numbered_chunks(inp, 3))
    assert [c.columns[0] for c in chunks] == [ORDER_COLUMN] * len(chunks)
    random.Random(0).shuffle(chunks)  # as a pool of workers may return them
    worker = ChunkWorker(str(prompt_dir), digits=6, threads=1)
    out = tmp_path / "out.csv"
    assert write_in_order((worker(c) for c in chunks), out) == len(TEXTS)
    assert out.read_bytes() == expected.read_bytes()
    assert write_in_order([], tmp_path / "empty.csv") == 0
    assert (tmp_path / "empty.csv").read_bytes() == b""


def test_an_input_with_the_order_column_is_refused(tmp_path):
    inp = tmp_path / "in.csv"
    pd.DataFrame({ORDER_COLUMN: [1], "text": ["x"]}).to_csv(inp, index=False)
    with pytest.raises(InputError, match="rename that column"):
        list(numbered_chunks(inp, 3))


def test_the_earlier_address_names_the_same_functions():
    import pet_kit.batch as batch
    from pet_kit.io import streaming

    assert streaming.__all__ == batch.__all__
    assert all(getattr(streaming, name) is getattr(batch, name) for name in batch.__all__)
    with pytest.raises(AttributeError):
        _ = streaming.not_a_name
