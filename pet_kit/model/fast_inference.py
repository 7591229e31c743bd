"""Opt-in faster inference on the same backbone.

* ``"bf16"``: the forward pass runs under ``torch.autocast`` in bfloat16 (CPUs with
  AVX512-BF16/AMX, or GPUs); the backbone itself is not copied or changed, so every prompt
  keeps sharing it.
* ``"int8"``: PyTorch dynamic int8 quantization (``torch.ao.quantization.quantize_dynamic``,
  per output channel) of the encoder's linear layers — weights stored as int8,
  activations quantized on the fly; CPU only. The MLM head and the embeddings stay in
  float32, so the soft slots are still input embeddings and only the label words' head
  rows are projected. One quantized copy serves every prompt on that backbone (cached per
  process and keyed by the backbone's fingerprint); it keeps that fingerprint, so saved
  prompts load on it unchanged.

How much faster, and how often the label changes against float32:
``benchmarks/speed.py``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import threading
import warnings
import weakref

import torch
from torch import nn

from ..errors import InputError
from .backbone import Backbone

__all__ = ["INFERENCE_MODES", "check_inference", "inference_context", "optimized_backbone"]

log = logging.getLogger(__name__)

#: ``None``: the backbone as loaded (float32).
INFERENCE_MODES = (None, "bf16", "int8")

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[str, Backbone]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def check_inference(mode: object) -> str | None:
    """``mode`` if it is one of :data:`INFERENCE_MODES`, else :class:`InputError`."""
    if mode is None or (isinstance(mode, str) and mode in INFERENCE_MODES):
        return mode  # type: ignore[return-value]
    raise InputError(f"inference must be one of {INFERENCE_MODES}, got {mode!r}")


def _int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose encoder linear layers are dynamically quantized."""
    quantized = copy.deepcopy(model)
    base = getattr(quantized, "base_model", None)
    if base is None or base is quantized:
        raise InputError(
            f"inference='int8' needs a masked LM with a separate encoder (base_model);"
            f" {type(model).__name__} has none"
        )
    with warnings.catch_warnings():  # torch's notices that this API moves to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        quantize_dynamic(
            base, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    return quantized.eval()


def optimized_backbone(backbone: Backbone, mode: str | None) -> Backbone:
    """``backbone`` for inference ``mode`` (itself for ``None``).

    The int8 copy is cached per model object and keyed by the backbone's fingerprint:
    once the float weights change in place, the next call makes a new copy, so a copy
    of weights that are gone is never used.

    Raises
    ------
    InputError
        An unknown mode, or int8 on a non-CPU device.
    """
    mode = check_inference(mode)
    if mode != "int8":
        return backbone
    if backbone.device.type != "cpu":
        raise InputError(
            f"inference={mode!r} runs on the CPU (dynamic quantization); this backbone is on"
            f" {backbone.device}. Load it with device='cpu' or use inference=None"
        )
    identity = backbone.fingerprint  # of the float weights: prompts still match
    with _LOCK:
        per_model = _CACHE.setdefault(backbone.model, {})
        hit = per_model.get(mode)
        if hit is None or hit.fingerprint != identity:  # none yet, or the weights changed
            hit = dataclasses.replace(
                backbone,
                model=_int8(backbone.model),
                # the same name: it identifies the model's source (recorded on save)
                owned=True,
                _fingerprint=identity,
            )
            per_model[mode] = hit
            log.info("%s: %s copy of the encoder made", backbone.name, mode)
    return hit


def inference_context(mode: str | None, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass in ``mode`` runs in (autocast for ``"bf16"``)."""
    if mode == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
