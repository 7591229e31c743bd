"""The checkpoint folder of an :func:`~pet_kit.train.adapt.adapt` run.

One commit point
    A checkpoint is ``adapt_state.json`` (step, losses, AdamW step counts, the run's
    settings) and the tensor file it names, ``adapt_state.<hex8>.safetensors`` (trainable
    tensors and AdamW moments), recorded with its SHA-256 and size. A write creates a new
    tensor file (fsynced), then replaces ``adapt_state.json`` in one ``os.replace`` (the
    commit point), then deletes the tensor files the JSON no longer names. A kill at any
    instant leaves the old JSON with its tensor file or the new JSON with its own: every
    checkpoint on disk can be resumed. (pet_kit 0.x wrote the tensors to the fixed name
    ``adapt_state.safetensors`` first and the JSON second, so a kill between the two
    left a pair that does not match; such a folder is still read when it is whole.)

Never a file pet_kit did not write
    :func:`prepare_folder` refuses, before anything is trained, a checkpoint folder that
    is a file, lies inside the output folder, or holds anything but pet_kit's own
    checkpoint files (the working folder, the corpus folder, the source model's folder).
    :func:`remove_state` deletes only pet_kit's files, and the folder itself only when it
    is then empty and pet_kit created it (recorded in the checkpoint as
    ``created_folder``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as tensors_to_bytes

from ..errors import InputError
from ..io.atomic import write_file_atomically, write_new_file

__all__ = [
    "FORMAT",
    "STATE_JSON",
    "has_state",
    "prepare_folder",
    "read_meta",
    "read_state",
    "remove_state",
    "write_state",
]

log = logging.getLogger(__name__)

#: The commit point of a checkpoint.
STATE_JSON = "adapt_state.json"
#: The ``format`` marker of :data:`STATE_JSON`.
FORMAT = "pet_kit.adapt_checkpoint"
_LEGACY_TENSORS = "adapt_state.safetensors"  # the fixed tensor file of pet_kit 0.x
_TENSORS = re.compile(r"adapt_state\.[0-9a-f]{8}\.safetensors")
_JSON_TEMP = re.compile(r"\.adapt_state\.json\.tmp-[0-9a-f]{8}")
_MAX_JSON_BYTES = 64 * 2**20


def _start_over(folder: Path) -> str:
    return f"delete {folder} or pass resume=False (pet-kit adapt --no-resume) to start over"


# ------------------------------------------------------------------ the folder
def _is_own_file(name: str) -> bool:
    """Whether ``name`` is one of the file names a checkpoint folder holds."""
    return (
        name in (STATE_JSON, _LEGACY_TENSORS)
        or _TENSORS.fullmatch(name) is not None
        or _JSON_TEMP.fullmatch(name) is not None
    )


def _output_entries(folder: Path, output: Path) -> set[str]:
    """The entries of ``folder`` the adapt output may make: the top folder of the output's
    path inside ``folder`` (and its hidden temporary sibling while it is written)."""
    try:
        inside = output.relative_to(folder)
    except ValueError:
        return set()
    return {inside.parts[0]}


def _foreign_entries(folder: Path, output: Path) -> list[str]:
    """The entries of ``folder`` that are not pet_kit's checkpoint files (nor the adapt
    output the folder may hold)."""
    allowed = _output_entries(folder, output)
    temp = re.compile(rf"\.{re.escape(output.name)}\.tmp-[0-9a-f]{{8}}")
    foreign = []
    for entry in os.scandir(folder):
        if entry.name in allowed or (output.parent == folder and temp.fullmatch(entry.name)):
            continue
        if not (entry.is_file(follow_symlinks=False) and _is_own_file(entry.name)):
            foreign.append(entry.name)
    return sorted(foreign)


def prepare_folder(folder: Path, output: Path, default: bool) -> bool:
    """Check that ``folder`` can hold the checkpoint of a run writing ``output``.

    Parameters
    ----------
    folder, output : Path
        Absolute paths.
    default : bool
        Whether ``folder`` is the default ``.NAME.adapt-checkpoint`` (pet_kit's name).

    Returns
    -------
    bool
        Whether pet_kit created (or will create) the folder, so may remove it once empty.

    Raises
    ------
    InputError
        ``folder`` is a file, lies in ``output``, or holds files pet_kit did not write.
    """
    real, real_output = Path(os.path.realpath(folder)), Path(os.path.realpath(output))
    if real == real_output or real_output in real.parents:
        raise InputError(
            f"checkpoint_dir {folder} lies in the output folder {output}, which adapt writes"
            " once, new, at the end; pass a checkpoint_dir outside it (pet-kit adapt"
            " --checkpoint-dir), or leave it out (default: .NAME.adapt-checkpoint beside"
            " the output)"
        )
    if not os.path.lexists(folder):
        return True
    if not real.is_dir():
        raise InputError(
            f"checkpoint_dir {folder} is a file, not a folder; pass a new or empty folder"
            " (pet-kit adapt --checkpoint-dir), or leave it out (default:"
            " .NAME.adapt-checkpoint beside the output)"
        )
    foreign = _foreign_entries(real, real_output)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InputError(
            f"checkpoint_dir {folder} holds files adapt did not write ({shown}); adapt"
            " keeps its checkpoint in a folder of its own and cleans it up when done, so it"
            " never uses a folder of other files (the working folder, the corpus's, the"
            " model's). Pass a new or empty folder as checkpoint_dir (pet-kit adapt"
            " --checkpoint-dir), or leave it out (default: .NAME.adapt-checkpoint beside"
            " the output)"
        )
    if not (real / STATE_JSON).is_file():
        return default
    meta, reason = _parse_meta(real)
    if meta is None:
        raise InputError(
            f"{folder / STATE_JSON}: {reason}: the file was edited, damaged, or is not"
            " pet_kit's, and adapt never replaces a file it cannot tell is its own. Delete it"
            " if it is a damaged checkpoint (the run then starts over), or pass another"
            " checkpoint_dir"
        )
    return bool(meta.get("created_folder", default))


def _remove_own(folder: Path, keep: str | None = None) -> None:
    """Delete pet_kit's checkpoint files in ``folder``: all of them (``adapt_state.json``
    first), or, with ``keep``, the tensor files but ``keep`` and the JSON's temporaries."""
    if keep is None and (folder / STATE_JSON).is_file():
        os.unlink(folder / STATE_JSON)
    for entry in os.scandir(folder):
        if entry.name in (keep, STATE_JSON) or not entry.is_file(follow_symlinks=False):
            continue
        if _is_own_file(entry.name):
            os.unlink(entry.path)


def remove_state(folder: Path, created: bool) -> None:
    """Delete the checkpoint's files; the folder too if pet_kit ``created`` it and it is
    then empty (what else it holds is kept)."""
    if not folder.is_dir():
        return
    _remove_own(folder)
    if not created:
        return
    try:
        os.rmdir(folder)
    except OSError:
        log.info("%s: checkpoint removed; the folder is kept (it is not empty)", folder)


# ------------------------------------------------------------------ writing
def write_state(folder: Path, meta: Mapping[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Write a checkpoint: a new tensor file, then ``adapt_state.json`` naming it (the
    one commit point), then remove the tensor files of earlier checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    data = tensors_to_bytes(tensors)
    name = f"adapt_state.{os.urandom(4).hex()}.safetensors"
    write_new_file(folder / name, data)
    record = {
        **meta,
        "format": FORMAT,
        "tensors_file": name,
        "tensors_bytes": len(data),
        "tensors_sha256": hashlib.sha256(data).hexdigest(),
    }
    try:
        write_file_atomically(folder / STATE_JSON, (json.dumps(record, indent=1) + "\n").encode())
    except BaseException:
        (folder / name).unlink(missing_ok=True)
        raise
    _remove_own(folder, keep=name)


# ------------------------------------------------------------------ reading
def has_state(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint (committed ``adapt_state.json``)."""
    return (folder / STATE_JSON).is_file()


def _parse_meta(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """(``adapt_state.json`` of ``folder``, ``""``), or (``None``, why it is not a
    checkpoint's JSON)."""
    path = folder / STATE_JSON
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            return None, f"over {_MAX_JSON_BYTES} bytes"
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        kind = "an object" if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
        return None, f'not an adapt checkpoint ({kind} without "format": "{FORMAT}")'
    return meta, ""


def read_meta(folder: Path) -> dict[str, Any]:
    """``adapt_state.json`` of ``folder``: a JSON object with pet_kit's format marker.

    Raises
    ------
    InputError
        Unreadable, not JSON, or not an adapt checkpoint.
    """
    meta, reason = _parse_meta(folder)
    if meta is None:
        raise InputError(
            f"{folder / STATE_JSON}: {reason}; the file was edited or damaged:"
            f" {_start_over(folder)}"
        )
    return meta


def _tensor_path(folder: Path, meta: Mapping[str, Any]) -> Path:
    name = meta.get("tensors_file", _LEGACY_TENSORS)
    if not isinstance(name, str) or not (name == _LEGACY_TENSORS or _TENSORS.fullmatch(name)):
        raise InputError(
            f"{folder / STATE_JSON}: tensors_file {name!r} is not a checkpoint tensor file"
            f" name; the file was edited: {_start_over(folder)}"
        )
    return folder / name


def read_state(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checkpoint's JSON and tensors, the tensor file checked against its digest.

    Raises
    ------
    InputError
        Unreadable, damaged or edited files (the message says how to start over).
    """
    meta = read_meta(folder)
    path = _tensor_path(folder, meta)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"{path}: unreadable ({exc.strerror or exc}); {_start_over(folder)}"
        ) from exc
    if hashlib.sha256(raw).hexdigest() != meta.get("tensors_sha256"):
        raise InputError(f"{path}: checksum mismatch (damaged checkpoint); {_start_over(folder)}")
    try:
        tensors = tensors_from_bytes(raw)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); {_start_over(folder)}") from exc
    return meta, tensors


# --------------------------------------------------------------- validation
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problem(meta: Mapping[str, Any], max_steps: int, names: set[str]) -> str | None:
    """What is wrong with a checkpoint's JSON, or ``None``."""
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= max_steps:
        return f"step is {step!r}, not an integer from 0 to the run's max_steps={max_steps}"
    losses = meta.get("losses")
    if not isinstance(losses, list) or len(losses) != step or not all(map(_is_number, losses)):
        return f"losses must be a list of {step} numbers (one per step done)"
    if not _is_number(meta.get("seconds")) or meta["seconds"] < 0:
        return f"seconds is {meta.get('seconds')!r}, not a number >= 0"
    adam = meta.get("adam_steps")
    if not isinstance(adam, dict) or not all(_is_number(v) and v >= 0 for v in adam.values()):
        return "adam_steps is missing or not an object of step counts"
    if not set(adam) <= names:
        return f"adam_steps names tensors the run does not train: {sorted(set(adam) - names)}"
    before = meta.get("heldout_before")
    keys = ("loss", "accuracy", "masked_tokens")
    if not isinstance(before, dict) or not all(_is_number(before.get(k)) for k in keys):
        return f"heldout_before must be an object with the numbers {list(keys)}"
    return None


def _tensor_problem(
    tensors: Mapping[str, torch.Tensor], shapes: Mapping[str, torch.Size], adam: Mapping[str, Any]
) -> str | None:
    """What the tensor file lacks for the run's trainable tensors, or ``None``."""
    for name, shape in shapes.items():
        wanted = [f"param.{name}"]
        if name in adam:
            wanted += [f"exp_avg.{name}", f"exp_avg_sq.{name}"]
        for key in wanted:
            if key not in tensors:
                return f"no tensor {key!r}"
            if tensors[key].shape != shape:
                return f"tensor {key!r} has shape {list(tensors[key].shape)}, not {list(shape)}"
            if not tensors[key].is_floating_point():
                return f"tensor {key!r} holds {tensors[key].dtype} values, not floating-point"
            if not bool(torch.isfinite(tensors[key]).all()):  # resuming would diverge again
                return f"tensor {key!r} holds NaN or infinite values"
            if key.startswith("exp_avg_sq.") and bool((tensors[key] < 0).any()):
                return f"tensor {key!r} holds negative values (squared gradients)"
    return None


def check_state(
    folder: Path,
    meta: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    max_steps: int,
    shapes: Mapping[str, torch.Size],
) -> None:
    """Refuse a checkpoint whose JSON or tensors do not fit the run.

    Parameters
    ----------
    folder : Path
        The checkpoint folder (messages).
    meta, tensors
        From :func:`read_state`.
    max_steps : int
        The run's ``max_steps``.
    shapes : mapping
        Trainable tensor name -> shape.

    Raises
    ------
    InputError
        Naming the file, the value at fault and how to start over.
    """
    problem = _problem(meta, max_steps, set(shapes))
    where = folder / STATE_JSON
    if problem is None:
        problem = _tensor_problem(tensors, shapes, meta["adam_steps"])
        where = _tensor_path(folder, meta)
    if problem is not None:
        raise InputError(
            f"{where}: {problem}; the checkpoint was edited or damaged: {_start_over(folder)}"
        )
