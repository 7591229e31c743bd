"""PET-style ensembles of pattern-verbalizer pairs, and distillation into one prompt.

:class:`PromptEnsemble` trains one :class:`~pet_kit.PromptClassifier` per PVP and
combines their class probabilities (uniformly, or weighted as in PET). Given unlabeled
texts, the ensemble soft-labels them and a single student prompt is trained on those soft
labels (knowledge distillation), so the final artefact is one small prompt.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..config.pvp import PVP, load_pvps
from ..config.settings import PARAMETERS
from ..errors import InputError, SavedPromptError, TrainingDivergedError
from ..io.atomic import write_file_atomically
from ..io.inputs import is_real_number, label_vector, to_label_indices
from ..io.prompt_folder import folder_path
from ..io.result_folder import (
    ENSEMBLE_FILE,
    ENSEMBLE_FORMAT,
    META_FILE,
    check_replace,
    json_file_digest,
    read_json_file,
    remove_pet_kit_folder,
    save_folder,
)
from ._sklearn import decision_scores, no_weight_without_data, weights_per_example
from .prompt_classifier import PromptClassifier
from .student import STUDENT_KIND, LinearStudent

__all__ = ["PromptEnsemble"]

log = logging.getLogger(__name__)

WEIGHTINGS = ("mean", "wmean")
DISTILL = (None, "prompt", "linear")
_FORMAT = ENSEMBLE_FORMAT
_FORMAT_VERSION = 1
_META = ENSEMBLE_FILE
_MEMBER = re.compile(r"member_\d+")
_MEMBER_TEMP = re.compile(r"\.member_\d+\.tmp-[0-9a-f]{8}")
_LOAD_TRIES = 3


def _pvp_list(pvps: Any) -> list[Any]:
    """The ensemble's PVPs: every pattern of a template file, or the given list."""
    if pvps is None:
        raise InputError(
            "PromptEnsemble needs pvps: a template listing several patterns (a shipped name such"
            " as 'rotten_tomatoes', or a YAML file), or a list of PVPs (names such as"
            " 'rotten_tomatoes#soft', paths such as 'x.yaml#name', dicts or PVP objects)"
        )
    if isinstance(pvps, (str, os.PathLike)):
        ref = os.fspath(pvps)
        if "#" in ref:
            raise InputError(
                f"pvps={ref!r} names one pattern; an ensemble needs several: pass the file"
                " without '#name' (all its patterns) or a list"
            )
        return list(load_pvps(ref))
    if isinstance(pvps, (dict, PVP)):
        return [pvps]
    try:
        items = list(pvps)
    except TypeError as exc:
        raise InputError(f"pvps must be a template file or a list of PVPs, got {pvps!r}") from exc
    if not items:
        raise InputError("pvps is empty; give at least one PVP")
    return items


def _temperature_scale(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: soft labels at temperature ``T``."""
    logp = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logp -= logp.max(1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(1, keepdims=True)


class PromptEnsemble(ClassifierMixin, BaseEstimator):
    """Several PVPs, each with its own trained prompt, combined (PET).

    Parameters
    ----------
    pvps : str, PathLike or list
        A template YAML file (every pattern in it is a member) or a list of PVPs
        (``"file.yaml#name"`` references, inline dicts or :class:`~pet_kit.PVP`
        objects). All must share the same labels.
    estimator : PromptClassifier, optional
        The settings every member is trained with (cloned; its ``pvp`` is replaced by
        each member's). Default: ``PromptClassifier()``. Nested parameters work with
        scikit-learn tools: ``estimator__learning_rate``.
    weighting : {"mean", "wmean"}, default="mean"
        How member probabilities are combined: the plain mean, or PET's weighted mean
        with each member weighted by its accuracy on the training data *before*
        training (after training every member fits the few training examples, so that
        accuracy tells the PVPs apart).
    distill : {None, "prompt", "linear"}, default=None
        With ``fit(..., X_unlabeled=...)``: the ensemble labels the unlabeled texts with
        soft labels and one student is trained on them plus the labelled data;
        predictions then come from the student alone, and :meth:`save` writes only it.
        ``"prompt"``: a student prompt (``student_pvp``, the members' settings; a prompt
        folder that :meth:`PromptClassifier.load` reads). ``"linear"``: a
        :class:`~pet_kit.LinearStudent` (softmax regression on the frozen encoder's
        sentence embeddings; :meth:`LinearStudent.load` reads it).
    student_pvp : PVP reference, optional
        The student's PVP; default: the first member's.
    student_params : dict, optional
        ``distill="prompt"``: parameters of the student that differ from the members'
        (e.g. ``{"max_steps": 250}``: the student sees many more texts than a member).
    ipet_generations : int, default=0
        iPET: after the first training, this many generations in which every member is
        retrained on the labelled data plus unlabeled texts (``fit(..., X_unlabeled=...)``)
        labelled by the other members' weighted ensemble — per class the most confident
        ``n * ipet_scale ** generation`` (``n`` = labelled examples per class).
    ipet_scale : float, default=5.0
        Growth factor of the pseudo-labelled set per generation (PET's ``d``).
    temperature : float, default=2.0
        Distillation temperature ``T``: soft labels are ``softmax(log p / T)`` and the
        student's loss is ``T^2 * cross-entropy(soft, softmax(scores / T))``.
    random_state : int, RandomState or None
        Seeds each member (and the student) differently but reproducibly.

    Attributes
    ----------
    estimators_ : list of PromptClassifier
        The trained members.
    weights_ : ndarray
        The members' weights (sum to 1).
    classes_ : ndarray
    student_ : PromptClassifier, LinearStudent or None
        The distilled student, when ``distill`` is set.
    generations_ : list of list of int
        Per generation, each member's training-set size (labelled; then labelled +
        pseudo-labelled for each iPET generation).
    """

    def __init__(
        self,
        pvps: Any = None,
        estimator: PromptClassifier | None = None,
        *,
        weighting: str = "mean",
        distill: str | None = None,
        student_pvp: Any = None,
        student_params: dict[str, Any] | None = None,
        ipet_generations: int = 0,
        ipet_scale: float = 5.0,
        temperature: float = 2.0,
        random_state: Any = None,
    ) -> None:
        self.pvps = pvps
        self.estimator = estimator
        self.weighting = weighting
        self.distill = distill
        self.student_pvp = student_pvp
        self.student_params = student_params
        self.ipet_generations = ipet_generations
        self.ipet_scale = ipet_scale
        self.temperature = temperature
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    # ---------------------------------------------------------------- helpers
    def _check_params(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise InputError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.distill not in DISTILL:
            raise InputError(f"distill must be one of {DISTILL}, got {self.distill!r}")
        t = self.temperature
        if not is_real_number(t) or not 0 < t < math.inf:
            raise InputError(f"temperature must be a finite number > 0, got {t!r}")
        g = self.ipet_generations
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 0:
            raise InputError(f"ipet_generations must be an integer >= 0, got {g!r}")
        d = self.ipet_scale
        if not is_real_number(d) or not 1 <= d < math.inf:
            raise InputError(f"ipet_scale must be a finite number >= 1, got {d!r}")
        PARAMETERS["random_state"].check("random_state", self.random_state)
        if self.student_params is not None and not isinstance(self.student_params, dict):
            raise InputError(
                f"student_params must be None or a dict of PromptClassifier parameters, got"
                f" {self.student_params!r}"
            )
        names = PromptClassifier._get_param_names()
        unknown = sorted(set(self.student_params or {}) - set(names), key=str)
        if unknown:
            from ..config.schema import did_you_mean  # pydantic: only for the message

            raise InputError(
                f"student_params has {unknown[0]!r}, not a PromptClassifier parameter"
                f"{did_you_mean(unknown[0], names)}"
            )
        if self.estimator is not None and not isinstance(self.estimator, PromptClassifier):
            raise InputError(
                f"estimator must be a PromptClassifier (the members' settings), got"
                f" {type(self.estimator).__name__}"
            )

    def _base(self) -> PromptClassifier:
        return clone(self.estimator) if self.estimator is not None else PromptClassifier()

    # -------------------------------------------------------------------- API
    def fit(
        self, X: Any, y: Any = None, X_unlabeled: Any = None, sample_weight: Any = None
    ) -> PromptEnsemble:
        """Train every member on ``(X, y)`` (and distil when asked).

        Parameters
        ----------
        X : texts or None
            Training texts (``None``: every member zero-shot).
        y : array-like
            Labels (a column of labels, ``(n, 1)`` or a one-column DataFrame, is read as
            its labels).
        X_unlabeled : texts, optional
            Unlabeled texts for distillation (``distill="prompt"``).
        sample_weight : array-like of shape (n_examples,), optional
            A weight >= 0 per labelled example: every member trains with it (see
            :meth:`PromptClassifier.fit`), ``"wmean"`` weighs its accuracies with it,
            and iPET generations and the distilled student weigh the labelled examples
            with it (scaled to average 1) and each pseudo- or soft-labelled text 1.

        Returns
        -------
        self
        """
        self._check_params()
        refs = _pvp_list(self.pvps)
        if X_unlabeled is not None and not hasattr(X_unlabeled, "__len__"):
            raise InputError(
                f"X_unlabeled must be a list of texts (or None), got"
                f" {type(X_unlabeled).__name__} ({X_unlabeled!r:.40})"
            )
        no_unlabeled = X_unlabeled is None or len(X_unlabeled) == 0
        if self.ipet_generations and (no_unlabeled or X is None or len(X) == 0):
            raise InputError(
                f"ipet_generations={self.ipet_generations} needs labelled data and unlabeled"
                " texts: fit(X, y, X_unlabeled=texts); or set ipet_generations=0"
            )
        if self.distill is not None and no_unlabeled:
            raise InputError(
                f"distill={self.distill!r} needs unlabeled texts: fit(X, y,"
                " X_unlabeled=texts); or set distill=None"
            )
        rs = check_random_state(self.random_state)
        seeds = rs.randint(2**31 - 1, size=len(refs) + 1)
        members = [
            self._base().set_params(pvp=ref, random_state=int(seeds[i]))
            for i, ref in enumerate(refs)
        ]
        # every PVP is loaded (and its labels compared) before any member trains
        labels = [list(m.resolved_pvp().verbalizer.labels) for m in members]
        for i, lab in enumerate(labels[1:], start=1):
            if lab != labels[0]:
                raise InputError(
                    f"every PVP of an ensemble must have the same labels; PVP {i} has"
                    f" {lab}, PVP 0 has {labels[0]}"
                )
        y = label_vector(y)
        sample_w = _labelled_weights(X, y, sample_weight, labels[0])
        fit_params = {} if sample_w is None else {"sample_weight": sample_w}
        weights = []
        for i, member in enumerate(members):
            if self.weighting == "wmean" and X is not None:
                weights.append(clone(member).fit(None).score(X, y, sample_weight=sample_w))
            try:
                member.fit(X, y, **fit_params)
            except TrainingDivergedError as exc:
                raise exc.within(f"ensemble member {i + 1} of {len(members)}") from exc
            log.info("member %d/%d (%s) trained", i + 1, len(members), member.pvp_.name)
        classes = members[0].classes_
        if weights and sum(weights) > 0:
            w = np.asarray(weights, dtype=np.float64)
        else:
            w = np.ones(len(members))
        self.estimators_ = members
        self.weights_ = w / w.sum()
        self.classes_ = classes
        self.student_ = None
        self.generations_ = [[len(X) if X is not None else 0] * len(members)]
        for gen in range(1, int(self.ipet_generations) + 1):
            self._ipet_generation(gen, X, y, X_unlabeled, seeds, sample_w)
        self._student_seed = int(seeds[-1])
        if self.distill is not None:
            self.distil(X, y, X_unlabeled, sample_w)
        return self

    def distil(self, X: Any, y: Any, X_unlabeled: Any, sample_weight: Any = None) -> PromptEnsemble:
        """(Re)train the student from the fitted members, as ``distill`` says.

        ``fit`` calls it; call it again after ``set_params(distill=...)`` to try another
        student without retraining the members. ``X, y`` (and ``sample_weight``) must be
        ``fit``'s labelled data.

        Returns
        -------
        self
        """
        check_is_fitted(self, "estimators_")
        self._check_params()
        if self.distill is None:
            self.student_ = None
            return self
        if X_unlabeled is None or len(X_unlabeled) == 0:
            raise InputError(f"distill={self.distill!r} needs unlabeled texts (X_unlabeled)")
        refs = _pvp_list(self.pvps)
        seed = getattr(self, "_student_seed", 0)
        y = label_vector(y)
        sample_w = _labelled_weights(X, y, sample_weight, self.classes_.tolist())
        self.student_ = self._distil(refs, X, y, X_unlabeled, seed, sample_w)
        return self

    def _ipet_generation(
        self,
        gen: int,
        X: Any,
        y: Any,
        X_unlabeled: Any,
        seeds: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """iPET: retrain every member on the labelled data plus unlabeled texts labelled
        by the *other* members, ``ipet_scale ** gen`` times as many per class as the
        labelled data has (the most confident ones, class-balanced)."""
        texts_u = list(X_unlabeled)
        y_idx = to_label_indices(y, self.classes_.tolist(), len(X))
        per_class = max(1, round(len(y_idx) / len(self.classes_)))
        try:
            growth = float(self.ipet_scale) ** gen
        except OverflowError:  # a late generation: every text
            growth = math.inf
        wanted = per_class * growth
        want = len(texts_u) if wanted >= len(texts_u) else round(wanted)
        probas = [m.predict_proba(texts_u) for m in self.estimators_]
        new_members, sizes = [], []
        for i, member in enumerate(self.estimators_):
            others = [j for j in range(len(probas)) if j != i] or [i]
            w = self.weights_[others] / self.weights_[others].sum()
            teacher = np.tensordot(w, np.stack([probas[j] for j in others]), axes=1)
            pred, conf = teacher.argmax(1), teacher.max(1)
            chosen: list[int] = []
            for c in range(len(self.classes_)):
                idx = np.flatnonzero(pred == c)
                chosen += idx[np.argsort(-conf[idx], kind="stable")][:want].tolist()
            chosen.sort()
            texts = list(X) + [texts_u[k] for k in chosen]
            labels = list(self.classes_[y_idx]) + [self.classes_[pred[k]] for k in chosen]
            seed = int((int(seeds[i]) + 7919 * gen) % (2**31 - 1))
            fit_params = {}
            if sample_weight is not None:  # each pseudo-labelled text weighs 1
                fit_params["sample_weight"] = np.r_[sample_weight, np.ones(len(chosen))]
            try:
                retrained = (
                    clone(member).set_params(random_state=seed).fit(texts, labels, **fit_params)
                )
            except TrainingDivergedError as exc:
                raise exc.within(f"iPET generation {gen}, member {i + 1}") from exc
            log.info(
                "iPET generation %d: member %d retrained on %d labelled + %d pseudo-labelled",
                gen,
                i,
                len(X),
                len(chosen),
            )
            new_members.append(retrained)
            sizes.append(len(texts))
        self.estimators_ = new_members
        self.generations_.append(sizes)

    def _distil(
        self,
        refs: list[Any],
        X: Any,
        y: Any,
        X_unlabeled: Any,
        seed: int,
        sample_weight: np.ndarray | None = None,
    ) -> PromptClassifier | LinearStudent:
        soft = _temperature_scale(self.ensemble_proba(X_unlabeled), float(self.temperature))
        texts = list(X_unlabeled)
        targets = soft
        fit_params = {}
        if X is not None and len(X):
            onehot = np.eye(len(self.classes_))[to_label_indices(y, self.classes_.tolist(), len(X))]
            texts = list(X) + texts
            targets = np.vstack([onehot, soft])
            if sample_weight is not None:  # each soft-labelled text weighs 1
                fit_params["sample_weight"] = np.r_[sample_weight, np.ones(len(soft))]
        if self.distill == "linear":
            base = self._base()
            log.info("distilling into a linear classifier on %d texts", len(texts))
            return LinearStudent(
                model=base.model,
                tokenizer=base.tokenizer,
                classes=list(self.classes_),
                temperature=float(self.temperature),
                max_length=int(base.max_length),
                device=base.device,
            ).fit(texts, targets, **fit_params)
        student_ref = self.student_pvp if self.student_pvp is not None else refs[0]
        student = self._base().set_params(
            pvp=student_ref,
            random_state=seed,
            temperature=float(self.temperature),
            **(self.student_params or {}),
        )
        log.info("distilling into one prompt on %d texts", len(texts))
        try:
            return student.fit(texts, targets, **fit_params)
        except TrainingDivergedError as exc:
            raise exc.within("the distilled student prompt") from exc

    def ensemble_proba(self, X: Any) -> np.ndarray:
        """The members' combined probabilities (also when a student was distilled)."""
        check_is_fitted(self, "estimators_")
        probas = [m.predict_proba(X) for m in self.estimators_]
        return np.tensordot(self.weights_, np.stack(probas), axes=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (the student's when distilled); columns follow ``classes_``."""
        check_is_fitted(self, "estimators_")
        if self.student_ is not None:
            return self.student_.predict_proba(X)
        return self.ensemble_proba(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores: the log of :meth:`predict_proba` (its softmax), in scikit-learn's
        shape — (n,) for two classes (the log-odds of ``classes_[1]``: positive means
        ``classes_[1]``), else (n, n_classes)."""
        proba = self.predict_proba(X)
        return decision_scores(np.log(np.maximum(proba, np.finfo(np.float64).tiny)))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)] if len(proba) else self.classes_[:0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; labels match ``classes_`` as in :meth:`PromptClassifier.score`."""
        from sklearn.metrics import accuracy_score

        pred = self.predict(X)
        y_true = self.classes_[to_label_indices(y, self.classes_.tolist(), len(pred))]
        return float(accuracy_score(y_true, pred, sample_weight=sample_weight))

    # ----------------------------------------------------------- save and load
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save the ensemble to folder ``path`` without ever losing a file.

        Distilled: only the student, as a prompt folder (:meth:`PromptClassifier.load`
        reads it). Otherwise ``ensemble.json`` (weights, the members' folders and the
        SHA-256 of each member's ``prompt.json``) and one prompt folder per member
        (``member_<i>``); :meth:`load` reads it.

        Over an existing ensemble folder, the new members are written to folders the old
        ``ensemble.json`` does not name, then ``ensemble.json`` is replaced in one step
        (the commit point), and only then are the old members removed: at every instant
        the folder loads as the old or the new ensemble. Other files there are kept; a
        folder that is not an ensemble folder (nor empty) is refused.

        Parameters
        ----------
        path : str or PathLike
        overwrite : bool, default=False
            Replace an ensemble (or prompt) already in ``path``; without it such a folder
            is refused and left as it was, the rule of every folder pet_kit writes.
        """
        check_is_fitted(self, "estimators_")
        if self.student_ is not None:
            return self.student_.save(path, overwrite=overwrite)
        check_replace(
            path,
            overwrite=overwrite,
            fix="Pass overwrite=True to save() to replace it, or choose another folder",
        )
        return save_folder(path, _META, "pet_kit ensemble folder", self._write_folder)

    def _write_folder(self, folder: Path, fresh: bool) -> None:
        """Write the members and then ``ensemble.json`` into ``folder`` (under the save
        lock; see :func:`pet_kit.io.result_folder.save_folder`)."""
        old = [] if fresh else _named_members(folder)
        if not fresh:
            _remove_stray_members(folder, keep=old)
        names = _free_member_names(folder, len(self.estimators_))
        for name, member in zip(names, self.estimators_, strict=True):
            member.save(folder / name)
        meta = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "members": names,
            "weights": self.weights_.tolist(),
            "weighting": self.weighting,
            "checksums": {n: json_file_digest(folder / n / META_FILE) for n in names},
        }
        write_file_atomically(folder / _META, (json.dumps(meta, indent=2) + "\n").encode())
        for name in old:
            if name not in names:
                remove_pet_kit_folder(folder / name)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], model: Any = None, *, device: str | None = None
    ) -> PromptEnsemble:
        """Load an ensemble folder written by :meth:`save` (not a distilled student:
        load that with :meth:`PromptClassifier.load`).

        Each member's ``prompt.json`` must match the checksum ``ensemble.json`` records
        for it (folders saved by pet_kit 0.1.0 record none). A save that replaces the
        ensemble meanwhile makes the load start again (up to 3 times).
        """
        folder = folder_path(path)
        tries, before = 1, _digest_or_none(folder / _META)
        while True:
            try:
                return cls._load_once(folder, model, device)
            except SavedPromptError:
                after = _digest_or_none(folder / _META)
                if tries >= _LOAD_TRIES or before is None or after == before:
                    raise
                log.info("%s was saved again while loading; loading it again", folder)
                tries, before = tries + 1, after

    @classmethod
    def _load_once(cls, folder: Path, model: Any, device: str | None) -> PromptEnsemble:
        """One attempt of :meth:`load`."""
        meta_path = folder / _META
        if not meta_path.is_file():
            raise SavedPromptError(
                f"{folder}: no {_META}; not an ensemble folder.{_student_hint(folder)}"
            )
        meta = read_json_file(meta_path)
        try:
            if meta.get("format") != _FORMAT:
                raise ValueError("no format marker")
            version = meta.get("format_version")
            if version != _FORMAT_VERSION or isinstance(version, bool):
                raise ValueError(f"unsupported format_version {version!r}")
            names = [str(n) for n in meta["members"]]
            weights = np.asarray(meta["weights"], dtype=np.float64)
            checksums = dict(meta.get("checksums") or {})
            weighting = meta["weighting"]
            if weighting not in WEIGHTINGS:
                raise ValueError(f"weighting {weighting!r} is not one of {WEIGHTINGS}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else exc
            raise SavedPromptError(
                f"{meta_path}: invalid ensemble metadata ({what}); the file was edited or"
                " damaged. Restore it, or save the ensemble again"
            ) from exc
        bad = [n for n in names if not _MEMBER.fullmatch(n)]
        if not names or bad:
            raise SavedPromptError(
                f"{meta_path}: members must be folder names member_<i>, got {bad or names};"
                " the file was edited. Save the ensemble again"
            )
        if (
            weights.shape != (len(names),)
            or not np.isfinite(weights).all()
            or (weights < 0).any()
            or not weights.sum() > 0
        ):
            raise SavedPromptError(
                f"{meta_path}: weights {meta['weights']!r:.80} are not one finite weight >= 0"
                f" per member ({len(names)}) with a positive sum; the file was edited or"
                " damaged. Restore it, or save the ensemble again"
            )
        _check_member_checksums(folder, checksums)
        members = [PromptClassifier.load(folder / n, model=model, device=device) for n in names]
        classes = members[0].classes_
        for name, member in zip(names[1:], members[1:], strict=True):
            if member.classes_.tolist() != classes.tolist():
                raise SavedPromptError(
                    f"{folder / name}: classes {member.classes_.tolist()} differ from"
                    f" {names[0]}'s {classes.tolist()}; a member was replaced by another"
                    " task's prompt. Restore it, or save the ensemble again"
                )
        est = cls(pvps=[m.pvp_ for m in members], estimator=None, weighting=weighting)
        est.estimators_ = members
        est.weights_ = weights / weights.sum()
        est.classes_ = classes
        est.student_ = None
        return est


def _labelled_weights(X: Any, y: Any, sample_weight: Any, labels: list[Any]) -> np.ndarray | None:
    """``fit``'s ``sample_weight`` checked, one per labelled example, the positive ones
    averaging 1 (``None``: not given, or all equal).

    Raises
    ------
    InputError
        An invalid ``sample_weight``, or one given without labelled data.
    """
    if X is None or (hasattr(X, "__len__") and len(X) == 0):
        no_weight_without_data(sample_weight)
        return None
    if sample_weight is None or y is None:  # no y: the members say it is required
        return None
    y_idx = to_label_indices(y, labels, len(X))
    return weights_per_example(sample_weight, y_idx, labels)


# ------------------------------------------------------------------ folder helpers
def _named_members(folder: Path) -> list[str]:
    """The member folders the existing ``ensemble.json`` names (none if unreadable)."""
    try:
        members = read_json_file(folder / _META).get("members")
    except (SavedPromptError, AttributeError):
        return []
    if not isinstance(members, list):
        return []
    return [str(n) for n in members if _MEMBER.fullmatch(str(n))]


def _remove_stray_members(folder: Path, keep: list[str]) -> None:
    """Remove member folders no ``ensemble.json`` names (left by an interrupted save),
    when they hold only pet_kit's files."""
    for entry in os.scandir(folder):
        stray = _MEMBER.fullmatch(entry.name) and entry.name not in keep
        if (stray or _MEMBER_TEMP.fullmatch(entry.name)) and entry.is_dir(follow_symlinks=False):
            if remove_pet_kit_folder(Path(entry.path)):
                log.info("removed %s, left by an interrupted save", entry.path)


def _free_member_names(folder: Path, n: int) -> list[str]:
    """``n`` names ``member_<i>`` (smallest ``i`` first) that nothing in ``folder`` uses."""
    names: list[str] = []
    i = 0
    while len(names) < n:
        if not os.path.lexists(folder / f"member_{i}"):
            names.append(f"member_{i}")
        i += 1
    return names


def _digest_or_none(path: Path) -> str | None:
    try:
        return json_file_digest(path)
    except SavedPromptError:
        return None


def _check_member_checksums(folder: Path, checksums: dict[str, Any]) -> None:
    """Each member's ``prompt.json`` must be the one ``ensemble.json`` recorded."""
    for name, expected in checksums.items():
        if not _MEMBER.fullmatch(str(name)):
            continue
        actual = _digest_or_none(folder / name / META_FILE)
        if actual is not None and actual != expected:
            raise SavedPromptError(
                f"{folder / name / META_FILE}: checksum mismatch with {folder / _META} (the"
                " member was replaced or edited after the ensemble was saved); restore it,"
                " or save the ensemble again"
            )


def _student_hint(folder: Path) -> str:
    """Which loader a folder holding a single prompt needs (or ``""``)."""
    if not (folder / META_FILE).is_file():
        return ""
    try:
        kind = read_json_file(folder / META_FILE).get("kind")
    except (SavedPromptError, AttributeError):
        return ""
    loader = "LinearStudent" if kind == STUDENT_KIND else "PromptClassifier"
    return f" It is a single distilled student: use {loader}.load"
