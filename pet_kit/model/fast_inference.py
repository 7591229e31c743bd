"""Opt-in faster inference on the same backbone.

* ``"bf16"``: the forward pass runs under ``torch.autocast`` in bfloat16 (CPUs with
  AVX512-BF16/AMX, or GPUs); the backbone itself is not copied or changed, so every prompt
  keeps sharing it.
* ``"int8"``: int8 quantization of the encoder's linear layers — weights stored as int8
  per output channel (``torch.ao.quantization.quantize_dynamic``), activations quantized
  on the fly *per token* (each row of a layer's input gets its own scale,
  :class:`TokenwiseInt8Linear`); CPU only. The MLM head and the embeddings stay in
  float32, so the soft slots are still input embeddings and only the label words' head
  rows are projected. One quantized copy serves every prompt on that backbone (cached
  per process and keyed by the backbone's fingerprint); it keeps that fingerprint, so
  saved prompts load on it unchanged.

Batch invariance of int8: a text gets the same probabilities alone, in any batch, at
any ``--chunk-size`` (to float32's last digits, as without int8). Two things make it so.
Per-token scales: per-tensor dynamic quantization takes one scale from the minimum and
maximum of the whole batch, so a text's rounding depended on its neighbours (up to 0.3
in probability on the default backbone, labels flipped). And batches of texts of one
token length (:func:`~pet_kit.model.cloze_model.equal_length_batches`): a padded batch
changes the float32 attention's last bits, which int8 rounding can amplify (up to 0.03
with per-token scales alone); without padding, a text's int8 products see exactly the
values they see when the text is alone.

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

__all__ = [
    "INFERENCE_MODES",
    "TokenwiseInt8Linear",
    "check_inference",
    "inference_context",
    "optimized_backbone",
]

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


class TokenwiseInt8Linear(nn.Module):
    """An int8 linear layer whose input is quantized per row (token), not per tensor.

    PyTorch's dynamic quantization picks one activation scale for the whole input, from
    its minimum and maximum: a text's result then depends on the other texts (and the
    padding) in its batch. Here each row is first divided by its own largest magnitude,
    so every row lies in ``[-1, 1]``; one extra row holding ``1`` and ``-1`` pins the
    range the kernel sees to exactly ``[-1, 1]`` in every call, so the quantization grid
    is the same constant for every row of every batch. The int8 product is exact
    (integer arithmetic), the row's scale is multiplied back afterwards, and the bias is
    added in float32: each output row depends on its own input row only.

    Parameters
    ----------
    quantized : torch.ao.nn.quantized.dynamic.Linear
        The layer ``quantize_dynamic`` made (its int8 per-channel weight and its bias).
    """

    def __init__(self, quantized: nn.Module) -> None:
        super().__init__()
        weight = quantized.weight()
        bias = quantized.bias()
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        self._packed = torch.ops.quantized.linear_prepack(weight, None)
        if bias is None:
            bias = torch.zeros(self.out_features)
        self.register_buffer("bias", bias.detach().to(torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` with ``x`` quantized row by row."""
        shape = x.shape
        flat = x.reshape(-1, self.in_features).to(torch.float32)
        n = flat.shape[0]
        scale = flat.abs().amax(dim=1, keepdim=True).clamp_min_(torch.finfo(torch.float32).tiny)
        rows = torch.empty(n + 1, self.in_features)
        torch.div(flat, scale, out=rows[:n])
        rows[n].zero_()
        rows[n, 0], rows[n, -1] = 1.0, -1.0  # the fixed range [-1, 1]
        out = torch.ops.quantized.linear_dynamic(rows, self._packed, True)[:n]
        return torch.addcmul(self.bias, out, scale).reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _tokenwise(module: nn.Module) -> None:
    """Replace, in place, every dynamically quantized linear layer under ``module`` by
    its :class:`TokenwiseInt8Linear`."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    for name, child in list(module.named_children()):
        if isinstance(child, DynamicLinear):
            setattr(module, name, TokenwiseInt8Linear(child))
        else:
            _tokenwise(child)


def _int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose encoder linear layers are int8 with per-token activation
    scales (:class:`TokenwiseInt8Linear`)."""
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
        _tokenwise(base)
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
