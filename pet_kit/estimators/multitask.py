"""Multi-task prompt tuning: one soft prompt trained on several tasks at once.

Each task keeps its own PVP (pattern and verbalizer); the patterns share their soft
slots. Training batches mix examples of every task (by default in proportion to their
sizes, or by ``weights``), each scored by its own task's verbalizer. The result is one
fitted :class:`~pet_kit.PromptClassifier` per task, all holding the same slot vectors:
save any of them as the shared prompt, serve them from one
:class:`~pet_kit.serving.bank.PromptBank`, or start a new task from it
(``prompt_init=<saved folder>``, optionally with ``prompt_encoder="rank1"`` to adapt only
a rank-1 task-specific scaling of it, as multi-task prompt tuning does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state

from ..errors import InputError
from ..model.backbone import frozen
from ..model.cloze_model import BuildOptions, ClozeModel
from ..model.encoding import Encoded
from ..train.loop import train_prompt
from ..train.trainer import calibration_prior, finish, train_config, training_data
from ..tuning import METHODS
from .prompt_classifier import PromptClassifier

__all__ = ["train_shared_prompt"]

log = logging.getLogger(__name__)

#: Score given to the classes a task does not have (the tasks' label counts differ).
_ABSENT = -1e4


class _MixedScorer:
    """What the training loop needs of a scorer, over examples of several tasks: each
    example is scored by its own task's scorer; scores are padded to the largest label
    count with a score no class of that task can lose to."""

    def __init__(self, models: Sequence[ClozeModel], task_of: dict[int, int]) -> None:
        self.models = list(models)
        self.task_of = task_of
        self.n_labels = max(m.scorer.n_labels for m in models)
        self.device = models[0].scorer.device

    def class_scores(self, batch: Sequence[Encoded], slots: torch.Tensor) -> torch.Tensor:
        tasks = [self.task_of[id(e)] for e in batch]
        out: torch.Tensor | None = None
        for t in sorted(set(tasks)):
            rows = [i for i, k in enumerate(tasks) if k == t]
            scores = self.models[t].scorer.class_scores([batch[i] for i in rows], slots)
            if out is None:
                out = scores.new_full((len(batch), self.n_labels), _ABSENT)
            out[rows, : scores.shape[1]] = scores
        assert out is not None  # batches are never empty
        return out


def _mix(
    examples: list[list[Encoded]], targets: list[np.ndarray], weights: list[float] | None
) -> tuple[list[Encoded], np.ndarray]:
    """All tasks' examples in one list; with ``weights``, each task's examples are
    repeated (cycled) so that its share of the list follows its weight."""
    if weights is None:
        counts = [len(e) for e in examples]
    else:
        total = sum(len(e) for e in examples)
        share = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        counts = [max(1, round(total * s)) for s in share]
    mixed: list[Encoded] = []
    y: list[np.ndarray] = []
    for ex, tg, n in zip(examples, targets, counts, strict=True):
        idx = [i % len(ex) for i in range(n)]
        mixed += [ex[i] for i in idx]
        y.append(tg[idx])
    return mixed, np.concatenate(y)


def train_shared_prompt(
    tasks: Mapping[str, tuple[Any, Any, Any]],
    estimator: Any = None,
    *,
    weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Train one soft prompt on several tasks at once.

    Parameters
    ----------
    tasks : mapping of str to (pvp, X, y)
        Per task name: its PVP (anything ``PromptClassifier(pvp=...)`` takes) and its
        labelled examples. The patterns must have the same number of soft slots.
    estimator : PromptClassifier, optional
        The shared settings (backbone, learning rate, epochs or max_steps, batch size,
        ``random_state``, ``prompt_init``, ``calibration``...); its ``pvp`` is ignored.
        ``tuning="prompt"`` only, without deep prompts, demonstrations or early stopping.
        Epochs count passes over the mixed examples.
    weights : mapping of str to float, optional
        Each task's share of the training examples (its examples are repeated or cycled
        to match); default: in proportion to the tasks' sizes.

    Returns
    -------
    dict of str to PromptClassifier
        Per task, a fitted classifier whose prompt is the shared one (the same tensor):
        ``save`` any of them to keep the shared prompt.

    Raises
    ------
    InputError
        Fewer than two tasks, unequal slot counts, different backbones, unknown weight
        names, or settings that cannot be shared.
    """
    if not isinstance(tasks, Mapping) or len(tasks) < 2:
        raise InputError(
            "train_shared_prompt needs a mapping of at least two tasks: {name: (pvp, X, y)}"
        )
    base = clone(estimator) if estimator is not None else PromptClassifier()
    settings = base.set_params(pvp=None).settings()
    if not METHODS[settings.tuning.mode].shares_prompt or settings.deep_prompt is not None:
        raise InputError(
            "a shared prompt trains the soft slots only: use tuning='prompt' and no"
            " deep_prompt (each task can add its own afterwards, starting from the shared"
            " prompt with prompt_init=<folder>)"
        )
    if settings.demonstrations is not None or settings.early_stopping is not None:
        raise InputError(
            "demonstrations and early_stopping are per task: leave them off for the shared prompt"
        )
    names = list(tasks)
    if weights is not None:
        unknown = sorted(set(weights) - set(names))
        if unknown or any(not (float(w) > 0) for w in weights.values()):
            raise InputError(
                f"weights must give a positive number per task name {names}; got {dict(weights)}"
            )
    estimators, models, examples, targets = [], [], [], []
    for name in names:
        try:
            pvp, X, y = tasks[name]
        except (TypeError, ValueError) as exc:
            raise InputError(f"task {name!r} must be (pvp, X, y), got {tasks[name]!r}") from exc
        est = clone(base).set_params(pvp=pvp)
        model = ClozeModel.build(
            est.resolved_pvp(), BuildOptions.from_settings(settings, base.model, base.tokenizer)
        )
        data = training_data(model, X, y)
        if data is None:
            raise InputError(f"task {name!r} has no examples")
        estimators.append(est)
        models.append(model)
        examples.append(data.examples)
        targets.append(np.asarray(data.targets))
    slots = {name: m.n_slots for name, m in zip(names, models, strict=True)}
    if len(set(slots.values())) != 1 or 0 in slots.values():
        raise InputError(
            f"the tasks' patterns must have the same number of soft slots (> 0) to share"
            f" them; they have {slots}"
        )
    prints = {m.backbone.fingerprint for m in models}
    if len(prints) != 1:
        raise InputError("every task must run on the same backbone")
    rs = check_random_state(settings.random_state)
    generator = torch.Generator().manual_seed(int(rs.randint(2**31 - 1)))
    shared = models[0].new_prompt(settings.prompt_init, settings.prompt_encoder, generator)
    with torch.no_grad():
        start = shared().detach().float().cpu().clone()
    task_of = {id(e): t for t, ex in enumerate(examples) for e in ex}
    mixed, y_mixed = _mix(
        examples, targets, None if weights is None else [float(weights[n]) for n in names]
    )
    log.info(
        "shared prompt: %d task(s), %d mixed examples (%s)",
        len(names),
        len(mixed),
        ", ".join(f"{n}: {len(e)}" for n, e in zip(names, examples, strict=True)),
    )
    scorer = _MixedScorer(models, task_of)
    with frozen(models[0].backbone.model):
        result = train_prompt(scorer, shared, mixed, y_mixed, train_config(settings), generator)
    history = {**result.as_dict(), "zero_shot": False, "warm_started": False, "tasks": names}
    fitted: dict[str, Any] = {}
    for name, est, model in zip(names, estimators, models, strict=True):
        model.prompt = shared
        model.slots_init = start
        finish(model)
        model.prior = calibration_prior(model, settings, tasks[name][1], None)
        est.model_ = model
        est.classes_ = model.classes
        est.history_ = dict(history)
        fitted[name] = est
    return fitted
