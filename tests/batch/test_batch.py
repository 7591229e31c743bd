"""Streaming, resumable, sharded prediction over files (pet_kit.batch) and its CLI."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import NEG, POS, REPO, tiny_clf

from pet_kit import InputError, PromptClassifier
from pet_kit.batch import (
    RoundedProbabilities,
    iter_table_chunks,
    merge_shards,
    predict_file,
    predict_iter,
    progress_path,
    shard_path,
)
from pet_kit.batch import job as batch_job
from pet_kit.cli import main
from pet_kit.io.tables import read_table

TEXTS = [
    *POS,
    *NEG,
    'great, "really" good',
    "非常喜欢这个电影",
    "bad; awful\tplot",
    "  spaced  text ",
]
N = len(TEXTS)  # 20


@pytest.fixture(scope="module")
def clf(tiny_dir):
    return tiny_clf(tiny_dir).fit(POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG))


@pytest.fixture(scope="module")
def prompt_dir(clf, tmp_path_factory):
    return clf.save(tmp_path_factory.mktemp("saved") / "prompt")


def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(N)], "text": TEXTS})


def write_input(folder, fmt: str):
    path = folder / f"in.{fmt}"
    df = frame()
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in df.to_dict("records")),
            encoding="utf-8",
        )
    else:
        path.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")  # blank line: no row
    return path


def reference(clf, df: pd.DataFrame) -> pd.DataFrame:
    """What ``pet-kit predict`` produced before streaming: one predict_proba call."""
    proba = clf.predict_proba(df)
    out = df.copy()
    out["prediction"] = clf.classes_[proba.argmax(1)]
    for j, c in enumerate(clf.classes_):
        out[f"proba_{c}"] = proba[:, j]
    return out


def read_output(path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        return pd.DataFrame([json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()])
    df = read_table(path)
    for c in df.columns:
        if c.startswith("proba_"):
            df[c] = df[c].astype(float)
    return df


def assert_same_predictions(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for c in want.columns:
        if c.startswith("proba_"):
            np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), atol=1e-5)
        else:
            assert got[c].astype(str).tolist() == want[c].astype(str).tolist(), c


def count_calls(monkeypatch, clf, fail_at: int | None = None, exc: type = RuntimeError):
    """Record the batch size of each predict_proba call; raise ``exc`` on call ``fail_at``."""
    calls: list[int] = []
    real = clf.predict_proba

    def predict_proba(X):
        calls.append(len(X))
        if len(calls) == fail_at:
            raise exc("simulated crash")
        return real(X)

    monkeypatch.setattr(clf, "predict_proba", predict_proba)
    return calls


# ------------------------------------------------------------------ reading
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "txt"])
@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_chunks_concatenate_to_read_table(tmp_path, fmt, chunk_size):
    path = write_input(tmp_path, fmt)
    chunks = list(iter_table_chunks(path, chunk_size))
    sizes = [len(c) for c in chunks]
    assert sizes == [chunk_size] * (N // chunk_size) + ([N % chunk_size] if N % chunk_size else [])
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_table(path))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_reader_is_lazy(tmp_path, fmt):
    """A large file with a broken tail: the first chunks come before the tail is read."""
    path = tmp_path / f"big.{fmt}"
    n = 60_000
    if fmt == "csv":
        body = "text\n" + "".join(f"text number {i}\n" for i in range(n)) + '"unterminated\n'
    elif fmt == "jsonl":
        body = "".join(f'{{"text": "text number {i}"}}\n' for i in range(n)) + "{broken\n"
    else:
        body = "".join(f"text number {i}\n" for i in range(n))
    path.write_bytes(body.encode() + (b"\xff\xfe\n" if fmt == "txt" else b""))
    chunks = iter_table_chunks(path, 50)
    first = next(chunks)
    assert first["text"].tolist() == [f"text number {i}" for i in range(50)]
    assert next(chunks)["text"].iloc[0] == "text number 50"
    with pytest.raises(InputError, match=r"big\..*: cannot parse as .* after data row"):
        for _ in chunks:
            pass


def test_predict_iter_is_lazy(clf):
    def source():
        yield frame().iloc[:3]
        yield frame().iloc[3:5]
        raise AssertionError("read past the chunks asked for")

    it = predict_iter(clf, source(), first_row=10, row_column=True)
    assert next(it)["row"].tolist() == [10, 11, 12]
    assert next(it)["row"].tolist() == [13, 14]


# ------------------------------------------------------------- predict_file
@pytest.mark.parametrize(
    ("fmt", "out_suffix"), [("csv", ".csv"), ("tsv", ".tsv"), ("jsonl", ".jsonl"), ("txt", ".csv")]
)
@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_chunked_output_equals_one_shot(tmp_path, clf, monkeypatch, fmt, out_suffix, chunk_size):
    path = write_input(tmp_path, fmt)
    out = tmp_path / f"out{out_suffix}"
    calls = count_calls(monkeypatch, clf)
    result = predict_file(clf, path, out, chunk_size=chunk_size, progress=False)
    assert max(calls) <= chunk_size and sum(calls) == N  # never more than a chunk at once
    assert len(calls) == math.ceil(N / chunk_size) == result.chunks_written
    assert (result.rows_written, result.rows_resumed, result.rows_total) == (N, 0, N)
    assert not progress_path(out).exists()
    monkeypatch.undo()
    assert_same_predictions(read_output(out), reference(clf, read_table(path)))


def test_empty_input_gives_empty_output(tmp_path, clf):
    (tmp_path / "in.txt").write_text("\n  \n")
    result = predict_file(clf, tmp_path / "in.txt", tmp_path / "out.csv", progress=False)
    assert result.rows_total == 0 and (tmp_path / "out.csv").read_bytes() == b""
    assert not progress_path(tmp_path / "out.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_after_a_crash_skips_finished_chunks(tmp_path, clf, monkeypatch, suffix):
    path = write_input(tmp_path, "csv")
    full = tmp_path / f"full{suffix}"
    predict_file(clf, path, full, chunk_size=3, progress=False)

    out = tmp_path / f"out{suffix}"
    count_calls(monkeypatch, clf, fail_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        predict_file(clf, path, out, chunk_size=3, progress=False)
    monkeypatch.undo()
    assert progress_path(out).exists()
    assert read_output(out)["id"].tolist() == [f"r{i}" for i in range(6)]  # 2 whole chunks

    calls = count_calls(monkeypatch, clf)
    result = predict_file(clf, path, out, chunk_size=3, progress=False)
    assert len(calls) == math.ceil(N / 3) - 2  # finished chunks are not recomputed
    assert (result.rows_resumed, result.rows_written, result.chunks_resumed) == (6, N - 6, 2)
    assert out.read_bytes() == full.read_bytes()
    assert not progress_path(out).exists()


def test_resume_drops_a_half_written_chunk(tmp_path, clf, monkeypatch):
    path = write_input(tmp_path, "tsv")
    full = tmp_path / "full.csv"
    predict_file(clf, path, full, chunk_size=4, progress=False)
    out = tmp_path / "out.csv"
    count_calls(monkeypatch, clf, fail_at=2, exc=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        predict_file(clf, path, out, chunk_size=4, progress=False)
    monkeypatch.undo()
    with out.open("ab") as fh:  # a crash in the middle of writing the next chunk
        fh.write(b'r4,a great movie,positive,0.3,"half a ro' + b"w" * 5000)  # > the rest
    predict_file(clf, path, out, chunk_size=4, progress=False)
    assert out.read_bytes() == full.read_bytes()


def crashed_run(tmp_path, clf, monkeypatch, **kw):
    path = write_input(tmp_path, "csv")
    out = tmp_path / "out.csv"
    count_calls(monkeypatch, clf, fail_at=2)
    with pytest.raises(RuntimeError):
        predict_file(clf, path, out, chunk_size=3, progress=False, **kw)
    monkeypatch.undo()
    return path, out


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"chunk_size": 5}, "chunk_size"),
        ({"num_shards": 2}, "num_shards"),
        ("prompt", "prompt"),
        ("calibration", "prompt"),
        ("input", "input_size"),
    ],
)
def test_resuming_a_different_job_is_refused(tmp_path, clf, tiny_dir, monkeypatch, change, field):
    path, out = crashed_run(tmp_path, clf, monkeypatch)
    kw = {"chunk_size": 3, "progress": False}
    model = clf
    if change == "prompt":
        model = tiny_clf(tiny_dir).fit(None)  # same classes, other vectors
    elif change == "calibration":  # same vectors, another calibration prior
        import copy

        model = copy.deepcopy(clf)
        model.model_.prior = np.array([0.3, 0.7])
    elif change == "input":
        with path.open("a") as fh:
            fh.write("r99,one more row\n")
    else:
        kw.update(change)
    before = out.read_bytes()
    with pytest.raises(InputError) as info:
        predict_file(model, path, out, **kw)
    msg = str(info.value)
    assert str(progress_path(out)) in msg and field in msg and "--no-resume" in msg
    assert out.read_bytes() == before  # nothing touched
    result = predict_file(model, path, out, resume=False, **kw)  # the fix works
    assert result.rows_resumed == 0 and not progress_path(out).exists()
    if "num_shards" not in kw:
        assert_same_predictions(read_output(out), reference(model, read_table(path)))


def test_output_shorter_than_recorded_is_refused(tmp_path, clf, monkeypatch):
    path, out = crashed_run(tmp_path, clf, monkeypatch)
    out.write_bytes(out.read_bytes()[:10])
    with pytest.raises(InputError, match="truncated or replaced"):
        predict_file(clf, path, out, chunk_size=3, progress=False)


def test_existing_output_without_progress_file_is_kept(tmp_path, clf):
    path = write_input(tmp_path, "csv")
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    with pytest.raises(InputError, match=r"out\.csv already exists.*overwrite=True"):
        predict_file(clf, path, out, progress=False)
    assert out.read_text() == "precious\n"
    predict_file(clf, path, out, overwrite=True, progress=False)
    first = out.read_bytes()
    with pytest.raises(InputError, match="already exists"):  # a finished run is not redone
        predict_file(clf, path, out, progress=False)
    assert predict_file(clf, path, out, resume=False, progress=False).rows_written == N
    assert out.read_bytes() == first


def test_chunk_errors_name_the_input_rows(tmp_path, clf):
    path = tmp_path / "in.jsonl"
    rows = [{"text": t} for t in TEXTS[:10]]
    rows[7]["text"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.csv"
    with pytest.raises(InputError) as info:
        predict_file(clf, path, out, chunk_size=3, progress=False)
    msg = str(info.value)
    assert str(path) in msg and "data rows 6-8" in msg and "row 7 (column 'text') is missing" in msg
    assert len(read_output(out)) == 6  # the finished chunks are kept, resumable


def test_too_long_rows_are_named_by_input_row(tmp_path, tiny_dir):
    from conftest import SENTIMENT_PVP

    pvp = {**SENTIMENT_PVP, "fields": {"text": {"shortenable": False}}}
    model = tiny_clf(tiny_dir, pvp=pvp, max_length=16).fit(None)
    lines = ["good"] * 5 + ["a very very very very very very very long boring plot"] + ["bad"]
    (tmp_path / "in.txt").write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"data rows 4-5 \(0-based\): row 5: its non-shortenable"):
        predict_file(model, tmp_path / "in.txt", tmp_path / "o.csv", chunk_size=2, progress=False)


def test_jsonl_keys_that_appear_late_are_refused_for_csv(tmp_path, clf):
    path = tmp_path / "in.jsonl"
    recs = [{"text": t} for t in TEXTS[:6]]
    recs[4]["source"] = "web"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(InputError, match=r"data rows 3-5: column\(s\) \['source'\] appear"):
        predict_file(clf, path, tmp_path / "out.csv", chunk_size=3, progress=False)
    predict_file(clf, path, tmp_path / "out.jsonl", chunk_size=3, progress=False)
    got = read_output(tmp_path / "out.jsonl")
    assert got.loc[4, "source"] == "web" and got["source"].isna().sum() == 5


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_shards_merge_to_the_unsharded_output(tmp_path, clf, suffix):
    path = write_input(tmp_path, "txt")
    full = tmp_path / f"full{suffix}"
    predict_file(clf, path, full, chunk_size=3, progress=False)
    shards = [shard_path(tmp_path / f"out{suffix}", k, 2) for k in range(2)]
    results = [
        predict_file(clf, path, s, chunk_size=3, num_shards=2, shard_index=k, progress=False)
        for k, s in enumerate(shards)
    ]
    assert [r.chunks_written for r in results] == [4, 3]
    rows = [read_output(s)["row"].astype(int).tolist() for s in shards]
    assert rows[0][:4] == [0, 1, 2, 6] and rows[1][:4] == [3, 4, 5, 9]
    assert sorted(rows[0] + rows[1]) == list(range(N))
    merged = tmp_path / f"merged{suffix}"
    assert merge_shards(shards, merged, chunk_size=4) == N
    assert merged.read_bytes() == full.read_bytes()

    with pytest.raises(InputError, match="input row 3 is missing"):
        merge_shards(shards[:1], tmp_path / f"m2{suffix}")
    with pytest.raises(InputError, match="already exists"):
        merge_shards(shards, merged)
    with pytest.raises(InputError, match=r"cannot be merged into a \.tsv output"):
        merge_shards(shards, tmp_path / "merged.tsv")
    progress_path(shards[1]).write_text("{}")
    with pytest.raises(InputError, match="unfinished"):
        merge_shards(shards, merged, overwrite=True)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
        ({"chunk_size": True}, "chunk_size must be a positive integer"),
        ({"chunk_size": 2.5}, "chunk_size must be a positive integer"),
        ({"num_shards": 0}, "num_shards must be a positive integer"),
        ({"num_shards": 2, "shard_index": 2}, r"shard_index must be .* 0 to num_shards - 1 = 1"),
        ({"shard_index": -1}, "shard_index must be"),
        ({"input_path": "in.xlsx"}, r"unsupported file type '\.xlsx'"),
        ({"input_path": "missing.csv"}, "no such file"),
        ({"output_path": "out.txt"}, r"unsupported output type '\.txt'"),
        ({"output_path": "in.csv"}, "the output is the input file"),
    ],
)
def test_bad_arguments(tmp_path, clf, monkeypatch, kw, match):
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path, "csv")
    (tmp_path / "in.xlsx").write_text("x")
    args = {"input_path": "in.csv", "output_path": "out.csv", **kw}
    with pytest.raises(InputError, match=match):
        predict_file(clf, progress=False, **args)
    assert not (tmp_path / "out.csv").exists()


# ---------------------------------------------------------------------- CLI
def cli_predict(prompt_dir, *args):
    return main(["predict", str(prompt_dir), *map(str, args), "--no-progress"])


def test_cli_streams_to_a_file_and_to_stdout(tmp_path, clf, prompt_dir, capsys):
    path = write_input(tmp_path, "csv")
    full = tmp_path / "full.csv"
    # the CLI writes 6 significant digits by default
    predict_file(RoundedProbabilities(clf, 6), path, full, chunk_size=3, progress=False)
    out = tmp_path / "out.csv"
    assert cli_predict(prompt_dir, path, "--output", out, "--chunk-size", 3) == 0
    assert f"wrote {N} predictions to {out}" in capsys.readouterr().out
    assert out.read_bytes() == full.read_bytes()

    assert cli_predict(prompt_dir, path, "--chunk-size", 3) == 0
    captured = capsys.readouterr()
    assert captured.out == full.read_text(encoding="utf-8")
    assert f"predicted {N} rows" in captured.err


def test_cli_resumes_after_ctrl_c(tmp_path, clf, prompt_dir, monkeypatch, capsys):
    path = write_input(tmp_path, "txt")
    full = tmp_path / "full.jsonl"
    predict_file(RoundedProbabilities(clf, 6), path, full, chunk_size=3, progress=False)
    out = tmp_path / "out.jsonl"
    calls = []
    real = PromptClassifier.predict_proba

    def interrupted(self, X):
        calls.append(len(X))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, X)

    monkeypatch.setattr(PromptClassifier, "predict_proba", interrupted)
    assert cli_predict(prompt_dir, path, "--output", out, "--chunk-size", 3) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    calls[:] = [0] * 10  # no more interruptions; count the calls from 10
    assert cli_predict(prompt_dir, path, "--output", out, "--chunk-size", 3) == 0
    assert f"wrote {N - 6} predictions to {out}; 6 resumed" in capsys.readouterr().out
    assert len(calls) - 10 == math.ceil(N / 3) - 2
    assert out.read_bytes() == full.read_bytes()

    assert cli_predict(prompt_dir, path, "--output", out) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli_predict(prompt_dir, path, "--output", out, "--overwrite") == 0
    assert cli_predict(prompt_dir, path, "--output", out, "--no-resume") == 0


def test_cli_shards_and_threads(tmp_path, clf, prompt_dir, monkeypatch, capsys):
    import pet_kit.cli as cli

    path = write_input(tmp_path, "csv")
    full = tmp_path / "full.csv"
    predict_file(RoundedProbabilities(clf, 6), path, full, chunk_size=2, progress=False)
    loaded = []
    real_load = cli._load_prompt
    monkeypatch.setattr(
        cli, "_load_prompt", lambda args: loaded.append(real_load(args)) or loaded[-1]
    )
    threads = torch.get_num_threads()
    shards = [shard_path(tmp_path / "out.csv", k, 2) for k in range(2)]
    try:
        for k, shard in enumerate(shards):
            args = ["--output", shard, "--chunk-size", 2, "--num-shards", 2, "--shard-index", k]
            assert cli_predict(prompt_dir, path, *args, "--threads", 2) == 0
            assert f"(shard {k} of 2)" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    if "n_threads" in loaded[0].get_params():
        assert loaded[0].get_params()["n_threads"] == 2
    merge_shards(shards, tmp_path / "merged.csv")
    assert (tmp_path / "merged.csv").read_bytes() == full.read_bytes()


@pytest.mark.parametrize(
    ("inp", "args", "message"),
    [
        ("in.csv", ["--chunk-size", "0"], "--chunk-size must be a positive integer, got 0"),
        ("in.csv", ["--threads", "0"], "--threads must be a positive integer"),
        ("in.csv", ["--threads", "100000"], "--threads=100000 is more threads than torch can"),
        ("in.csv", ["--num-shards", "2", "--shard-index", "2", "--output", "o.csv"], "--shard-"),
        ("in.csv", ["--num-shards", "2"], "--num-shards needs --output"),
        ("in.csv", ["--output", "o.txt"], "unsupported output type '.txt'"),
        ("x.xlsx", [], "unsupported file type '.xlsx'"),
        ("nope.csv", [], "nope.csv: no such file"),
    ],
)
def test_cli_argument_errors_exit_1_before_loading(
    tmp_path, monkeypatch, capsys, inp, args, message
):
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path, "csv")
    (tmp_path / "x.xlsx").write_text("x")
    # a missing prompt folder: these checks come before the (slow) load
    assert main(["predict", str(tmp_path / "no-prompt"), inp, *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "no such prompt folder" not in err


# ------------------------------------------------------------------ example
def test_sharded_example_matches_one_shot(tmp_path, clf, prompt_dir, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location(
        "predict_sharded", REPO / "examples" / "predict_sharded.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path = write_input(tmp_path, "csv")
    out = tmp_path / "preds.csv"
    argv = [str(prompt_dir), str(path), str(out), "--chunk-size", "3"]
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    for rank in range(2):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        assert example.main(argv) == 0
    assert "--merge 2" in capsys.readouterr().out
    assert not out.exists()
    assert example.main(["--merge", "2", *argv]) == 0
    assert not shard_path(out, 0, 2).exists()
    assert_same_predictions(read_output(out), reference(clf, frame()))

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    single = tmp_path / "single.csv"
    assert example.main([str(prompt_dir), str(path), str(single), "--chunk-size", "3"]) == 0
    assert single.read_bytes() == out.read_bytes()


def test_jsonl_output_writes_missing_values_as_null(tmp_path):
    """NaN is not JSON: a key missing from some records is written as null."""
    import json

    import pandas as pd

    from pet_kit.io.tables import write_table

    df = pd.DataFrame([{"text": "a", "note": "x"}, {"text": "b"}])
    write_table(df, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == [{"text": "a", "note": "x"}, {"text": "b", "note": None}]


# ------------------------------------------------- outputs that are folders or links
@pytest.mark.parametrize(
    ("setup", "output", "message"),
    [
        ("folder", "out.csv", "out.csv: is a folder, not a file"),
        ("file", "in.csv/out.csv", "cannot create the output's folder because in.csv is a file"),
        ("sidecar", "out.csv", "out.csv.progress.json: the progress file's path is a folder"),
        ("semicolons", "out.csv", "separated by semicolons"),
        ("dup", "out.csv", "names the column(s) ['text'] more than once"),
    ],
)
def test_cli_output_and_input_problems_exit_1_before_loading(
    tmp_path, monkeypatch, capsys, setup, output, message
):
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path, "csv")
    if setup == "folder":
        (tmp_path / "out.csv").mkdir()
    elif setup == "sidecar":
        (tmp_path / "out.csv.progress.json").mkdir()
    elif setup == "semicolons":
        (tmp_path / "in.csv").write_text("text;label\na great film;pos\n", encoding="utf-8")
    elif setup == "dup":
        (tmp_path / "in.csv").write_text("text,text\na,b\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "no-prompt"), "in.csv", "--output", output]) == 1
    err = capsys.readouterr().err
    assert message in err and "no such prompt folder" not in err, err


def _link_to_precious(tmp_path, name="out.csv", dangling=False):
    target = tmp_path / "precious.txt"
    if not dangling:
        target.write_text("keep me\n", encoding="utf-8")
    link = tmp_path / name
    link.symlink_to(target)
    return link, target


def test_overwrite_replaces_a_symlinked_output_never_its_target(tmp_path, clf):
    path = write_input(tmp_path, "csv")
    out, target = _link_to_precious(tmp_path)
    with pytest.raises(InputError, match=r"already exists \(a symbolic link to .*precious.txt\)"):
        predict_file(clf, path, out, progress=False)
    result = predict_file(clf, path, out, overwrite=True, progress=False)
    assert result.rows_written == N
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert not out.is_symlink()
    assert_same_predictions(read_output(out), reference(clf, read_table(path)))


def test_a_dangling_symlink_output_is_not_followed(tmp_path, clf):
    path = write_input(tmp_path, "csv")
    out, target = _link_to_precious(tmp_path, dangling=True)
    with pytest.raises(InputError, match="already exists"):
        predict_file(clf, path, out, progress=False)
    assert not target.exists()
    predict_file(clf, path, out, resume=False, progress=False)
    assert not target.exists() and not out.is_symlink() and out.stat().st_size > 0


def test_resuming_into_an_output_that_became_a_link_is_refused(tmp_path, clf, monkeypatch):
    path, out = crashed_run(tmp_path, clf, monkeypatch)
    target = tmp_path / "moved.csv"  # the partial output moved away, a link left behind
    out.rename(target)
    out.symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(InputError, match="is now a symbolic link; pet_kit never writes through"):
        predict_file(clf, path, out, chunk_size=3, progress=False)
    assert target.read_bytes() == before


def test_planted_temp_links_are_not_followed(tmp_path, clf):
    path = write_input(tmp_path, "csv")
    out = tmp_path / "out.csv"
    _, target = _link_to_precious(tmp_path, ".out.csv.progress.json.tmp")
    predict_file(clf, path, out, chunk_size=7, progress=False)
    assert target.read_text(encoding="utf-8") == "keep me\n"
    shards = [shard_path(out, k, 2) for k in range(2)]
    for k, shard in enumerate(shards):
        predict_file(clf, path, shard, chunk_size=7, num_shards=2, shard_index=k, progress=False)
    (tmp_path / "merged.csv").symlink_to(target)
    (tmp_path / ".merged.csv.tmp").symlink_to(target)
    merge_shards(shards, tmp_path / "merged.csv", overwrite=True)
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert (tmp_path / "merged.csv").read_bytes() == out.read_bytes()


def test_rounded_probabilities_keep_the_prediction(clf, tmp_path):
    """Rounding never changes the top class, and the digits are part of the job."""
    texts = POS[:3] + NEG[:3]
    exact = clf.predict_proba(texts)
    rounded = RoundedProbabilities(clf, 2).predict_proba(texts)
    assert (rounded.argmax(1) == exact.argmax(1)).all()
    assert all(len(f"{v:g}".lstrip("0.").replace(".", "")) <= 2 for v in rounded.ravel())
    path = write_input(tmp_path, "csv")
    job = batch_job._job_identity(RoundedProbabilities(clf, 2), path, 3, 1, 0)
    assert (
        job["digits"] == 2
        and job["prompt"] == batch_job._job_identity(clf, path, 3, 1, 0)["prompt"]
    )
    with pytest.raises(InputError, match="digits must be an integer from 1 to 17"):
        RoundedProbabilities(clf, 0)
