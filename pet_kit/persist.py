"""Saving and loading prompt folders, atomically and without pickle.

A prompt folder holds two files:

``prompt.safetensors``
    The tensors (soft-slot vectors), in the safetensors format (no code execution).
``prompt.json``
    Everything else: PVP, classes, hyper-parameters, library and format version,
    the backbone's name and fingerprint, and the SHA-256 of the tensor file.

Writes go to a temporary sibling folder which then replaces the target by rename,
so an interrupted save never leaves a half-written prompt (the old one stays).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._version import FORMAT_VERSION
from .errors import SavedPromptError

__all__ = ["META_FILE", "TENSOR_FILE", "read_prompt_dir", "write_prompt_dir"]

META_FILE = "prompt.json"
TENSOR_FILE = "prompt.safetensors"
FORMAT_NAME = "pet_kit.prompt"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def write_prompt_dir(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write a prompt folder atomically (temp folder + rename).

    Parameters
    ----------
    path : str or PathLike
        Target folder; replaced if it exists (only if it is a prompt folder).
    tensors : dict of str to Tensor
    meta : dict
        JSON-serialisable metadata; ``format``, ``format_version`` and the file
        checksum are added.

    Returns
    -------
    Path
        The folder written.
    """
    with atomic_folder(path, META_FILE, "pet_kit prompt folder") as tmp:
        tensor_path = tmp / TENSOR_FILE
        save_file(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
            str(tensor_path),
            metadata={"format": "pt"},
        )
        full = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **meta,
            "files": {TENSOR_FILE: _sha256(tensor_path)},
        }
        meta_path = tmp / META_FILE
        with meta_path.open("w", encoding="utf-8") as fh:
            json.dump(full, fh, indent=2, ensure_ascii=False, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path).expanduser().absolute()


@contextmanager
def atomic_folder(path: str | os.PathLike[str], marker: str, what: str) -> Iterator[Path]:
    """Write a folder atomically: yield a temporary sibling folder to fill, then swap it in.

    An existing ``path`` is replaced only if it holds ``marker`` (it is one of ours) or is
    an empty folder; anything else is refused with :class:`SavedPromptError`. On any
    error the temporary folder is removed and ``path`` is left as it was.
    """
    target = Path(path).expanduser().absolute()
    if target.exists() and not (target / marker).is_file():
        if not target.is_dir() or any(target.iterdir()):
            raise SavedPromptError(
                f"{target} exists and is not a {what}; refusing to overwrite it."
                " Choose another path or remove it yourself"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        fsync_dir(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_prompt_dir(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a prompt folder written by :func:`write_prompt_dir`.

    Raises
    ------
    SavedPromptError
        Missing files, invalid JSON, checksum mismatch (truncated or edited tensors),
        a format from a newer pet_kit, or an unreadable tensor file.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise SavedPromptError(f"{folder}: no such prompt folder; check the path")
    meta_path, tensor_path = folder / META_FILE, folder / TENSOR_FILE
    for p in (meta_path, tensor_path):
        if not p.is_file():
            raise SavedPromptError(
                f"{folder}: {p.name} is missing; the folder is incomplete. Save the prompt"
                " again (PromptClassifier.save) or restore the file"
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SavedPromptError(
            f"{meta_path}: not valid JSON ({exc}); the file is damaged"
        ) from None
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
    expected = (meta.get("files") or {}).get(TENSOR_FILE)
    actual = _sha256(tensor_path)
    if expected != actual:
        raise SavedPromptError(
            f"{tensor_path}: checksum mismatch (file truncated, corrupted or edited); expected"
            f" sha256 {str(expected)[:16]}..., got {actual[:16]}.... Restore the file from the"
            " original save"
        )
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SavedPromptError(f"{tensor_path}: unreadable safetensors file ({exc})") from None
    return tensors, meta
