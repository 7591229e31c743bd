"""The soft-prompt training loop: :class:`PromptTraining` (one run, its state named)
and :func:`train_prompt` (build one and run it).

Only the prompt's parameters are given to the optimizer; the backbone runs with
``requires_grad=False`` so no weight gradients or optimizer state exist for it.

Divergence: before every optimizer step the loop checks, in one device-to-host
transfer, that the step's loss and every trained value are finite; before a checkpoint
or validation and at the end it checks the latest update too (the validation scores, or
the loss of one probe micro-batch). A non-finite result stops training with
:class:`~pet_kit.errors.TrainingDivergedError` after the trained tensors were reset to
the last state that passed the check.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config.settings import DEFAULTS, FALLBACK_BACKBONE_LR, Batching
from ..errors import TrainingDivergedError
from ..model.cloze_model import batches as _batches
from ..model.encoding import Encoded
from ..model.scorer import Scorer, batch_scores
from ..model.soft_prompt import SoftPrompt

__all__ = [
    "PromptTraining",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "micro_batch",
    "steps_per_epoch",
    "train_prompt",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_prompt` (meanings: the estimator's docstring).

    The defaults are the estimator's, from the one table
    :data:`pet_kit.config.settings.PARAMETERS` (group fields: their classes' defaults).
    """

    learning_rate: float = DEFAULTS["learning_rate"]
    weight_decay: float = DEFAULTS["weight_decay"]
    epochs: int = DEFAULTS["epochs"]
    max_steps: int | None = DEFAULTS["max_steps"]
    batch_size: int = DEFAULTS["batch_size"]
    gradient_accumulation_steps: int = Batching().gradient_accumulation_steps
    n_iter_no_change: int | None = None  # None: no early stopping
    verbose: int = DEFAULTS["verbose"]
    checkpoint_every: int | None = None
    group_by_length: bool | str = Batching().group_by_length  # True, False or "auto"
    temperature: float = DEFAULTS["temperature"]  # soft-label (distillation) training only
    backbone_learning_rate: float = FALLBACK_BACKBONE_LR  # LoRA / full tuning parameters
    aux_loss_weight: float = 0.0  # PET's auxiliary MLM loss: (1 - w) * task + w * aux
    desc: str = "fit"  # the progress bar's label


@dataclass
class TrainResult:
    """What training did (stored on the estimator as ``history_``).

    Attributes
    ----------
    steps : int
        Optimizer steps done.
    epochs : float
        Passes over the training examples (``steps`` / steps per epoch).
    train_loss : list of float
        Each epoch's mean training loss.
    val_accuracy : list of float
        Each epoch's held-out accuracy (early stopping only).
    best_epoch : int or None
        The epoch whose state was kept (early stopping).
    stopped_early, interrupted : bool
    trained : dict of str to int
        What trained: each part (``"prompt"``, ``"label_head"``, ``"deep_prompt"``,
        ``"backbone"``) and its number of trained values (set by the trainer).
    val_accuracy_start, val_accuracy_end : float or None
        Held-out accuracy (early stopping's split) before the first step and of the state
        training ends with (``None``: no held-out data).
    n_validation : int
        Held-out examples (0: none).
    """

    steps: int = 0
    epochs: float = 0.0
    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    trained: dict[str, int] = field(default_factory=dict)
    val_accuracy_start: float | None = None
    val_accuracy_end: float | None = None
    n_validation: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return dict(self.__dict__)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (``KeyboardInterrupt``) during :func:`train_prompt`.

    Raised after the prompt was left in a usable state: the best prompt so far (with
    validation data) or the prompt after the last completed optimizer step.

    Attributes
    ----------
    result : TrainResult
        What was done before the interruption (``result.interrupted`` is True).
    """

    def __init__(self, result: TrainResult) -> None:
        super().__init__(f"training interrupted after {result.steps} step(s)")
        self.result = result


def micro_batch(batch_size: int, accumulation: int) -> int:
    """Examples per forward pass: ``batch_size`` split over ``accumulation`` passes."""
    accumulation = max(1, accumulation)
    return max(1, batch_size // accumulation) if accumulation > 1 else batch_size


def steps_per_epoch(n_examples: int, batch_size: int, accumulation: int = 1) -> int:
    """Optimizer steps in one pass over ``n_examples`` (the last batch may be short)."""
    accumulation = max(1, accumulation)
    return math.ceil(n_examples / (micro_batch(batch_size, accumulation) * accumulation))


#: Examples per length-sorted "mega-batch", in optimizer batches (as HF's Trainer).
GROUP_MEGABATCH = 50


def _grouped_batches(
    order: Sequence[int], lengths: Sequence[int], size: int, generator: torch.Generator
) -> list[list[int]]:
    """Optimizer batches of similar lengths (less padding), in a random order.

    The shuffled ``order`` is cut into mega-batches of ``GROUP_MEGABATCH * size``
    examples; each is sorted by length (longest first) and cut into batches; the batches
    are then shuffled. Every example still appears once per epoch.
    """
    mega = GROUP_MEGABATCH * size
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        part = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += _batches(part, size)
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def _snapshot(
    prompt: nn.Module, extra: nn.Module | None, backbone_params: Sequence[tuple[str, nn.Parameter]]
) -> tuple[dict, dict, dict]:
    """Copies of the prompt's (``extra``'s, the trained backbone weights') state for
    early stopping."""

    def copy(m: nn.Module | None) -> dict:
        return {} if m is None else {k: v.detach().clone() for k, v in m.state_dict().items()}

    return copy(prompt), copy(extra), {n: p.detach().clone() for n, p in backbone_params}


#: Trained backbone weights up to this many numbers (LoRA adapters) are copied after
#: every optimizer step that passed the finiteness check, so divergence goes back one
#: step; larger ones (full tuning) are copied, to CPU memory, only at checked epoch ends
#: (and before training), and divergence goes back to the last such copy.
STEP_SNAPSHOT_LIMIT = 4_000_000


class _LastFinite:
    """The trained tensors' last state that passed the finiteness check.

    Parameters
    ----------
    named : sequence of (name, tensor)
        Every trained tensor, named for messages.
    per_step : bool
        Copy the state at every check (small tensors, on their device) or only at
        epoch ends (large ones, to CPU memory).
    """

    def __init__(self, named: Sequence[tuple[str, torch.Tensor]], per_step: bool) -> None:
        self.named = list(named)
        self.per_step = per_step
        with torch.no_grad():
            self.saved = [
                t.detach().clone() if per_step else t.detach().to("cpu", copy=True)
                for _, t in self.named
            ]
        self.step = 0  # the step the saved copy is from
        self.checked = -1  # the step whose state last passed the check (-1: none)

    def finite(self) -> torch.Tensor:
        """A 0-d bool tensor on the device (no synchronisation): all values finite."""
        flags = [torch.isfinite(t).all() for _, t in self.named]
        return torch.stack(flags).all() if flags else torch.ones((), dtype=torch.bool)

    def first_non_finite(self) -> str | None:
        """The name of the first trained tensor holding NaN or inf (``None``: none)."""
        for name, t in self.named:
            if not bool(torch.isfinite(t).all()):
                return name
        return None

    def keep(self, step: int, *, epoch_end: bool = False) -> None:
        """Record that the current state (after ``step`` steps) passed the check."""
        self.checked = step
        if self.per_step or epoch_end:
            with torch.no_grad():
                for copy, (_, t) in zip(self.saved, self.named, strict=True):
                    copy.copy_(t)
            self.step = step

    def restore(self) -> int:
        """Put the saved state back; returns the step it is from."""
        with torch.no_grad():
            for copy, (_, t) in zip(self.saved, self.named, strict=True):
                t.copy_(copy)
        return self.step


def _diverged_message(
    step: int,
    cause: str,
    rates: dict[str, float],
    lower: Sequence[str],
    restored: int,
    weight_decay: float,
    temperature: float | None,
) -> str:
    """The :class:`TrainingDivergedError` message: what, where, and the fix.

    ``lower`` names the learning rates to lower (keys of ``rates``); ``temperature`` is
    given for soft-label training.
    """
    shown = ", ".join(f"{k}={v:g}" for k, v in rates.items())
    if step == 0:
        scaled = f", temperature={temperature:g}" if temperature is not None else ""
        return (
            f"training diverged before any update ({shown}{scaled}): {cause}. The learning"
            " rate is not the cause: check the backbone's weights for NaN or inf"
            + (" and the temperature" if temperature is not None else "")
        )
    fix = " and ".join(f"{k} (e.g. 10x, to {rates[k] / 10:g})" for k in lower)
    top = max(rates.values())
    if weight_decay * top >= 1:  # AdamW scales the values by (1 - lr * weight_decay)
        fix = (
            f"weight_decay (weight_decay * learning rate = {weight_decay * top:g} >= 1"
            f" overshoots at every step; keep it well below 1) or {fix}"
        )
    return (
        f"training diverged at optimizer step {step} ({shown}): {cause}. The trained"
        f" parameters were reset to their last finite state (after step {restored}) and no"
        f" non-finite checkpoint was written. Lower {fix}, and fit again"
    )


def train_prompt(*args: Any, **kwargs: Any) -> TrainResult:
    """Train a prompt in place: ``PromptTraining(*args, **kwargs).run()`` (the
    parameters, the result and the errors: :class:`PromptTraining`)."""
    return PromptTraining(*args, **kwargs).run()


class PromptTraining:
    """One training run: ``prompt`` trained in place with cross-entropy over the class
    scores by :meth:`run` (which raises the errors below); its state is named.

    Parameters
    ----------
    scorer : Scorer
        Scores the examples (:class:`~pet_kit.model.scorer.Scorer`): a ``ClozeScorer``,
        a ``CachedStates`` when the encoder's inputs stay fixed, or the multi-task mixer.
    prompt : SoftPrompt
    examples : sequence of Encoded
    y : ndarray
        Label indices (int, shape ``(n,)``), or soft labels (float, shape
        ``(n, n_labels)``, rows summing to 1) trained with
        ``T^2 * cross-entropy(y, softmax(scores / T))``, ``T = config.temperature``.
    config : TrainConfig
    generator : torch.Generator
        Shuffling order (reproducibility).
    validation : (examples, y), optional
        Held-out data for early stopping: the best-accuracy state is kept.
    on_step : callable, optional
        Called with the global step after each optimizer step.
    on_checkpoint : callable, optional
        Called as ``on_checkpoint(step, result)`` every ``config.checkpoint_every``
        optimizer steps, or at the end of every epoch when that is None; the prompt then
        holds the vectors after ``step`` steps.
    extra : nn.Module, optional
        More trainable parameters optimised with the prompt (e.g. a
        :class:`~pet_kit.model.scorer.LabelHead` the scorer uses); early stopping keeps its
        best state too.
    backbone_params : sequence of (name, parameter)
        Backbone weights to train too (LoRA adapters, or every weight for full tuning),
        at ``config.backbone_learning_rate``; the caller sets ``requires_grad`` on them.
        Early stopping keeps their best state.
    aux_loss : callable, optional
        Returns an auxiliary loss (PET's MLM loss) added to every micro-batch as
        ``(1 - w) * task_loss + w * aux_loss()``, ``w = config.aux_loss_weight``.
    sample_weight : ndarray, optional
        One weight > 0 per example, scaled to mean 1 over ``examples``: each example's
        task loss is multiplied by its weight (the auxiliary loss is not weighted).

    Attributes
    ----------
    step, epoch : int
        Optimizer steps and epochs done.
    result : TrainResult
        What the run did so far (:meth:`run` returns it).
    guard : _LastFinite
        The trained tensors' last state that passed the finiteness check.
    last_loss : float
        The last finite training loss (for messages).
    best_accuracy, best_state, bad_epochs
        Early stopping: the best validation accuracy, the state it was reached with, and
        the epochs since.

    Raises
    ------
    TrainingInterrupted
        On ``KeyboardInterrupt``: the prompt is first set to the best state so far
        (early stopping) or left at the last completed optimizer step, and the
        exception carries the result so far.
    TrainingDivergedError
        The loss or a trained value became NaN or infinite. Checked once per optimizer
        step (before it: the step's loss and the values the previous step produced),
        and for the latest step before each checkpoint, validation and the return (the
        validation scores or one probe micro-batch's loss). The trained tensors
        (``prompt``, ``extra``, ``backbone_params``) are first reset to the last state
        that passed the check: the one before the diverging step, or, for trained
        backbone weights over :data:`STEP_SNAPSHOT_LIMIT` numbers (full tuning), the
        last checked epoch end (or the start). ``on_checkpoint`` only ever sees
        checked states. The exception carries the step, the loss, the learning rates
        and the result so far.
    """

    def __init__(
        self,
        scorer: Scorer,
        prompt: SoftPrompt,
        examples: Sequence[Encoded],
        y: np.ndarray,
        config: TrainConfig,
        generator: torch.Generator,
        *,
        validation: tuple[Sequence[Encoded], np.ndarray] | None = None,
        on_step: Callable[[int], None] | None = None,
        on_checkpoint: Callable[[int, TrainResult], None] | None = None,
        extra: nn.Module | None = None,
        backbone_params: Sequence[tuple[str, nn.Parameter]] = (),
        aux_loss: Callable[[], torch.Tensor] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.scorer, self.prompt, self.examples = scorer, prompt, examples
        self.config, self.generator = config, generator
        self.validation, self.on_step, self.on_checkpoint = validation, on_step, on_checkpoint
        self.extra, self.aux_loss = extra, aux_loss
        self.backbone_params = list(backbone_params)
        self.result = TrainResult()
        self.n = len(examples)
        named: list[tuple[str, torch.Tensor]] = []
        if prompt.n_slots:
            named += [(f"prompt.{k}", p) for k, p in prompt.named_parameters() if p.requires_grad]
        if extra is not None:
            kind = type(extra).__name__
            named += [(f"{kind}.{k}", p) for k, p in extra.named_parameters() if p.requires_grad]
        self.named = named
        self.soft = np.ndim(y) == 2
        self.temperature = float(config.temperature)
        self.y = torch.as_tensor(
            y, dtype=torch.float32 if self.soft else torch.long, device=scorer.device
        )
        self.weight: torch.Tensor | None = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            self.weight = torch.as_tensor(w / w.mean(), dtype=torch.float32, device=scorer.device)
        self.accum = max(1, int(config.gradient_accumulation_steps))
        self.micro = micro_batch(int(config.batch_size), self.accum)
        self.steps_per_epoch = steps_per_epoch(self.n, int(config.batch_size), self.accum)
        total = (
            config.max_steps
            if config.max_steps is not None
            else config.epochs * (self.steps_per_epoch)
        )
        self.total = max(0, int(total))
        self.step = 0
        self.epoch = 0
        self.last_loss = math.nan
        self.best_accuracy = -1.0
        self.best_state: tuple[dict, dict, dict] | None = None
        self.bad_epochs = 0
        self.probe = list(range(min(self.n, self.micro)))  # checks the latest update
        self.backbone_names = {name for name, _ in self.backbone_params}

    # ------------------------------------------------------------------- the run
    def run(self) -> TrainResult:
        """Train; returns what was done (raises: see the class)."""
        params = [p for _, p in self.named]
        bb_params = [p for _, p in self.backbone_params]
        if self.n == 0 or not (params or bb_params):
            return self.result
        config = self.config
        groups = [{"params": params, "lr": config.learning_rate}] if params else []
        self.rates = {"learning_rate": float(config.learning_rate)} if params else {}
        if bb_params:
            groups.append({"params": bb_params, "lr": config.backbone_learning_rate})
            self.rates["tuning.learning_rate"] = float(config.backbone_learning_rate)
        large = sum(p.numel() for p in bb_params) > STEP_SNAPSHOT_LIMIT
        self.guard = _LastFinite(self.named + self.backbone_params, per_step=not large)
        self.optim = torch.optim.AdamW(
            groups, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.aux_weight = float(config.aux_loss_weight) if self.aux_loss is not None else 0.0
        quiet = config.verbose <= 0 or self.total == 0  # no "0it" bar when nothing trains
        self.bar = tqdm(total=self.total, desc=config.desc, disable=quiet, leave=False)
        if self.validation is not None and self.total > 0:  # before any update (eval mode)
            self.result.n_validation = len(self.validation[0])
            self.result.val_accuracy_start = self._held_out_accuracy()
        self.prompt.train()
        grouped = config.group_by_length
        if grouped == "auto":
            grouped = self.n > GROUP_MEGABATCH * self.micro * self.accum
        lengths = [e.length() for e in self.examples] if grouped else []
        interrupted = False
        try:
            while self.step < self.total:
                order = torch.randperm(self.n, generator=self.generator).tolist()
                size = self.micro * self.accum
                if grouped:
                    batches = _grouped_batches(order, lengths, size, self.generator)
                else:
                    batches = _batches(order, size)
                if self._epoch(batches):
                    self.result.stopped_early = True
                    break
        except KeyboardInterrupt:
            interrupted = True
            log.warning("training interrupted after %d optimizer step(s)", self.step)
        if self.best_state is None:  # the best state passed the check when it was kept
            self._check_latest()
        self.bar.close()
        self.prompt.eval()
        self._restore_best()
        self._count_steps(self.step)
        self.result.interrupted = interrupted
        if self.result.val_accuracy_start is not None:  # the state training ends with
            self.result.val_accuracy_end = self._held_out_accuracy()
        if interrupted:
            raise TrainingInterrupted(self.result)
        return self.result

    def _epoch(self, batches: list[list[int]]) -> bool:
        """One pass over ``batches`` (or what is left of the step budget), then the
        validation and end-of-epoch checkpoint; returns whether to stop early."""
        epoch_loss, seen = 0.0, 0
        every = self.config.checkpoint_every
        for batch in batches:
            if self.step >= self.total:
                break
            loss, count = self._optimizer_step(batch)
            epoch_loss += loss * count
            seen += count
            if not self.bar.disable:  # this epoch's running mean loss, shown with the step
                self.bar.set_postfix(
                    epoch=self.epoch + 1, loss=f"{epoch_loss / max(seen, 1):.4f}", refresh=False
                )
            self.bar.update(1)
            if self.on_step is not None:
                self.on_step(self.step)
            if every is not None and self.step % every == 0:
                self._checkpoint()
        self.epoch += 1
        mean_loss = epoch_loss / max(seen, 1)
        self.result.train_loss.append(mean_loss)
        log.debug("epoch %d: loss %.4f", self.epoch, mean_loss)
        stop = False
        if self.validation is not None:
            stop = self._validate()
        elif not self.guard.per_step:
            self._check_latest(epoch_end=True)
        if every is None:
            self._checkpoint()
        return stop

    def _optimizer_step(self, batch: list[int]) -> tuple[float, int]:
        """Accumulate the gradients of ``batch``'s micro-batches, check, step; returns the
        step's loss and its example count."""
        group = _batches(batch, self.micro)
        count = sum(len(c) for c in group)
        self.optim.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), device=self.y.device)
        for chunk in group:
            scores = self.scorer.class_scores([self.examples[i] for i in chunk], self.prompt())
            weight = None if self.weight is None else self.weight[chunk]
            loss = self._loss(scores.float(), self.y[chunk], weight)
            if self.aux_weight > 0:
                loss = (1 - self.aux_weight) * loss + self.aux_weight * self.aux_loss()
            loss = loss * (len(chunk) / count)
            loss.backward()
            step_loss += loss.detach().float()
        # the one sync of the step: its loss and the previous update's values
        self.last_loss = self._check(step_loss, "the training loss")
        self.optim.step()
        self.step += 1
        return self.last_loss, count

    def _loss(
        self, scores: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The task loss of one micro-batch (mean over its examples)."""
        if not self.soft:
            if weight is None:
                return nn.functional.cross_entropy(scores, target)
            return (nn.functional.cross_entropy(scores, target, reduction="none") * weight).mean()
        # distillation: T^2 * cross-entropy(soft targets, softmax(scores / T))
        temp = self.temperature
        per_example = -(target * torch.log_softmax(scores / temp, dim=1)).sum(1)
        if weight is not None:
            per_example = per_example * weight
        return per_example.mean() * (temp * temp)

    def _validate(self) -> bool:
        """Score the validation set (checking the latest update) and keep the best state;
        returns whether early stopping ends the run."""
        examples, labels = self.validation
        with torch.no_grad():
            slots = self.prompt()
        order = sorted(range(len(examples)), key=lambda i: examples[i].length())
        with torch.inference_mode():
            scores = batch_scores(self.scorer, examples, slots, _batches(order, 32))
        loss = torch.tensor(math.nan)  # checks the latest update
        if np.isfinite(scores).all():
            loss = nn.functional.cross_entropy(torch.from_numpy(scores), torch.as_tensor(labels))
        self._check(loss, "the validation loss", epoch_end=True)
        accuracy = float((scores.argmax(1) == labels).mean())
        self.result.val_accuracy.append(accuracy)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.bad_epochs = accuracy, 0
            self.best_state = _snapshot(self.prompt, self.extra, self.backbone_params)
            self.result.best_epoch = self.epoch
            return False
        self.bad_epochs += 1
        patience = self.config.n_iter_no_change
        return patience is not None and self.bad_epochs >= patience

    def _held_out_accuracy(self) -> float:
        """Accuracy of the current state on the validation set (a measurement only: it
        changes nothing, consumes no random numbers and is not a divergence check)."""
        examples, labels = self.validation
        order = sorted(range(len(examples)), key=lambda i: examples[i].length())
        with torch.inference_mode():
            scores = batch_scores(self.scorer, examples, self.prompt(), _batches(order, 32))
        return float((scores.argmax(1) == np.asarray(labels)).mean())

    def _restore_best(self) -> None:
        """Put the best validation state back (early stopping)."""
        if self.best_state is None:
            return
        prompt_state, extra_state, backbone_state = self.best_state
        self.prompt.load_state_dict(prompt_state)
        if self.extra is not None:
            self.extra.load_state_dict(extra_state)
        with torch.no_grad():
            for name, param in self.backbone_params:
                param.copy_(backbone_state[name])

    def _count_steps(self, steps: int) -> None:
        self.result.steps = steps
        self.result.epochs = steps / self.steps_per_epoch if self.steps_per_epoch else 0.0

    # ---------------------------------------------------------------- the checks
    def _check(self, loss: torch.Tensor, what: str, epoch_end: bool = False) -> float:
        """Check ``loss`` (``what``, of the current state: after ``step`` steps) and every
        trained value, in one device-to-host transfer; returns the loss."""
        guard = self.guard
        flag = guard.finite()
        value, ok = torch.stack([loss.detach().float().to(flag.device), flag.float()]).tolist()
        after = "after that step" if self.step else "before any update"
        if not ok:
            name = guard.first_non_finite() or "a trained tensor"
            rate = "tuning.learning_rate" if name in self.backbone_names else "learning_rate"
            self._diverge(f"{name} holds NaN or inf {after}", value, [rate])
        if not math.isfinite(value):
            self._diverge(f"{what} is {value} {after}", value, list(self.rates))
        guard.keep(self.step, epoch_end=epoch_end)
        return value

    def _check_latest(self, epoch_end: bool = False) -> None:
        """Check the state after the latest step (unless checked) on the probe batch."""
        if self.guard.checked == self.step:
            if epoch_end and not self.guard.per_step:
                self.guard.keep(self.step, epoch_end=True)
            return
        probe = self.probe
        with torch.no_grad():
            scores = self.scorer.class_scores([self.examples[i] for i in probe], self.prompt())
            scores = scores.float()
            loss = self._loss(scores, self.y[probe])
            loss = torch.where(torch.isfinite(scores).all(), loss, math.nan)
            self._check(loss, "the training loss", epoch_end)

    def _checkpoint(self) -> None:
        self._count_steps(self.step)
        if self.on_checkpoint is not None:
            self._check_latest()  # a checkpoint only ever holds a checked state
            with torch.no_grad():
                self.on_checkpoint(self.step, self.result)

    def _diverge(self, cause: str, loss: float, lower: Sequence[str]) -> NoReturn:
        restored = self.guard.restore()
        self.prompt.eval()
        self.bar.close()
        self._count_steps(restored)
        if self.step and math.isfinite(self.last_loss):
            cause += f" (the last finite training loss was {self.last_loss:.4g})"
        message = _diverged_message(
            self.step,
            cause,
            self.rates,
            lower,
            restored,
            self.config.weight_decay,
            self.temperature if self.soft else None,
        )
        log.error("%s", message)
        raise TrainingDivergedError(
            message, step=self.step, loss=loss, learning_rates=self.rates, result=self.result
        )
