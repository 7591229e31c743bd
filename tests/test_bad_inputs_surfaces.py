"""Bad inputs to the surfaces the manifest's runners do not reach (tests/test_bad_inputs.py
covers PromptClassifier, PVP files, prompt folders, pet-kit train/predict/evaluate, the
server and adapt): :class:`~pet_kit.LinearStudent` and :class:`~pet_kit.PromptEnsemble`
inputs and saved folders.

Each table row is one input a user (or a damaged file) may give; the expected outcome is a
pet_kit error naming the file, key or value, never a raw ``KeyError``/``IndexError`` or
``TypeError`` from deep inside, nor NaN probabilities.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import NEG, POS, SENTIMENT_PVP, tiny_clf

from pet_kit import InputError, LinearStudent, PromptClassifier, PromptEnsemble, SavedPromptError

X = POS + NEG
Y = ["positive"] * len(POS) + ["negative"] * len(NEG)
SOFT = np.tile([0.5, 0.5], (len(X), 1))


# ------------------------------------------------------------ LinearStudent.fit
@pytest.mark.parametrize(
    ("params", "y", "match"),
    [
        ({"max_length": 0}, Y, "max_length must be a positive integer, got 0"),
        ({"max_length": "abc"}, Y, "max_length must be a positive integer, got 'abc'"),
        ({"max_length": float("nan")}, Y, "max_length must be a positive integer, got nan"),
        ({}, [*Y[:-1], float("nan")], r"y\[15\] is missing \(nan\)"),
        ({}, [*Y[:-1], None], r"y\[15\] is missing \(None\)"),
        ({}, [1] * 8 + ["a"] * 8, r"y mixes labels of types \['int', 'str'\]"),
        ({}, ["a"] * 16, r"y contains only one class \('a'\)"),
        ({"classes": ["positive", "positive", "negative"]}, Y, "classes holds a label twice"),
        ({"classes": ["a"]}, ["a"] * 16, "classes must list at least two labels"),
        ({"classes": ["a", "b"]}, SOFT - 1, r"soft labels y\[0\] = \[-0.5, -0.5\] are not"),
        ({"classes": ["a", "b"]}, SOFT * np.inf, r"soft labels y\[0\] = \[inf, inf\] are not"),
        (
            {"classes": ["a", "b"]},
            np.where(np.eye(16, 2) == 1, np.nan, SOFT),
            r"soft labels y\[0\] = \[nan, 0.5\] are not class probabilities",
        ),
    ],
    ids=[
        "max_length_0",
        "max_length_text",
        "max_length_nan",
        "y_nan",
        "y_none",
        "y_mixed_int_str",
        "y_one_class",
        "classes_duplicate",
        "classes_one",
        "soft_negative",
        "soft_inf",
        "soft_nan",
    ],
)
def test_linear_student_fit_refuses(tiny_dir, params, y, match):
    with pytest.raises(InputError, match=match):
        LinearStudent(model=str(tiny_dir), device="cpu", **params).fit(X, y)


# ------------------------------------------------------------ LinearStudent.load
@pytest.fixture(scope="module")
def student_folder(tiny_dir, tmp_path_factory) -> Path:
    student = LinearStudent(model=str(tiny_dir), device="cpu").fit(X, Y)
    return student.save(tmp_path_factory.mktemp("student") / "s")


def _edit_json(patch: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "prompt.json").read_text(encoding="utf-8"))
        patch(meta)
        (folder / "prompt.json").write_text(json.dumps(meta), encoding="utf-8")

    return edit


def _tensors(weight: torch.Tensor, bias: torch.Tensor) -> Callable[[Path], None]:
    """Replace the tensors, with prompt.json's checksum and size updated to match."""
    from safetensors.torch import save

    def edit(folder: Path) -> None:
        data = save({"weight": weight, "bias": bias}, metadata={"format": "pt"})
        (folder / "prompt.safetensors").write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        files = {"prompt.safetensors": digest}
        files["sizes"] = {"prompt.safetensors": {"bytes": len(data), "sha256": digest}}
        _edit_json(lambda m: m.update(files=files))(folder)

    return edit


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (
            _edit_json(lambda m: m["params"].update(foo=1)),
            r"prompt.json: params holds \['foo', 'l2', 'max_length', 'temperature'\]",
        ),
        (
            _edit_json(lambda m: m["params"].update(max_length="abc")),
            "prompt.json: params: max_length must be a positive integer, got 'abc'",
        ),
        (
            _edit_json(lambda m: m["params"].update(temperature=None)),
            "prompt.json: params: temperature must be a number > 0",
        ),
        (_edit_json(lambda m: m.update(classes="ab")), "classes 'ab' are not two or more"),
        (_edit_json(lambda m: m.update(classes=[["x"], ["y"]])), r"classes \[\['x'\], \['y'\]\]"),
        (_tensors(torch.zeros(2), torch.zeros(2)), r"weight and bias have shapes \(2,\) and"),
        (_tensors(torch.zeros(2, 32, 1), torch.zeros(2)), r"shapes \(2, 32, 1\) and \(2,\)"),
        (
            _tensors(torch.full((2, 32), float("nan")), torch.zeros(2)),
            "weight is not finite floating-point numbers",
        ),
        (
            _tensors(torch.zeros(2, 32, dtype=torch.int64), torch.zeros(2)),
            r"weight is not finite floating-point numbers \(dtype torch.int64\)",
        ),
    ],
    ids=[
        "params_unknown_key",
        "params_max_length_text",
        "params_temperature_null",
        "classes_a_string",
        "classes_unhashable",
        "weight_1d",
        "weight_3d",
        "weight_nan",
        "weight_int",
    ],
)
def test_linear_student_load_refuses_an_edited_folder(
    student_folder, tiny_dir, tmp_path, damage, match
):
    folder = tmp_path / "s"
    shutil.copytree(student_folder, folder)
    damage(folder)
    with pytest.raises(SavedPromptError, match=match):
        LinearStudent.load(folder, model=str(tiny_dir), device="cpu").predict_proba(X)


# -------------------------------------------------------------- PromptEnsemble.load
@pytest.fixture(scope="module")
def ensemble_folder(tiny_dir, tmp_path_factory) -> Path:
    other = {"pattern": "[SOFT] {text} Overall: [MASK].", "verbalizer": SENTIMENT_PVP["verbalizer"]}
    base = tiny_clf(tiny_dir, epochs=0)
    ensemble = PromptEnsemble([SENTIMENT_PVP, other], estimator=base).fit(X, Y)
    return ensemble.save(tmp_path_factory.mktemp("ensemble") / "e")


def _edit_ensemble(patch: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], None]:
    def edit(folder: Path, tiny_dir: Path) -> None:
        meta = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))
        patch(meta)
        (folder / "ensemble.json").write_text(json.dumps(meta), encoding="utf-8")

    return edit


def _member_of_another_task(folder: Path, tiny_dir: Path) -> None:
    """As an ensemble saved by pet_kit 0.1.0 (no checksums) whose member_1 was replaced."""
    _edit_ensemble(lambda m: m.pop("checksums"))(folder, tiny_dir)
    verbalizer = {"a": ["great"], "b": ["bad"], "c": ["fine"]}
    other = tiny_clf(tiny_dir, pvp={"pattern": "{text} [MASK]", "verbalizer": verbalizer})
    shutil.rmtree(folder / "member_1")
    other.fit(None).save(folder / "member_1")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (
            _edit_ensemble(lambda m: m.pop("weighting")),
            r"invalid ensemble metadata \(no 'weighting'",
        ),
        (_edit_ensemble(lambda m: m.update(weighting="x")), "weighting 'x' is not one of"),
        (_edit_ensemble(lambda m: m.update(weights=[0, 0])), r"weights \[0, 0\] are not one"),
        (_edit_ensemble(lambda m: m.update(weights=[[1, 1], [1, 1]])), "weights .* are not one"),
        (_edit_ensemble(lambda m: m.update(format_version=True)), "format_version True"),
        (_member_of_another_task, r"member_1: classes \['a', 'b', 'c'\] differ from member_0's"),
    ],
    ids=[
        "no_weighting",
        "weighting_unknown",
        "weights_all_zero",
        "weights_2d",
        "format_version_true",
        "member_of_another_task",
    ],
)
def test_ensemble_load_refuses_an_edited_folder(ensemble_folder, tiny_dir, tmp_path, damage, match):
    folder = tmp_path / "e"
    shutil.copytree(ensemble_folder, folder)
    damage(folder, tiny_dir)
    with pytest.raises(SavedPromptError, match=match):
        PromptEnsemble.load(folder, model=str(tiny_dir), device="cpu").predict_proba(X)


# ------------------------------------------------------------- batch prediction jobs
@pytest.fixture(scope="module")
def interrupted_job(tiny_dir, tmp_path_factory) -> tuple[Any, Path]:
    """A prompt, and a folder holding ``in.csv`` and the output and progress file of a
    prediction job interrupted after its first chunk (4 rows)."""
    import pandas as pd

    import pet_kit.batch.job as job

    clf = tiny_clf(tiny_dir, epochs=0).fit(None)
    folder = tmp_path_factory.mktemp("job")
    pd.DataFrame({"text": X}).to_csv(folder / "in.csv", index=False)
    real, calls = job.predict_chunk, []

    def interrupt_second(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    job.predict_chunk = interrupt_second
    try:
        with pytest.raises(KeyboardInterrupt):
            job.predict_file(clf, folder / "in.csv", folder / "out.csv", chunk_size=4)
    finally:
        job.predict_chunk = real
    return clf, folder


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"output_bytes": "12"}, "output_bytes is '12', not a count"),
        ({"output_bytes": -1}, "output_bytes is -1, not a count"),
        ({"output_bytes": 1.5}, "output_bytes is 1.5, not a count"),
        ({"next_chunk": "x"}, "next_chunk is 'x', not a count"),
        ({"next_chunk": -5}, "next_chunk is -5, not a count"),
        ({"rows_written": None}, "rows_written is None, not a count"),
        ({"chunks_written": True}, "chunks_written is True, not a count"),
        ({"columns": 5}, "columns is 5, not a list of column names"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_predict_job_refuses_an_edited_progress_file(interrupted_job, tmp_path, patch, match):
    """Was: a raw TypeError/ValueError/OSError, or (next_chunk -5) a resume that wrote
    rows twice."""
    from pet_kit.batch import predict_file

    clf, original = interrupted_job
    for name in ("in.csv", "out.csv", "out.csv.progress.json"):
        shutil.copy2(original / name, tmp_path / name)
    sidecar = tmp_path / "out.csv.progress.json"
    state = json.loads(sidecar.read_text(encoding="utf-8"))
    sidecar.write_text(json.dumps({**state, **patch}), encoding="utf-8")
    before = (tmp_path / "out.csv").read_bytes()
    with pytest.raises(InputError, match=match):
        predict_file(clf, tmp_path / "in.csv", tmp_path / "out.csv", chunk_size=4)
    assert (tmp_path / "out.csv").read_bytes() == before


def test_a_second_job_on_the_same_output_is_refused(interrupted_job, tmp_path):
    """Was: two jobs writing one output at once interleaved their chunks and raced on the
    progress file's temporary name (one failed with 'No such file or directory')."""
    fcntl = pytest.importorskip("fcntl")
    from pet_kit.batch import predict_file

    clf, original = interrupted_job
    shutil.copy2(original / "in.csv", tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    with open(out, "wb") as held:  # another job's lock on its output
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(InputError, match="another prediction job is writing this output"):
            predict_file(clf, tmp_path / "in.csv", out, chunk_size=4)
    assert out.read_bytes() == b"" and not (tmp_path / "out.csv.progress.json").exists()
    result = predict_file(clf, tmp_path / "in.csv", out, chunk_size=4, overwrite=True)
    assert result.rows_written == len(X)


def test_a_refused_job_leaves_no_output_behind(interrupted_job, tmp_path):
    """The lock creates a missing output; a job refused before writing removes it."""
    from pet_kit.batch import predict_file

    clf, _ = interrupted_job
    (tmp_path / "in.csv").write_text("text\n" + "\n".join(X) + "\n", encoding="utf-8")
    sidecar = tmp_path / "out.csv.progress.json"
    sidecar.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="not a pet_kit progress file"):
        predict_file(clf, tmp_path / "in.csv", tmp_path / "out.csv", chunk_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv.progress.json"]


# ------------------------------------------------------------------ load paths
@pytest.mark.parametrize("loader", [PromptClassifier, LinearStudent, PromptEnsemble])
@pytest.mark.parametrize(
    ("path", "match"),
    [
        (None, "the folder to load must be a str or os.PathLike path, got None"),
        (5, "the folder to load must be a str or os.PathLike path, got 5"),
        ("a\0b", "the path contains a NUL byte"),
    ],
    ids=["none", "int", "nul"],
)
def test_load_refuses_a_path_that_is_not_one(loader, path, match):
    """Was: a TypeError from inside pathlib, and for PromptEnsemble a ValueError
    ('embedded null byte') from os."""
    with pytest.raises(SavedPromptError, match=match):
        loader.load(path)


# ------------------------------------------------------------ adapt checkpoints
ADAPT_FAST = {"max_steps": 4, "batch_size": 4, "max_length": 16, "verbose": 0, "seed": 0}


@pytest.fixture(scope="module")
def adapt_checkpoint(tiny_dir, tmp_path_factory) -> Path:
    """A folder holding the checkpoint of an adapt run stopped after step 2 of 4."""
    from pet_kit.train.adapt import adapt

    work = tmp_path_factory.mktemp("adapt")

    def stop(step: int, loss: float) -> None:
        if step >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapt(X, work / "out", model=str(tiny_dir), checkpoint_every=1, on_step=stop, **ADAPT_FAST)
    assert json.loads((work / ".out.adapt-checkpoint" / "adapt_state.json").read_text())["step"]
    return work


def _first(tensors: dict[str, torch.Tensor], prefix: str) -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t[_first(t, "param.")].fill_(float("nan")), "holds NaN or infinite values"),
        (
            lambda t: t.update({(k := _first(t, "param.")): t[k].long()}),
            "holds torch.int64 values, not floating-point",
        ),
        (lambda t: t[_first(t, "exp_avg_sq.")].fill_(-1.0), "holds negative values"),
    ],
    ids=["param_nan", "param_int", "exp_avg_sq_negative"],
)
def test_adapt_refuses_an_edited_checkpoint_tensor(
    adapt_checkpoint, tiny_dir, tmp_path, edit, match
):
    """Was: NaN resumed into 'adapt diverged ... pass resume=True to continue from the last
    checkpoint' (the same NaN checkpoint, forever); int64 weights resumed truncated."""
    from safetensors.torch import load, save

    from pet_kit.train.adapt import adapt

    shutil.copytree(adapt_checkpoint, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / ".out.adapt-checkpoint"
    meta = json.loads((folder / "adapt_state.json").read_text(encoding="utf-8"))
    tensors = load((folder / meta["tensors_file"]).read_bytes())
    edit(tensors)
    data = save(tensors)
    (folder / meta["tensors_file"]).write_bytes(data)
    meta.update(tensors_sha256=hashlib.sha256(data).hexdigest(), tensors_bytes=len(data))
    (folder / "adapt_state.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(InputError, match=match):
        adapt(X, tmp_path / "out", model=str(tiny_dir), checkpoint_every=1, **ADAPT_FAST)
    assert (folder / meta["tensors_file"]).read_bytes() == data


# ------------------------------------------------------------- PromptEnsemble.fit
def _ensemble(tiny_dir: Path, **kw: Any) -> PromptEnsemble:
    other = {"pattern": "[SOFT] {text} Overall: [MASK].", "verbalizer": SENTIMENT_PVP["verbalizer"]}
    return PromptEnsemble([SENTIMENT_PVP, other], estimator=tiny_clf(tiny_dir, epochs=0), **kw)


@pytest.mark.parametrize(
    ("params", "unlabeled", "match"),
    [
        ({"distill": "linear"}, 5, r"X_unlabeled must be a list of texts \(or None\), got int"),
        (
            {"distill": "prompt", "student_params": {"learnig_rate": 1.0}},
            ["a good film"],
            "student_params has 'learnig_rate', not a PromptClassifier parameter; did you mean",
        ),
    ],
    ids=["x_unlabeled_int", "student_params_misspelt"],
)
def test_ensemble_fit_refuses(tiny_dir, params, unlabeled, match):
    """Was: a raw TypeError (len of an int); scikit-learn's 'Invalid parameter' ValueError
    after the members were trained."""
    with pytest.raises(InputError, match=match):
        _ensemble(tiny_dir, **params).fit(X, Y, X_unlabeled=unlabeled)


def test_ipet_generation_past_float_range_takes_every_text(tiny_dir):
    """Was: OverflowError once ipet_scale ** generation left the float range."""
    ensemble = _ensemble(tiny_dir, ipet_generations=1, ipet_scale=1e308)
    ensemble.fit(X, Y, X_unlabeled=["a good film", "a bad film"])
    assert ensemble.generations_[1] == [len(X) + 2] * 2
