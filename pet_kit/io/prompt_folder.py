"""Saving and loading prompt folders without pickle, and without ever losing a file.

A prompt folder holds two files:

``prompt.safetensors``
    The tensors (soft-slot vectors), in the safetensors format (no code execution).
``prompt.json``
    Everything else: PVP, classes, hyper-parameters, library and format version,
    the backbone's name and fingerprint, and the SHA-256 and byte size of the tensor
    file (``files``; the size is recorded with the digest it belongs to, so it is
    compared, before any hashing, only while the digest is the one saved).

How a save works (:func:`save_folder`, :func:`write_prompt_dir`)

* Up front, :func:`check_save_target` refuses, without writing anything, a path with a
  NUL byte, a parent that is a file or not writable, and an existing folder that is
  neither empty nor a pet_kit folder: a ``prompt.json`` without pet_kit's format marker
  (or a ``prompt.safetensors`` without a ``prompt.json``) is never overwritten.
* Saves to one path serialise on an advisory lock (``flock`` on the parent folder,
  released by the kernel if the process dies; a lock folder where ``flock`` is
  unavailable): concurrent saves never fail, the last one wins.
* A new folder is built as a hidden sibling ``.NAME.tmp-<hex8>`` and renamed into place.
* An existing folder is updated in place: only pet_kit's own files are replaced, each by
  ``os.replace`` of a hidden temporary file (``.prompt.json.tmp-<hex8>``) that was
  written and fsynced first: the tensor file first, then ``prompt.json``, the commit
  point. The user's other files are never touched; a symbolic link named
  ``prompt.json`` is replaced, never written through. A target folder that is itself a
  symbolic link is followed (it is the folder the user chose).
* A kill between the two replacements leaves the new tensor file, the old
  ``prompt.json`` and the new one as a temporary file: :func:`read_prompt_dir` and the
  next save complete it (roll forward). So at every instant, pet_kit's loader sees the old
  or the new prompt. Stale temporary files and folders (exactly pet_kit's names, only
  pet_kit's files inside) are removed by the next save; a save never deletes a file
  pet_kit did not write.

Limits, checked before reading or hashing (environment variables override them):
:data:`MAX_PROMPT_JSON_BYTES` (``PET_KIT_MAX_PROMPT_JSON_BYTES``) for ``prompt.json`` and
``ensemble.json``; :data:`MAX_TENSOR_BYTES` (``PET_KIT_MAX_TENSOR_BYTES``) for a tensor
file whose size ``prompt.json`` does not record (folders saved by pet_kit 0.1.0);
:data:`LOCK_TIMEOUT_S` (``PET_KIT_SAVE_LOCK_TIMEOUT``) for waiting on another save.
"""

from __future__ import annotations

import errno
import hashlib
import json
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

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_tensors_from_bytes
from safetensors.torch import save as _tensors_to_bytes

from .._version import FORMAT_VERSION
from ..errors import SavedPromptError
from ..limits import env_limit

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock-folder fallback is used
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENSEMBLE_FILE",
    "LOCK_TIMEOUT_S",
    "MAX_PROMPT_JSON_BYTES",
    "MAX_TENSOR_BYTES",
    "META_FILE",
    "TENSOR_FILE",
    "check_replace",
    "check_save_target",
    "json_file_digest",
    "non_finite_tensors",
    "read_json_file",
    "read_prompt_dir",
    "remove_pet_kit_folder",
    "save_folder",
    "write_file_atomically",
    "write_new_file",
    "write_prompt_dir",
]

log = logging.getLogger(__name__)

META_FILE = "prompt.json"
TENSOR_FILE = "prompt.safetensors"
FORMAT_NAME = "pet_kit.prompt"
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "pet_kit.ensemble"
#: The ``format`` marker each pet_kit marker file carries.
FORMATS = {META_FILE: FORMAT_NAME, ENSEMBLE_FILE: ENSEMBLE_FORMAT}
#: The file names pet_kit writes in a folder (and replaces on a save).
OWNED_FILES = (META_FILE, TENSOR_FILE, ENSEMBLE_FILE)
#: The file that marks a folder as holding a pet_kit result -> (its format, what it is).
RESULT_MARKERS = {
    META_FILE: (FORMAT_NAME, "a pet_kit prompt"),
    ENSEMBLE_FILE: (ENSEMBLE_FORMAT, "a pet_kit ensemble"),
    "pet_kit_adapt.json": ("pet_kit.adapt", "an adapted model"),
}

#: Largest ``prompt.json`` / ``ensemble.json`` read (demonstration pools live there).
MAX_PROMPT_JSON_BYTES = 64 * 2**20
MAX_PROMPT_JSON_ENV = "PET_KIT_MAX_PROMPT_JSON_BYTES"
#: Largest tensor file read when ``prompt.json`` does not record its size.
MAX_TENSOR_BYTES = 8 * 2**30
MAX_TENSOR_ENV = "PET_KIT_MAX_TENSOR_BYTES"
#: Seconds a save waits for another save of the same folder to finish.
LOCK_TIMEOUT_S = 60.0
LOCK_TIMEOUT_ENV = "PET_KIT_SAVE_LOCK_TIMEOUT"

_HEX8 = "[0-9a-f]{8}"
_MEMBER_DIR = re.compile(r"member_\d+")
_MEMBER_TEMP_DIR = re.compile(rf"\.member_\d+\.tmp-{_HEX8}")
_LOCK_DIR_NAME = ".pet_kit.lock"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class _Inconsistent(SavedPromptError):
    """``prompt.json`` does not describe the tensor file (an interrupted save may be
    completed from a temporary ``prompt.json``)."""


class _NotJson(Exception):
    """Why a file is not a readable JSON document (a short reason)."""


# ------------------------------------------------------------------------- limits
def _limit(env: str, default: float, kind: type = int) -> Any:
    """The limit from environment variable ``env`` (``default`` when unset)."""
    return env_limit(
        env,
        default,
        lambda raw: SavedPromptError(
            f"environment variable {env}={raw!r} is not a positive number; unset it or set"
            f" it to e.g. {default!r}"
        ),
        kind,
    )


def _json_cap() -> int:
    return int(_limit(MAX_PROMPT_JSON_ENV, MAX_PROMPT_JSON_BYTES))


def _tensor_cap() -> int:
    return int(_limit(MAX_TENSOR_ENV, MAX_TENSOR_BYTES))


def _lock_timeout() -> float:
    return float(_limit(LOCK_TIMEOUT_ENV, LOCK_TIMEOUT_S, float))


# ---------------------------------------------------------------------- file I/O
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_file_digest(path: Path) -> str:
    """The SHA-256 of a pet_kit JSON file, read under :data:`MAX_PROMPT_JSON_BYTES`.

    Raises
    ------
    SavedPromptError
        As :func:`read_json_file`.
    """
    try:
        return hashlib.sha256(_read_capped(path, _json_cap(), MAX_PROMPT_JSON_ENV)).hexdigest()
    except (_NotJson, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        raise SavedPromptError(
            f"{path}: unreadable ({reason}); restore it from the original save, or save again"
        ) from exc


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


def _temp_name(name: str) -> str:
    """A fresh hidden temporary name for ``name``: ``.NAME.tmp-<hex8>``."""
    return f".{name}.tmp-{os.urandom(4).hex()}"


def _is_temp_of(entry: str, name: str) -> bool:
    return re.fullmatch(rf"\.{re.escape(name)}\.tmp-{_HEX8}", entry) is not None


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist: a symbolic link there is not followed) with
    ``data``, the permissions ``open(..., "w")`` gives (``0o666 & ~umask``), fsynced."""
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


def write_new_file(path: Path, data: bytes) -> None:
    """Create the new file ``path`` with ``data``: exclusively (a file or symbolic link
    already there is an error, never written through), with the permissions the umask
    gives, fsynced; nothing is left behind when the write fails."""
    _write_new_file(path, data)


def save_file(
    tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to the new file ``filename`` in the safetensors format.

    Unlike :func:`safetensors.torch.save_file`, the file is created in place (no hidden
    temporary file of its own that a kill would leave behind), exclusively (never
    through a symbolic link), with the permissions the umask gives, and fsynced.
    """
    _write_new_file(Path(filename), _tensors_to_bytes(tensors, metadata=metadata))


def _copy_mode(existing: Path, new: Path) -> None:
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
    are kept. Call it under :func:`folder_lock` (stale temporary files of ``path`` are
    removed by the next :func:`save_folder`).
    """
    tmp = path.with_name(_temp_name(path.name))
    _write_new_file(tmp, data)
    try:
        _copy_mode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _open_regular(path: Path) -> tuple[int, int]:
    """An fd open for reading on the regular file ``path``, and its size (a FIFO or a
    device never blocks or streams forever: it is refused)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _O_CLOEXEC | _O_BINARY)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _NotJson("not a regular file")
    return fd, st.st_size


def _read_capped(path: Path, cap: int, env: str) -> bytes:
    """The bytes of the regular file ``path``, refused (before reading) above ``cap``."""
    fd, size = _open_regular(path)
    with open(fd, "rb", closefd=True) as fh:
        if size > cap:
            raise _NotJson(f"{size} bytes, over the {cap}-byte limit set by {env}")
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise _NotJson(f"over the {cap}-byte limit set by {env} (the file grew)")
    return data


def _load_json(path: Path) -> Any:
    """Parse the JSON file ``path`` (size-capped); raises :class:`_NotJson`."""
    try:
        raw = _read_capped(path, _json_cap(), MAX_PROMPT_JSON_ENV)
    except OSError as exc:
        raise _NotJson(f"unreadable: {exc.strerror or exc}") from exc
    try:
        return json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _NotJson(f"not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise _NotJson("not valid JSON: nested too deeply") from exc


def read_json_file(path: Path) -> Any:
    """Read a pet_kit JSON file (``prompt.json``, ``ensemble.json``), size-capped.

    Raises
    ------
    SavedPromptError
        Unreadable, not a regular file, over :data:`MAX_PROMPT_JSON_BYTES`, not JSON, or
        nested too deeply.
    """
    try:
        return _load_json(path)
    except _NotJson as exc:
        fix = "Restore it from the original save, or save it again"
        if "limit" in str(exc):
            fix = "Raise that limit if the file is genuine; else restore it or save it again"
        raise SavedPromptError(
            f"{path}: {exc}; the file is damaged or not pet_kit's. {fix}"
        ) from exc


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


def _lock_dir(folder: Path) -> Path:
    """The folder whose lock guards saves to ``folder``: its real parent."""
    return Path(os.path.realpath(folder)).parent


# ------------------------------------------------------------------ target checks
#: The longest folder name a save accepts: 255 bytes (a file system's usual limit) less
#: what the temporary sibling ``.NAME.tmp-<hex8>`` adds.
_MAX_NAME_BYTES = 255 - len(".") - len(".tmp-01234567")


def _save_path(path: Any) -> Path:
    """``path`` as an absolute Path, refusing what no file system accepts."""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError as exc:
        raise SavedPromptError(
            f"the save path must be a str or os.PathLike folder path, got {path!r}"
        ) from exc
    if "\0" in text:
        raise SavedPromptError(
            f"cannot save to {text!r}: the path contains a NUL byte ('\\x00'), which no file"
            " name may hold; remove it from the path"
        )
    target = Path(text).expanduser().absolute()
    _check_name_lengths(target)
    return target


def _check_name_lengths(target: Path) -> None:
    """Refuse a path with a name longer than a file system allows (255 bytes; for the
    folder saved into, 14 bytes less: it is built under a longer temporary name)."""
    *parents, name = target.parts
    for part, limit in [*((p, 255) for p in parents), (name, _MAX_NAME_BYTES)]:
        size = len(os.fsencode(part))
        if size > limit:
            raise SavedPromptError(
                f"cannot save to {target}: the name {part[:40]!r}... is {size} bytes long,"
                f" over the {limit} bytes it may have (a file system allows 255 per name; the"
                " folder saved into is built under a temporary name 14 bytes longer);"
                " shorten it"
            )


def _check_parents(target: Path, real: Path) -> None:
    """The nearest existing folder above ``real`` must be a writable folder."""
    parent = real.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SavedPromptError(
            f"cannot save to {target}: {parent} is a file, not a folder. Choose a path inside"
            f" a folder, or move {parent} away"
        )
    _check_writable(target, parent)


def _check_writable(target: Path, folder: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SavedPromptError(
            f"cannot save to {target}: folder {folder} is not writable (no permission or a"
            " read-only file system). Choose a writable folder or change its permissions"
        )


def _foreign_reason(path: Path, marker: str) -> str | None:
    """Why the file ``path`` (named ``marker``) is not a pet_kit file; ``None`` if it is."""
    try:
        obj = _load_json(path)
    except _NotJson as exc:
        return str(exc)
    expected = FORMATS.get(marker, "pet_kit.*")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    ok = fmt == expected if marker in FORMATS else str(fmt).startswith("pet_kit.")
    return None if ok else f'no "format": "{expected}" marker'


def _interrupted_marker(folder: Path, marker: str) -> bool:
    """Whether ``folder`` lacks ``marker`` but holds a complete temporary one, left by a
    save into an empty folder that was interrupted before its commit."""
    return any(
        _is_temp_of(e.name, marker) and _foreign_reason(Path(e.path), marker) is None
        for e in os.scandir(folder)
    )


def _ignorable(entry: os.DirEntry[str], marker: str) -> bool:
    """Whether ``entry`` of a marker-less folder is pet_kit's own leftover."""
    if entry.is_symlink():
        return False
    if entry.is_file() and any(_is_temp_of(entry.name, n) for n in OWNED_FILES):
        return True
    member = _MEMBER_DIR.fullmatch(entry.name) or _MEMBER_TEMP_DIR.fullmatch(entry.name)
    return (
        marker == ENSEMBLE_FILE
        and bool(member)
        and entry.is_dir()
        and _only_pet_kit_files(Path(entry.path))
    )


def _check_existing(target: Path, real: Path, marker: str, what: str) -> None:
    """An existing target must be an empty folder or a pet_kit folder of this kind."""
    if not real.is_dir():
        raise SavedPromptError(
            f"{target} exists and is a file, not a {what}; refusing to overwrite it. Choose"
            " another path, or move the file away"
        )
    _check_writable(target, real)
    if os.path.lexists(real / marker):
        _check_marker(target, real, marker)
        return
    entries = [e for e in os.scandir(real) if not _ignorable(e, marker)]
    if not entries or _interrupted_marker(real, marker):
        return
    names = sorted(e.name for e in entries)
    if marker == META_FILE and TENSOR_FILE in names:
        raise SavedPromptError(
            f"{target / TENSOR_FILE} exists but {target / META_FILE} does not, so it is not a"
            " pet_kit prompt file; refusing to overwrite it. Choose another path, or move it"
            " away"
        )
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise SavedPromptError(
        f"{target} exists and is not a {what} (no {marker}; it holds {shown}); refusing to"
        " overwrite it. Choose another path, or an empty folder"
    )


def _check_marker(target: Path, real: Path, marker: str) -> None:
    """``marker`` (and pet_kit's other file names) in ``real`` must be pet_kit's."""
    reason = _foreign_reason(real / marker, marker)
    if reason is not None:
        raise SavedPromptError(
            f"{target / marker} is not a pet_kit file ({reason}); refusing to overwrite it or"
            f" write into {target}. Choose another path, or move {marker} away"
        )
    for name in OWNED_FILES:
        path = real / name
        if path.is_dir() and not path.is_symlink():
            raise SavedPromptError(
                f"{target / name} is a folder; pet_kit replaces only files of that name."
                " Move it away, or choose another path"
            )


def check_save_target(
    path: str | os.PathLike[str], marker: str = META_FILE, what: str = "pet_kit prompt folder"
) -> Path:
    """Check, without writing anything, that a save to folder ``path`` can go ahead.

    Refused: a path with a NUL byte; a parent that is a file or not writable; an
    existing file; an existing folder whose ``marker`` (``prompt.json``) is not a
    pet_kit file, or which has no ``marker`` but holds other files. Allowed: a new path,
    an empty folder, a pet_kit folder of this kind (its other files are kept on save).
    A target that is a symbolic link to a folder is followed.

    Parameters
    ----------
    path : str or PathLike
        The folder a save will write.
    marker : str
        The file that makes a folder pet_kit's (``ensemble.json`` for ensembles).
    what : str
        The folder's kind, for messages.

    Returns
    -------
    Path
        ``path``, absolute (not resolved).

    Raises
    ------
    SavedPromptError
        Naming the path at fault and the fix.
    """
    target = _save_path(path)
    real = Path(os.path.realpath(target))
    try:
        if os.path.lexists(real):
            _check_existing(target, real, marker, what)  # in place: the parent may be read-only
        else:
            _check_parents(target, real)
    except OSError as exc:
        raise SavedPromptError(
            f"cannot save to {target}: {exc.strerror or exc} ({exc.filename or real}). Check"
            " the folder's permissions, or choose another path"
        ) from exc
    return target


def _held_result(real: Path) -> tuple[str, dict[str, Any]] | None:
    """The pet_kit result the folder ``real`` holds: what it is and its marker file's
    JSON; ``None`` when no marker file there carries pet_kit's format."""
    for name, (fmt, what) in RESULT_MARKERS.items():
        path = real / name
        if not path.is_file():
            continue
        try:
            meta = _load_json(path)
        except _NotJson:
            continue
        if isinstance(meta, dict) and meta.get("format") == fmt:
            return what, meta
    return None


def _describe(what: str, meta: dict[str, Any]) -> str:
    """``what`` with the classes of a prompt, for messages."""
    classes = meta.get("classes")
    if not isinstance(classes, list):
        return what
    shown = ", ".join(repr(c) for c in classes[:6]) + (", ..." if len(classes) > 6 else "")
    return f"{what} (classes {shown})"


def check_replace(
    path: str | os.PathLike[str],
    *,
    overwrite: bool,
    fix: str,
    own: Callable[[dict[str, Any]], bool] | None = None,
    role: str = "folder",
) -> None:
    """The overwrite rule of every folder pet_kit writes a result into.

    ``pet-kit train``'s output, a ``checkpoint`` folder of ``fit`` and the output of
    ``adapt`` all follow it: a folder that already holds a pet_kit result (a prompt, an
    ensemble, an adapted model: :data:`RESULT_MARKERS`) is replaced only with
    ``overwrite``, or when ``own(meta)`` says the result is the caller's own (a checkpoint
    of the same task, left by an earlier run). A new or empty folder passes. Files pet_kit
    did not write are another matter: :func:`check_save_target` refuses them whatever
    ``overwrite`` says.

    Parameters
    ----------
    path : str or PathLike
        The folder about to be written.
    overwrite : bool
        Whether the caller asked to replace an existing result.
    fix : str
        How to go on, for the message (e.g. ``"Pass --overwrite to replace it"``).
    own : callable, optional
        ``own(meta)``, given the marker file's JSON: whether the result may be replaced
        without ``overwrite``.
    role : str
        What the folder is to the caller, for the message (``"output folder"``).

    Raises
    ------
    SavedPromptError
        Naming the folder, what it holds, and ``fix``.
    """
    if overwrite:
        return
    target = _save_path(path)
    real = Path(os.path.realpath(target))
    held = _held_result(real) if real.is_dir() else None
    if held is None or (own is not None and own(held[1])):
        return
    raise SavedPromptError(
        f"the {role} {target} already holds {_describe(*held)}; refusing to replace it. {fix}"
    )


# ------------------------------------------------------------- leftover handling
def _only_pet_kit_files(folder: Path, depth: int = 0) -> bool:
    """Whether ``folder`` holds only files pet_kit writes (a pet_kit leftover)."""
    if depth > 2:
        return False
    for entry in os.scandir(folder):
        if entry.is_symlink():
            return False
        if entry.is_file():
            names_ok = entry.name in OWNED_FILES or any(
                _is_temp_of(entry.name, n) for n in OWNED_FILES
            )
            if not names_ok:
                return False
        elif not (
            (_MEMBER_DIR.fullmatch(entry.name) or _MEMBER_TEMP_DIR.fullmatch(entry.name))
            and _only_pet_kit_files(Path(entry.path), depth + 1)
        ):
            return False
    return True


def remove_pet_kit_folder(folder: Path) -> bool:
    """Delete ``folder`` if it holds only files pet_kit writes; else keep it (warning).

    Returns
    -------
    bool
        Whether it was deleted.
    """
    if folder.is_symlink() or not folder.is_dir() or not _only_pet_kit_files(folder):
        log.warning("%s: left in place: it holds files pet_kit did not write", folder)
        return False
    shutil.rmtree(folder)
    return True


def _remove_stale_temps(folder: Path) -> None:
    """Delete pet_kit's temporary files in ``folder`` (call under the lock)."""
    for entry in os.scandir(folder):
        if not entry.is_file(follow_symlinks=False):
            continue
        if any(_is_temp_of(entry.name, n) for n in OWNED_FILES):
            os.unlink(entry.path)
            log.info("removed %s, left by an interrupted save", entry.path)


def _remove_stale_siblings(real: Path) -> None:
    """Delete the temporary folders earlier saves to ``real`` left beside it (call under
    the lock)."""
    for entry in os.scandir(real.parent):
        if not _is_temp_of(entry.name, real.name) or not entry.is_dir(follow_symlinks=False):
            continue
        if remove_pet_kit_folder(Path(entry.path)):
            log.info("removed %s, left by an interrupted save", entry.path)


# ------------------------------------------------------------------------- saving
def _make_parents(target: Path, real: Path) -> None:
    if real.parent.is_dir():
        return
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SavedPromptError(
            f"cannot save to {target}: cannot create folder {exc.filename or real.parent}"
            f" ({exc.strerror or exc}). Choose a writable folder, or create it yourself"
        ) from exc


def _write_fresh(real: Path, write: Callable[[Path, bool], None]) -> bool:
    """Build the new folder as a hidden sibling and rename it into place; ``False`` (and
    nothing left behind) when ``real`` appeared meanwhile."""
    tmp = real.with_name(_temp_name(real.name))
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


def _save_locked(
    target: Path,
    real: Path,
    marker: str,
    what: str,
    write: Callable[[Path, bool], None],
    settle: Callable[[Path], None] | None,
) -> None:
    """The save proper, under the lock on ``real.parent``."""
    check_save_target(target, marker, what)  # again: the folder may have changed
    _remove_stale_siblings(real)
    if not os.path.lexists(real):
        if _write_fresh(real, write):
            return
        check_save_target(target, marker, what)  # it appeared meanwhile: in place
    if settle is not None:
        settle(real)
    _remove_stale_temps(real)
    write(real, False)
    fsync_dir(real)


def save_folder(
    path: str | os.PathLike[str],
    marker: str,
    what: str,
    write: Callable[[Path, bool], None],
    settle: Callable[[Path], None] | None = None,
) -> Path:
    """Save a pet_kit folder without losing a file (the module docstring says how).

    Parameters
    ----------
    path : str or PathLike
        The folder (checked with :func:`check_save_target`).
    marker, what : str
        As in :func:`check_save_target`.
    write : callable
        ``write(folder, fresh)`` writes pet_kit's files into ``folder``: a new hidden
        folder renamed into place afterwards (``fresh``), or the existing folder, where
        it must replace each file atomically and its marker file last (the commit point).
    settle : callable, optional
        ``settle(folder)``, before ``write`` on an existing folder: completes an
        interrupted save (before pet_kit's stale temporary files are removed).

    Returns
    -------
    Path
        ``path``, absolute.

    Raises
    ------
    SavedPromptError
        A refused target, a lock held too long, or an OS error while writing (the
        folder then still holds the old files, or the new ones once completed).
    """
    target = check_save_target(path, marker, what)
    real = Path(os.path.realpath(target))
    _make_parents(target, real)
    try:
        with folder_lock(real.parent):
            _save_locked(target, real, marker, what, write, settle)
    except OSError as exc:
        where = exc.filename or real
        raise SavedPromptError(
            f"could not save to {target}: {exc.strerror or exc} ({where}). The folder still"
            " holds the previous files (or the new ones, completed by the next load or"
            " save). Free disk space or fix the folder's permissions, then save again"
        ) from exc
    return target


def non_finite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding NaN or infinite values."""
    return [
        name
        for name, value in tensors.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def _meta_bytes(meta: dict[str, Any], digest: str, size: int) -> bytes:
    """``prompt.json``'s bytes: ``meta`` plus format marker, version and file record."""
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        **meta,
        "files": {
            TENSOR_FILE: digest,
            "sizes": {TENSOR_FILE: {"bytes": size, "sha256": digest}},
        },
    }
    return (json.dumps(full, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _check_meta_size(target: Path, meta: dict[str, Any]) -> None:
    """Refuse metadata that would make a ``prompt.json`` over the read limit."""
    size, cap = len(_meta_bytes(meta, "0" * 64, 2**63)), _json_cap()
    if size > cap:
        raise SavedPromptError(
            f"cannot save to {target}: prompt.json would be {size} bytes, over the {cap}-byte"
            f" limit that loading enforces ({MAX_PROMPT_JSON_ENV}); use a smaller"
            " demonstration pool, or raise the limit"
        )


def _commit(folder: Path, pairs: list[tuple[Path, Path]]) -> None:
    """``os.replace`` each temporary file onto its final name, in order (the last is
    the commit point). Before the first replacement a failure removes the temporary
    files; after it they are left for the roll forward."""
    done = 0
    try:
        for tmp, final in pairs:
            _copy_mode(final, tmp)
            os.replace(tmp, final)
            done += 1
            fsync_dir(folder)
    except BaseException:
        if done == 0:
            for tmp, _ in pairs:
                tmp.unlink(missing_ok=True)
        raise


def _write_prompt_files(
    folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], in_place: bool
) -> None:
    """Write the tensor file, then ``prompt.json`` (recording its digest and size)."""
    names = {n: _temp_name(n) if in_place else n for n in (TENSOR_FILE, META_FILE)}
    tensor_tmp, meta_tmp = folder / names[TENSOR_FILE], folder / names[META_FILE]
    try:
        save_file(tensors, str(tensor_tmp), metadata={"format": "pt"})
        digest, size = _sha256(tensor_tmp), tensor_tmp.stat().st_size
        _write_new_file(meta_tmp, _meta_bytes(meta, digest, size))
    except BaseException:
        if in_place:
            tensor_tmp.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
        raise
    if in_place:
        _commit(folder, [(tensor_tmp, folder / TENSOR_FILE), (meta_tmp, folder / META_FILE)])


def write_prompt_dir(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write a prompt folder; only pet_kit's two files are replaced, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target folder: new, empty, or a pet_kit prompt folder (its other files are
        kept); anything else is refused (see :func:`check_save_target`).
    tensors : dict of str to Tensor
        All finite (a diverged prompt is refused rather than written).
    meta : dict
        JSON-serialisable metadata; ``format``, ``format_version`` and the tensor
        file's checksum and size are added.

    Returns
    -------
    Path
        The folder written (absolute).

    Raises
    ------
    SavedPromptError
        A refused target or tensors, a lock held too long, or an OS error while
        writing (the folder then still holds the old prompt, or the new one).
    """
    target = check_save_target(path)
    bad = non_finite_tensors(tensors)
    if bad:
        raise SavedPromptError(
            f"cannot save to {target}: tensor(s) {bad} hold NaN or infinite values (training"
            " diverged?); pet_kit does not write a prompt that loading would refuse. Refit"
            " (e.g. with a lower learning_rate) or keep the last good save"
        )
    _check_meta_size(target, meta)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}

    def write(folder: Path, fresh: bool) -> None:
        _write_prompt_files(folder, cpu, meta, in_place=not fresh)

    return save_folder(target, META_FILE, "pet_kit prompt folder", write, _settle_on_save)


# ------------------------------------------------------------------------ loading
def _check_prompt_meta(meta: Any, meta_path: Path) -> dict[str, Any]:
    """``meta`` if it is a pet_kit prompt file this version reads."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise SavedPromptError(f"{meta_path}: not a pet_kit prompt file (no format marker)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SavedPromptError(
            f"{meta_path}: invalid format_version {version!r} (expected an integer from 1 to"
            f" {FORMAT_VERSION}); the file was edited or damaged. Save the prompt again"
        )
    if version > FORMAT_VERSION:
        raise SavedPromptError(
            f"{meta_path}: format_version {version!r} was written by a newer pet_kit"
            f" ({meta.get('pet_kit_version', '?')}); this one reads up to {FORMAT_VERSION}."
            " Upgrade pet_kit: pip install -U pet_kit"
        )
    return meta


def _recorded_tensor(meta: dict[str, Any]) -> tuple[Any, int | None]:
    """The tensor file's recorded digest, and its size when recorded for that digest."""
    files = meta.get("files")
    files = files if isinstance(files, dict) else {}
    digest = files.get(TENSOR_FILE)
    sizes = files.get("sizes")
    entry = sizes.get(TENSOR_FILE) if isinstance(sizes, dict) else None
    if not isinstance(entry, dict) or entry.get("sha256") != digest:
        return digest, None
    size = entry.get("bytes")
    return digest, size if isinstance(size, int) and not isinstance(size, bool) else None


def _read_tensor_bytes(path: Path, digest: Any, size: int | None) -> bytes:
    """The tensor file's bytes, checked against the recorded size (before reading) and
    digest; a file without a recorded size is capped at :data:`MAX_TENSOR_BYTES`."""
    try:
        fd, actual = _open_regular(path)
    except (_NotJson, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        raise SavedPromptError(
            f"{path}: unreadable ({reason}); restore the file from the original save"
        ) from exc
    with open(fd, "rb", closefd=True) as fh:
        if size is not None and actual != size:
            raise _Inconsistent(
                f"{path}: checksum mismatch (file truncated, corrupted or edited): prompt.json"
                f" records {size} bytes (sha256 {str(digest)[:16]}...), the file has {actual}."
                " Restore the file from the original save"
            )
        cap = _tensor_cap()
        if size is None and actual > cap:
            raise SavedPromptError(
                f"{path}: {actual} bytes, over the {cap}-byte limit for a tensor file whose"
                f" size prompt.json does not record; raise it with {MAX_TENSOR_ENV}=<bytes> if"
                " the file is genuine, else restore it from the original save"
            )
        data = fh.read((size if size is not None else cap) + 1)
    actual_digest = hashlib.sha256(data).hexdigest()
    if actual_digest != digest:
        raise _Inconsistent(
            f"{path}: checksum mismatch (file truncated, corrupted or edited); expected"
            f" sha256 {str(digest)[:16]}..., got {actual_digest[:16]}.... Restore the file"
            " from the original save"
        )
    return data


def _read_pair(folder: Path) -> tuple[dict[str, Any], bytes]:
    """``prompt.json`` and the tensor file's bytes, checked against each other."""
    meta_path, tensor_path = folder / META_FILE, folder / TENSOR_FILE
    for p in (meta_path, tensor_path):
        if not os.path.lexists(p):
            kind = _Inconsistent if p == meta_path else SavedPromptError
            raise kind(
                f"{folder}: {p.name} is missing; the folder is incomplete. Save the prompt"
                " again (PromptClassifier.save) or restore the file"
            )
    meta = _check_prompt_meta(read_json_file(meta_path), meta_path)
    digest, size = _recorded_tensor(meta)
    return meta, _read_tensor_bytes(tensor_path, digest, size)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _interrupted_commit(folder: Path) -> tuple[Path, dict[str, Any], bytes] | None:
    """The newest complete temporary ``prompt.json`` describing the current tensor file
    (with its metadata and the tensor bytes); ``None`` when there is none."""
    temps = [Path(e.path) for e in os.scandir(folder) if _is_temp_of(e.name, META_FILE)]
    tensor_path = folder / TENSOR_FILE
    try:
        actual = os.stat(tensor_path).st_size
    except OSError:
        return None
    found = []
    for tmp in sorted(temps, key=_mtime, reverse=True):
        try:
            meta = _check_prompt_meta(_load_json(tmp), tmp)
        except (_NotJson, SavedPromptError, OSError):
            continue
        digest, size = _recorded_tensor(meta)
        if size == actual:
            found.append((tmp, meta, digest))
    for tmp, meta, digest in found:
        try:
            return tmp, meta, _read_tensor_bytes(tensor_path, digest, actual)
        except SavedPromptError:
            continue
    return None


def _settle_on_save(folder: Path) -> None:
    """Complete an interrupted save of ``folder`` (under the lock, before a save)."""
    found = _interrupted_commit(folder)
    if found is None:
        return
    tmp, _, data = found
    digest = hashlib.sha256(data).hexdigest()
    try:
        current = _recorded_tensor(_load_json(folder / META_FILE))[0]
    except (_NotJson, AttributeError, FileNotFoundError):
        current = None
    if current != digest:
        os.replace(tmp, folder / META_FILE)
        fsync_dir(folder)
        log.warning("%s: completed a save that was interrupted", folder)


def _recover(folder: Path, first: SavedPromptError) -> tuple[dict[str, Any], bytes]:
    """Re-read ``folder`` under the lock, completing an interrupted save (on disk when
    possible, else in memory); re-raise ``first`` when there is none."""
    with folder_lock(_lock_dir(folder), required=False) as locked:
        try:
            return _read_pair(folder)
        except _Inconsistent:
            pass
        found = _interrupted_commit(folder)
        if found is None:
            raise SavedPromptError(str(first)) from first.__cause__
        tmp, meta, data = found
        if locked:
            try:
                os.replace(tmp, folder / META_FILE)
                fsync_dir(folder)
                log.warning("%s: completed a save that was interrupted", folder)
                return meta, data
            except OSError as exc:
                log.debug("%s: cannot complete on disk: %s", folder, exc)
        log.warning("%s: a save was interrupted; loading its new prompt from %s", folder, tmp)
        return meta, data


def read_prompt_dir(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a prompt folder written by :func:`write_prompt_dir`.

    A save interrupted between its two file replacements is completed (roll forward,
    with a warning).

    Raises
    ------
    SavedPromptError
        Missing files, invalid JSON, files over the size limits, checksum mismatch
        (truncated or edited tensors), a format from a newer pet_kit, or an unreadable
        tensor file.
    """
    folder = Path(path).expanduser()
    if "\0" in str(folder):
        raise SavedPromptError(f"{str(folder)!r}: the path contains a NUL byte; remove it")
    try:
        found = folder.is_dir()
    except OSError as exc:  # a name too long, a folder it may not look into, ...
        raise SavedPromptError(
            f"{folder}: cannot look up the prompt folder ({exc.strerror}); check the path"
        ) from exc
    if not found:
        raise SavedPromptError(f"{folder}: no such prompt folder; check the path")
    try:
        meta, data = _read_pair(folder)
    except _Inconsistent as exc:
        meta, data = _recover(folder, exc)
    try:
        tensors = _load_tensors_from_bytes(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SavedPromptError(
            f"{folder / TENSOR_FILE}: unreadable safetensors file ({exc})"
        ) from exc
    return tensors, meta
