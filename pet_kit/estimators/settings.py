"""Validation of :class:`~pet_kit.PromptClassifier`'s hyper-parameters.

scikit-learn estimators only store their parameters in ``__init__``; ``fit`` (and
``load``) check them here, so a bad value fails with a message naming it. Every float
parameter must be finite: ``inf`` and ``nan`` (and numbers too large for a float, such
as ``1e999999`` read from a file) are refused before anything is loaded or trained.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

from ..errors import InputError
from ..io.inputs import check_positive_int
from ..model.backbone_tuning import TUNINGS
from ..model.deep import DEEP_ENCODERS
from ..model.demonstrations import MODES as DEMO_MODES
from ..model.soft_prompt import INIT_STRATEGIES, PROMPT_ENCODERS

__all__ = ["CALIBRATIONS", "check_classifier_params", "check_device"]

CALIBRATIONS = (None, "content_free", "unlabeled")


def check_device(device: Any) -> None:
    """Refuse a device torch does not know, or CUDA on a machine without it."""
    if device is None or device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"device {device!r} is not a torch device; use None (automatic), 'cpu' or 'cuda'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device={device!r} but CUDA is not available on this machine; use device='cpu'"
            " or None (automatic)"
        )


def _check_float(est: Any, name: str, ok: Callable[[float], bool], what: str) -> None:
    """Raise :class:`InputError` unless ``est.<name>`` is a finite real number with ``ok``.

    ``what`` describes the valid range (``"> 0"``); a non-finite value's message suggests
    the estimator's default.
    """
    value = getattr(est, name)
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(
        value, (bool, np.bool_)
    ):
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = " (text, not a number: YAML reads 1e-3 as text; write 1.0e-3 or 0.001)"
            except ValueError:
                pass
        raise InputError(f"{name} must be a number {what}, got {value!r}{hint}")
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        as_float = math.inf
    if not math.isfinite(as_float):
        known = inspect.signature(type(est)).parameters.get(name)
        default = "" if known is None else f" (the default is {known.default!r})"
        raise InputError(
            f"{name}={as_float!r} is not a finite number; {name} must be a finite number"
            f" {what}{default}"
        )
    if not ok(as_float):
        raise InputError(f"{name} must be a number {what}, got {value!r}")


def check_classifier_params(est: Any) -> None:
    """Raise :class:`~pet_kit.errors.InputError` for the first invalid parameter of ``est``.

    Parameters
    ----------
    est : PromptClassifier
        The estimator whose ``get_params()`` values are checked.
    """
    for name in (
        "max_length",
        "batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "n_iter_no_change",
    ):
        check_positive_int(name, getattr(est, name))
    if not isinstance(est.epochs, (int, np.integer)) or est.epochs < 0:
        raise InputError(f"epochs must be an integer >= 0, got {est.epochs!r}")
    if est.max_steps is not None and (
        not isinstance(est.max_steps, (int, np.integer)) or est.max_steps < 0
    ):
        raise InputError(f"max_steps must be None or an integer >= 0, got {est.max_steps!r}")
    _check_float(est, "learning_rate", lambda v: v > 0, "> 0")
    _check_float(est, "temperature", lambda v: v > 0, "> 0")
    _check_float(est, "weight_decay", lambda v: v >= 0, ">= 0")
    if est.prompt_init not in INIT_STRATEGIES:
        raise InputError(f"prompt_init must be one of {INIT_STRATEGIES}, got {est.prompt_init!r}")
    if est.prompt_encoder not in PROMPT_ENCODERS:
        raise InputError(
            f"prompt_encoder must be one of {PROMPT_ENCODERS}, got {est.prompt_encoder!r}"
        )
    _check_float(est, "validation_fraction", lambda v: 0 < v < 1, "in (0, 1)")
    if not isinstance(est.verbose, (int, np.integer)):
        raise InputError(f"verbose must be an integer, got {est.verbose!r}")
    if not (isinstance(est.group_by_length, (bool, np.bool_)) or est.group_by_length == "auto"):
        raise InputError(
            f"group_by_length must be True, False or 'auto', got {est.group_by_length!r}"
        )
    if est.tuning not in TUNINGS:
        raise InputError(f"tuning must be one of {TUNINGS}, got {est.tuning!r}")
    d = est.deep_prompt
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
        raise InputError(f"deep_prompt must be an integer >= 0 (slots), got {d!r}")
    if est.deep_prompt_encoder not in DEEP_ENCODERS:
        raise InputError(
            f"deep_prompt_encoder must be one of {DEEP_ENCODERS}, got {est.deep_prompt_encoder!r}"
        )
    if est.backbone_learning_rate is not None:
        _check_float(est, "backbone_learning_rate", lambda v: v > 0, "> 0 (or None)")
    check_positive_int("lora_rank", est.lora_rank)
    _check_float(est, "lora_alpha", lambda v: v > 0, "> 0")
    _check_float(est, "mlm_loss_weight", lambda v: 0 <= v < 1, "in [0, 1)")
    if est.demonstrations not in DEMO_MODES:
        raise InputError(f"demonstrations must be one of {DEMO_MODES}, got {est.demonstrations!r}")
    if est.demo_max_tokens is not None:
        check_positive_int("demo_max_tokens", est.demo_max_tokens)
    if est.calibration not in CALIBRATIONS:
        raise InputError(f"calibration must be one of {CALIBRATIONS}, got {est.calibration!r}")
    texts = est.calibration_texts
    if texts is not None and (
        isinstance(texts, (str, bytes))
        or not hasattr(texts, "__len__")
        or len(texts) == 0
        or not all(isinstance(t, str) for t in texts)
    ):
        raise InputError(
            f"calibration_texts must be None or a non-empty list of strings, got {texts!r}"
        )
    for name in ("early_stopping", "warm_start"):
        if not isinstance(getattr(est, name), (bool, np.bool_)):
            raise InputError(f"{name} must be True or False, got {getattr(est, name)!r}")
    try:
        check_random_state(est.random_state)
    except ValueError:
        raise InputError(
            f"random_state must be None, an integer or a numpy RandomState, got"
            f" {est.random_state!r}"
        ) from None
    check_device(est.device)
    if est.checkpoint_dir is not None and not isinstance(est.checkpoint_dir, (str, os.PathLike)):
        raise InputError(
            f"checkpoint_dir must be a folder path or None, got {est.checkpoint_dir!r}"
        )
    if est.checkpoint_every is not None:
        check_positive_int("checkpoint_every", est.checkpoint_every)
        if est.checkpoint_dir is None:
            raise InputError(
                f"checkpoint_every={est.checkpoint_every} needs checkpoint_dir: set"
                " checkpoint_dir to the folder the checkpoints go to"
            )
    if est.gradient_accumulation_steps > est.batch_size:
        raise InputError(
            "gradient_accumulation_steps cannot exceed batch_size"
            f" ({est.gradient_accumulation_steps} > {est.batch_size})"
        )
