"""Saving never loses a file: user files, kills at every step, concurrent saves, hostile
targets, permissions, symbolic links, size limits and damaged files
(pet_kit.io.prompt_folder, result_folder, atomic)."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import SENTIMENT_PVP, tiny_clf

import pet_kit.io.atomic as atomic
import pet_kit.io.prompt_folder as persist
from pet_kit import PromptClassifier, PromptEnsemble, SavedPromptError
from pet_kit.io.prompt_folder import META_FILE, TENSOR_FILE
from pet_kit.io.result_folder import check_save_target

REPO = Path(__file__).resolve().parents[2]
X_TOY = ["a great movie", "good fun film", "a terrible movie", "bad boring film"] * 2
Y_TOY = ["positive", "positive", "negative", "negative"] * 2
NOTES = b"my own notes\n"


@pytest.fixture(scope="module")
def pair(tiny_dir):
    """Two different fitted prompts (A, B) on the tiny BERT."""
    a = tiny_clf(tiny_dir, epochs=1, random_state=0).fit(X_TOY, Y_TOY)
    b = tiny_clf(tiny_dir, epochs=1, random_state=1).fit(X_TOY, Y_TOY)
    assert not torch.equal(a.prompt_().detach(), b.prompt_().detach())
    return a, b


def _which(folder: Path, pair: tuple[Any, Any]) -> str:
    """Which of the pair ``PromptClassifier.load(folder)`` gives: "A" or "B"."""
    slots = PromptClassifier.load(folder).prompt_().detach()
    for name, clf in zip("AB", pair, strict=True):
        if torch.equal(slots, clf.prompt_().detach().cpu()):
            return name
    raise AssertionError(f"{folder} loads as neither prompt")


def _listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name: bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    """Hidden names in ``folder`` and beside it (pet_kit's temporary names start with .)."""
    inside = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    return inside + [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]


def _with_notes(folder: Path) -> None:
    (folder / "notes.txt").write_bytes(NOTES)
    (folder / "runs").mkdir()
    (folder / "runs" / "log.csv").write_bytes(b"step,loss\n")


# ----------------------------------------------------------------- user files
def test_saving_over_a_prompt_folder_keeps_the_users_files(pair, tmp_path):
    a, b = pair
    target = a.save(tmp_path / "p")
    _with_notes(target)
    b.save(target, overwrite=True)
    assert (target / "notes.txt").read_bytes() == NOTES
    assert (target / "runs" / "log.csv").read_bytes() == b"step,loss\n"
    assert _which(target, pair) == "B"
    assert _hidden(target) == []


@pytest.mark.parametrize(
    "name, content",
    [
        (META_FILE, b"my own prompt notes, not JSON\n"),
        (META_FILE, b'{"format": "someone.else", "prompt": "hi"}'),
        (META_FILE, b"[]"),
        (META_FILE, b"[" * 200_000 + b"]" * 200_000),
        (TENSOR_FILE, b"my tensors"),
    ],
    ids=["not_json", "other_format", "array", "deep", "tensor_file_alone"],
)
def test_a_folder_with_a_foreign_prompt_file_is_refused_and_untouched(
    pair, tmp_path, name, content
):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / name).write_bytes(content)
    (folder / "thesis.tex").write_bytes(b"important")
    before = _listing(folder)
    with pytest.raises(SavedPromptError, match="refusing to overwrite") as info:
        pair[0].save(folder)
    assert str(folder / name) in str(info.value) and "Choose another path" in str(info.value)
    assert _listing(folder) == before and _hidden(folder) == []


def test_a_symlinked_prompt_json_to_a_foreign_file_is_refused(pair, tmp_path):
    (tmp_path / "real.json").write_text('{"mine": true}')
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / META_FILE).symlink_to(tmp_path / "real.json")
    (folder / "data.txt").write_text("keep")
    with pytest.raises(SavedPromptError, match="not a pet_kit file"):
        pair[0].save(folder)
    assert (folder / META_FILE).is_symlink() and (folder / "data.txt").read_text() == "keep"
    assert (tmp_path / "real.json").read_text() == '{"mine": true}'


def test_symlinked_prompt_files_are_replaced_not_written_through(pair, tmp_path):
    a, b = pair
    target = a.save(tmp_path / "p")
    store = tmp_path / "store"
    store.mkdir()
    for name in (META_FILE, TENSOR_FILE):
        (target / name).rename(store / name)
        (target / name).symlink_to(store / name)
    (target / "notes.txt").write_bytes(NOTES)
    stored = _listing(store)
    b.save(target, overwrite=True)
    assert _listing(store) == stored  # the links' targets are untouched
    assert not (target / META_FILE).is_symlink() and not (target / TENSOR_FILE).is_symlink()
    assert _which(target, pair) == "B" and (target / "notes.txt").read_bytes() == NOTES


def test_a_symlinked_target_folder_is_followed(pair, tmp_path):
    a, b = pair
    real = a.save(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    b.save(link, overwrite=True)
    assert link.is_symlink() and _which(real, pair) == "B"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


# ----------------------------------------------------------- kills, step by step
class _Kill:
    """In a forked child: SIGKILL the process at the ``at``-th file-system step
    (``before`` or ``after`` doing it); steps are replace, rename, unlink, mkdir, rmdir
    and every file pet_kit writes."""

    PATCHED = (
        (os, "replace"),
        (os, "rename"),
        (os, "unlink"),
        (os, "mkdir"),
        (os, "rmdir"),
        (atomic, "write_new_file"),
    )

    def __init__(self, at: int, when: str) -> None:
        self.at, self.when, self.step = at, when, 0

    def install(self) -> None:
        for module, name in self.PATCHED:
            setattr(module, name, self._wrap(getattr(module, name)))

    def _wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            hit = self.step == self.at
            self.step += 1
            if hit and self.when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                return real(*args, **kwargs)
            finally:
                if hit:
                    os.kill(os.getpid(), signal.SIGKILL)

        return step


def _killed_at(at: int, when: str, save: Callable[[], Any]) -> bool:
    """Run ``save`` in a forked child killed at step ``at``; whether it was killed
    (``False``: the save finished before reaching that step)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            _Kill(at, when).install()
            save()
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "the save raised"
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _every_kill_point(
    reset: Callable[[], None], save: Callable[[], Any], check: Callable[[], None]
) -> list[str]:
    """From the state ``reset`` makes, kill ``save`` before and after each of its steps
    and ``check`` the folder; returns the kill points."""
    kills = []
    for when in ("before", "after"):
        for at in range(200):
            reset()
            if not _killed_at(at, when, save):
                break
            kills.append(f"{when} step {at}")
            check()
    return kills


def _interrupted_state(folder: Path, save: Callable[[], Any]) -> None:
    """Leave ``folder`` as a save killed between its two replacements leaves it."""
    pid = os.fork()
    if pid == 0:
        real = os.replace

        def replace(src: Any, dst: Any) -> None:
            real(src, dst)
            if str(dst).endswith(TENSOR_FILE):
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace
        try:
            save()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _start_state(start: str, target: Path, a: Any, b: Any) -> None:
    """The folder before the save that is killed: a prompt A with the user's files
    (``existing``), nothing (``new``), a save of B killed between its two replacements
    (``interrupted``)."""
    if start == "new":
        return
    a.save(target, overwrite=True)
    if not (target / "notes.txt").exists():
        _with_notes(target)
    if start == "interrupted":  # tensor file new, prompt.json old, new one in a temp file
        _interrupted_state(target, lambda: b.save(target, overwrite=True))
        assert any(n.startswith(".prompt.json.tmp-") for n in _hidden(target))


@pytest.mark.parametrize("start", ["existing", "new", "interrupted"])
def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_prompt(pair, tmp_path, start):
    a, b = pair
    target = tmp_path / "p"
    old = {"existing": "A", "new": None, "interrupted": "B"}[start]
    seen = []

    def reset() -> None:
        for path in tmp_path.iterdir():
            shutil.rmtree(path)
        _start_state(start, target, a, b)

    def check() -> None:
        if start == "new" and not target.exists():
            seen.append(None)
        else:
            seen.append(_which(target, pair))
            if start != "new":
                assert (target / "notes.txt").read_bytes() == NOTES
        a.save(target, overwrite=True)  # the next save
        assert _hidden(target) == [] and _which(target, pair) == "A"

    kills = _every_kill_point(reset, lambda: b.save(target, overwrite=True), check)
    assert set(seen) <= {old, "B"}, list(zip(kills, seen, strict=True))
    assert len(kills) >= 8 and "B" in seen and (old in seen or start == "interrupted")


def _failing_at(real: Callable[..., Any], at: int) -> Callable[..., Any]:
    """``real``, except that its ``at``-th call raises ENOSPC."""
    calls = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] - 1 == at:
            raise OSError(28, "No space left on device", str(args[0]))
        return real(*args, **kwargs)

    return failing


@pytest.mark.parametrize("start", ["existing", "new"])
@pytest.mark.parametrize("step", ["replace", "rename", "mkdir", "write_new_file"])
def test_a_failing_step_leaves_the_old_or_the_new_prompt(pair, tmp_path, monkeypatch, start, step):
    """os.replace / os.rename / ... raising at each call: a clear error naming the
    cause and the fix, then the old or the new prompt, and no leftovers after a save."""
    a, b = pair
    target = tmp_path / "p"
    module = atomic if step == "write_new_file" else os
    for at in range(4):
        if start == "existing":
            a.save(target, overwrite=True)
            if not (target / "notes.txt").exists():
                _with_notes(target)
        monkeypatch.setattr(module, step, _failing_at(getattr(module, step), at))
        try:
            b.save(target, overwrite=True)
        except SavedPromptError as exc:
            assert "No space left on device" in str(exc) and "save again" in str(exc)
        monkeypatch.undo()
        if start == "existing" or target.exists():
            assert _which(target, pair) in ("A", "B")
        if start == "existing":
            assert (target / "notes.txt").read_bytes() == NOTES
        a.save(target, overwrite=True)
        assert _hidden(target) == [] and _which(target, pair) == "A"
        if start == "new":
            shutil.rmtree(target)


def test_load_completes_an_interrupted_save_even_in_a_read_only_folder(
    pair, tmp_path, monkeypatch, caplog
):
    a, b = pair
    target = a.save(tmp_path / "p")
    _interrupted_state(target, lambda: b.save(target, overwrite=True))
    before = _listing(target)

    def read_only(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Read-only file system", str(args[0]))

    monkeypatch.setattr(os, "replace", read_only)
    with caplog.at_level(logging.WARNING, logger="pet_kit.io.prompt_folder"):
        assert _which(target, pair) == "B"  # used from the temporary file, in memory
    assert "interrupted" in caplog.text and _listing(target) == before
    monkeypatch.undo()
    assert _which(target, pair) == "B" and _hidden(target) == []  # now completed on disk


def test_stale_temporary_folders_go_but_foreign_files_stay(pair, tmp_path):
    target = pair[0].save(tmp_path / "p")
    stale = tmp_path / ".p.tmp-0123abcd"
    stale.mkdir()
    (stale / META_FILE).write_text("{}")
    foreign = tmp_path / ".p.tmp-89abcdef"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("not pet_kit's")
    (target / ".prompt.json.tmp-00000000").write_text("{}")
    (target / ".prompt.json.tmp-keep").write_text("not pet_kit's name")
    pair[1].save(target, overwrite=True)
    assert not stale.exists() and not (target / ".prompt.json.tmp-00000000").exists()
    assert (foreign / "mine.txt").exists() and (target / ".prompt.json.tmp-keep").exists()


# ---------------------------------------------------------------- concurrency
def _save_many(folder: str, seed: int, n: int, errors: Any) -> None:
    clf = _CLFS[seed % 2]
    try:
        for _ in range(n):
            clf.save(folder, overwrite=True)
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


_CLFS: list[Any] = []


@pytest.mark.parametrize("fallback_lock", [False, True], ids=["flock", "lock_folder"])
def test_concurrent_saves_from_processes_never_fail(pair, tmp_path, monkeypatch, fallback_lock):
    if fallback_lock:
        monkeypatch.setattr(atomic, "fcntl", None)
    _CLFS[:] = pair
    target = pair[0].save(tmp_path / "p")
    (target / "notes.txt").write_bytes(NOTES)
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    procs = [
        ctx.Process(target=_save_many, args=(str(target), seed, 50, errors)) for seed in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == [] and all(p.exitcode == 0 for p in procs)
    assert _which(target, pair) in ("A", "B") and (target / "notes.txt").read_bytes() == NOTES
    assert _hidden(target) == []


def test_a_save_waits_for_the_lock_then_says_which_variable_to_raise(pair, tmp_path, monkeypatch):
    import fcntl

    target = pair[0].save(tmp_path / "p")
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another save in progress
    monkeypatch.setenv("PET_KIT_SAVE_LOCK_TIMEOUT", "0.3")
    try:
        start = time.perf_counter()
        with pytest.raises(SavedPromptError, match="PET_KIT_SAVE_LOCK_TIMEOUT"):
            pair[1].save(target, overwrite=True)
        assert time.perf_counter() - start < 5
    finally:
        os.close(fd)
    assert _which(target, pair) == "A"


# ---------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_permissions_the_umask_gives(pair, tmp_path, umask):
    old = os.umask(umask)
    try:
        target = pair[0].save(tmp_path / "p")
        pair[1].save(target, overwrite=True)  # replacing keeps them
    finally:
        os.umask(old)
    for name in (META_FILE, TENSOR_FILE):
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask


# ---------------------------------------------------------------- limits
def _sparse(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)  # a sparse file: no disk space used


@pytest.mark.parametrize("legacy", [False, True], ids=["size_recorded", "no_size_recorded"])
def test_a_huge_sparse_tensor_file_fails_fast(pair, tmp_path, legacy):
    target = pair[0].save(tmp_path / "p")
    if legacy:  # a folder saved by pet_kit 0.1.0: no recorded size
        meta = json.loads((target / META_FILE).read_text())
        del meta["files"]["sizes"]
        (target / META_FILE).write_text(json.dumps(meta))
    _sparse(target / TENSOR_FILE, 20 * 2**30)
    start = time.perf_counter()
    with pytest.raises(SavedPromptError) as info:
        PromptClassifier.load(target)
    assert time.perf_counter() - start < 1.0
    expected = "PET_KIT_MAX_TENSOR_BYTES" if legacy else "records"
    assert expected in str(info.value) and str(target / TENSOR_FILE) in str(info.value)


def test_a_huge_prompt_json_fails_fast_on_load_and_save(pair, tmp_path):
    target = pair[0].save(tmp_path / "p")
    _sparse(target / META_FILE, 20 * 2**30)
    for action in (
        lambda: PromptClassifier.load(target),
        lambda: pair[1].save(target, overwrite=True),
    ):
        start = time.perf_counter()
        with pytest.raises(SavedPromptError, match="PET_KIT_MAX_PROMPT_JSON_BYTES"):
            action()
        assert time.perf_counter() - start < 1.0


def test_the_json_limit_is_set_by_its_environment_variable(pair, tmp_path, monkeypatch):
    target = pair[0].save(tmp_path / "p")
    monkeypatch.setenv("PET_KIT_MAX_PROMPT_JSON_BYTES", "100")
    with pytest.raises(SavedPromptError, match=r"over the 100-byte limit set by PET_KIT_MAX"):
        PromptClassifier.load(target)
    with pytest.raises(SavedPromptError, match=r"prompt\.json would be \d+ bytes, over the 100"):
        pair[0].save(tmp_path / "q")
    monkeypatch.setenv("PET_KIT_MAX_PROMPT_JSON_BYTES", "lots")
    with pytest.raises(SavedPromptError, match="PET_KIT_MAX_PROMPT_JSON_BYTES='lots'"):
        PromptClassifier.load(target)


def test_folders_without_a_recorded_size_still_load(pair, tmp_path):
    target = pair[0].save(tmp_path / "p")
    meta = json.loads((target / META_FILE).read_text())
    assert meta["files"]["sizes"][TENSOR_FILE]["bytes"] == (target / TENSOR_FILE).stat().st_size
    meta["files"] = {TENSOR_FILE: meta["files"][TENSOR_FILE]}  # as pet_kit 0.1.0 wrote it
    (target / META_FILE).write_text(json.dumps(meta))
    assert _which(target, pair) == "A"


def test_deeply_nested_prompt_json_is_a_clear_error(pair, tmp_path):
    target = pair[0].save(tmp_path / "p")
    (target / META_FILE).write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(SavedPromptError, match=r"prompt\.json: not valid JSON: nested too deeply"):
        PromptClassifier.load(target)


# ---------------------------------------------------------------- non-finite
def test_a_non_finite_slots_init_is_refused_on_load(pair, tmp_path):
    from safetensors.torch import load_file, save_file

    target = pair[0].save(tmp_path / "p")
    tensors = load_file(target / TENSOR_FILE)
    tensors["slots_init"][0, 0] = float("nan")
    save_file(tensors, target / TENSOR_FILE)
    meta = json.loads((target / META_FILE).read_text())
    meta["files"][TENSOR_FILE] = persist._sha256(target / TENSOR_FILE)
    (target / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(SavedPromptError, match="'slots_init' holds NaN or infinite values"):
        PromptClassifier.load(target)


def test_saving_a_diverged_prompt_is_refused(pair, tmp_path, tiny_dir):
    target = pair[0].save(tmp_path / "p")
    before = _listing(target)
    bad = tiny_clf(tiny_dir, epochs=1).fit(X_TOY, Y_TOY)
    with torch.no_grad():
        next(bad.prompt_.parameters())[0, 0] = float("inf")
    with pytest.raises(SavedPromptError, match=r"\['slots'\] hold NaN or infinite values"):
        bad.save(target, overwrite=True)
    with pytest.raises(SavedPromptError, match="NaN or infinite"):
        bad.save(tmp_path / "new")
    assert _listing(target) == before and not (tmp_path / "new").exists()


# ---------------------------------------------------------------- bad targets
def _sys_folder() -> Path:
    folder = Path("/sys/kernel")
    if not folder.is_dir():
        pytest.skip("no /sys on this platform")
    return folder / "pet_kit_never_here" / "p"


@pytest.mark.parametrize(
    "kind, match",
    [
        ("parent_is_a_file", "is a file, not a folder"),
        ("nul_byte", "contains a NUL byte"),
        ("read_only_fs", "cannot create folder"),
        ("not_writable", "is not writable"),
        ("target_is_a_file", "exists and is a file"),
    ],
)
def test_unusable_save_paths_are_clear_errors(pair, tmp_path, monkeypatch, kind, match):
    (tmp_path / "file.txt").write_text("x")
    path: Any = {
        "parent_is_a_file": tmp_path / "file.txt" / "p",
        "nul_byte": str(tmp_path / "p\0q"),
        "target_is_a_file": tmp_path / "file.txt",
        "not_writable": tmp_path / "p",
    }.get(kind) or _sys_folder()
    if kind == "not_writable":
        monkeypatch.setattr(os, "access", lambda p, mode, **k: str(p) != str(tmp_path))
    with pytest.raises(SavedPromptError, match=match) as info:
        pair[0].save(path)
    monkeypatch.undo()
    assert ("Choose" in str(info.value)) or ("remove it" in str(info.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    assert (tmp_path / "file.txt").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_a_read_only_folder_is_refused_up_front(pair, tmp_path):  # pragma: no cover - CI
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(SavedPromptError, match="is not writable"):
            pair[0].save(folder / "p")
    finally:
        folder.chmod(0o755)


def test_check_save_target_writes_nothing(tmp_path):
    assert check_save_target(tmp_path / "a" / "b" / "p") == tmp_path / "a" / "b" / "p"
    assert list(tmp_path.iterdir()) == []


def test_an_unusable_checkpoint_dir_is_refused_before_training(tiny_dir, tmp_path, monkeypatch):
    import pet_kit.model.cloze_model as cloze_module
    import pet_kit.train.trainer as trainer

    (tmp_path / "file.txt").write_text("x")
    trained, loaded = [], []
    monkeypatch.setattr(trainer, "train_model", lambda *a, **k: trained.append(1))
    monkeypatch.setattr(cloze_module, "load_backbone", lambda *a, **k: loaded.append(1))
    clf = tiny_clf(tiny_dir, epochs=1, checkpoint=tmp_path / "file.txt" / "ckpt")
    refused = r"checkpoint folder cannot hold checkpoints, nothing was trained: .* is a file, not a"
    with pytest.raises(SavedPromptError, match=refused):
        clf.fit(X_TOY, Y_TOY)
    assert trained == loaded == [] and not hasattr(clf, "classes_")


# ---------------------------------------------------------------- ensembles
@pytest.fixture(scope="module")
def ensembles(tiny_dir):
    base = tiny_clf(tiny_dir, epochs=1)
    pvps = [SENTIMENT_PVP, {"pattern": "[SOFT] Just [MASK]! {text}", **_words()}]
    out = [
        PromptEnsemble(pvps=pvps, estimator=base, random_state=seed).fit(X_TOY, Y_TOY)
        for seed in (0, 1)
    ]
    assert not np.array_equal(out[0].predict_proba(X_TOY), out[1].predict_proba(X_TOY))
    return out


def _words() -> dict[str, Any]:
    return {"verbalizer": SENTIMENT_PVP["verbalizer"]}


def _ensemble_is(folder: Path, ens: Any) -> bool:
    loaded = PromptEnsemble.load(folder)
    return np.array_equal(loaded.predict_proba(X_TOY), ens.predict_proba(X_TOY))


def test_ensemble_save_keeps_user_files_and_refuses_foreign_folders(ensembles, tmp_path):
    first, second = ensembles
    target = first.save(tmp_path / "ens")
    _with_notes(target)
    second.save(target, overwrite=True)
    assert (target / "notes.txt").read_bytes() == NOTES and _ensemble_is(target, second)
    members = sorted(p.name for p in target.iterdir() if p.name.startswith("member_"))
    assert members == ["member_2", "member_3"]  # the old members went after the commit
    assert _hidden(target) == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "ensemble.json").write_text('{"format": "not.ours"}')
    with pytest.raises(SavedPromptError, match=r"ensemble\.json is not a pet_kit file"):
        first.save(tmp_path / "other")
    assert (tmp_path / "other" / "ensemble.json").read_text() == '{"format": "not.ours"}'


def test_an_ensemble_save_killed_at_any_step_leaves_the_old_or_the_new(ensembles, tmp_path):
    first, second = ensembles
    target = tmp_path / "ens"
    seen = []

    def reset() -> None:
        for path in tmp_path.iterdir():
            shutil.rmtree(path)
        first.save(target)  # a fresh folder: no overwrite needed
        (target / "notes.txt").write_bytes(NOTES)

    def check() -> None:
        seen.append(1 if _ensemble_is(target, first) else 2 if _ensemble_is(target, second) else 0)
        assert (target / "notes.txt").read_bytes() == NOTES
        first.save(target, overwrite=True)  # the next save
        assert _hidden(target) == [] and _ensemble_is(target, first)
        assert len([p for p in target.iterdir() if p.name.startswith("member_")]) == 2

    kills = _every_kill_point(reset, lambda: second.save(target, overwrite=True), check)
    assert 0 not in seen and {1, 2} <= set(seen) and len(kills) >= 16


def test_an_ensemble_member_edited_after_saving_is_detected(ensembles, tmp_path):
    target = ensembles[0].save(tmp_path / "ens")
    member = target / "member_0" / META_FILE
    member.write_text(member.read_text().replace('"history"', '"history" ', 1))
    with pytest.raises(SavedPromptError, match=r"member_0/prompt\.json: checksum mismatch"):
        PromptEnsemble.load(target)


def test_a_deep_ensemble_json_is_a_clear_error(ensembles, tmp_path):
    target = ensembles[0].save(tmp_path / "ens")
    (target / "ensemble.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(SavedPromptError, match="nested too deeply"):
        PromptEnsemble.load(target)


# ---------------------------------------------------------------- kill loop
def _kill_loop(tmp_path: Path, kills: int) -> dict[str, Any]:
    out = tmp_path / "kill_save.json"
    proc = subprocess.run(
        [sys.executable, "kill_save.py", "--kills", str(kills), "--out", str(out)],
        cwd=REPO / "benchmarks",
        capture_output=True,
        text=True,
        timeout=60 + 3 * kills,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return json.loads(out.read_text())


def _check_kill_loop(result: dict[str, Any], kills: int) -> None:
    assert result["kills"] == kills
    assert result["old_prompt_intact"] + result["new_prompt"] == kills
    assert result["missing_or_corrupt"] == 0 and result["user_files_lost"] == 0
    assert result["leftovers_after_next_save"] == 0


def test_random_kills_during_saves_at_length(tmp_path):
    # 250 SIGKILLs at random moments take about 25 s on 2 cores: cheap enough for every run
    _check_kill_loop(_kill_loop(tmp_path, 250), 250)
