"""The training driver: from resolved settings, a :class:`~pet_kit.ClozeModel` and data
to a trained model.

:func:`fit` is the one entry point: every estimator's fit (``PromptClassifier``, and
through it ensembles and cross-validation; shared multi-task prompts) runs its recipe:
:func:`training_data` reads and encodes the labelled examples once (hard or soft labels,
the demonstration pool); :func:`prepare` sets up what trains (soft prompt, what the
tuning method adds, deep prompt), continued from a fitted model on a warm start;
:func:`train_model` runs :func:`~pet_kit.train.loop.train_prompt` and writes checkpoints;
:func:`finish` freezes the result and :func:`calibration_prior` estimates the prior. The
trainer changes the model only through its methods.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from ..config.pvp import PVP
from ..config.settings import INIT_STRATEGIES, Calibration, Settings, is_transfer
from ..errors import BackboneMismatchError, InputError, NothingTrainedWarning
from ..io.inputs import to_label_indices, to_records
from ..io.prompt_folder import META_FILE, TENSOR_FILE, read_prompt_dir
from ..model.backbone import frozen, identity_matches
from ..model.backbone_tuning import mlm_loss_fn, training_params
from ..model.cloze_model import ClozeModel
from ..model.deep import initial_states
from ..model.demonstrations import DemoPool
from ..model.encoding import Encoded
from ..model.prompt_tensors import loaded_slots
from ..model.scorer import Scorer
from ..model.soft_prompt import SoftPrompt
from ..model.state_cache import CachedStates
from ..tuning import METHODS
from . import guard
from .loop import TrainConfig, TrainingInterrupted, TrainResult, steps_per_epoch, train_prompt
from .shared import MixedScorer, mix

__all__ = [
    "Fitted",
    "TaskData",
    "TrainingData",
    "TrainingInterrupted",
    "calibration_prior",
    "finish",
    "fit",
    "fit_summary",
    "prepare",
    "read_unlabeled",
    "saved_slots",
    "train_config",
    "train_model",
    "trained_parts",
    "training_data",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingData:
    """Encoded labelled examples.

    Attributes
    ----------
    examples : list of Encoded
    y : ndarray
        Label indices (for soft labels: their row-wise argmax).
    targets : ndarray
        What the loss trains on: ``y``, or the soft labels ``(n, n_classes)``.
    pool : DemoPool or None
        The demonstration pool (the training data itself), with demonstrations.
    weights : ndarray or None
        One weight > 0 per example multiplying its loss (``None``: all equal).
    records : list of dict
        The inputs as read (one field dict each), for what else reads ``X`` (the
        auxiliary MLM loss, the calibration prior).
    """

    examples: list[Encoded]
    y: np.ndarray
    targets: np.ndarray
    pool: DemoPool | None
    weights: np.ndarray | None = None
    records: list[dict[str, str]] = dataclasses.field(default_factory=list)


def _soft_labels(y: Any, labels: list[Any], n: int) -> np.ndarray | None:
    """``y`` as an ``(n, n_labels)`` float array if it is one (soft labels), else ``None``."""
    if isinstance(y, (str, bytes)) or not hasattr(y, "__len__"):
        return None
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 2:
        return None
    if arr.shape != (n, len(labels)):
        raise InputError(
            f"soft labels y must have shape (n_examples, n_classes) = ({n}, {len(labels)}),"
            f" columns in classes_ order {labels}; got shape {arr.shape}"
        )
    if not np.isfinite(arr).all() or (arr < 0).any() or not np.allclose(arr.sum(1), 1, atol=1e-3):
        raise InputError(
            "soft labels y must be class probabilities: finite, non-negative, each row summing"
            f" to 1 (columns in classes_ order {labels})"
        )
    return (arr / arr.sum(1, keepdims=True)).astype(np.float32)


def training_data(model: ClozeModel, X: Any, y: Any) -> TrainingData | None:
    """Encode ``(X, y)`` for ``model``; ``None`` for zero-shot (``X`` is ``None``).

    Raises
    ------
    InputError
        ``y`` without ``X`` or the reverse, an empty ``X`` (no examples: an empty list,
        a filtered DataFrame without rows; zero-shot is ``fit(None)``), one class only,
        unknown labels, malformed soft labels, or demonstrations without examples.
    """
    demos = model.encoder.demos
    if X is None:
        if y is not None and len(y):
            raise InputError("y was given without X; pass both or neither")
        if demos is not None:
            raise InputError(
                f"demonstrations={model.options.demonstrations!r} needs labelled examples to"
                " draw demonstrations from: fit(X, y), or set demonstrations=None for"
                " zero-shot"
            )
        return None
    if y is None:
        raise InputError("y is required with X; for zero-shot use fit(None)")
    records = to_records(X, model.user_fields)
    if not records:
        raise InputError(
            f"X is empty (0 examples, {type(X).__name__}) but fit(X, y) needs labelled"
            " examples; an empty selection (e.g. a DataFrame filtered to no rows) is"
            " usually a mistake. Check the data, or call fit(None) for a zero-shot"
            " classifier"
        )
    labels = model.labels
    soft = _soft_labels(y, labels, len(records))
    if soft is not None:
        y_idx, targets = soft.argmax(1), soft
    else:
        y_idx = to_label_indices(y, labels, len(records))
        present = np.unique(y_idx)
        if len(present) < 2:
            raise InputError(
                f"y contains only one class ({labels[present[0]]!r}); training"
                " needs examples of at least two classes. For zero-shot use fit(None)"
            )
        targets = y_idx
    pool = DemoPool(records, np.asarray(y_idx)) if demos is not None else None
    examples = model.encode_records(records, pool, exclude_self=True)
    return TrainingData(examples, np.asarray(y_idx), targets, pool, records=records)


def train_config(settings: Settings) -> TrainConfig:
    """The training loop's settings from the estimator's resolved settings."""
    tuning = settings.tuning
    stopping = settings.early_stopping
    return TrainConfig(
        learning_rate=float(settings.learning_rate),
        weight_decay=float(settings.weight_decay),
        epochs=int(settings.epochs),
        max_steps=settings.max_steps,
        batch_size=int(settings.batch_size),
        gradient_accumulation_steps=int(settings.batching.gradient_accumulation_steps),
        n_iter_no_change=None if stopping is None else int(stopping.n_iter_no_change),
        verbose=int(settings.verbose),
        checkpoint_every=None if settings.checkpoint is None else settings.checkpoint.every,
        temperature=float(settings.temperature),
        backbone_learning_rate=float(tuning.backbone_learning_rate),
        aux_loss_weight=METHODS[tuning.mode].aux_loss_weight(tuning.get_params()),
        group_by_length=settings.batching.group_by_length,
    )


def pvp_identity(pvp: PVP) -> dict[str, Any]:
    """What makes two PVPs the same for warm starts (names and sources aside)."""
    data = pvp.to_dict()
    data.pop("name", None)
    data["verbalizer"] = {k: v for k, v in data["verbalizer"].items() if k != "name"}
    return data


def _encoder_kind(prompt: SoftPrompt) -> str | None:
    return getattr(prompt, "encoder_kind", None)


def _warm_prompt(
    model: ClozeModel, fitted: ClozeModel, settings: Settings, generator: torch.Generator
) -> SoftPrompt:
    """A copy of ``fitted``'s prompt for ``model`` to continue from.

    Raises
    ------
    InputError
        ``fitted`` has another PVP or backbone.
    """
    if pvp_identity(fitted.pvp) != pvp_identity(model.pvp):
        raise InputError(
            f"warm_start=True, but this estimator was fitted with another PVP (pattern"
            f" {fitted.pvp.pattern.text!r}, labels {list(fitted.pvp.verbalizer.labels)});"
            f" the new one has pattern {model.pvp.pattern.text!r}, labels"
            f" {list(model.pvp.verbalizer.labels)}. Set warm_start=False to train a new prompt"
        )
    before, now = fitted.backbone, model.backbone
    if before.fingerprint != now.fingerprint:
        raise InputError(
            f"warm_start=True, but the fitted prompt was trained on backbone"
            f" {before.name!r} ({before.fingerprint}), not on"
            f" {now.name!r} ({now.fingerprint}). Set warm_start=False to train"
            " a new prompt"
        )
    current = fitted.prompt
    assert current is not None  # a fitted model has a prompt
    wanted = settings.prompt_encoder
    has_encoder = getattr(current, "encoder", None) is not None
    if has_encoder == (wanted is not None) and (
        not has_encoder or _encoder_kind(current) == wanted
    ):
        prompt = copy.deepcopy(current)  # fit must not change the fitted one unless it succeeds
    else:
        with torch.no_grad():
            vectors = current().detach().float().cpu()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            prompt = SoftPrompt(vectors, encoder=wanted)
    log.info("warm start from the fitted prompt (%d slot(s))", prompt.n_slots)
    return prompt.to(now.device)


@contextlib.contextmanager
def _slots_fixed(model: ClozeModel, fixed: bool) -> Iterator[None]:
    """Keep the prompt's parameters out of training while ``fixed`` (``tuning="head"``);
    their ``requires_grad`` flags are restored afterwards."""
    params = list(model.prompt.parameters()) if fixed and model.prompt is not None else []
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def saved_slots(folder: str, model: ClozeModel) -> torch.Tensor:
    """The slot vectors of the saved prompt in ``folder``, checked against ``model``'s
    backbone.

    Raises
    ------
    InputError
        ``folder`` is not a prompt folder.
    SavedPromptError
        The folder's files are damaged.
    BackboneMismatchError
        The prompt was trained on another backbone.
    """
    if not os.path.isfile(os.path.join(folder, META_FILE)):
        close = difflib.get_close_matches(folder, INIT_STRATEGIES, n=1)
        hint = f"; did you mean prompt_init={close[0]!r}?" if close else ""
        raise InputError(
            f"prompt_init={folder!r} is neither one of {INIT_STRATEGIES} nor a saved prompt"
            f" folder (no {os.path.join(folder, META_FILE)}){hint}"
        )
    tensors, meta = read_prompt_dir(folder)
    slots = loaded_slots(tensors, os.path.join(folder, TENSOR_FILE))
    recorded = meta.get("backbone") if isinstance(meta.get("backbone"), dict) else {}
    backbone = model.backbone
    if not identity_matches(backbone, recorded.get("fingerprint"), os.path.join(folder, META_FILE)):
        raise BackboneMismatchError(
            f"prompt_init={folder!r} was trained on backbone {recorded.get('name')!r}"
            f" ({recorded.get('fingerprint')}), not on {backbone.name!r}"
            f" ({backbone.fingerprint}); a prompt transfers only between tasks on the same"
            " backbone"
        )
    return slots


def _start_from_saved(model: ClozeModel, prompt: SoftPrompt, folder: str) -> None:
    """Prompt transfer: slot ``i`` starts from slot ``i`` of the saved prompt in
    ``folder`` for every ``i`` both have; extra new slots keep their own initialisation,
    extra saved slots are left out."""
    source = saved_slots(folder, model)
    n = min(source.shape[0], prompt.n_slots)
    with torch.no_grad():
        prompt.embedding[:n] = source[:n].to(prompt.embedding)
    log.info(
        "prompt transfer from %s: %d of %d slot(s) start from its %d slot(s)%s",
        folder,
        n,
        prompt.n_slots,
        source.shape[0],
        "" if n == prompt.n_slots else "; the others from their own initialisation",
    )


def prepare(
    model: ClozeModel,
    settings: Settings,
    data: TrainingData | None,
    generator: torch.Generator,
    fitted: ClozeModel | None = None,
) -> None:
    """Give ``model`` (freshly built) what this fit trains: a prompt (fresh, or continued
    from ``fitted`` on a warm start), what the tuning method trains beyond it (a soft
    verbalizer, a private backbone copy: the shared one never changes) and the deep
    prompt the settings ask for."""
    prompt = _warm_prompt(model, fitted, settings, generator) if fitted is not None else None
    model.tuning.prepare(model, fitted)
    if prompt is None:
        transfer = is_transfer(settings.prompt_init)
        init = "vocab" if transfer else settings.prompt_init
        prompt = model.new_prompt(init, settings.prompt_encoder, generator)
        if transfer:
            _start_from_saved(model, prompt, settings.prompt_init)
    elif is_transfer(settings.prompt_init):
        log.info("warm start: the fitted prompt wins over prompt_init=%r", settings.prompt_init)
    model.set_prompt(prompt)
    deep = settings.deep_prompt
    if deep is not None:
        if fitted is not None and fitted.deep is not None:
            init = fitted.deep.states().detach()
        else:  # the states the deep positions naturally get, in context
            probe = (
                data.examples[0]
                if data is not None
                else model.encode_records([dict.fromkeys(model.user_fields, "N/A")])[0]
            )
            init = initial_states(model.scorer, probe, prompt().detach(), int(deep.length))
        model.add_deep_prompt(init, deep.encoder)
    model.use_demo_pool(None if data is None else data.pool)


def _split_validation(
    data: TrainingData, settings: Settings, rs: np.random.RandomState
) -> tuple[list[Encoded], np.ndarray, np.ndarray | None, tuple[list[Encoded], np.ndarray] | None]:
    """Hold out a stratified validation set when early stopping is on; returns the
    training examples, targets and weights, and the validation set."""
    stopping = settings.early_stopping
    if stopping is None:
        return data.examples, data.targets, data.weights, None
    idx = np.arange(len(data.examples))
    counts = np.bincount(data.y)
    strat = data.y if counts[counts > 0].min() >= 2 else None
    fraction = stopping.validation_fraction
    try:
        tr, va = train_test_split(idx, test_size=fraction, stratify=strat, random_state=rs)
    except ValueError as exc:
        raise InputError(
            f"cannot hold out early_stopping.validation_fraction={fraction} of"
            f" {len(idx)} examples for early stopping ({exc}); add examples or set"
            " early_stopping=False"
        ) from exc
    examples = data.examples
    return (
        [examples[i] for i in tr],
        data.targets[tr],
        None if data.weights is None else data.weights[tr],
        ([examples[i] for i in va], data.y[va]),
    )


def train_model(
    model: ClozeModel,
    settings: Settings,
    data: TrainingData,
    generator: torch.Generator,
    rs: np.random.RandomState,
    unlabeled: list[dict[str, str]] | None = None,
    on_checkpoint: Callable[[int, TrainResult], None] | None = None,
    scorer: Scorer | None = None,
    desc: str = "fit",
) -> TrainResult:
    """Train ``model``'s trainable parts (set by :func:`prepare`) on ``data``.

    The backbone stays frozen except for the LoRA / full-tuning copy's own weights.
    PET's auxiliary MLM loss (``tuning="full"`` only) reads ``unlabeled`` (the unlabeled
    texts as read: :func:`read_unlabeled`), else the training texts. ``scorer`` scores
    the examples instead of the model's (several tasks' examples:
    :class:`~pet_kit.train.shared.MixedScorer`). ``desc`` labels the progress bar.

    Raises
    ------
    TrainingInterrupted
        Ctrl-C; the model holds the prompt so far.
    TrainingDivergedError
        The loss or a trained value became NaN or infinite.
    """
    assert model.prompt is not None  # set by prepare()
    train_ex, train_y, train_w, validation = _split_validation(data, settings, rs)
    config = dataclasses.replace(train_config(settings), desc=desc)
    backbone = model.backbone
    named: list[tuple[str, torch.nn.Parameter]] = []
    aux_loss = None
    method = model.tuning
    if method.copies_backbone:  # only a private copy's weights ever train
        named = method.trainable(backbone.model)
        if config.aux_loss_weight > 0:  # PET's auxiliary MLM loss on the texts
            records = unlabeled if unlabeled is not None else data.records
            texts = [" ".join(r.values()) for r in records]
            aux_loss = mlm_loss_fn(
                backbone, texts, int(settings.batch_size), int(settings.max_length), generator
            )
    fixed_slots = not method.trains_slots
    fixed_inputs = fixed_slots and model.deep is None
    with frozen(backbone.model), training_params(named), _slots_fixed(model, fixed_slots):
        if scorer is None:
            scorer = model.scorer
        if fixed_inputs:  # the encoder's inputs never change: one pass per example
            with torch.no_grad():
                scorer = CachedStates(model.scorer, model.prompt(), int(settings.batch_size))
        parts = trained_parts(model, named)  # with the flags training runs with
        try:
            result = train_prompt(
                scorer,
                model.prompt,
                train_ex,
                train_y,
                config,
                generator,
                validation=validation,
                on_checkpoint=on_checkpoint,
                extra=model.trainable_modules(),
                backbone_params=named,
                aux_loss=aux_loss,
                sample_weight=train_w,
            )
        except TrainingInterrupted as exc:
            exc.result.trained = parts
            raise
    result.trained = parts
    return result


def trained_parts(
    model: ClozeModel, backbone_params: Sequence[tuple[str, torch.nn.Parameter]] = ()
) -> dict[str, int]:
    """What a fit of ``model`` trains, by part (``"prompt"``, ``"label_head"``,
    ``"deep_prompt"``, ``"backbone"``), with its number of trained values; read from the
    ``requires_grad`` flags training runs with."""

    def count(module: torch.nn.Module | None) -> int:
        if module is None:
            return 0
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    prompt = model.prompt if model.prompt is not None and model.prompt.n_slots else None
    counts = {
        "prompt": count(prompt),
        "label_head": count(model.label_head),
        "deep_prompt": count(model.deep),
        "backbone": sum(p.numel() for _, p in backbone_params),
    }
    return {name: n for name, n in counts.items() if n}


def calibration_prior(
    model: ClozeModel,
    settings: Settings,
    calibration: Calibration | None = None,
    *,
    data: TrainingData | None = None,
    unlabeled: list[dict[str, str]] | None = None,
) -> np.ndarray | None:
    """The contextual-calibration prior for ``model`` (``None``: calibration is off).

    ``calibration`` defaults to the settings'. ``"content_free"`` averages the raw
    probabilities of the content-free inputs; ``"unlabeled"`` those of ``unlabeled``
    (``X_unlabeled`` as :func:`read_unlabeled` read it), else of the training inputs
    (``data``, as :func:`training_data` read and encoded them).

    Raises
    ------
    InputError
        ``"unlabeled"`` without any texts.
    """
    calibration = settings.calibration if calibration is None else calibration
    if calibration is None:
        return None
    model.set_prior(None)  # the prior is estimated on raw probabilities
    batch = int(settings.batching.eval_batch_size)
    if calibration.mode == "content_free":
        return model.estimate_prior(model.content_free(calibration.texts), batch)
    if unlabeled is None and data is not None:
        return model.estimate_prior(_as_predicted(model, data), batch)
    if not unlabeled:
        raise InputError(
            "calibration='unlabeled' needs texts to estimate the class prior: pass"
            " fit(X, y, X_unlabeled=texts), or training texts X, or use"
            " calibration='content_free'"
        )
    return model.estimate_prior(model.encode_records(unlabeled), batch)


def read_unlabeled(
    model: ClozeModel, settings: Settings, X_unlabeled: Any, calibration: Calibration | None = None
) -> list[dict[str, str]] | None:
    """``X_unlabeled`` read once for what reads it (PET's auxiliary MLM loss, the
    ``"unlabeled"`` calibration prior: ``calibration``, default the settings'); ``None``
    when nothing does."""
    calibration = settings.calibration if calibration is None else calibration
    if X_unlabeled is None:
        return None
    records = to_records(X_unlabeled, model.user_fields, name="X_unlabeled")  # always checked
    wanted = (calibration is not None and calibration.mode == "unlabeled") or (
        model.tuning.copies_backbone
        and model.tuning.aux_loss_weight(settings.tuning.get_params()) > 0
    )
    if not wanted:
        warnings.warn(
            f"X_unlabeled ({len(records)} texts) is not used by these settings: it is read"
            " by calibration='unlabeled' (the class prior) and by tuning='full' with an"
            " auxiliary MLM loss; set one of those, or leave X_unlabeled out",
            UserWarning,
            stacklevel=4,
        )
        return None
    return records


def _as_predicted(model: ClozeModel, data: TrainingData) -> list[Encoded]:
    """The training inputs encoded as a prediction encodes them: the training encoding
    itself, unless demonstrations differ (a training example never is its own)."""
    if model.encoder.demos is None:
        return data.examples
    return model.encode_records(data.records)


def finish(model: ClozeModel) -> None:
    """Freeze what training produced for inference: the deep states with a P-tuning MLP
    folded in, and the backbone copy's weights as ``delta``."""
    model.finish_training()


def _subset(data: TrainingData, idx: np.ndarray) -> TrainingData:
    """The examples ``idx`` of ``data`` (the demonstration pool kept whole)."""
    return TrainingData(
        examples=[data.examples[i] for i in idx],
        y=data.y[idx],
        targets=data.targets[idx],
        pool=data.pool,
        weights=None if data.weights is None else data.weights[idx],
        records=[data.records[i] for i in idx] if data.records else [],
    )


def _held_out_probs(
    model: ClozeModel,
    settings: Settings,
    part: TrainingData,
    held: TrainingData,
    unlabeled: list[dict[str, str]] | None,
) -> np.ndarray:
    """``model``'s class probabilities for the held-out examples, calibrated as its
    predictions would be (a prior estimated from ``part``, the examples it could train
    on)."""
    model.set_prior(calibration_prior(model, settings, data=part, unlabeled=unlabeled))
    try:
        raw = model.raw_scores(held.examples, int(settings.batching.eval_batch_size))
        return ClozeModel.probabilities(model.calibrated(raw))
    finally:
        model.set_prior(None)


def check_training(
    lead: ClozeModel,
    settings: Settings,
    data: TrainingData,
    start: torch.Tensor,
    rs: np.random.RandomState,
    fitted: ClozeModel | None = None,
    unlabeled: list[dict[str, str]] | None = None,
) -> guard.Check:
    """The guard: does training beat ``lead``'s start on examples it did not see?

    ``data`` is split as ``settings.guard`` says (:func:`~pet_kit.train.guard.splits`:
    one stratified hold-out, or two folds; by a copy of ``rs``, so the fit's own random
    numbers are not consumed). For each split a probe model is prepared exactly as
    ``lead`` was (the generator state ``start`` from before ``lead``'s :func:`prepare`,
    so it starts from the same prompt) and trained on the training part with the fit's
    settings (no early stopping, no checkpoints); the start (``lead``) and the probe
    are scored on the held-out part, and the scores pooled over the splits. ``lead`` is
    left at its start.

    Raises
    ------
    TrainingInterrupted
        Ctrl-C during a probe's training.
    TrainingDivergedError
        A probe's training diverged.
    """
    t0 = time.perf_counter()
    mode = str(settings.guard)
    split_rs = copy.deepcopy(rs)
    folds = guard.splits(data.y, mode, split_rs)
    if isinstance(folds, str):
        return guard.Check(mode, skipped=folds)
    held_all = np.concatenate([held for _, held in folds])
    log.info(
        "guard: training %d probe(s) on %s of the %d examples to check, on the %d held"
        " out, that training beats the untrained prompt",
        len(folds),
        " / ".join(str(len(tr)) for tr, _ in folds),
        len(data.examples),
        len(held_all),
    )
    probe_settings = dataclasses.replace(settings, early_stopping=None, checkpoint=None)
    if guard.PROBE_STEPS == "fit" and settings.max_steps is None:
        per_epoch = steps_per_epoch(
            len(data.examples),
            int(settings.batch_size),
            int(settings.batching.gradient_accumulation_steps),
        )
        probe_settings = dataclasses.replace(
            probe_settings, max_steps=int(settings.epochs) * per_epoch
        )
    before: np.ndarray | None = None
    after: np.ndarray | None = None
    steps = 0
    for train_idx, held_idx in folds:
        part, held = _subset(data, train_idx), _subset(data, held_idx)
        start_probs = _held_out_probs(lead, settings, part, held, unlabeled)
        probe = ClozeModel.build(lead.pvp, lead.options)
        generator = torch.Generator()
        generator.set_state(start)
        prepare(probe, settings, data, generator, fitted)
        result = train_model(
            probe, probe_settings, part, generator, split_rs, unlabeled, desc="fit (guard probe)"
        )
        finish(probe)
        probe_probs = _held_out_probs(probe, settings, part, held, unlabeled)
        if before is None or after is None:
            before = np.zeros((len(data.examples), start_probs.shape[1]))
            after = np.zeros_like(before)
        before[held_idx], after[held_idx] = start_probs, probe_probs
        steps += int(result.steps)
    assert before is not None and after is not None  # at least one split
    scored = _subset(data, held_all)
    untrained = guard.held_out_scores(before[held_all], scored.y, scored.targets, scored.weights)
    trained = guard.held_out_scores(after[held_all], scored.y, scored.targets, scored.weights)
    return guard.Check(
        mode,
        helps=guard.training_helps(untrained, trained),
        n_train=[len(tr) for tr, _ in folds],
        n_held_out=len(held_all),
        untrained=untrained,
        trained=trained,
        probe_steps=steps,
        seconds=time.perf_counter() - t0,
    )


@dataclasses.dataclass
class TaskData:
    """What one task of a :func:`fit` trains on.

    Attributes
    ----------
    X, y : optional
        The labelled examples (``None``: zero-shot), as ``PromptClassifier.fit`` takes
        them.
    X_unlabeled : optional
        Texts for ``calibration="unlabeled"`` and PET's auxiliary MLM loss.
    name : str
        For messages and the history of a shared prompt.
    weight : float, optional
        The task's share of a shared prompt's training examples (default: its size).
    """

    X: Any = None
    y: Any = None
    X_unlabeled: Any = None
    name: str = "task"
    weight: float | None = None


@dataclasses.dataclass
class Fitted:
    """What :func:`fit` did.

    Attributes
    ----------
    history : dict
        The estimator's ``history_``.
    trained : bool
        Something trained (``False``: zero-shot).
    interrupt : TrainingInterrupted or None
        Ctrl-C stopped training; the models hold the prompt so far and are finished
        and calibrated. The caller keeps them, then raises it.
    summary : dict
        What the fit did, in numbers and one sentence (:func:`fit_summary`); also
        ``history["summary"]``.
    """

    history: dict[str, Any]
    trained: bool = False
    interrupt: TrainingInterrupted | None = None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


#: A part's name in :func:`fit_summary`'s sentence.
_PART_NAMES = {
    "prompt": "soft prompt",
    "label_head": "label head (soft verbalizer)",
    "deep_prompt": "deep prompt",
    "backbone": "backbone weights",
}


def fit_summary(
    history: dict[str, Any], n_examples: int, note: str | None = None
) -> dict[str, Any]:
    """What a fit did: the trained parts and their value counts, steps, the final
    training loss, held-out accuracy before and after training (early stopping's
    split), what the guard found, and a one-sentence ``text``.

    Parameters
    ----------
    history : dict
        The fit's history (a :class:`~pet_kit.train.loop.TrainResult` as a dict, or a
        zero-shot history).
    n_examples : int
        The labelled examples given (0: ``fit(None)``).
    note : str, optional
        Why nothing trained (then ``text`` is the note).

    Returns
    -------
    dict
        ``trained`` (part -> values), ``n_trained``, ``steps``, ``epochs``,
        ``n_examples``, ``final_train_loss`` (the last epoch's mean; ``None``: no
        step), ``held_out`` (``None`` or ``{"n", "before", "after"}``),
        ``kept_untrained`` (the guard kept the untrained prompt), ``guard`` (what it
        found: :meth:`~pet_kit.train.guard.Check.record`; ``None``: it did not run) and
        ``text``.
    """
    trained = {str(k): int(v) for k, v in dict(history.get("trained") or {}).items()}
    steps = int(history.get("steps", 0))
    losses = [float(v) for v in history.get("train_loss", [])]
    loss = losses[-1] if steps and losses and np.isfinite(losses[-1]) else None
    held_out = None
    if history.get("val_accuracy_start") is not None:
        held_out = {
            "n": int(history.get("n_validation", 0)),
            "before": float(history["val_accuracy_start"]),
            "after": float(history["val_accuracy_end"]),
        }
    n_trained = sum(trained.values())
    if note is not None:
        text = note
    elif not steps:
        text = (
            f"nothing trained: 0 optimizer steps (epochs=0 or max_steps=0); the prompt"
            f" is at its initialisation ({n_examples} examples checked)"
        )
    else:
        parts = " and ".join(f"{_PART_NAMES.get(k, k)} ({v:,} values)" for k, v in trained.items())
        if len(trained) > 1:
            parts += f", {n_trained:,} in all"
        n_train = n_examples - (held_out["n"] if held_out else 0)
        text = (
            f"trained {parts} for {steps} optimizer steps"
            f" ({float(history.get('epochs', 0.0)):.3g} epochs) on {n_train} examples"
        )
        if loss is not None:
            text += f"; final train loss {loss:.4f}"
        if held_out is not None:
            text += (
                f"; held-out accuracy ({held_out['n']} examples) {held_out['before']:.3f}"
                f" before -> {held_out['after']:.3f} after training"
            )
        if history.get("stopped_early"):
            text += f" (stopped early; kept epoch {history.get('best_epoch')})"
        if history.get("interrupted"):
            text += " (interrupted)"
    check = history.get("guard")
    if note is None and isinstance(check, dict) and steps:
        if check.get("skipped"):
            text += f"; guard skipped ({check['skipped']})"
        elif check.get("untrained") and check.get("trained"):
            scores = guard.comparison(check["untrained"], check["trained"])
            text += "; " + guard.beat_text(check.get("n_held_out"), scores)
    return {
        "trained": trained,
        "n_trained": n_trained,
        "steps": steps,
        "epochs": float(history.get("epochs", 0.0)),
        "n_examples": int(n_examples),
        "final_train_loss": loss,
        "held_out": held_out,
        "kept_untrained": bool(history.get("kept_untrained", False)),
        "guard": check if isinstance(check, dict) else None,
        "text": text,
    }


def _nothing_to_train(model: ClozeModel, n_examples: int) -> str:
    """The warning for labelled examples that a pattern without soft slots under a
    tuning method that trains only slots cannot use (the fix named)."""
    return (
        f"fit got {n_examples} labelled examples but trained nothing: the pattern"
        f" {model.pvp.pattern.text!r} has no [SOFT] slots and tuning={model.tuning.name!r}"
        " trains only soft slots, so the classifier is the zero-shot one (the examples"
        " were only checked). To train on them, add soft slots to the pattern (e.g."
        " '[SOFT*4] ' before it, or a '[SOFT:word]' slot in place of a word), or set"
        " tuning='head' (or 'prompt+head') to train the label-word readout; call"
        " fit(None) for the zero-shot classifier without this warning"
    )


def fit(
    models: ClozeModel | Sequence[ClozeModel],
    tasks: TaskData | Sequence[TaskData],
    settings: Settings,
    *,
    fitted: ClozeModel | None = None,
    on_checkpoint: Callable[[int, TrainResult], None] | None = None,
    weigh: Callable[[TrainingData | None], TrainingData | None] | None = None,
) -> Fitted:
    """Train ``models`` on ``tasks`` (one each): the whole recipe of a fit.

    Each task's ``X`` is read and encoded once (:func:`training_data`); then
    :func:`prepare`, :func:`train_model`, :func:`finish` and :func:`calibration_prior`.
    Several tasks share one soft prompt (the first model's, prepared as one task's
    would be, ``prompt_init`` included): their examples are mixed, each scored by its
    own PVP (:mod:`pet_kit.train.shared`).

    Parameters
    ----------
    models : ClozeModel or sequence of ClozeModel
        Freshly built; the trainer changes them through their methods.
    tasks : TaskData or sequence of TaskData
        Their data, in the same order.
    settings : Settings
    fitted : ClozeModel, optional
        The model to continue from (``warm_start``; one task only).
    on_checkpoint : callable, optional
        Called as ``on_checkpoint(step, result)`` at each checkpoint.
    weigh : callable, optional
        Applied to a task's encoded training data before training (the estimator's
        ``sample_weight``); calibration and the MLM loss read the data as it was.

    Returns
    -------
    Fitted

    Raises
    ------
    InputError
        Invalid data; tasks that cannot share a prompt (a task without examples,
        unequal slot counts, different backbones).
    TrainingDivergedError
        The loss or a trained value became NaN or infinite.
    """
    several = not isinstance(tasks, TaskData)
    tasks = list(tasks) if several else [tasks]
    models = list(models) if several else [models]
    encoded = []  # each task's X read and encoded, once
    for model, task in zip(models, tasks, strict=True):
        encoded.append(training_data(model, task.X, task.y))
    data = [weigh(d) if weigh is not None else d for d in encoded]
    if several:
        _check_shared(models, tasks, data)
    rs = check_random_state(settings.random_state)
    generator = torch.Generator().manual_seed(int(rs.randint(2**31 - 1)))
    unlabeled = []  # each task's X_unlabeled read once, if anything reads it
    for model, task in zip(models, tasks, strict=True):
        unlabeled.append(read_unlabeled(model, settings, task.X_unlabeled))
    lead = models[0]
    start = generator.get_state()  # the guard's probe starts where lead does
    prepare(lead, settings, data[0], generator, fitted)
    for model in models[1:]:
        model.set_prompt(lead.prompt, lead.slots_init)
    warm = fitted is not None
    history: dict[str, Any] = {
        "steps": 0,
        "train_loss": [],
        "zero_shot": True,
        "interrupted": False,
        "warm_started": warm,
    }
    out = Fitted(history)
    n_examples = sum(len(d.examples) for d in data if d is not None)
    note = None
    if data[0] is None:
        note = "zero-shot (fit(None)): nothing trained"
    elif lead.n_slots == 0 and lead.label_head is None and not lead.trains_backbone:
        note = _nothing_to_train(lead, n_examples)
        steps = settings.max_steps if settings.max_steps is not None else settings.epochs
        if int(steps) > 0:  # epochs=0 asks for no training: nothing to warn about
            log.warning("%s", note)
            warnings.warn(note, NothingTrainedWarning, stacklevel=4)
    else:
        train_data, scorer = data[0], None
        if several:
            train_data, scorer = _mixed(models, tasks, data)
        check = None
        budget = settings.max_steps if settings.max_steps is not None else settings.epochs
        if settings.guard is not None and not several and int(budget) > 0:
            try:
                check = check_training(lead, settings, train_data, start, rs, fitted, unlabeled[0])
            except TrainingInterrupted as exc:  # lead is still at its start
                out.interrupt = exc
                check = guard.Check(str(settings.guard), helps=False, interrupted=True)
        if check is None or check.helps:
            try:
                result = train_model(
                    lead,
                    settings,
                    train_data,
                    generator,
                    rs,
                    unlabeled[0],
                    on_checkpoint,
                    scorer,
                )
            except TrainingInterrupted as exc:
                out.interrupt, result = exc, exc.result
        else:  # the prompt stays at its start: the untrained one
            result = TrainResult(interrupted=check.interrupted)
            note = check.text()
        out.history = {**result.as_dict(), "zero_shot": False, "warm_started": warm}
        out.history["guard"] = None if check is None else check.record()
        out.history["kept_untrained"] = check is not None and check.kept_untrained
        if several:
            out.history["tasks"] = [t.name for t in tasks]
        out.trained = True
    for i, model in enumerate(models):
        finish(model)
        model.set_prior(calibration_prior(model, settings, data=encoded[i], unlabeled=unlabeled[i]))
    out.summary = fit_summary(out.history, n_examples, note)
    out.history["summary"] = out.summary
    asked = data[0] is not None  # fit(None) asked for zero-shot: nothing to report
    level = logging.INFO if asked and int(settings.verbose) >= 1 else logging.DEBUG
    if level == logging.INFO and out.summary["kept_untrained"]:  # not what fit(X, y) suggests
        level = logging.WARNING
    log.log(level, "fit: %s", out.summary["text"])
    return out


def _check_shared(
    models: list[ClozeModel], tasks: list[TaskData], data: list[TrainingData | None]
) -> None:
    """Refuse tasks that cannot share one prompt.

    Raises
    ------
    InputError
        A task without examples, unequal slot counts, different backbones.
    """
    for task, task_data in zip(tasks, data, strict=True):
        if task_data is None:
            raise InputError(f"task {task.name!r} has no examples")
    slots = {t.name: m.n_slots for m, t in zip(models, tasks, strict=True)}
    if len(set(slots.values())) != 1 or 0 in slots.values():
        raise InputError(
            f"the tasks' patterns must have the same number of soft slots (> 0) to share"
            f" them; they have {slots}"
        )
    if len({m.backbone.fingerprint for m in models}) != 1:
        raise InputError("every task must run on the same backbone")


def _mixed(
    models: list[ClozeModel], tasks: list[TaskData], data: list[TrainingData | None]
) -> tuple[TrainingData, Scorer]:
    """The tasks' examples as one training set, and the scorer that scores each example
    by its own task."""
    examples = [d.examples for d in data if d is not None]
    targets = [np.asarray(d.targets) for d in data if d is not None]
    weights = [t.weight for t in tasks]
    shares = None if any(w is None for w in weights) else [float(w) for w in weights]
    mixed, y = mix(examples, targets, shares)
    log.info(
        "shared prompt: %d task(s), %d mixed examples (%s)",
        len(tasks),
        len(mixed),
        ", ".join(f"{t.name}: {len(e)}" for t, e in zip(tasks, examples, strict=True)),
    )
    task_of = {id(e): i for i, ex in enumerate(examples) for e in ex}
    scorer = MixedScorer([m.scorer for m in models], task_of)
    return TrainingData(mixed, y, y, None), scorer
