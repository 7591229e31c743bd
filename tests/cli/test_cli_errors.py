"""Expected failures of the machine (a full disk, a file size limit, no GPU, names the
system refuses) end a command with one line on stderr and exit status 1, never a
traceback; a bug still shows its traceback."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys

import pytest
import torch
from conftest import NEG, POS, REPO, tiny_clf

from pet_kit.cli import main

X = POS + NEG
Y = ["positive"] * len(POS) + ["negative"] * len(NEG)


@pytest.fixture(scope="module")
def prompt(tiny_dir, tmp_path_factory):
    return tiny_clf(tiny_dir, epochs=1).fit(X, Y).save(tmp_path_factory.mktemp("p") / "prompt")


@pytest.fixture()
def texts(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(X * 4) + "\n", encoding="utf-8")
    return path


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_predict_on_a_full_disk_is_one_line_and_resumable(
    prompt, texts, tmp_path, capsys, monkeypatch
):
    import pet_kit.batch.job as streaming

    out = tmp_path / "out.csv"
    fsync, chunks = os.fsync, []

    def full(fd: int) -> None:  # the disk fills up while the second chunk is written
        if os.readlink(f"/proc/self/fd/{fd}") == str(out):
            chunks.append(fd)
            if len(chunks) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(streaming.os, "fsync", full)
    argv = ["predict", str(prompt), str(texts), "--output", str(out), "--chunk-size", "8"]
    assert main([*argv, "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"cannot write the predictions to {out}: No space left on device" in line
    assert "free some disk space" in line and "run the same command again to resume" in line
    monkeypatch.undo()
    assert main([*argv, "--no-progress"]) == 0  # resumes after the finished chunk
    assert "8 resumed" in capsys.readouterr().out


def test_predict_past_the_file_size_limit_is_one_line(prompt, texts, tmp_path):
    """``ulimit -f``: the write fails with EFBIG (Python ignores SIGXFSZ)."""
    out = tmp_path / "out.csv"

    options = ["--output", str(out), "--chunk-size", "4", "--no-progress", "--device", "cpu"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))

    done = subprocess.run(
        [sys.executable, "-m", "pet_kit", "predict", str(prompt), str(texts), *options],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "File too large" in _one_line(done.stderr) and "ulimit -f" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_predict_on_cuda_without_a_gpu_says_so(prompt, texts, capsys):
    assert main(["predict", str(prompt), str(texts), "--device", "cuda"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "device='cuda' but CUDA is not available" in line and "recorded backbone" not in line


def test_serving_two_folders_of_one_name_names_them(prompt, tmp_path, capsys):
    other = tmp_path / "elsewhere" / prompt.name
    other.parent.mkdir()
    other.symlink_to(prompt, target_is_directory=True)
    assert main(["serve", str(prompt), str(other), "--port", "0"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"two prompt folders are named {prompt.name!r}" in line and "remove()" not in line


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            OSError(errno.EACCES, "Permission denied", "/x/out.csv"),
            "/x/out.csv: Permission denied;",
        ),
        (OSError(errno.EROFS, "Read-only file system", "/x"), "read-only: write elsewhere"),
        (OSError(errno.ENAMETOOLONG, "File name too long", "a" * 300), "shorten it"),
        (ValueError("embedded null byte"), "a path holds a NUL byte"),
        (AssertionError("Torch not compiled with CUDA enabled"), "--device cpu"),
        (RuntimeError("CUDA error: out of memory"), "the GPU cannot be used"),
        (MemoryError(), "out of memory"),
    ],
)
def test_operating_system_and_device_errors_are_one_line(raised, expected, capsys, monkeypatch):
    def fail(args: object) -> int:
        raise raised

    monkeypatch.setattr("pet_kit.cli.cmd_list_pvps", fail)
    assert main(["list-pvps"]) == 1
    assert expected in _one_line(capsys.readouterr().err)


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("pet_kit.cli.cmd_list_pvps", bug)
    with pytest.raises(RuntimeError, match="boom"):
        main(["list-pvps"])
