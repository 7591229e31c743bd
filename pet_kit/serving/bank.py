"""One backbone, many tasks: :class:`PromptBank` serves any number of saved prompts.

The backbone is loaded once (pet_kit's per-process cache) and every prompt is checked
against its fingerprint when added. ``predict(texts, task=...)`` routes to one prompt;
``predict_mixed(texts, tasks)`` classifies a batch whose items belong to different tasks
in *one* encoder forward pass per batch: each item gets its own task's pattern and soft
slots, the encoder runs once over all of them, and each task's label-word rows are read
off the hidden states at its mask. Prompts for which that is not possible (multi-token
label words, demonstrations, LoRA / full tuning, architectures without the fast head)
are run per task instead, with the same results.

Several threads may predict at once: freezing the shared backbone is reference-counted
and a deep prompt's layer hooks act only in the thread that runs it. On CPU this gives
no more throughput than serial calls (torch already uses every core per pass), which is
why ``pet-kit serve`` runs one request at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BackboneMismatchError, InputError, SavedPromptError
from ..estimators.prompt_classifier import PromptClassifier
from ..model.backbone import fingerprint, frozen, load_backbone
from ..model.encoding import Encoded
from ..model.fast_inference import check_inference

__all__ = ["PromptBank", "prompt_folders"]

log = logging.getLogger(__name__)


@dataclass
class _Task:
    clf: PromptClassifier
    source: str


def _json_label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def prompt_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """The prompt folders (sub-folders holding a ``prompt.json``) directly inside
    ``folder``, sorted by name.

    Raises
    ------
    InputError
        ``folder`` is no folder, or holds no prompt folder.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: no such folder of prompts")
    found = sorted(p for p in root.iterdir() if (p / "prompt.json").is_file())
    if not found:
        raise InputError(f"{root}: holds no prompt folders (sub-folders with prompt.json)")
    return found


class PromptBank:
    """Saved prompts sharing one backbone, addressed by task name.

    Parameters
    ----------
    model : None, str, PathLike or model object
        The shared backbone (default: pet_kit's embedded one). Every prompt must have
        been trained on it (same fingerprint).
    device : str, optional
    batch_size : int, default=32
        Texts per forward pass.

    Examples
    --------
    >>> bank = PromptBank.from_folder("prompts/")          # doctest: +SKIP
    >>> bank.predict(["great film"], task="sentiment")     # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        inference: str | None = None,
    ):
        self.model = model
        self.device = device
        self.batch_size = int(batch_size)
        self.inference = check_inference(inference)
        self._tasks: dict[str, _Task] = {}

    # ------------------------------------------------------------- building
    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str], model: Any = None, **kw: Any
    ) -> PromptBank:
        """A bank with every prompt folder directly inside ``folder`` (task = folder name)."""
        bank = cls(model, **kw)
        bank.add_folder(folder)
        return bank

    def add_folder(self, folder: str | os.PathLike[str]) -> None:
        """Add every prompt folder directly inside ``folder`` (task = its folder name)."""
        for path in prompt_folders(folder):
            self.add(path.name, path)

    def add(self, task: str, prompt: str | os.PathLike[str] | PromptClassifier) -> None:
        """Add a prompt folder (or a fitted classifier) under the name ``task``.

        Raises
        ------
        InputError
            The name is taken or empty.
        BackboneMismatchError, SavedPromptError
            The prompt belongs to another backbone, or the folder is damaged.
        """
        if not isinstance(task, str) or not task.strip():
            raise InputError(f"task names must be non-empty strings, got {task!r}")
        if task in self._tasks:
            raise InputError(f"task {task!r} is already in the bank; remove() it first")
        if isinstance(prompt, PromptClassifier):
            clf, source = prompt, "<object>"
        else:
            clf = PromptClassifier.load(prompt, model=self.model, device=self.device)
            source = os.fspath(prompt)
        shared = self._backbone_fingerprint()
        if shared is not None and clf.backbone_fingerprint_ != shared:
            raise SavedPromptError(
                f"task {task!r} ({source}) was trained on backbone {clf.backbone_name_!r}, but"
                f" the bank's other prompts use another one; one bank serves one backbone"
            )
        if shared is None and source == "<object>":
            self._check_object(task, clf)
        clf.set_params(verbose=0)
        if self.inference is not None:
            clf.optimize(self.inference)  # one optimized backbone copy for every task
        self._tasks[task] = _Task(clf, source)
        log.info("task %r added from %s", task, source)

    def remove(self, task: str) -> None:
        """Drop a task."""
        self._task(task)
        del self._tasks[task]

    def _backbone_fingerprint(self) -> str | None:
        for t in self._tasks.values():
            return t.clf.backbone_fingerprint_
        return None

    def _check_object(self, task: str, clf: PromptClassifier) -> None:
        """Refuse a fitted classifier whose backbone is not the bank's ``model`` (when one
        was given; prompts loaded from folders are checked by the load itself)."""
        if self.model is None:
            return
        if isinstance(self.model, nn.Module):
            name, identity = type(self.model).__name__, fingerprint(self.model)
        else:
            backbone = load_backbone(self.model, device=self.device)
            name, identity = backbone.name, backbone.fingerprint
        if clf.backbone_fingerprint_ != identity:
            raise BackboneMismatchError(
                f"task {task!r} was trained on backbone {clf.backbone_name_!r}"
                f" ({clf.backbone_fingerprint_}), but the bank serves {name!r} ({identity});"
                " one bank serves one backbone: add prompts trained on it"
            )

    def _check_shared(self, parts: list[tuple[str, Any, Any, Any]]) -> None:
        """Refuse to run prompts in one encoder pass unless their backbones still have one
        fingerprint (a model object may have been changed in place since they were added)."""
        identity = parts[0][3].backbone.fingerprint
        for name, _, _, model in parts[1:]:
            if model.backbone.fingerprint != identity:
                raise BackboneMismatchError(
                    f"task {name!r} now runs on a backbone with another fingerprint than task"
                    f" {parts[0][0]!r} ({model.backbone.fingerprint} vs {identity}): its"
                    " weights were changed in place after it was added. Remove the task and"
                    " add it again on the bank's backbone"
                )

    # -------------------------------------------------------------- queries
    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """Per task: classes, pattern, tuning mode, soft slots, where it came from."""
        return {
            name: {
                "classes": [_json_label(c) for c in t.clf.classes_.tolist()],
                "pattern": t.clf.pvp_.pattern.text,
                "tuning": t.clf.model_.options.tuning,
                "n_slots": int(t.clf.n_slots_),
                "calibrated": getattr(t.clf, "calibration_prior_", None) is not None,
                "source": t.source,
                "mixed_batches": self._mixable(t.clf),
            }
            for name, t in self._tasks.items()
        }

    @property
    def backbone_name(self) -> str | None:
        """The shared backbone's name (``None`` while the bank is empty)."""
        for t in self._tasks.values():
            return t.clf.backbone_name_
        return None

    def _task(self, task: str) -> _Task:
        try:
            return self._tasks[task]
        except (KeyError, TypeError) as exc:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise InputError(f"unknown task {task!r}; the bank has: {known}") from exc

    def predict_proba(self, texts: Any, task: str) -> np.ndarray:
        """Class probabilities of ``texts`` for ``task`` (columns: its classes)."""
        return self._task(task).clf.predict_proba(texts)

    def predict(self, texts: Any, task: str) -> np.ndarray:
        """Labels of ``texts`` for ``task``."""
        return self._task(task).clf.predict(texts)

    # ------------------------------------------------------- mixed batches
    @staticmethod
    def _mixable(clf: PromptClassifier) -> bool:
        """Can this prompt share an encoder pass with others?"""
        return clf.model_.mixable

    def predict_mixed_proba(self, texts: Sequence[str], tasks: Sequence[str]) -> list[np.ndarray]:
        """Probabilities for items of different tasks (``tasks[i]`` for ``texts[i]``).

        Items of mixable tasks share encoder forward passes (``batch_size`` items each,
        sorted by length); the others run per task. Returns one array per item (its
        task's classes).
        """
        if isinstance(texts, str) or isinstance(tasks, str):
            raise InputError("texts and tasks must be lists (one task name per text)")
        texts, tasks = list(texts), list(tasks)
        if len(texts) != len(tasks):
            raise InputError(f"got {len(texts)} texts but {len(tasks)} task names")
        for name in set(tasks):
            self._task(name)
        out: list[np.ndarray | None] = [None] * len(texts)
        shared: list[tuple[int, str, Encoded]] = []
        for name in sorted(set(tasks)):
            idx = [i for i, t in enumerate(tasks) if t == name]
            clf = self._tasks[name].clf
            if self._mixable(clf):
                encoded = clf.model_.encode([texts[i] for i in idx])
                shared += zip(idx, [name] * len(idx), encoded, strict=True)
            else:
                for i, p in zip(idx, clf.predict_proba([texts[i] for i in idx]), strict=True):
                    out[i] = p
        shared.sort(key=lambda item: item[2].length())
        for s in range(0, len(shared), self.batch_size):
            chunk = shared[s : s + self.batch_size]
            for (i, _, _), p in zip(chunk, self._mixed_pass(chunk), strict=True):
                out[i] = p
        return out  # type: ignore[return-value]

    def predict_mixed(self, texts: Sequence[str], tasks: Sequence[str]) -> list[Any]:
        """Labels for items of different tasks (see :meth:`predict_mixed_proba`)."""
        return self.predict_mixed_labels(self.predict_mixed_proba(texts, tasks), tasks)

    def predict_mixed_labels(self, probas: Sequence[np.ndarray], tasks: Sequence[str]) -> list[Any]:
        """The labels (JSON-ready) of per-item probabilities from :meth:`predict_mixed_proba`."""
        return [
            _json_label(self._task(t).clf.classes_[p.argmax()])
            for t, p in zip(tasks, probas, strict=True)
        ]

    def _mixed_pass(self, chunk: list[tuple[int, str, Encoded]]) -> list[np.ndarray]:
        """One encoder pass over items of several tasks; per item its probabilities."""
        names = sorted({name for _, name, _ in chunk})
        parts, slot_tables, offset = [], [], 0
        for name in names:
            model = self._tasks[name].clf.model_
            rows = [k for k, (_, n, _) in enumerate(chunk) if n == name]
            batch = model.encoder.collate([chunk[k][2] for k in rows], 1)
            soft = batch["soft_index"]
            batch["soft_index"] = torch.where(soft >= 0, soft + offset, soft)
            slots = model.slots()
            slot_tables.append(slots)
            offset += slots.shape[0]
            parts.append((name, rows, batch, model))
        width = max(p[2]["input_ids"].shape[1] for p in parts)
        pad_id = parts[0][3].encoder.pad_id

        def padded(key: str, value: int) -> torch.Tensor:
            cols = []
            for p in parts:
                t = p[2][key]
                fill = torch.full((t.shape[0], width - t.shape[1]), value, dtype=t.dtype)
                cols.append(torch.cat([t, fill], 1))
            return torch.cat(cols, 0)

        batch = {
            "input_ids": padded("input_ids", pad_id),
            "attention_mask": padded("attention_mask", 0),
            "soft_index": padded("soft_index", -1),
        }
        self._check_shared(parts)
        mask_pos = torch.cat([p[2]["mask_pos"] for p in parts])
        slots = torch.cat(slot_tables, 0)
        scorer0 = parts[0][3].scorer
        backbone = parts[0][3].backbone
        dev = scorer0.device
        batch = {k: v.to(dev) for k, v in batch.items()}
        with torch.inference_mode(), frozen(backbone.model):
            emb = scorer0.embed(batch, slots.to(dev) if slots.shape[0] else None)
            hidden = backbone.model.base_model(
                inputs_embeds=emb, attention_mask=batch["attention_mask"]
            )[0]
            at_mask = hidden[torch.arange(len(mask_pos), device=dev), mask_pos.to(dev)]
            result: list[np.ndarray | None] = [None] * len(chunk)
            start = 0
            for _, rows, _, model in parts:
                h = at_mask[start : start + len(rows)].unsqueeze(1)  # (B, 1, H)
                start += len(rows)
                scorer = model.scorer
                words = scorer.words_from_hidden(h, scorer.groups[0])
                scores = model.calibrated(scorer.aggregate_words(words).float().cpu().numpy())
                proba = model.probabilities(scores)
                for k, p in zip(rows, proba, strict=True):
                    result[k] = p
        return result  # type: ignore[return-value]
