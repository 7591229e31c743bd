"""A train config (``pet-kit train CONFIG.yaml``): read and checked, its ``params`` as
:class:`~pet_kit.PromptClassifier` arguments, its data as tables, and the trained prompt
saved where it says, or rescued.

A relative path in the config (data files, ``prompt_init`` and ``checkpoint`` folders,
the output, a local model folder) is relative to the config file's folder. No torch.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.yaml_source import read_yaml, resolve_path
from ..errors import ConfigError, InputError, PetKitError

__all__ = [
    "Rescue",
    "check_labels",
    "estimator_params",
    "load_train_config",
    "resolve_model",
    "save_or_rescue",
    "training_data",
]


def load_train_config(path: str) -> tuple[Any, Path]:
    """The train config, checked, and its folder.

    Every problem of its ``params`` (unknown names with "did you mean", group fields,
    values) is reported at once, each at its line.

    Returns
    -------
    (TrainFile, Path)

    Raises
    ------
    ConfigError
    """
    from ..config.schema import TrainFile, check_train_params, validate

    src = read_yaml(path)
    cfg = validate(TrainFile, src, "train config")
    problems = check_train_params(src)
    if problems:
        raise ConfigError.from_problems(problems)
    return cfg, src.base_dir


def resolve_model(base: Path, ref: str) -> str:
    """A model is a local folder (relative to the config) if one exists, else a hub name."""
    local = base / Path(ref).expanduser()
    return str(local) if local.exists() else ref


def estimator_params(params: dict[str, Any], base: Path, overwrite: bool = False) -> dict[str, Any]:
    """A train config's ``params`` as :class:`~pet_kit.PromptClassifier` arguments.

    A relative ``prompt_init`` prompt folder (prompt transfer) or ``checkpoint`` folder
    (the shorthand string, or the ``dir`` of a mapping such as
    ``checkpoint: {dir: ckpt, every: 100}``) is resolved against the config's folder;
    ``overwrite`` (``--overwrite``) lets the checkpoint folder's prompt be replaced as the
    output's is. Mappings under the other grouped settings (``tuning: {mode: lora,
    rank: 4}``) are passed on: the estimator reads a mapping of a group's fields as that
    group.
    """
    from ..config.settings import is_transfer

    out = dict(params)
    init = out.get("prompt_init")
    if isinstance(init, str) and is_transfer(init):  # a saved prompt folder
        out["prompt_init"] = resolve_path(base, init)
    checkpoint = out.get("checkpoint")
    if isinstance(checkpoint, str):
        checkpoint = {"dir": checkpoint} if overwrite else resolve_path(base, checkpoint)
        out["checkpoint"] = checkpoint
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("dir"), str):
        extra = {"overwrite": True} if overwrite else {}
        out["checkpoint"] = {**checkpoint, "dir": resolve_path(base, checkpoint["dir"]), **extra}
    return out


def training_data(spec: Any, base: Path) -> tuple[Any, Any]:
    """The training and evaluation tables of a train config's ``data`` (a
    :class:`~pet_kit.config.schema.DataSpec`): its files, or a built-in task's splits.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame or None)
        Training examples (``k`` per class when ``k`` is set) and evaluation examples.
    """
    from .. import datasets
    from ..io.tables import read_table

    if spec.task is not None:
        train = datasets.load_task(spec.task, "train")
        if spec.k is not None:
            train = datasets.sample_k_shot(train, spec.k, seed=spec.seed)
        test = datasets.load_task(spec.task, "test", max_size=spec.eval_size)
        return train, test
    if spec.train is None:
        raise PetKitError("train config: data needs either 'task' or 'train' (a file path)")
    train = read_table(resolve_path(base, spec.train))
    if spec.k is not None:
        train = datasets.sample_k_shot(train, spec.k, seed=spec.seed, label_col=spec.label_column)
    test = read_table(resolve_path(base, spec.eval)) if spec.eval else None
    return train, test


def check_labels(y: Any, labels: list[Any], where: str) -> None:
    """Refuse labels the PVP does not define before anything is scored or trained.

    Raises
    ------
    InputError
        Naming ``where`` the labels come from.
    """
    from ..io.inputs import to_label_indices

    try:
        to_label_indices(y, labels, len(y))
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class Rescue:
    """Where a trained prompt went when its output folder refused it.

    Attributes
    ----------
    folder : Path
        A fresh folder in the system's temporary folder, holding the prompt.
    reason : str
        Why saving to the output folder failed.
    """

    folder: Path
    reason: str


def save_or_rescue(clf: Any, out: Path) -> Rescue | None:
    """Save the trained prompt to ``out`` (replacing a prompt there: the caller applied
    the overwrite rule up front); ``None`` when it went there.

    If that fails (disk full, the folder became unwritable or was replaced during
    training, ...), the prompt is saved to a fresh ``pet_kit-rescued-*`` folder in the
    system's temporary folder instead: the trained prompt is not lost.

    Raises
    ------
    PetKitError
        The rescue failed too.
    """
    try:
        clf.save(out, overwrite=True)
        return None
    except Exception as exc:  # any failure: the trained prompt must not be lost
        first = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
    try:
        rescue = Path(tempfile.mkdtemp(prefix="pet_kit-rescued-"))
        clf.save(rescue)
    except Exception as exc:
        raise PetKitError(
            f"could not save the trained prompt to {out} ({first}), nor to a rescue folder"
            f" in {tempfile.gettempdir()} ({exc}); the prompt is lost. Fix the output folder"
            " (free disk space, permissions) and train again"
        ) from exc
    return Rescue(rescue, first)
