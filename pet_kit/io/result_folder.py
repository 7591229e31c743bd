"""pet_kit's result folders (a prompt, an ensemble, an adapted model): which files in
them are pet_kit's, what a save may replace, and the save that never loses a file.

How a save works (:func:`save_folder`; :func:`pet_kit.io.prompt_folder.write_prompt_dir`
uses it)

* Up front, :func:`check_save_target` refuses, without writing anything, a path with a
  NUL byte, a parent that is a file or not writable, and an existing folder that is
  neither empty nor a pet_kit folder: a ``prompt.json`` without pet_kit's format marker
  (or a ``prompt.safetensors`` without a ``prompt.json``) is never overwritten. A folder
  that already holds a pet_kit result is replaced only when the caller says so
  (:func:`check_replace`, the overwrite rule).
* Saves to one path serialise on an advisory lock on the parent folder
  (:func:`pet_kit.io.atomic.folder_lock`): concurrent saves never fail, the last one
  wins.
* A new folder is built as a hidden sibling ``.NAME.tmp-<hex8>`` and renamed into place.
* An existing folder is updated in place: only pet_kit's own files
  (:data:`OWNED_FILES`) are replaced, each by ``os.replace`` of a hidden temporary file
  (``.prompt.json.tmp-<hex8>``) that was written and fsynced first, the marker file last
  (the commit point). The user's other files are never touched; a symbolic link named
  like pet_kit's files is replaced, never written through. A target folder that is
  itself a symbolic link is followed (it is the folder the user chose).
* Stale temporary files and folders (exactly pet_kit's names, only pet_kit's files
  inside) are removed by the next save; a save never deletes a file pet_kit did not
  write.

Marker files are read size-capped (:data:`MAX_PROMPT_JSON_BYTES`,
``PET_KIT_MAX_PROMPT_JSON_BYTES``; :func:`read_json_file`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SavedPromptError
from . import atomic

__all__ = [
    "ENSEMBLE_FILE",
    "ENSEMBLE_FORMAT",
    "FORMATS",
    "MAX_PROMPT_JSON_BYTES",
    "META_FILE",
    "OWNED_FILES",
    "RESULT_MARKERS",
    "TENSOR_FILE",
    "NotJson",
    "check_replace",
    "check_save_target",
    "json_cap",
    "json_file_digest",
    "load_json",
    "open_regular",
    "read_json_file",
    "remove_pet_kit_folder",
    "save_folder",
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

_MEMBER_DIR = re.compile(r"member_\d+")
_MEMBER_TEMP_DIR = re.compile(rf"\.member_\d+\.tmp-{atomic.HEX8}")


# ------------------------------------------------------------------ reading JSON
class NotJson(Exception):
    """Why a file is not a readable JSON document (a short reason)."""


def json_cap() -> int:
    """The size limit of a pet_kit JSON file: :data:`MAX_PROMPT_JSON_BYTES`, or
    ``$PET_KIT_MAX_PROMPT_JSON_BYTES``."""
    return int(atomic.saved_limit(MAX_PROMPT_JSON_ENV, MAX_PROMPT_JSON_BYTES))


def open_regular(path: Path) -> tuple[int, int]:
    """An fd open for reading on the regular file ``path``, and its size (a FIFO or a
    device never blocks or streams forever: it is refused)."""
    fd = os.open(
        path,
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0),
    )
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotJson("not a regular file")
    return fd, st.st_size


def read_capped(path: Path, cap: int, env: str) -> bytes:
    """The bytes of the regular file ``path``, refused (before reading) above ``cap``."""
    fd, size = open_regular(path)
    with open(fd, "rb", closefd=True) as fh:
        if size > cap:
            raise NotJson(f"{size} bytes, over the {cap}-byte limit set by {env}")
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise NotJson(f"over the {cap}-byte limit set by {env} (the file grew)")
    return data


def load_json(path: Path) -> Any:
    """Parse the JSON file ``path`` (size-capped); raises :class:`NotJson`."""
    try:
        raw = read_capped(path, json_cap(), MAX_PROMPT_JSON_ENV)
    except OSError as exc:
        raise NotJson(f"unreadable: {exc.strerror or exc}") from exc
    try:
        return json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotJson(f"not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise NotJson("not valid JSON: nested too deeply") from exc


def read_json_file(path: Path) -> Any:
    """Read a pet_kit JSON file (``prompt.json``, ``ensemble.json``), size-capped.

    Raises
    ------
    SavedPromptError
        Unreadable, not a regular file, over :data:`MAX_PROMPT_JSON_BYTES`, not JSON, or
        nested too deeply.
    """
    try:
        return load_json(path)
    except NotJson as exc:
        fix = "Restore it from the original save, or save it again"
        if "limit" in str(exc):
            fix = "Raise that limit if the file is genuine; else restore it or save it again"
        raise SavedPromptError(
            f"{path}: {exc}; the file is damaged or not pet_kit's. {fix}"
        ) from exc


def json_file_digest(path: Path) -> str:
    """The SHA-256 of a pet_kit JSON file, read under :data:`MAX_PROMPT_JSON_BYTES`.

    Raises
    ------
    SavedPromptError
        As :func:`read_json_file`.
    """
    try:
        return hashlib.sha256(read_capped(path, json_cap(), MAX_PROMPT_JSON_ENV)).hexdigest()
    except (NotJson, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        raise SavedPromptError(
            f"{path}: unreadable ({reason}); restore it from the original save, or save again"
        ) from exc


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
        obj = load_json(path)
    except NotJson as exc:
        return str(exc)
    expected = FORMATS.get(marker, "pet_kit.*")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    ok = fmt == expected if marker in FORMATS else str(fmt).startswith("pet_kit.")
    return None if ok else f'no "format": "{expected}" marker'


def _interrupted_marker(folder: Path, marker: str) -> bool:
    """Whether ``folder`` lacks ``marker`` but holds a complete temporary one, left by a
    save into an empty folder that was interrupted before its commit."""
    return any(
        atomic.is_temp_of(e.name, marker) and _foreign_reason(Path(e.path), marker) is None
        for e in os.scandir(folder)
    )


def _ignorable(entry: os.DirEntry[str], marker: str) -> bool:
    """Whether ``entry`` of a marker-less folder is pet_kit's own leftover."""
    if entry.is_symlink():
        return False
    if entry.is_file() and any(atomic.is_temp_of(entry.name, n) for n in OWNED_FILES):
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
            meta = load_json(path)
        except NotJson:
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
                atomic.is_temp_of(entry.name, n) for n in OWNED_FILES
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
        if any(atomic.is_temp_of(entry.name, n) for n in OWNED_FILES):
            os.unlink(entry.path)
            log.info("removed %s, left by an interrupted save", entry.path)


def _remove_stale_siblings(real: Path) -> None:
    """Delete the temporary folders earlier saves to ``real`` left beside it (call under
    the lock)."""
    for entry in os.scandir(real.parent):
        if not atomic.is_temp_of(entry.name, real.name) or not entry.is_dir(follow_symlinks=False):
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
        if atomic.write_fresh_folder(real, write):
            return
        check_save_target(target, marker, what)  # it appeared meanwhile: in place
    if settle is not None:
        settle(real)
    _remove_stale_temps(real)
    write(real, False)
    atomic.fsync_dir(real)


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
        with atomic.folder_lock(real.parent):
            _save_locked(target, real, marker, what, write, settle)
    except OSError as exc:
        where = exc.filename or real
        raise SavedPromptError(
            f"could not save to {target}: {exc.strerror or exc} ({where}). The folder still"
            " holds the previous files (or the new ones, completed by the next load or"
            " save). Free disk space or fix the folder's permissions, then save again"
        ) from exc
    return target
