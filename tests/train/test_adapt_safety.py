"""adapt and fit checkpoints never lose a file: folder ownership, one commit point, kills."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import NEG, POS, tiny_clf
from safetensors.torch import load_file

from pet_kit import Checkpoints, InputError, PromptClassifier, SavedPromptError
from pet_kit.train import adapt_checkpoint as checkpoints
from pet_kit.train.adapt import adapt

TEXTS = [f"{a} {b}" for a in POS + NEG for b in ("indeed", "so it seems", "")] * 2
FAST = dict(max_steps=4, batch_size=4, max_length=16, checkpoint_every=2, verbose=0, seed=0)
X, Y = POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _stop_at(n: int):
    def stop(step: int, loss: float) -> None:
        if step == n:
            raise KeyboardInterrupt

    return stop


# -------------------------------------------------- never a folder pet_kit did not make
def test_a_checkpoint_dir_holding_the_users_files_is_refused_and_kept(tiny_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "c.txt").write_text("\n".join(TEXTS), encoding="utf-8")
    (work / "notes.txt").write_text("mine", encoding="utf-8")
    before = _files(work)
    with pytest.raises(InputError, match=r"checkpoint_dir .*work holds files adapt did not write"):
        adapt(work / "c.txt", tmp_path / "out", model=str(tiny_dir), checkpoint_dir=work, **FAST)
    assert _files(work) == before and not (tmp_path / "out").exists()


def test_cli_checkpoint_dir_dot_in_the_working_folder_deletes_nothing(
    tiny_dir, tmp_path, monkeypatch, capsys
):
    from pet_kit.cli import main

    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "c.txt").write_text("\n".join(TEXTS), encoding="utf-8")
    (work / "todo.md").write_text("keep", encoding="utf-8")
    before = _files(work)
    monkeypatch.chdir(work)
    base = ["adapt", "data/c.txt", "--output", "../adapted", "--model", str(tiny_dir)]
    base += ["--max-steps", "2", "--batch-size", "4", "--max-length", "16"]
    for ckpt in (".", "data"):
        assert main([*base, "--checkpoint-dir", ckpt]) == 1
        assert "holds files adapt did not write" in capsys.readouterr().err
    assert _files(work) == before and not (tmp_path / "adapted").exists()


def test_the_source_model_folder_as_checkpoint_dir_is_refused(tiny_dir, tmp_path):
    before = _files(tiny_dir)
    with pytest.raises(InputError, match="holds files adapt did not write"):
        adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), checkpoint_dir=tiny_dir, **FAST)
    assert _files(tiny_dir) == before


def test_a_checkpoint_dir_above_the_output_keeps_the_output(tiny_dir, tmp_path):
    proj = tmp_path / "proj"
    args = dict(model=str(tiny_dir), checkpoint_dir=proj, **FAST)
    with pytest.raises(KeyboardInterrupt):
        adapt(TEXTS, proj / "out", on_step=_stop_at(1), **args)
    res = adapt(TEXTS, proj / "out", **args)
    assert res.complete and res.path == proj / "out"
    assert sorted(p.name for p in proj.iterdir()) == ["out"]  # the checkpoint's files only went
    assert (proj / "out" / "model.safetensors").is_file()


def test_a_checkpoint_dir_is_removed_only_if_pet_kit_made_it_and_it_is_empty(tiny_dir, tmp_path):
    made = tmp_path / "new" / "ckpt"
    adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), checkpoint_dir=made, max_minutes=1e-9, **FAST)
    assert checkpoints.has_state(made)
    assert adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), checkpoint_dir=made, **FAST).complete
    assert not made.exists() and (tmp_path / "new").is_dir()  # only the folder it made
    mine = tmp_path / "mine"
    mine.mkdir()
    assert adapt(TEXTS, tmp_path / "b", model=str(tiny_dir), checkpoint_dir=mine, **FAST).complete
    assert mine.is_dir() and not list(mine.iterdir())  # the user's (empty) folder stays


def test_a_file_appearing_in_the_checkpoint_dir_during_the_run_is_kept(tiny_dir, tmp_path):
    ckpt = tmp_path / ".out.adapt-checkpoint"

    def drop_a_file(step: int, loss: float) -> None:
        if step == 3:
            (ckpt / "theirs.txt").write_text("keep", encoding="utf-8")

    res = adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), on_step=drop_a_file, **FAST)
    assert res.complete and sorted(p.name for p in ckpt.iterdir()) == ["theirs.txt"]


@pytest.mark.parametrize("where", ["file", "output", "inside_output"])
def test_an_unusable_checkpoint_dir_is_refused_before_training(tiny_dir, tmp_path, where):
    (tmp_path / "file").write_text("a file", encoding="utf-8")
    ckpt = {"file": "file", "output": "out", "inside_output": "out/ckpt"}[where]
    match = {"file": "is a file, not a folder", "output": "lies in the output folder"}
    with pytest.raises(InputError, match=match.get(where, "lies in the output folder")):
        adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), checkpoint_dir=tmp_path / ckpt, **FAST)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ one commit point
class _Crash(BaseException):
    """A crash at a file operation (not an Exception: nothing handles it on the way)."""


def _crash_before(n: int, monkeypatch) -> None:
    """Make the ``n``-th call of os.replace / os.unlink from now on raise before acting."""
    count = {"n": 0}

    def wrap(real):
        def op(*args, **kwargs):
            count["n"] += 1
            if count["n"] == n:
                raise _Crash
            return real(*args, **kwargs)

        return op

    monkeypatch.setattr(os, "replace", wrap(os.replace))
    monkeypatch.setattr(os, "unlink", wrap(os.unlink))


def test_a_crash_at_any_file_operation_leaves_a_resumable_checkpoint(
    tiny_dir, tmp_path, monkeypatch
):
    run = {**FAST, "max_steps": 3, "checkpoint_every": 1}
    whole = adapt(TEXTS, tmp_path / "whole", model=str(tiny_dir), **run).path
    n = 1
    while True:
        out = tmp_path / f"crash{n}"
        with monkeypatch.context() as patch:
            _crash_before(n, patch)
            try:
                adapt(TEXTS, out, model=str(tiny_dir), **run)
            except _Crash:
                crashed = True
            else:
                crashed = False
        if not crashed:  # every file operation of the run has been a crash point
            break
        if not (out / "model.safetensors").is_file():  # else: crashed while cleaning up
            res = adapt(TEXTS, out, model=str(tiny_dir), **run)  # must resume
            assert res.complete, n
        assert _same_weights(whole, out), f"crash before file operation {n}"
        n += 1
    assert n > 5  # the checkpoints at steps 1, 2, 3 and the clean-up were all crash points


def test_a_checkpoint_in_the_earlier_two_file_layout_still_resumes(tiny_dir, tmp_path):
    whole = adapt(TEXTS, tmp_path / "whole", model=str(tiny_dir), **FAST).path
    with pytest.raises(KeyboardInterrupt):
        adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), on_step=_stop_at(3), **FAST)
    ckpt = tmp_path / ".out.adapt-checkpoint"
    state = ckpt / "adapt_state.json"
    meta = json.loads(state.read_text("utf-8"))  # as pet_kit wrote it before one commit point
    (ckpt / meta.pop("tensors_file")).rename(ckpt / "adapt_state.safetensors")
    del meta["tensors_bytes"], meta["created_folder"]
    state.write_text(json.dumps(meta), encoding="utf-8")
    res = adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), **FAST)
    assert res.complete and _same_weights(whole, res.path) and not ckpt.exists()


def _adapt_in_child(ckpt_parent: Path, tiny_dir: Path, run: dict, report: int) -> None:
    """The body of a forked child: adapt, reporting each step on the pipe ``report``."""
    code = 1
    try:
        adapt(
            TEXTS,
            ckpt_parent / "out",
            model=str(tiny_dir),
            threads=1,
            on_step=lambda step, loss: os.write(report, b"."),
            **run,
        )
        code = 0
    finally:
        os._exit(code)


def _run_and_kill(target, rng: random.Random) -> bool:
    """Fork a child running ``target(report_fd)``, SIGKILL it after 1 to 3 reported steps
    and a random 0-3 ms; ``False`` when it finished first."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        target(write)
    os.close(write)
    seen, wanted = 0, rng.randint(1, 3)
    while seen < wanted:
        data = os.read(read, 64)
        if not data:
            break
        seen += len(data)
    killed = seen >= wanted
    if killed:
        time.sleep(rng.uniform(0, 0.003))
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    return killed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_adapt_killed_at_random_moments_always_resumes_to_the_uninterrupted_model(
    tiny_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    run = {**FAST, "max_steps": 24, "checkpoint_every": 1}
    whole = adapt(TEXTS, tmp_path / "whole", model=str(tiny_dir), threads=1, **run).path
    rng, kills, unresumable = random.Random(0), 0, []
    ckpt = tmp_path / ".out.adapt-checkpoint"
    while kills < 6 and _run_and_kill(lambda fd: _adapt_in_child(tmp_path, tiny_dir, run, fd), rng):
        kills += 1
        if checkpoints.has_state(ckpt):
            try:
                checkpoints.read_state(ckpt)
            except InputError as exc:
                unresumable.append(str(exc))
    assert unresumable == [] and kills == 6
    res = adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), threads=1, **run)
    assert res.complete and _same_weights(whole, res.path)
    assert not ckpt.exists()


def _fit_in_child(tiny_dir: Path, folder: Path, report: int) -> None:
    """The body of a forked child: fit with a checkpoint every step, reporting each."""
    code = 1
    try:
        clf = tiny_clf(tiny_dir, epochs=30, n_threads=1, checkpoint=Checkpoints(folder, every=1))
        original = clf._checkpoint_writer

        def reporting(*args):
            write = original(*args)
            return lambda step, result: (write(step, result), os.write(report, b"."))

        clf._checkpoint_writer = reporting
        clf.fit(X, Y)
        code = 0
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fit_checkpoints_killed_at_random_moments_always_load(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    folder = tmp_path / "ckpt"
    rng, kills, unloadable = random.Random(1), 0, []
    while kills < 6 and _run_and_kill(lambda fd: _fit_in_child(tiny_dir, folder, fd), rng):
        kills += 1
        try:
            PromptClassifier.load(folder, device="cpu")
        except SavedPromptError as exc:
            unloadable.append(str(exc))
    assert unloadable == [] and kills == 6
