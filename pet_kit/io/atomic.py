"""Replacing files and folders in one step, durably: what a kill or a full disk
cannot leave half-written.

* A new file is created exclusively and fsynced (:func:`write_new_file`); a file is
  replaced by ``os.replace`` of a temporary file written beside it
  (:func:`write_file_atomically` in a folder pet_kit owns, :func:`replacing` for a file
  that stands alone), never written through a symbolic link.
* Several files of one folder are replaced in order, the last one the commit point
  (:func:`commit_replacements`); a new folder is built under a hidden temporary name and
  renamed into place (:func:`write_fresh_folder`).
* Renames are made durable by fsyncing the folder (:func:`fsync_dir`).
* Writers of one folder serialise on :func:`folder_lock` (``flock``, or a lock folder
  where ``flock`` is unavailable), waiting at most :data:`LOCK_TIMEOUT_S` seconds
  (``PET_KIT_SAVE_LOCK_TIMEOUT``).

Which files are pet_kit's, and what a save may replace, is
:mod:`pet_kit.io.result_folder`'s business; this module knows no file of pet_kit.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import SavedPromptError
from ..limits import env_limit

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock-folder fallback is used
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "HEX8",
    "LOCK_TIMEOUT_ENV",
    "LOCK_TIMEOUT_S",
    "commit_replacements",
    "copy_mode",
    "folder_lock",
    "fsync_dir",
    "is_temp_of",
    "lock_dir",
    "replacing",
    "saved_limit",
    "temp_name",
    "write_file_atomically",
    "write_fresh_folder",
    "write_new_file",
]

log = logging.getLogger(__name__)

#: Seconds a writer waits for another writer of the same folder to finish.
LOCK_TIMEOUT_S = 60.0
LOCK_TIMEOUT_ENV = "PET_KIT_SAVE_LOCK_TIMEOUT"
#: The random part of a temporary name: 8 hex digits.
HEX8 = "[0-9a-f]{8}"

_LOCK_DIR_NAME = ".pet_kit.lock"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def saved_limit(env: str, default: float, kind: type = int) -> Any:
    """The limit from environment variable ``env`` (``default`` when unset); a value that
    is no positive number is a :class:`~pet_kit.errors.SavedPromptError`."""
    return env_limit(
        env,
        default,
        lambda raw: SavedPromptError(
            f"environment variable {env}={raw!r} is not a positive number; unset it or set"
            f" it to e.g. {default!r}"
        ),
        kind,
    )


def _lock_timeout() -> float:
    return float(saved_limit(LOCK_TIMEOUT_ENV, LOCK_TIMEOUT_S, float))


# ------------------------------------------------------------------------- files
def fsync_dir(path: Path) -> None:
    """fsync a folder (so a rename inside it is durable); a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(name: str) -> str:
    """A fresh hidden temporary name for ``name``: ``.NAME.tmp-<hex8>``."""
    return f".{name}.tmp-{os.urandom(4).hex()}"


def is_temp_of(entry: str, name: str) -> bool:
    return re.fullmatch(rf"\.{re.escape(name)}\.tmp-{HEX8}", entry) is not None


def write_new_file(path: Path, data: bytes) -> None:
    """Create the new file ``path`` with ``data``: exclusively (a file or symbolic link
    already there is an error, never written through), with the permissions the umask
    gives (``0o666 & ~umask``, as ``open(..., "w")``), fsynced; nothing is left behind
    when the write fails."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY
    fd = os.open(path, flags, 0o666)
    try:
        with open(fd, "wb", closefd=True) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def copy_mode(existing: Path, new: Path) -> None:
    """Give ``new`` the permission bits of the regular file ``existing`` it replaces
    (as ``open(..., "w")`` keeps them); a no-op when ``existing`` is absent or a link."""
    try:
        st = os.lstat(existing)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        os.chmod(new, stat.S_IMODE(st.st_mode))


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace (or create) the file ``path`` with ``data`` in one ``os.replace``.

    The data goes to a hidden temporary file beside it first (fsynced); a symbolic link
    at ``path`` is replaced, never written through; the replaced file's permissions
    are kept. Call it under :func:`folder_lock`: the temporary file's name is new each
    time (:func:`temp_name`), so the folder's owner removes what a kill leaves (as
    :func:`pet_kit.io.result_folder.save_folder` does).
    """
    tmp = path.with_name(temp_name(path.name))
    write_new_file(tmp, data)
    try:
        copy_mode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """Replace (or create) the file ``path`` with what the block writes, in one
    ``os.replace``: for a file that stands alone (no folder lock, no owner that cleans).

    The block writes the path it is given, ``.NAME.tmp<suffix>`` beside ``path``
    (created empty and exclusively: a left-over of that name, or a symbolic link
    planted there, is removed first, never written through); it is then fsynced and
    renamed onto ``path``, so a symbolic link at ``path`` is replaced, never written
    through. When the block fails the temporary file goes and ``path`` is unchanged.

    Parameters
    ----------
    path : Path
        The file to replace; its folder must exist.
    suffix : str
        Ends the temporary name (``".png"``: for a writer that reads the format there).

    Yields
    ------
    Path
        The temporary file to write.
    """
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    tmp.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | _O_CLOEXEC
    os.close(os.open(tmp, flags, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def commit_replacements(folder: Path, pairs: list[tuple[Path, Path]]) -> None:
    """``os.replace`` each temporary file onto its final name, in order (the last is
    the commit point). Before the first replacement a failure removes the temporary
    files; after it they are left for the roll forward."""
    done = 0
    try:
        for tmp, final in pairs:
            copy_mode(final, tmp)
            os.replace(tmp, final)
            done += 1
            fsync_dir(folder)
    except BaseException:
        if done == 0:
            for tmp, _ in pairs:
                tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------ folders
def write_fresh_folder(real: Path, write: Callable[[Path, bool], None]) -> bool:
    """Build the new folder as a hidden sibling and rename it into place; ``False`` (and
    nothing left behind) when ``real`` appeared meanwhile."""
    tmp = real.with_name(temp_name(real.name))
    os.mkdir(tmp)
    try:
        write(tmp, True)
        fsync_dir(tmp)
        try:
            os.rename(tmp, real)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
            shutil.rmtree(tmp)
            return False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(real.parent)
    return True


# ------------------------------------------------------------------------- locks
@contextmanager
def folder_lock(folder: Path, required: bool = True) -> Iterator[bool]:
    """Hold pet_kit's exclusive save lock on directory ``folder``; yields whether held.

    ``flock`` on the folder itself (released by the kernel when the process dies); where
    that is unavailable (no ``fcntl``, some network file systems) a ``.pet_kit.lock``
    folder inside it, taken over once older than the lock timeout.

    Raises
    ------
    SavedPromptError
        Another save held it for :data:`LOCK_TIMEOUT_S` seconds (with ``required``;
        otherwise the block runs unlocked).
    """
    timeout = _lock_timeout()
    fd = _flock(folder, timeout, required)
    if fd is not None:
        try:
            yield fd >= 0
        finally:
            if fd >= 0:
                os.close(fd)  # releases the lock
        return
    with _mkdir_lock(folder, timeout, required) as held:
        yield held


def _lock_busy(folder: Path, timeout: float, required: bool, hint: str = "") -> None:
    if required:
        raise SavedPromptError(
            f"{folder}: another process has held pet_kit's save lock here for {timeout:g} s;"
            f" wait for its save to finish{hint}, or raise the wait with"
            f" {LOCK_TIMEOUT_ENV}=<seconds>"
        )
    log.warning("%s: save lock busy for %g s; reading without it", folder, timeout)


def _flock(folder: Path, timeout: float, required: bool) -> int | None:
    """An fd holding ``flock`` on ``folder``; -1: busy and not required; ``None``:
    ``flock`` unavailable here."""
    if fcntl is None:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    except OSError:
        return None
    deadline, delay = time.monotonic() + timeout, 0.001
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                pass
            except OSError:  # e.g. NFS: no flock on folders
                os.close(fd)
                return None
            if time.monotonic() >= deadline:
                os.close(fd)
                _lock_busy(folder, timeout, required)
                return -1
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise


@contextmanager
def _mkdir_lock(folder: Path, timeout: float, required: bool) -> Iterator[bool]:
    """The portable fallback lock: creating ``folder/.pet_kit.lock`` is atomic."""
    lock = folder / _LOCK_DIR_NAME
    deadline, delay = time.monotonic() + timeout, 0.001
    while True:
        try:
            os.mkdir(lock)
            break
        except FileExistsError:
            if _older_than(lock, timeout):
                _rmdir_quietly(lock)  # left by a process that died holding it
                continue
        except OSError:  # read-only folder: nothing can change under a reader
            yield False
            return
        if time.monotonic() >= deadline:
            _lock_busy(folder, timeout, required, f" (or remove {lock} if none is running)")
            yield False
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:
        yield True
    finally:
        _rmdir_quietly(lock)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False


def _rmdir_quietly(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def lock_dir(folder: Path) -> Path:
    """The folder whose lock guards saves to ``folder``: its real parent."""
    return Path(os.path.realpath(folder)).parent
