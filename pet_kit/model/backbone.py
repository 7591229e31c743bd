"""Loading, freezing and identifying the masked-LM backbone.

* Backbones given by name/path are loaded once per process and shared by every
  estimator (one model, many prompts); they are put in eval mode and frozen.
* A model *object* passed by the caller is never changed: while pet_kit uses it,
  :func:`frozen` switches it to eval mode with ``requires_grad=False`` and restores
  every flag afterwards; its weights are never written.
* A backbone whose MLM-head weights are missing from the checkpoint is refused:
  a randomly initialised head would silently give random answers.
* Every backbone has an identity, its :func:`fingerprint`: a SHA-256 digest of every
  weight (and the architecture-defining config). A saved prompt records it and is used
  only on a backbone with the same one (:func:`identity_matches`).
* Each load logs one line at INFO (``loading backbone NAME on DEVICE ...``); with the
  default ``verbose=0`` of :func:`load_backbone`, transformers' own progress bars
  ("Loading weights", hub downloads) and its messages below ERROR stay off during the
  load (:func:`transformers_quiet`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config.settings import check_device
from ..errors import BackboneError

__all__ = [
    "Backbone",
    "HeadParts",
    "check_tokenizer",
    "fingerprint",
    "frozen",
    "head_parts",
    "identity_matches",
    "legacy_fingerprint",
    "load_backbone",
    "transformers_quiet",
]

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, str, str], Backbone] = {}
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
_CACHE_LOCK = threading.Lock()


@dataclass
class HeadParts:
    """The MLM head split so that only label-word rows need projecting.

    ``logits = transform(hidden) @ weight[rows].T + bias[rows]``.
    """

    transform: Callable[[torch.Tensor], torch.Tensor]
    weight: torch.Tensor
    bias: torch.Tensor | None


def head_parts(model: nn.Module) -> HeadParts | None:
    """Return the head of a known masked-LM class split into transform + decoder.

    Unknown architectures return ``None`` and pet_kit falls back to the model's full
    forward pass (still exact, just slower).
    """
    name = type(model).__name__
    decoder = model.get_output_embeddings()
    if decoder is None or not hasattr(decoder, "weight"):
        return None
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    bias = getattr(decoder, "bias", None)
    if name == "BertForMaskedLM":
        transform = model.cls.predictions.transform
    elif name in (
        "RobertaForMaskedLM",
        "XLMRobertaForMaskedLM",
        "CamembertForMaskedLM",
        "MPNetForMaskedLM",
    ):
        head = model.lm_head

        def transform(h: torch.Tensor, head: nn.Module = head) -> torch.Tensor:
            return head.layer_norm(nn.functional.gelu(head.dense(h)))

        if bias is None:
            bias = getattr(head, "bias", None)
    elif name == "AlbertForMaskedLM":
        head = model.predictions

        def transform(h: torch.Tensor, head: nn.Module = head) -> torch.Tensor:
            return head.LayerNorm(head.activation(head.dense(h)))

    elif name == "DistilBertForMaskedLM":

        def transform(h: torch.Tensor, m: nn.Module = model) -> torch.Tensor:
            return m.vocab_layer_norm(m.activation(m.vocab_transform(h)))

    elif name == "ElectraForMaskedLM":
        transform = model.generator_predictions
    if transform is None:
        return None
    return HeadParts(transform=transform, weight=decoder.weight, bias=bias)


@dataclass
class Backbone:
    """A masked LM with its tokenizer.

    Attributes
    ----------
    model : transformers.PreTrainedModel
    tokenizer : transformers.PreTrainedTokenizerBase
    name : str
        Human-readable identity (hub name, path, or class name of an object).
    owned : bool
        Whether pet_kit loaded it (and may keep it frozen) or the caller passed it.
    """

    model: Any
    tokenizer: Any
    name: str
    owned: bool
    _fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """The backbone's identity: a digest of all its weights (see :func:`fingerprint`).

        A private copy (a LoRA / full-tuning copy, an int8 copy) is made with the identity
        of the backbone it derives from, which it keeps. Otherwise the digest is that of
        :attr:`model` as it is now: cached per model object and computed again once a
        weight changed in place.
        """
        if self._fingerprint is not None:
            return self._fingerprint
        return fingerprint(self.model)

    def max_positions(self) -> int | None:
        """Longest input the model accepts (position embeddings / tokenizer limit)."""
        cfg = self.model.config
        limits = []
        mpe = getattr(cfg, "max_position_embeddings", None)
        if isinstance(mpe, int) and mpe > 0:
            if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
                mpe -= (getattr(cfg, "pad_token_id", 1) or 0) + 1  # RoBERTa's position offset
            limits.append(mpe)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        return min(limits) if limits else None

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device


#: Prefix of :func:`fingerprint`'s digests; a recorded identity with the older prefix
#: ``"sha256:"`` is a :func:`legacy_fingerprint`.
FINGERPRINT_PREFIX = "weights-sha256:"
_LEGACY_PREFIX = "sha256:"
#: Elements of each tensor sampled into the cache key (see :func:`fingerprint`).
_PROBE = 64
#: Per model object: (cache key, digest).
_DIGESTS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], str]] = (
    weakref.WeakKeyDictionary()
)
_DIGESTS_LOCK = threading.Lock()


def _config_identity(model: nn.Module) -> dict[str, Any]:
    """The architecture-defining config values (and an adapted model's marker)."""
    cfg = model.config
    keys = (
        "model_type",
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "embedding_size",
        "dim",
        "n_layers",
    )
    ident = {k: getattr(cfg, k, None) for k in keys}
    adapted = getattr(cfg, "pet_kit_adapted", None)
    if adapted:  # pet_kit.train.adapt's record of its trained weights
        ident["pet_kit_adapted"] = str(adapted)
    return ident


def _weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every tensor of the model's ``state_dict``, in name order (tied weights under
    each of their names)."""
    state = model.state_dict(keep_vars=False)
    return [(name, state[name]) for name in sorted(state) if isinstance(state[name], torch.Tensor)]


def _probe(t: torch.Tensor) -> bytes:
    """A few evenly spaced elements of ``t``, as bytes (a cheap check for writes that
    bypass the version counter, such as ``param.data.copy_(...)``)."""
    flat = t.detach().reshape(-1)
    step = max(1, flat.numel() // _PROBE)
    return bytes(_as_bytes(flat[::step][:_PROBE]))


def _as_bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of ``t`` (any dtype, any device), C order, without a copy when
    ``t`` is a contiguous CPU tensor."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if not flat.numel():
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy())


def _cache_key(model: nn.Module, weights: list[tuple[str, torch.Tensor]]) -> tuple[Any, ...]:
    """What changes whenever a weight does: storage, in-place version, dtype, shape and
    a sample of the values of every tensor, and the config identity."""
    parts: list[Any] = [json.dumps(_config_identity(model), sort_keys=True, default=str)]
    for name, t in weights:
        parts.append(
            (name, t.data_ptr(), t._version, str(t.dtype), tuple(t.shape), t.stride(), _probe(t))
        )
    return tuple(parts)


def _digest(model: nn.Module, weights: list[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over the config identity and every tensor's name, dtype, shape and bytes;
    a tensor stored under several names (tied weights) is read once."""
    h = hashlib.sha256(json.dumps(_config_identity(model), sort_keys=True, default=str).encode())
    seen: dict[tuple[Any, ...], str] = {}
    for name, t in weights:
        where = (t.device.type, t.data_ptr(), str(t.dtype), tuple(t.shape), t.stride())
        digest = seen.get(where)
        if digest is None:
            digest = seen[where] = hashlib.sha256(_as_bytes(t)).hexdigest()
        h.update(json.dumps([name, str(t.dtype), list(t.shape), digest]).encode())
    return FINGERPRINT_PREFIX + h.hexdigest()[:32]


def fingerprint(model: nn.Module) -> str:
    """The identity of a masked LM: a SHA-256 digest of all its weights.

    The digest covers the architecture-defining config values and every tensor of the
    model's ``state_dict`` (weights and persistent buffers), by name in sorted order:
    name, dtype, shape and raw bytes. Two models get the same fingerprint exactly when
    they hold the same weights, so a prompt trained on one is never silently used on
    another (e.g. a checkpoint with other encoder layers but the same embeddings). A
    model written by :func:`pet_kit.train.adapt.adapt` also records a digest of its
    trained weights in its config (``pet_kit_adapted``), which enters the digest too.

    Cost: one pass over the weights on one CPU core (0.07 to 0.11 s for the default
    backbone's 91 MB, as long as the older config-and-embeddings digest took; 0.44 to
    0.49 s for a BERT-base; 3 to 10 ms when cached). The result is cached per model
    object, keyed on every tensor's storage, autograd version counter and a sample of
    its values, so it is computed again after any in-place change (``load_state_dict``,
    an optimizer step, ``with torch.no_grad(): p.add_(...)``) and reused otherwise. A
    write through ``param.data`` bypasses the version counter: it is noticed when it
    changes one of the sampled elements (as copying other weights in does).

    Returns
    -------
    str
        ``"weights-sha256:"`` and 32 hexadecimal digits. Prompts saved by pet_kit
        before this digest record a :func:`legacy_fingerprint` (``"sha256:..."``).
    """
    weights = _weights(model)
    key = _cache_key(model, weights)
    with _DIGESTS_LOCK:
        hit = _DIGESTS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    digest = _digest(model, weights)
    with _DIGESTS_LOCK:
        _DIGESTS[model] = (key, digest)
    return digest


def legacy_fingerprint(model: nn.Module) -> str:
    """The identity pet_kit recorded before :func:`fingerprint` covered every weight:
    SHA-256 over the config identity and the input embeddings only (``"sha256:..."``).

    Used only to recognise prompts saved by those versions (:func:`identity_matches`).
    """
    h = hashlib.sha256(json.dumps(_config_identity(model), sort_keys=True).encode())
    emb = model.get_input_embeddings().weight.detach().to("cpu", torch.float32).contiguous()
    h.update(emb.numpy().tobytes())
    return _LEGACY_PREFIX + h.hexdigest()[:32]


def identity_matches(backbone: Backbone, recorded: Any, where: str = "") -> bool:
    """Whether ``recorded`` (a saved prompt's backbone fingerprint) is ``backbone``'s.

    A :func:`legacy_fingerprint` (saved by an older pet_kit) is compared as such, with a
    warning: it does not cover the encoder's weights, so they cannot be checked; saving
    the prompt again records the full identity.

    Parameters
    ----------
    backbone : Backbone
    recorded : object
        The recorded fingerprint (anything else never matches).
    where : str
        The file it was read from, for the warning.
    """
    if not isinstance(recorded, str):
        return False
    if recorded.startswith(FINGERPRINT_PREFIX):
        return recorded == backbone.fingerprint
    if not recorded.startswith(_LEGACY_PREFIX) or recorded != legacy_fingerprint(backbone.model):
        return False
    log.warning(
        "%s: this prompt records an older backbone identity that covers only the config"
        " and input embeddings, so the other weights of %r cannot be checked; save the"
        " prompt again to record the full one",
        where or "a saved prompt",
        backbone.name,
    )
    return True


#: Models inside :func:`frozen`: id -> [users, the model, saved modes, saved grad flags].
_FROZEN: dict[int, list[Any]] = {}
_FROZEN_LOCK = threading.Lock()


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily put ``model`` in eval mode with all gradients off; restore after.

    Re-entrant and thread-safe: the first user (in any thread) saves the flags, the last
    one to leave restores them, so overlapping uses (nested, or predictions in several
    threads) neither unfreeze the model under another user nor leave it frozen.
    """
    key = id(model)
    with _FROZEN_LOCK:
        entry = _FROZEN.get(key)
        if entry is None:
            modes = [(m, m.training) for m in model.modules()]
            grads = [(p, p.requires_grad) for p in model.parameters()]
            entry = _FROZEN[key] = [0, model, modes, grads]
            model.eval()
            for p, _ in grads:
                p.requires_grad_(False)
        entry[0] += 1
    try:
        yield model
    finally:
        with _FROZEN_LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                del _FROZEN[key]
                for m, was in entry[2]:
                    m.training = was
                for p, was in entry[3]:
                    p.requires_grad_(was)


#: Users inside :func:`transformers_quiet` and the settings the first one saved.
_QUIET: list[Any] = [0, None]
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def transformers_quiet() -> Iterator[None]:
    """Turn transformers' progress bars (and huggingface_hub's) off and its logging to
    ERROR for the block; the previous settings are restored afterwards.

    These settings are process-wide: while a block runs they apply to every thread.
    Re-entrant and thread-safe: the first user saves the settings, the last one to leave
    restores them, so overlapping quiet loads never leave the bars off for good.
    """
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("transformers")
    with _QUIET_LOCK:
        if _QUIET[0] == 0:
            _QUIET[1] = (
                logger.level,
                hf_logging.is_progress_bar_enabled(),
                not hub_utils.are_progress_bars_disabled(),
            )
            with warnings.catch_warnings():  # HF_HUB_DISABLE_PROGRESS_BARS=0 has priority
                warnings.simplefilter("ignore")
                hf_logging.disable_progress_bar()  # transformers' and the hub's
            logger.setLevel(logging.ERROR)
        _QUIET[0] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET[0] -= 1
            if _QUIET[0] == 0:
                level, bars, hub_bars = _QUIET[1]
                logger.setLevel(level)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if bars:
                        hf_logging.enable_progress_bar()  # re-enables the hub's too
                    if hub_bars:
                        hub_utils.enable_progress_bars()
                    elif bars:
                        hub_utils.disable_progress_bars()


def _head_missing(model: nn.Module, missing: list[str]) -> list[str]:
    prefix = getattr(model, "base_model_prefix", "")
    return [k for k in missing if not (prefix and k.startswith(prefix + "."))]


#: Seconds :func:`_hub_unreachable` waits for the hub's answer.
HUB_TIMEOUT = 3.0
_TRUE = ("1", "ON", "YES", "TRUE")


def _hub_unreachable(timeout: float = HUB_TIMEOUT) -> str | None:
    """Why the Hugging Face hub cannot be used now (``None``: it can): offline mode
    (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), or no answer within ``timeout``
    seconds to one request, without retries (proxies as configured)."""
    from huggingface_hub import constants

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    set_now = [n for n in names if os.environ.get(n, "").strip().upper() in _TRUE]
    if set_now or constants.HF_HUB_OFFLINE:
        return f"{'/'.join(set_now or names)} is set: offline mode"
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # no network, DNS, refused, timed out, proxy error
        name = type(exc).__name__
        return f"no answer from {constants.ENDPOINT}: {name}, waited {timeout:g} s at most"
    return None


def _in_hub_cache(ref: str) -> bool:
    """Whether the hub model ``ref`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(ref, "config.json"), str)
    except Exception:  # not a valid hub id
        return False


def _cached_names() -> list[str]:
    """The models in the local Hugging Face cache (for a did-you-mean)."""
    try:
        from huggingface_hub import scan_cache_dir

        return [r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model"]
    except Exception:  # no cache yet, an unreadable one
        return []


def _hub_files_only(ref: str, what: str = "model") -> bool:
    """For a name that is not a local folder: whether to load it from the local cache
    only (the hub cannot be reached, and the cache has it).

    Raises
    ------
    BackboneError
        The hub cannot be reached and the cache does not have ``ref``: at once, instead
        of a minute of download retries.
    """
    why = _hub_unreachable()
    if why is None:
        return False
    if _in_hub_cache(ref):
        return True
    from ..config.schema import did_you_mean

    raise BackboneError(
        f"{what} {ref!r} is not a local folder nor in the Hugging Face cache, and the hub"
        f" cannot be reached ({why}){did_you_mean(ref, _cached_names())}. Check the name"
        " (a hub id such as 'bert-base-uncased'), pass a local folder (HF format:"
        " config.json + weights), or omit `model` for pet_kit's offline default backbone;"
        " to download it, connect to the hub with offline mode off"
    )


def _load_pretrained(ref: str, tokenizer_ref: str | None, device: str | None) -> Backbone:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    local = Path(ref).expanduser()
    # a hub id is "name" or "org/name"; anything else that does not exist is a bad path
    path_like = ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref
    if path_like and not local.exists():
        raise BackboneError(
            f"model path {ref!r} does not exist; pass an existing folder or a hub model name"
        )
    cached_only = not local.exists() and _hub_files_only(ref)
    tok_ref = tokenizer_ref or ref
    tok_cached_only = cached_only
    if tok_ref != ref and not Path(tok_ref).expanduser().exists():
        tok_cached_only = _hub_files_only(tok_ref, "tokenizer")
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            ref, output_loading_info=True, local_files_only=cached_only
        )
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise BackboneError(
                f"{ref!r} is not a masked language model ({exc.args[0].splitlines()[0]}); pass a"
                " BERT-style masked LM such as bert-base-uncased or roberta-base"
            ) from exc
        raise BackboneError(f"cannot load model {ref!r}: {exc}") from exc
    except OSError as exc:
        raise BackboneError(
            f"cannot load model {ref!r}: {exc}. Without hub access, pass a local folder"
            " (HF format: config.json + weights); omit `model` for pet_kit's offline default"
        ) from exc
    except Exception as exc:  # damaged weights, refused pickles, ...: never a raw traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BackboneError(
            f"cannot load model {ref!r}: its files are damaged or unsafe to load"
            f" ({type(exc).__name__}: {first[:300]}). pet_kit loads weights only from"
            " safetensors or torch files that hold plain tensors (no pickled code); re-save"
            " the model with save_pretrained or restore its files"
        ) from exc
    missing = _head_missing(model, list(info.get("missing_keys", [])))
    if missing:
        shown = ", ".join(sorted(missing)[:4]) + (" ..." if len(missing) > 4 else "")
        raise BackboneError(
            f"{ref!r} has no trained MLM head: the checkpoint lacks {shown}. A randomly"
            " initialised head would give random cloze answers. Use a checkpoint saved with"
            " its masked-LM head (e.g. a *ForMaskedLM model), or omit `model` to use"
            " pet_kit's offline default backbone"
        )
    if tokenizer_ref is None and local.is_dir():
        if not any((local / f).is_file() for f in _TOKENIZER_FILES):
            raise BackboneError(
                f"{ref!r} has no tokenizer files (none of {', '.join(_TOKENIZER_FILES)});"
                " save the tokenizer next to the model (tokenizer.save_pretrained(folder)) or"
                " pass tokenizer=..."
            )
    try:
        tok = AutoTokenizer.from_pretrained(tok_ref, local_files_only=tok_cached_only)
    except Exception as exc:
        raise BackboneError(
            f"cannot load the tokenizer for {ref!r}: {type(exc).__name__}: {exc}"
        ) from exc
    check_tokenizer(model, tok, ref)
    model.eval()
    model.requires_grad_(False)
    if device:
        try:
            model.to(device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise BackboneError(
                f"cannot put model {ref!r} on device {device!r} ({exc}); use 'cpu', or"
                " 'cuda' on a machine with a CUDA GPU"
            ) from exc
    return Backbone(model=model, tokenizer=tok, name=ref, owned=True)


def check_tokenizer(model: nn.Module, tokenizer: Any, name: str) -> None:
    """Refuse a tokenizer that cannot belong to ``model``.

    Raises
    ------
    BackboneError
        The tokenizer produces ids beyond the model's embedding matrix (it belongs to
        another model), or it has no mask token.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    try:
        n = len(tokenizer)
    except TypeError:
        return
    if n > rows:
        raise BackboneError(
            f"the tokenizer of {name!r} has {n} tokens but the model's embedding matrix has"
            f" only {rows} rows: the tokenizer belongs to another model. Pass the model's own"
            " tokenizer"
        )
    if getattr(tokenizer, "mask_token_id", None) is None:
        raise BackboneError(
            f"the tokenizer of {name!r} has no mask token, so it cannot serve a masked LM;"
            " use the tokenizer that belongs to the masked-LM backbone"
        )


def default_device(requested: str | None) -> str:
    """Resolve ``device=None/'auto'`` to ``'cuda'`` when available, else ``'cpu'``."""
    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(requested)


def load_backbone(
    model: Any = None, tokenizer: Any = None, device: str | None = None, *, verbose: int = 0
) -> Backbone:
    """Return the backbone for an estimator's ``model``/``tokenizer`` parameters.

    Parameters
    ----------
    model : None, str, PathLike or transformers.PreTrainedModel
        ``None`` selects pet_kit's embedded default (offline); a string is a hub name
        or a local folder; a model object is used as is (never modified).
    tokenizer : None, str, PathLike or tokenizer object
        Defaults to the model's own tokenizer.
    device : str, optional
        For backbones pet_kit loads: where to put them (``None``: CUDA if available).
        A model object stays where the caller put it.
    verbose : int, default=0
        ``0``: transformers' own progress bars ("Loading weights", downloads) and its
        messages below ERROR are off while loading (:func:`transformers_quiet`);
        ``1`` or more: they show as transformers is configured. Either way, a load logs
        ``loading backbone NAME on DEVICE ...`` at INFO (a cached backbone: nothing).

    Raises
    ------
    BackboneError
        Not a masked LM, missing MLM-head weights, unreadable path, no tokenizer.
    InputError
        ``device`` is not a torch device, or CUDA without a GPU
        (:func:`~pet_kit.config.settings.check_device`).
    """
    if isinstance(model, nn.Module):
        if not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
            raise BackboneError(
                f"the model object ({type(model).__name__}) has no MLM head; pass a"
                " *ForMaskedLM model (e.g. AutoModelForMaskedLM.from_pretrained(...))"
            )
        tok = tokenizer
        if tok is None or isinstance(tok, (str, os.PathLike)):
            from transformers import AutoTokenizer

            ref = tok or getattr(model, "name_or_path", None)
            if not ref:
                raise BackboneError(
                    "a model object was given without a tokenizer; pass tokenizer=..."
                )
            try:
                with transformers_quiet() if verbose <= 0 else contextlib.nullcontext():
                    tok = AutoTokenizer.from_pretrained(os.fspath(ref))
            except Exception as exc:
                raise BackboneError(
                    f"cannot load the tokenizer {os.fspath(ref)!r}: {type(exc).__name__}: {exc}"
                    "; pass tokenizer=..."
                ) from exc
        name = getattr(model, "name_or_path", "") or type(model).__name__
        check_tokenizer(model, tok, str(name))
        return Backbone(model=model, tokenizer=tok, name=str(name), owned=False)
    if model is None:
        from .default_backbone import DEFAULT_MODEL_NAME, default_model_path

        ref, name = str(default_model_path()), DEFAULT_MODEL_NAME
    elif isinstance(model, (str, os.PathLike)):
        ref = name = os.fspath(model)
    else:
        raise BackboneError(
            f"model must be None, a name/path or a masked-LM object (got {type(model).__name__})"
        )
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        raise BackboneError("with a model name/path, pass the tokenizer as a name/path too")
    check_device(device)
    dev = default_device(device)
    key = (ref, os.fspath(tokenizer) if tokenizer else "", dev)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            log.info("loading backbone %s on %s ...", name, dev)
            with transformers_quiet() if verbose <= 0 else contextlib.nullcontext():
                hit = _load_pretrained(ref, os.fspath(tokenizer) if tokenizer else None, dev)
            hit.name = name
            _CACHE[key] = hit
    return hit


def clear_backbone_cache() -> None:
    """Forget the backbones loaded so far (frees memory once no estimator uses them)."""
    with _CACHE_LOCK:
        _CACHE.clear()
