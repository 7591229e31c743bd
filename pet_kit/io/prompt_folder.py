"""Saving and loading prompt folders without pickle, and without ever losing a file.

A prompt folder holds two files:

``prompt.safetensors``
    The tensors (soft-slot vectors), in the safetensors format (no code execution).
``prompt.json``
    Everything else: PVP, classes, hyper-parameters, library and format version,
    the backbone's name and fingerprint, and the SHA-256 and byte size of the tensor
    file (``files``; the size is recorded with the digest it belongs to, so it is
    compared, before any hashing, only while the digest is the one saved).

A save goes through :func:`pet_kit.io.result_folder.save_folder` (only pet_kit's two
files are replaced, each atomically, ``prompt.json`` last: the commit point; the user's
other files stay). A kill between the two replacements leaves the new tensor file, the
old ``prompt.json`` and the new one as a temporary file: :func:`read_prompt_dir` and the
next save complete it (roll forward). So at every instant, pet_kit's loader sees the old
or the new prompt.

Limits, checked before reading or hashing (environment variables override them):
:data:`~pet_kit.io.result_folder.MAX_PROMPT_JSON_BYTES`
(``PET_KIT_MAX_PROMPT_JSON_BYTES``) for ``prompt.json``; :data:`MAX_TENSOR_BYTES`
(``PET_KIT_MAX_TENSOR_BYTES``) for a tensor file whose size ``prompt.json`` does not
record (folders saved by pet_kit 0.1.0).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_tensors_from_bytes
from safetensors.torch import save as _tensors_to_bytes

from .._version import FORMAT_VERSION
from ..errors import SavedPromptError
from . import atomic
from .result_folder import (
    FORMAT_NAME,
    MAX_PROMPT_JSON_ENV,
    META_FILE,
    TENSOR_FILE,
    NotJson,
    check_save_target,
    json_cap,
    load_json,
    open_regular,
    read_json_file,
    save_folder,
)

__all__ = [
    "MAX_TENSOR_BYTES",
    "META_FILE",
    "TENSOR_FILE",
    "folder_path",
    "non_finite_tensors",
    "read_prompt_dir",
    "save_file",
    "write_prompt_dir",
]

log = logging.getLogger(__name__)

#: Largest tensor file read when ``prompt.json`` does not record its size.
MAX_TENSOR_BYTES = 8 * 2**30
MAX_TENSOR_ENV = "PET_KIT_MAX_TENSOR_BYTES"


class _Inconsistent(SavedPromptError):
    """``prompt.json`` does not describe the tensor file (an interrupted save may be
    completed from a temporary ``prompt.json``)."""


def _tensor_cap() -> int:
    return int(atomic.saved_limit(MAX_TENSOR_ENV, MAX_TENSOR_BYTES))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_file(
    tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to the new file ``filename`` in the safetensors format.

    Unlike :func:`safetensors.torch.save_file`, the file is created in place (no hidden
    temporary file of its own that a kill would leave behind), exclusively (never
    through a symbolic link), with the permissions the umask gives, and fsynced.
    """
    atomic.write_new_file(Path(filename), _tensors_to_bytes(tensors, metadata=metadata))


# ------------------------------------------------------------------------- saving
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
    size, cap = len(_meta_bytes(meta, "0" * 64, 2**63)), json_cap()
    if size > cap:
        raise SavedPromptError(
            f"cannot save to {target}: prompt.json would be {size} bytes, over the {cap}-byte"
            f" limit that loading enforces ({MAX_PROMPT_JSON_ENV}); use a smaller"
            " demonstration pool, or raise the limit"
        )


def _write_prompt_files(
    folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], in_place: bool
) -> None:
    """Write the tensor file, then ``prompt.json`` (recording its digest and size)."""
    names = {n: atomic.temp_name(n) if in_place else n for n in (TENSOR_FILE, META_FILE)}
    tensor_tmp, meta_tmp = folder / names[TENSOR_FILE], folder / names[META_FILE]
    try:
        save_file(tensors, str(tensor_tmp), metadata={"format": "pt"})
        digest, size = _sha256(tensor_tmp), tensor_tmp.stat().st_size
        atomic.write_new_file(meta_tmp, _meta_bytes(meta, digest, size))
    except BaseException:
        if in_place:
            tensor_tmp.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
        raise
    if in_place:
        atomic.commit_replacements(
            folder, [(tensor_tmp, folder / TENSOR_FILE), (meta_tmp, folder / META_FILE)]
        )


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
        fd, actual = open_regular(path)
    except (NotJson, OSError) as exc:
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
    temps = [Path(e.path) for e in os.scandir(folder) if atomic.is_temp_of(e.name, META_FILE)]
    tensor_path = folder / TENSOR_FILE
    try:
        actual = os.stat(tensor_path).st_size
    except OSError:
        return None
    found = []
    for tmp in sorted(temps, key=_mtime, reverse=True):
        try:
            meta = _check_prompt_meta(load_json(tmp), tmp)
        except (NotJson, SavedPromptError, OSError):
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
        current = _recorded_tensor(load_json(folder / META_FILE))[0]
    except (NotJson, AttributeError, FileNotFoundError):
        current = None
    if current != digest:
        os.replace(tmp, folder / META_FILE)
        atomic.fsync_dir(folder)
        log.warning("%s: completed a save that was interrupted", folder)


def _recover(folder: Path, first: SavedPromptError) -> tuple[dict[str, Any], bytes]:
    """Re-read ``folder`` under the lock, completing an interrupted save (on disk when
    possible, else in memory); re-raise ``first`` when there is none."""
    with atomic.folder_lock(atomic.lock_dir(folder), required=False) as locked:
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
                atomic.fsync_dir(folder)
                log.warning("%s: completed a save that was interrupted", folder)
                return meta, data
            except OSError as exc:
                log.debug("%s: cannot complete on disk: %s", folder, exc)
        log.warning("%s: a save was interrupted; loading its new prompt from %s", folder, tmp)
        return meta, data


def folder_path(path: Any) -> Path:
    """``path``, a saved folder to read, as a Path (``~`` expanded).

    Raises
    ------
    SavedPromptError
        ``path`` is not a str or PathLike (``None``, a number), or holds a NUL byte.
    """
    try:
        folder = Path(os.fsdecode(os.fspath(path))).expanduser()
    except TypeError as exc:
        raise SavedPromptError(
            f"the folder to load must be a str or os.PathLike path, got {path!r:.80}"
        ) from exc
    if "\0" in str(folder):
        raise SavedPromptError(f"{str(folder)!r}: the path contains a NUL byte; remove it")
    return folder


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
    folder = folder_path(path)
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
