"""Adapt a masked LM to the user's domain: continued MLM training on unlabeled texts.

Task-adaptive pretraining (TAPT): before prompts are trained, the backbone reads the
task's own texts (never their labels) with the masked-LM objective, so its ``[MASK]``
position knows the domain's words and register. :func:`adapt` writes a new, regular
Hugging Face model folder (``from_pretrained`` loads it) plus ``pet_kit_adapt.json``
(provenance and held-out MLM loss/accuracy before and after). Prompts trained on the
adapted backbone record its own fingerprint and load only with it.

What trains (``train``): ``"head"`` (the MLM head's transform and bias), ``"top<N>"`` (the
last N encoder layers + head; default ``"top2"``) or ``"all"`` (every encoder layer +
head). Word embeddings stay frozen (and with them the decoder tied to them) unless
``train_embeddings=True``.

Runs are budgeted (``max_steps`` in all, ``max_minutes`` per call) and resumable: a
checkpoint folder (default: ``.NAME.adapt-checkpoint`` beside the output) holds the
trainable tensors, the AdamW moments and the step, written with one commit point every
``checkpoint_every`` steps, at the end of the time box and on Ctrl-C
(:mod:`.adapt_checkpoint`: it never deletes a file adapt did not write). Calling
:func:`adapt` again with the same texts and settings continues from it; the result is
bit-identical to an uninterrupted run (masks and batch order are functions of the seed and
the step). The output folder is written once, atomically, when ``max_steps`` is reached.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import InputError
from ..model.backbone import fingerprint, head_parts, transformers_quiet
from ..model.deep import layer_hooks_spec
from ..model.threads import torch_threads
from . import adapt_checkpoint as checkpoints

__all__ = [
    "ADAPT_FILE",
    "MIN_HELDOUT_TOKENS",
    "AdaptResult",
    "adapt",
    "heldout_caveat",
    "read_texts",
    "snapshot",
]

log = logging.getLogger(__name__)

#: Provenance file written into every adapted model folder.
ADAPT_FILE = "pet_kit_adapt.json"
_MAX_EVAL_TEXTS = 512
_EVAL_SEED = 2_654_435_761  # masks of the held-out texts: fixed, independent of ``seed``


# ----------------------------------------------------------------------------- texts
def read_texts(source: Any, text_column: str = "text") -> list[str]:
    """The unlabeled texts of ``source``; labels are never read.

    Parameters
    ----------
    source : list of str, str or PathLike, or datasets.Dataset
        Texts; a ``.txt`` file (one text per line); a ``.csv``/``.tsv``/``.jsonl`` file or
        a ``datasets.Dataset``, of which only ``text_column`` is read.
    text_column : str
        The column holding the texts in a table or dataset.

    Returns
    -------
    list of str
        The non-blank texts, in order.

    Raises
    ------
    InputError
        A missing file or column, a folder or FIFO given as the file, texts that are not
        strings or hold lone surrogates, or fewer than 2 texts.
    """
    from ..io.inputs import check_text

    if isinstance(source, (str, os.PathLike)):
        from ..io.tables import read_table

        path = Path(source)
        _check_texts_file(path, text_column)
        frame = read_table(path)
        if path.suffix.lower() == ".txt":
            text_column = "text"
        if text_column not in frame.columns:
            raise InputError(
                f"{path}: no column {text_column!r} (columns: {list(frame.columns)}); pass"
                " text_column= (pet-kit adapt --text-column) naming the texts' column"
            )
        texts: Sequence[Any] = frame[text_column].tolist()
        where = f"{path}: column {text_column!r}"
    elif hasattr(source, "column_names") and hasattr(source, "__getitem__"):  # datasets
        if text_column not in source.column_names:
            raise InputError(
                f"the dataset has no column {text_column!r} (columns: {source.column_names});"
                " pass text_column="
            )
        texts, where = list(source[text_column]), f"dataset column {text_column!r}"
    elif isinstance(source, Sequence) and not isinstance(source, bytes):
        texts, where = source, "texts"
    else:
        raise InputError(
            f"texts must be a list of strings, a file path or a datasets.Dataset, got"
            f" {type(source).__name__}"
        )
    out = []
    for i, text in enumerate(texts):
        text = check_text(text, f"{where}[{i}]")
        if text.strip():
            out.append(text.strip())
    if len(out) < 2:
        raise InputError(f"{where}: {len(out)} non-blank text(s); adapting needs at least 2")
    log.info("adapt: %d texts from %s", len(out), where)
    return out


def _check_texts_file(path: Path, text_column: str) -> None:
    """Refuse a folder, FIFO, socket or device given as the texts file (a missing path is
    left to the table reader, which says so)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode):
        return
    what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
    raise InputError(
        f"{path} is {what}; adapt reads its texts from a file, and again on every resumed"
        f" call: pass a .txt file (one text per line) or a .csv/.tsv/.jsonl file with a"
        f" {text_column!r} column (save streamed texts to a file first)"
    )


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 of the texts in order (recorded in the provenance, checked on resume)."""
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return "sha256:" + h.hexdigest()


def _split_heldout(texts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, held-out): the held-out texts are chosen by hash, so the split is stable."""
    n_eval = min(_MAX_EVAL_TEXTS, max(1, round(len(texts) * fraction)))
    if len(texts) - n_eval < 1:
        n_eval = len(texts) - 1
    keyed = sorted(range(len(texts)), key=lambda i: hashlib.sha1(texts[i].encode()).hexdigest())
    held = set(keyed[:n_eval])
    train = [t for i, t in enumerate(texts) if i not in held]
    return train, [texts[i] for i in sorted(held)]


# ------------------------------------------------------------------------ chunking
@dataclass(frozen=True)
class _Chunk:
    ids: array  # token ids ('i': 4 bytes a token, not a Python int object each)
    words: array  # word index per token (-1: special token)


def _special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence."""
    built = list(tokenizer(tokenizer.mask_token, add_special_tokens=True)["input_ids"])
    i = built.index(tokenizer.mask_token_id)
    return built[:i], built[i + 1 :]


def _local_words(words: list[int]) -> list[int]:
    """Word indices renumbered from 0 within one window (-1 stays -1), order kept:
    masking needs them distinct within a window only, so they stay below the window's
    length however long the text (a 32-bit array holds them)."""
    known = [w for w in words if w >= 0]
    base = min(known) if known else 0
    return [w - base if w >= 0 else -1 for w in words]


def _pieces(tokenizer: Any, texts: list[str], room: int) -> Iterator[tuple[list[int], list[int]]]:
    """Each text's (token ids, word index per token) in windows of at most ``room`` tokens,
    word indices counted from 0 in each window; special-token strings in a text are plain
    characters, and ``[UNK]`` gets word -1."""
    from ..model.encoding import tokenize_plain

    specials = set(tokenizer.all_special_ids)  # [UNK] from the text: nothing to learn
    for first in range(0, len(texts), 10_000):  # bounded memory for large corpora
        enc = tokenize_plain(tokenizer, texts[first : first + 10_000])
        for i, ids in enumerate(enc["input_ids"]):
            try:
                words = [-1 if w is None else int(w) for w in enc.word_ids(i)]
            except (ValueError, AttributeError):  # a slow tokenizer: a token is a word
                words = list(range(len(ids)))
            words = [-1 if t in specials else w for t, w in zip(ids, words, strict=True)]
            for start in range(0, len(ids), room):
                yield list(ids[start : start + room]), _local_words(words[start : start + room])


def _chunks(tokenizer: Any, texts: list[str], max_length: int, pack: bool = False) -> list[_Chunk]:
    """Tokenize ``texts`` and cut each into windows of at most ``max_length`` tokens, framed
    like one sequence. With ``pack``, consecutive windows share a sequence up to
    ``max_length`` tokens, separated by the separator token (fewer, fuller sequences)."""
    prefix, suffix = _special_frame(tokenizer)
    room = max(1, max_length - len(prefix) - len(suffix))
    sep = [tokenizer.sep_token_id] if pack and tokenizer.sep_token_id is not None else []
    out: list[_Chunk] = []
    ids: list[int] = []
    words: list[int] = []
    free = 0  # the next word index of the window: packed texts' words must not collide

    def flush() -> None:
        nonlocal free
        if ids:
            full = prefix + ids + suffix
            frame = [-1] * len(prefix) + words + [-1] * len(suffix)
            out.append(_Chunk(array("i", full), array("i", frame)))
        ids.clear()
        words.clear()
        free = 0

    for piece, wpiece in _pieces(tokenizer, texts, room):
        if not piece:
            continue
        if ids and (not pack or len(ids) + len(sep) + len(piece) > room):
            flush()
        if ids:
            ids.extend(sep)
            words.extend([-1] * len(sep))
        shifted = [w + free if w >= 0 else -1 for w in wpiece]
        free = max([free - 1, *shifted]) + 1
        ids.extend(piece)
        words.extend(shifted)
    flush()
    return out


def _mask_batch(
    chunks: Sequence[_Chunk],
    tokenizer: Any,
    generator: torch.Generator,
    probability: float,
    whole_word: bool,
) -> dict[str, torch.Tensor]:
    """BERT-style masking (80% [MASK], 10% random, 10% kept) of whole words or tokens."""
    width = max(len(c.ids) for c in chunks)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(chunks), width), pad, dtype=torch.long)
    attention = torch.zeros((len(chunks), width), dtype=torch.long)
    labels = torch.full((len(chunks), width), -100, dtype=torch.long)
    vocab = len(tokenizer)
    for row, chunk in enumerate(chunks):
        n = len(chunk.ids)
        ids[row, :n] = torch.tensor(chunk.ids.tolist())
        attention[row, :n] = 1
        # a masking unit: a word (whole-word masking) or a token; special tokens are never
        # masked (their word index is -1)
        units = [(w if whole_word else j) if w >= 0 else -1 for j, w in enumerate(chunk.words)]
        candidates = sorted({u for u in units if u >= 0})
        if not candidates:
            continue
        draw = torch.rand(len(candidates), generator=generator)
        chosen = {u for u, d in zip(candidates, draw.tolist(), strict=True) if d < probability}
        if not chosen:  # at least one masked unit per window
            chosen = {candidates[int(draw.argmin())]}
        where = [j for j, u in enumerate(units) if u in chosen]
        how = torch.rand(len(where), generator=generator).tolist()
        swap = torch.randint(vocab, (len(where),), generator=generator).tolist()
        for j, r, other in zip(where, how, swap, strict=True):
            labels[row, j] = chunk.ids[j]
            if r < 0.8:
                ids[row, j] = tokenizer.mask_token_id
            elif r < 0.9:
                ids[row, j] = other
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


# --------------------------------------------------------------------- trainables
def _trainable(model: nn.Module, train: str, train_embeddings: bool) -> dict[str, nn.Parameter]:
    """The parameters that ``train`` selects, by name (tied weights listed once)."""
    prefix = getattr(model, "base_model_prefix", "")
    layers, _ = layer_hooks_spec(model)
    if train == "head":
        top = 0
    elif train == "all":
        top = len(layers)
    else:
        top = int(train[3:])
        if not 0 <= top <= len(layers):
            raise InputError(
                f"train={train!r}: the model has {len(layers)} layers; use 'head', 'top1' to"
                f" 'top{len(layers)}' or 'all'"
            )
    chosen = {id(p) for layer in layers[len(layers) - top :] for p in layer.parameters()}
    embedding = model.get_input_embeddings().weight
    out: dict[str, nn.Parameter] = {}
    for name, param in model.named_parameters():
        in_head = not (prefix and name.startswith(prefix + "."))
        if param is embedding or "embeddings" in name.split("."):
            if train_embeddings:
                out[name] = param
        elif in_head or id(param) in chosen:
            out[name] = param
    return out


def _check_train(train: Any) -> str:
    """``train`` as ``"head"``, ``"top<N>"`` (ASCII digits) or ``"all"``."""
    if isinstance(train, (int, np.integer)) and not isinstance(train, bool) and train >= 0:
        return "head" if train == 0 else f"top{int(train)}"
    if isinstance(train, str) and (
        train in ("head", "all") or re.fullmatch("top[0-9]+", train) is not None
    ):
        return train
    raise InputError(
        f"train must be 'head', 'top<N>' (the last N layers + head, e.g. 'top2'), 'all' or"
        f" a number of layers, got {train!r}"
    )


# ------------------------------------------------------------------------- scoring
class _Mlm:
    """MLM loss/accuracy on masked rows only (the vocabulary projection is the costly part
    of a small model's forward pass, so only masked positions are projected)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.parts = head_parts(model)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
        """(summed loss, masked tokens, correct predictions)."""
        labels = batch["labels"]
        rows = labels >= 0
        n = int(rows.sum())
        if self.parts is None:
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logits = out.logits[rows]
        else:
            hidden = self.model.base_model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            h = self.parts.transform(hidden[rows])
            logits = h @ self.parts.weight.T
            if self.parts.bias is not None:
                logits = logits + self.parts.bias
        target = labels[rows]
        loss = nn.functional.cross_entropy(logits.float(), target, reduction="sum")
        correct = int((logits.argmax(-1) == target).sum())
        return loss, n, correct


def _evaluate(
    mlm: _Mlm, chunks: list[_Chunk], tokenizer: Any, cfg: _Config, device: torch.device
) -> dict[str, float]:
    """Held-out MLM loss and accuracy, with fixed masks (same before and after)."""
    gen = torch.Generator().manual_seed(_EVAL_SEED)
    total, count, right = 0.0, 0, 0
    was = mlm.model.training
    mlm.model.eval()
    with torch.no_grad():
        for start in range(0, len(chunks), cfg.batch_size):
            batch = _mask_batch(
                chunks[start : start + cfg.batch_size],
                tokenizer,
                gen,
                cfg.mlm_probability,
                cfg.whole_word_masking,
            )
            loss, n, ok = mlm({k: v.to(device) for k, v in batch.items()})
            total, count, right = total + float(loss), count + n, right + ok
    mlm.model.train(was)
    return {
        "loss": round(total / max(count, 1), 4),
        "accuracy": round(right / max(count, 1), 4),
        "masked_tokens": count,
    }


#: Fewer masked held-out tokens than this make the held-out MLM accuracy too noisy to
#: compare before and after (its standard error would be over 0.035).
MIN_HELDOUT_TOKENS = 200


def heldout_caveat(score: dict[str, Any] | None) -> str:
    """``""``, or a note that the held-out MLM score ``score`` (``heldout_before`` /
    ``heldout_after``) rests on fewer than :data:`MIN_HELDOUT_TOKENS` masked tokens and
    says too little to compare."""
    n = int(score.get("masked_tokens", 0)) if isinstance(score, dict) else 0
    if n >= MIN_HELDOUT_TOKENS:
        return ""
    return (
        f"the held-out set is too small to mean anything: {n} masked token(s), under"
        f" {MIN_HELDOUT_TOKENS}; adapt on more texts (or, in Python, a larger"
        " heldout_fraction) to measure the change"
    )


# --------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class _Config:
    """Everything that must match for a checkpoint to be resumed."""

    source: str
    source_fingerprint: str
    texts_sha256: str
    n_train_texts: int
    train: str
    train_embeddings: bool
    max_steps: int
    batch_size: int
    max_length: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    mlm_probability: float
    whole_word_masking: bool
    pack: bool
    seed: int

    def key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self)).encode()).hexdigest()[:32]


@dataclass
class _Progress:
    """Where a run stands: what a checkpoint records besides the tensors."""

    step: int
    seconds: float
    losses: list[float]
    before: dict[str, float]
    created: bool  # pet_kit made the checkpoint folder (so removes it once empty)


def _write_checkpoint(
    folder: Path,
    cfg: _Config,
    params: dict[str, nn.Parameter],
    optim: torch.optim.Optimizer,
    progress: _Progress,
) -> None:
    """Write the resumable state with one commit point (see :mod:`.adapt_checkpoint`)."""
    tensors: dict[str, torch.Tensor] = {}
    adam_steps = {}
    for name, p in params.items():
        tensors[f"param.{name}"] = p.detach().to("cpu").contiguous().clone()
        state = optim.state.get(p, {})
        if state:
            tensors[f"exp_avg.{name}"] = state["exp_avg"].detach().to("cpu").contiguous()
            tensors[f"exp_avg_sq.{name}"] = state["exp_avg_sq"].detach().to("cpu").contiguous()
            adam_steps[name] = float(state["step"])
    meta = {
        "config_key": cfg.key(),
        "config": dataclasses.asdict(cfg),
        "step": progress.step,
        "seconds": round(progress.seconds, 2),
        "adam_steps": adam_steps,
        "losses": progress.losses,
        "heldout_before": progress.before,
        "created_folder": progress.created,
    }
    checkpoints.write_state(folder, meta, tensors)


def _read_checkpoint(
    folder: Path, cfg: _Config, params: dict[str, nn.Parameter]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checkpoint's JSON and tensors, checked against the run (``cfg``, ``params``).

    Raises
    ------
    InputError
        The checkpoint belongs to another run (other texts, source or settings), or is
        damaged or edited.
    """
    meta, tensors = checkpoints.read_state(folder)
    if meta.get("config_key") != cfg.key():
        theirs = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        diff = [k for k, v in dataclasses.asdict(cfg).items() if theirs.get(k) != v]
        raise InputError(
            f"{folder}: this checkpoint is of another adapt run (differs in: {diff}); pass the"
            " same texts and settings to continue it, another checkpoint_dir, or resume=False"
            " to start over"
        )
    shapes = {name: p.shape for name, p in params.items()}
    checkpoints.check_state(folder, meta, tensors, cfg.max_steps, shapes)
    return meta, tensors


def _load_params(params: dict[str, nn.Parameter], tensors: dict[str, torch.Tensor]) -> None:
    """Copy a checkpoint's trained values into ``params``."""
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[f"param.{name}"].to(p.device, p.dtype))


def _restore(
    params: dict[str, nn.Parameter],
    optim: torch.optim.Optimizer,
    meta: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> None:
    _load_params(params, tensors)
    with torch.no_grad():
        for name, p in params.items():
            if name in meta["adam_steps"]:
                optim.state[p] = {
                    "step": torch.tensor(meta["adam_steps"][name]),
                    "exp_avg": tensors[f"exp_avg.{name}"].to(p.device).clone(),
                    "exp_avg_sq": tensors[f"exp_avg_sq.{name}"].to(p.device).clone(),
                }


# --------------------------------------------------------------------------- result
@dataclass
class AdaptResult:
    """What :func:`adapt` did.

    Attributes
    ----------
    path : Path or None
        The adapted model folder; ``None`` while the run is unfinished (time box reached
        before ``max_steps``: call :func:`adapt` again to continue).
    steps : int
        Optimizer steps done so far, over all calls.
    max_steps : int
    seconds : float
        Training time so far, over all calls.
    heldout_before, heldout_after : dict
        Held-out MLM ``loss``, ``accuracy`` and ``masked_tokens`` (``after`` is ``None``
        until the run is complete).
    checkpoint_dir : Path
    """

    path: Path | None
    steps: int
    max_steps: int
    seconds: float
    heldout_before: dict[str, float]
    heldout_after: dict[str, float] | None
    checkpoint_dir: Path
    losses: list[float] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether ``max_steps`` were reached and the model folder written."""
        return self.path is not None and self.steps >= self.max_steps


# ----------------------------------------------------------------------------- main
def _load_source(model: Any, device: str | None) -> tuple[nn.Module, Any, str, int | None]:
    """A private, trainable copy of the source masked LM (the caller's object untouched),
    its tokenizer, name and longest input (``None``: no limit known)."""
    from ..model.backbone import default_device, load_backbone

    if isinstance(model, nn.Module):
        backbone = load_backbone(model)
        source = copy.deepcopy(model)
        name = backbone.name
    else:
        from transformers import AutoModelForMaskedLM

        backbone = load_backbone(model, device="cpu")  # checks head, tokenizer, paths
        ref = backbone.model.name_or_path or backbone.name
        with transformers_quiet():  # no "Loading weights" bar: adapt has its own
            source = AutoModelForMaskedLM.from_pretrained(ref)
        name = backbone.name
    source.to(default_device(device))
    return source, backbone.tokenizer, name, backbone.max_positions()


def _capped_length(max_length: int, limit: int | None) -> int:
    """``max_length`` capped to the backbone's limit, as the estimators cap it."""
    if limit is not None and max_length > limit:
        log.info("max_length %d capped to the backbone's limit %d", max_length, limit)
        return limit
    return max_length


def _folder_path(value: Any, name: str) -> Path:
    """The folder path ``value`` (the argument ``name``) made absolute, refusing what no
    file system accepts."""
    try:
        text = os.fsdecode(os.fspath(value))
    except TypeError as exc:
        raise InputError(f"{name} must be a folder path (str or PathLike), got {value!r}") from exc
    if "\0" in text:
        raise InputError(
            f"{name} {text!r} contains a NUL byte ('\\x00'), which no file name may hold;"
            " remove it from the path"
        )
    return Path(text).expanduser().absolute()


def _check_output(output: Any) -> Path:
    """The output folder, checked before anything is loaded or trained: a new path or an
    empty folder (never a result, see :func:`~pet_kit.io.result_folder.check_replace`), not
    a symbolic link, inside a writable folder."""
    from ..io.result_folder import check_replace

    target = _folder_path(output, "output")
    if target.is_symlink():
        raise InputError(
            f"{target} is a symbolic link (to {os.readlink(target)}); adapt writes its output"
            " as a new folder renamed into place, which replaces a link rather than filling"
            f" the folder it points to: pass that folder's own path"
            f" ({os.path.realpath(target)}) or a new one"
        )
    fix = "adapt writes a new model folder: choose another output path"
    check_replace(target, overwrite=False, fix=fix, role="output folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} already exists; {fix}, or remove it yourself")
    parent = target.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{parent} is a file, so {target} cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"folder {parent} is not writable (no permission or a read-only file system), so"
            f" {target} cannot be created; choose a writable place for the output"
        )
    return target


def _check_run_args(threads: Any, seed: Any, device: Any, warmup_steps: Any) -> None:
    """The settings :class:`~pet_kit.PromptClassifier` checks the same way."""
    from ..config.settings import check_device, is_seed
    from ..io.inputs import check_threads

    check_threads("threads", threads)
    if not is_seed(seed):
        raise InputError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    check_device(device)
    if warmup_steps is not None and (
        not isinstance(warmup_steps, (int, np.integer))
        or isinstance(warmup_steps, bool)
        or warmup_steps < 0
    ):
        raise InputError(
            f"warmup_steps must be None (6% of max_steps) or an integer >= 0, got {warmup_steps!r}"
        )


def _write_output(
    target: Path, model: nn.Module, tokenizer: Any, provenance: dict[str, Any], ckpt: Path
) -> None:
    """Write the model folder next to ``target`` and rename it into place (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with transformers_quiet():  # no "Writing model shards" bar
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        (tmp / ADAPT_FILE).write_text(
            json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        try:
            os.rename(tmp, target)  # replaces an empty folder, never a non-empty one
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
            raise InputError(
                f"{target} appeared while adapting and is not empty; the adapted model was"
                f" not written. Run again with another output path and checkpoint_dir={ckpt}"
                " (the finished training is kept there)"
            ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _weights_digest(params: dict[str, nn.Parameter]) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode())
        h.update(params[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def adapt(
    texts: Any,
    output: str | os.PathLike[str],
    *,
    model: Any = None,
    text_column: str = "text",
    train: str | int = "top2",
    train_embeddings: bool = False,
    max_steps: int = 1000,
    max_minutes: float | None = None,
    batch_size: int = 32,
    max_length: int = 128,
    learning_rate: float = 1e-4,
    warmup_steps: int | None = None,
    weight_decay: float = 0.01,
    mlm_probability: float = 0.15,
    whole_word_masking: bool = True,
    pack: bool = False,
    heldout_fraction: float = 0.05,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 200,
    resume: bool = True,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
    verbose: int = 1,
    on_step: Callable[[int, float], None] | None = None,
) -> AdaptResult:
    """Continue the MLM training of a masked LM on unlabeled texts; write a new model folder.

    Parameters
    ----------
    texts : list of str, str or PathLike, or datasets.Dataset
        The unlabeled texts (see :func:`read_texts`); labels are never read.
    output : str or PathLike
        The new model folder (must not exist, or be empty).
    model : None, str, PathLike or PreTrainedModel
        The source masked LM (``None``: pet_kit's embedded default). A model object is
        copied, never modified.
    text_column : str
        The texts' column in a table file or dataset.
    train : {"head", "top<N>", "all"} or int
        What trains: the MLM head, the last N encoder layers + head, or all layers + head.
    train_embeddings : bool
        Also train the word embeddings (and the decoder tied to them). Off by default:
        prompts initialised from word vectors keep their meaning.
    max_steps : int
        Optimizer steps in all (over resumed calls); the output is written on reaching it.
    max_minutes : float, optional
        Time box of this call: on reaching it a checkpoint is written and the call returns
        an unfinished :class:`AdaptResult` (call again to continue).
    batch_size, max_length : int
        Windows per step, tokens per window (long texts are cut into several windows).
    learning_rate, weight_decay : float
        AdamW settings; the rate warms up linearly over ``warmup_steps`` (default: 6% of
        ``max_steps``) then decays linearly to 0 at ``max_steps``.
    mlm_probability : float
        Share of words (``whole_word_masking``) or tokens masked per window.
    pack : bool
        Pack several short texts into one window of ``max_length`` tokens (separated by
        the separator token): fewer, fuller windows per step, for corpora of short units.
    heldout_fraction : float
        Share of the texts (at most 512) kept out of training to measure MLM loss and
        accuracy before and after.
    checkpoint_dir : str or PathLike, optional
        Where the resumable state goes (default ``.NAME.adapt-checkpoint`` beside the
        output): a new or empty folder, or one holding only this run's checkpoint (a
        folder of other files is refused, see :mod:`.adapt_checkpoint`). When the output
        is written its checkpoint files are deleted, and the folder too if adapt made it
        and it is then empty.
    checkpoint_every : int
        Steps between checkpoints.
    resume : bool
        Continue a checkpoint of the same run if there is one (``False``: start over).
    seed : int
        Batch order and masks.
    device : str, optional
        ``None``: CUDA when available, else CPU.
    threads : int, optional
        torch CPU threads during the call (restored afterwards).
    verbose : int
        0: no progress bar.
    on_step : callable, optional
        Called as ``on_step(step, loss)`` after every optimizer step.

    Returns
    -------
    AdaptResult

    Raises
    ------
    InputError
        Bad settings or texts, an output folder that is not new or empty (or is a
        symbolic link), a checkpoint folder of other files, a checkpoint of another run
        or an edited one.
    SavedPromptError
        The output folder holds an adapted model (never replaced).
    KeyboardInterrupt
        After writing a checkpoint (call again to continue).
    """
    from ..io.inputs import check_positive_int, is_real_number

    train = _check_train(train)
    for name, value in (
        ("max_steps", max_steps),
        ("batch_size", batch_size),
        ("max_length", max_length),
        ("checkpoint_every", checkpoint_every),
    ):
        check_positive_int(name, value)
    for name, value, lo, hi in (
        ("learning_rate", learning_rate, 0.0, 1.0),
        ("mlm_probability", mlm_probability, 0.0, 1.0),
        ("heldout_fraction", heldout_fraction, 0.0, 0.5),
    ):
        if not is_real_number(value) or not math.isfinite(value) or not lo < value <= hi:
            raise InputError(f"{name} must be a number in ({lo:g}, {hi:g}], got {value!r}")
    if not is_real_number(weight_decay) or not 0 <= weight_decay <= 1:
        raise InputError(f"weight_decay must be a number in [0, 1], got {weight_decay!r}")
    if max_minutes is not None and (
        not is_real_number(max_minutes) or not math.isfinite(max_minutes) or max_minutes <= 0
    ):
        raise InputError(f"max_minutes must be None or a number > 0, got {max_minutes!r}")
    _check_run_args(threads, seed, device, warmup_steps)
    target = _check_output(output)
    default = checkpoint_dir is None
    ckpt = (
        target.parent / f".{target.name}.adapt-checkpoint"
        if default
        else _folder_path(checkpoint_dir, "checkpoint_dir")
    )
    created = checkpoints.prepare_folder(ckpt, target, default)
    all_texts = read_texts(texts, text_column)
    train_texts, held_texts = _split_heldout(all_texts, heldout_fraction)
    net, tokenizer, source_name, limit = _load_source(model, device)
    dev = next(net.parameters()).device
    warm = int(warmup_steps) if warmup_steps is not None else max(1, round(0.06 * max_steps))
    cfg = _Config(
        source=source_name,
        source_fingerprint=fingerprint(net),
        texts_sha256=texts_digest(all_texts),
        n_train_texts=len(train_texts),
        train=train,
        train_embeddings=bool(train_embeddings),
        max_steps=int(max_steps),
        batch_size=int(batch_size),
        max_length=_capped_length(int(max_length), limit),
        learning_rate=float(learning_rate),
        warmup_steps=warm,
        weight_decay=float(weight_decay),
        mlm_probability=float(mlm_probability),
        whole_word_masking=bool(whole_word_masking),
        pack=bool(pack),
        seed=int(seed),
    )
    with torch_threads(threads):
        return _run(
            cfg, net, tokenizer, train_texts, held_texts, target, ckpt, created, resume,
            checkpoint_every, max_minutes, verbose, on_step, dev,
        )  # fmt: skip


def _run(
    cfg: _Config,
    net: nn.Module,
    tokenizer: Any,
    train_texts: list[str],
    held_texts: list[str],
    target: Path,
    ckpt: Path,
    created: bool,
    resume: bool,
    checkpoint_every: int,
    max_minutes: float | None,
    verbose: int,
    on_step: Callable[[int, float], None] | None,
    dev: torch.device,
) -> AdaptResult:
    train_chunks = _chunks(tokenizer, train_texts, cfg.max_length, cfg.pack)
    _check_maskable(train_chunks, cfg.source)
    held_chunks = _chunks(tokenizer, held_texts, cfg.max_length, cfg.pack)
    net.requires_grad_(False)
    params = _trainable(net, cfg.train, cfg.train_embeddings)
    for p in params.values():
        p.requires_grad_(True)
    optim = torch.optim.AdamW(
        list(params.values()), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    mlm = _Mlm(net)
    step, seconds, losses = 0, 0.0, []
    if resume and checkpoints.has_state(ckpt):
        meta, tensors = _read_checkpoint(ckpt, cfg, params)
        _restore(params, optim, meta, tensors)
        step, seconds = int(meta["step"]), float(meta["seconds"])
        losses, before = list(meta["losses"]), meta["heldout_before"]
        log.info("adapt: resuming %s at step %d of %d", ckpt, step, cfg.max_steps)
    else:
        before = _evaluate(mlm, held_chunks, tokenizer, cfg, dev)
    log.info(
        "adapt: %d trainable tensors (%d values), %d train windows, %d held-out windows",
        len(params),
        sum(p.numel() for p in params.values()),
        len(train_chunks),
        len(held_chunks),
    )

    def rate(s: int) -> float:
        if s < cfg.warmup_steps:
            return (s + 1) / cfg.warmup_steps
        return max(0.0, (cfg.max_steps - s) / max(1, cfg.max_steps - cfg.warmup_steps))

    def save_state(seconds_now: float) -> None:
        progress = _Progress(step, seconds_now, losses, before, created)
        _write_checkpoint(ckpt, cfg, params, optim, progress)

    n = len(train_chunks)
    order_epoch, order = -1, []
    started = time.monotonic()
    deadline = started + max_minutes * 60 if max_minutes is not None else math.inf
    bar = tqdm(total=cfg.max_steps, initial=step, desc="adapt", disable=verbose <= 0)
    net.train()
    try:
        while step < cfg.max_steps and time.monotonic() < deadline:
            first = step * cfg.batch_size
            rows = []
            for k in range(first, first + cfg.batch_size):
                epoch = k // n
                if epoch != order_epoch:
                    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
                    order, order_epoch = torch.randperm(n, generator=gen).tolist(), epoch
                rows.append(train_chunks[order[k % n]])
            mask_gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step)
            batch = _mask_batch(
                rows, tokenizer, mask_gen, cfg.mlm_probability, cfg.whole_word_masking
            )
            for group in optim.param_groups:
                group["lr"] = cfg.learning_rate * rate(step)
            optim.zero_grad(set_to_none=True)
            # dropout draws from torch's global generators: seed them per step (inside a
            # fork, so the caller's random state is untouched) for exact resumes
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                torch.manual_seed(cfg.seed * 104_729 + step)
                loss, count, _ = mlm({k: v.to(dev) for k, v in batch.items()})
                loss = loss / max(count, 1)
                if not torch.isfinite(loss):
                    raise InputError(
                        f"adapt diverged at step {step + 1} (loss {float(loss)}); lower"
                        f" learning_rate (now {cfg.learning_rate:g}), e.g. by 10x, and pass"
                        " resume=True to continue from the last checkpoint"
                    )
                loss.backward()
            optim.step()
            step += 1
            value = float(loss.detach())
            losses.append(round(value, 4))
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
            if on_step is not None:
                on_step(step, value)
            if step % checkpoint_every == 0 and step < cfg.max_steps:
                save_state(seconds + time.monotonic() - started)
    except KeyboardInterrupt:
        seconds += time.monotonic() - started
        bar.close()
        save_state(seconds)
        log.warning("adapt interrupted at step %d: state saved to %s", step, ckpt)
        raise
    seconds += time.monotonic() - started
    bar.close()
    net.eval()
    if step < cfg.max_steps:
        save_state(seconds)
        log.warning(
            "adapt: unfinished: the time box ended the call at step %d of %d and no model"
            " folder was written yet (result.path is None); the state is saved in %s: call"
            " adapt again with the same texts and settings to continue",
            step,
            cfg.max_steps,
            ckpt,
        )
        return AdaptResult(None, step, cfg.max_steps, seconds, before, None, ckpt, losses)
    save_state(seconds)  # the finished training, kept until the model folder is in place
    after = _evaluate(mlm, held_chunks, tokenizer, cfg, dev)
    for p in net.parameters():
        p.requires_grad_(False)
    adapted_id = _weights_digest(params)
    net.config.pet_kit_adapted = adapted_id
    provenance = _provenance(cfg, net, params, train_texts, held_texts, step, seconds)
    provenance.update(heldout_before=before, heldout_after=after, train_losses=losses)
    _write_output(target, net.to("cpu"), tokenizer, provenance, ckpt)
    checkpoints.remove_state(ckpt, created)
    log.info(
        "adapt: wrote %s (held-out MLM accuracy %.3f -> %.3f)",
        target,
        before["accuracy"],
        after["accuracy"],
    )
    if heldout_caveat(after):
        log.warning("adapt: %s", heldout_caveat(after))
    return AdaptResult(target, step, cfg.max_steps, seconds, before, after, ckpt, losses)


def _check_maskable(chunks: list[_Chunk], source: str) -> None:
    """Refuse training windows with nothing to mask (every token ``[UNK]`` or special)."""
    if not any(w >= 0 for chunk in chunks for w in chunk.words):
        raise InputError(
            f"the texts give adapt nothing to mask: under the tokenizer of {source!r} every"
            " token is [UNK] or a special token (a script or language its vocabulary lacks?),"
            " so training would learn nothing; adapt texts in the model's language, or a"
            " model whose vocabulary covers them"
        )


def _provenance(
    cfg: _Config,
    net: nn.Module,
    params: dict[str, nn.Parameter],
    train_texts: list[str],
    held_texts: list[str],
    step: int,
    seconds: float,
) -> dict[str, Any]:
    import platform

    import transformers

    return {
        "format": "pet_kit.adapt",
        "pet_kit_version": __version__,
        "source": {"name": cfg.source, "fingerprint": cfg.source_fingerprint},
        "fingerprint": fingerprint(net),
        "texts": {
            "sha256": cfg.texts_sha256,
            "train": len(train_texts),
            "heldout": len(held_texts),
            "labels_read": False,
        },
        "trained": {
            "spec": cfg.train,
            "embeddings": cfg.train_embeddings,
            "tensors": len(params),
            "values": int(sum(p.numel() for p in params.values())),
        },
        "settings": dataclasses.asdict(cfg),
        "steps": step,
        "seconds": round(seconds, 1),
        "device": str(next(net.parameters()).device),
        "threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }


def snapshot(
    texts: Any,
    output: str | os.PathLike[str],
    *,
    checkpoint_dir: str | os.PathLike[str],
    model: Any = None,
    text_column: str = "text",
    heldout_fraction: float = 0.05,
    device: str | None = None,
    threads: int | None = None,
) -> AdaptResult:
    """Write an unfinished :func:`adapt` run's current weights as a model folder.

    The checkpoint is only read: the run continues from it as before. The folder is a
    regular adapted model (``from_pretrained``-loadable, its own fingerprint,
    ``pet_kit_adapt.json`` with ``"snapshot": true`` and the held-out MLM loss/accuracy
    at the checkpoint's step), for measuring a long run before it finishes.

    Parameters
    ----------
    texts, model, text_column, heldout_fraction
        As given to :func:`adapt` for this run (checked against the checkpoint).
    output : path
        A new folder (or an empty one).
    checkpoint_dir : path
        The run's checkpoint folder.
    device, threads
        Where the held-out evaluation runs.

    Returns
    -------
    AdaptResult
        ``path`` is ``output``; ``heldout_after`` is the held-out score at the checkpoint.

    Raises
    ------
    InputError
        No checkpoint in ``checkpoint_dir``, or one of another run (other texts, source).
    """
    _check_run_args(threads, 0, device, None)
    target = _check_output(output)
    ckpt = _folder_path(checkpoint_dir, "checkpoint_dir")
    if not checkpoints.has_state(ckpt):
        raise InputError(f"{ckpt}: no adapt checkpoint here ({checkpoints.STATE_JSON} is missing)")
    try:
        cfg = _Config(**checkpoints.read_meta(ckpt)["config"])
    except (KeyError, TypeError) as exc:
        raise InputError(
            f"{ckpt / checkpoints.STATE_JSON}: no readable 'config' ({exc}); the file was"
            " edited or damaged"
        ) from exc
    all_texts = read_texts(texts, text_column)
    train_texts, held_texts = _split_heldout(all_texts, heldout_fraction)
    net, tokenizer, _, _ = _load_source(model, device)
    if fingerprint(net) != cfg.source_fingerprint or texts_digest(all_texts) != cfg.texts_sha256:
        raise InputError(
            f"{ckpt}: this checkpoint is of another adapt run (other source model or texts);"
            " pass the texts and model the run was started with"
        )
    dev = next(net.parameters()).device
    net.requires_grad_(False)
    params = _trainable(net, cfg.train, cfg.train_embeddings)
    meta, tensors = _read_checkpoint(ckpt, cfg, params)
    _load_params(params, tensors)
    with torch_threads(threads):
        held_chunks = _chunks(tokenizer, held_texts, cfg.max_length, cfg.pack)
        after = _evaluate(_Mlm(net), held_chunks, tokenizer, cfg, dev)
    step, seconds = int(meta["step"]), float(meta["seconds"])
    net.config.pet_kit_adapted = _weights_digest(params)
    provenance = _provenance(cfg, net, params, train_texts, held_texts, step, seconds)
    provenance.update(snapshot=True, heldout_before=meta["heldout_before"], heldout_after=after)
    _write_output(target, net.to("cpu"), tokenizer, provenance, ckpt)
    log.info(
        "adapt: snapshot of step %d written to %s (held-out accuracy %.3f)",
        step,
        target,
        after["accuracy"],
    )
    return AdaptResult(
        target, step, cfg.max_steps, seconds, meta["heldout_before"], after, ckpt, meta["losses"]
    )
