"""What a saved prompt folder's tensor file holds, and the checks on reading it back.

``prompt.safetensors`` keys: ``slots`` (the soft slots), ``slots_init`` (their initial
vectors, for drift reports), ``deep_states`` (deep prompt), the tuning method's own part
(``label_head.*``: soft verbalizer, ``backbone.*``: LoRA / full-tuning weights; written and
read by the method, :mod:`pet_kit.tuning`), ``calibration_prior``.
Each reader names the file and the fix when a tensor is missing or damaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SavedPromptError
from .demonstrations import DemoPool
from .soft_prompt import SoftPrompt

__all__ = [
    "loaded_deep_states",
    "loaded_pool",
    "loaded_prior",
    "loaded_slots",
    "loaded_slots_init",
    "prompt_tensors",
]


def prompt_tensors(
    prompt: SoftPrompt,
    prior: np.ndarray | None,
    part: dict[str, torch.Tensor] | None = None,
    slots_init: torch.Tensor | None = None,
    deep: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """What a prompt folder's tensor file holds; ``part`` is the tuning method's own
    (:meth:`~pet_kit.tuning.base.TuningMethod.saved`)."""
    with torch.no_grad():
        tensors = {"slots": prompt().detach().float()}
        if deep is not None:
            tensors["deep_states"] = deep.states().detach().float().contiguous()
    if slots_init is not None:
        tensors["slots_init"] = slots_init.detach().float()
    tensors.update(part or {})
    if prior is not None:
        tensors["calibration_prior"] = torch.from_numpy(np.asarray(prior, dtype=np.float64))
    return tensors


def loaded_pool(
    meta: dict[str, Any], mode: str | None, n_classes: int, where: str
) -> DemoPool | None:
    """The saved demonstration pool, checked (``None`` without demonstrations)."""
    data = meta.get("demonstrations")
    if mode is None:
        return None
    try:
        pool = DemoPool.from_dict(data)
        ok = bool(len(pool.labels)) and 0 <= pool.labels.min() and pool.labels.max() < n_classes
    except (TypeError, ValueError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise SavedPromptError(
            f"{where}: params.demonstrations is {mode!r} but the file has no valid"
            " 'demonstrations' pool (records + labels); the file was edited. Save the prompt"
            " again"
        )
    return pool


def loaded_prior(
    tensors: dict[str, torch.Tensor], n_classes: int, tensor_file: str
) -> np.ndarray | None:
    """The saved calibration prior, checked (``None`` when the prompt has none)."""
    prior = tensors.get("calibration_prior")
    if prior is None:
        return None
    ok = (
        prior.is_floating_point()
        and tuple(prior.shape) == (n_classes,)
        and bool(torch.isfinite(prior).all())
        and bool((prior > 0).all())
    )
    if not ok:
        raise SavedPromptError(
            f"{tensor_file}: 'calibration_prior' must hold {n_classes} positive finite"
            f" numbers, got {prior.dtype} with shape {tuple(prior.shape)}; the file was edited"
        )
    return prior.double().numpy()


def loaded_slots(tensors: dict[str, torch.Tensor], tensor_file: str) -> torch.Tensor:
    """The saved slot vectors, checked: a finite 2-D floating-point tensor."""
    slots = tensors.get("slots")
    if slots is None:
        raise SavedPromptError(
            f"{tensor_file}: no 'slots' tensor (it has {sorted(tensors)}); the file does not"
            " belong to this prompt folder"
        )
    if not slots.is_floating_point() or slots.ndim != 2:
        raise SavedPromptError(
            f"{tensor_file}: 'slots' must be a 2-D floating-point tensor, got"
            f" {slots.dtype} with shape {tuple(slots.shape)}; the file was edited"
        )
    if not bool(torch.isfinite(slots).all()):
        raise SavedPromptError(
            f"{tensor_file}: 'slots' holds NaN or infinite values; the prompt is damaged"
            " (or was saved from a diverged training run). Retrain or restore it"
        )
    return slots


def loaded_slots_init(
    tensors: dict[str, torch.Tensor], slots: torch.Tensor, tensor_file: str
) -> torch.Tensor | None:
    """The saved initial slot vectors (``None`` when the file has none), checked like
    ``slots``: finite, floating-point and of the same shape."""
    init = tensors.get("slots_init")
    if init is None:
        return None
    if not init.is_floating_point() or tuple(init.shape) != tuple(slots.shape):
        raise SavedPromptError(
            f"{tensor_file}: 'slots_init' must be a floating-point tensor shaped like 'slots'"
            f" {tuple(slots.shape)}, got {init.dtype} with shape {tuple(init.shape)}; the file"
            " was edited. Restore it from the original save"
        )
    if not bool(torch.isfinite(init).all()):
        raise SavedPromptError(
            f"{tensor_file}: 'slots_init' holds NaN or infinite values; the prompt is damaged."
            " Restore it from the original save, or retrain"
        )
    return init.float()


def loaded_deep_states(
    tensors: dict[str, torch.Tensor], shape: tuple[int, int, int], n_slots: int, tensor_file: str
) -> torch.Tensor:
    """The saved deep-prompt states, checked against ``shape`` (layers - 1, slots, dim)."""
    states = tensors.get("deep_states")
    if states is None or tuple(states.shape) != shape or not torch.isfinite(states).all():
        raise SavedPromptError(
            f"{tensor_file}: params.deep_prompt is {n_slots} but 'deep_states'"
            f" is missing, damaged or not of shape {shape}; save the prompt again"
        )
    return states.float()
