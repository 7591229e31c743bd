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
from collections.abc import Mapping
from typing import Any

from sklearn.base import clone

from ..errors import InputError
from ..model.cloze_model import BuildOptions, ClozeModel
from ..train import trainer
from ..tuning import METHODS
from .prompt_classifier import PromptClassifier

__all__ = ["train_shared_prompt"]

log = logging.getLogger(__name__)


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
    estimators, models = [], []
    for name in names:
        try:
            pvp, _, _ = tasks[name]
        except (TypeError, ValueError) as exc:
            raise InputError(f"task {name!r} must be (pvp, X, y), got {tasks[name]!r}") from exc
        est = clone(base).set_params(pvp=pvp)
        estimators.append(est)
        models.append(
            ClozeModel.build(
                est.resolved_pvp(),
                BuildOptions.from_settings(settings, base.model, base.tokenizer),
            )
        )
    result = trainer.fit(
        models,
        [
            trainer.TaskData(
                tasks[name][1],
                tasks[name][2],
                name=name,
                weight=None if weights is None else float(weights[name]),
            )
            for name in names
        ],
        settings,
    )
    if result.interrupt is not None:
        raise result.interrupt
    fitted: dict[str, Any] = {}
    for name, est, model in zip(names, estimators, models, strict=True):
        est.model_ = model
        est.classes_ = model.classes
        est.history_ = dict(result.history)
        est.fit_summary_ = result.summary
        fitted[name] = est
    return fitted
