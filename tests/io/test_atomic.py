"""Replacing a file that stands alone in one step (pet_kit.io.atomic.replacing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pet_kit.io.atomic import replacing


def test_the_file_is_replaced_and_no_temporary_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with replacing(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.tmp")
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_symbolic_link_is_replaced_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("theirs")
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    planted = tmp_path / ".out.txt.tmp"
    planted.symlink_to(tmp_path / "elsewhere.txt")  # a link at the temporary name
    with replacing(link) as tmp:
        tmp.write_text("ours")
    assert not link.is_symlink() and link.read_text() == "ours"
    assert target.read_text() == "theirs" and not (tmp_path / "elsewhere.txt").exists()


def test_a_failing_block_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), replacing(path, suffix=".png") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
