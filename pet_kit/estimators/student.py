"""A linear classifier on the frozen backbone's sentence embeddings: a distillation student.

:class:`LinearStudent` embeds each text once (mean-pooled, L2-normalised last hidden
states of the frozen encoder, no pattern) and fits a softmax-regression layer on hard
labels or on soft labels at a temperature. It is the cheapest artefact pet_kit makes
(``n_classes x hidden`` numbers) and predicts with one encoder pass per text and no MLM
head. Saved as a folder in the prompt-folder format (safetensors + JSON, atomic).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .._version import __version__
from ..config.settings import PARAMETERS
from ..errors import BackboneMismatchError, InputError, SavedPromptError, TrainingDivergedError
from ..io.inputs import (
    CONTINUOUS_HINT,
    check_label,
    check_text,
    is_real_number,
    label_vector,
    looks_continuous,
    to_label_indices,
)
from ..io.prompt_folder import read_prompt_dir, write_prompt_dir
from ..io.result_folder import check_replace
from ..model.backbone import Backbone, frozen, identity_matches, load_backbone
from ..model.demonstrations import embed_texts
from ._sklearn import decision_scores, fit_weights

__all__ = ["STUDENT_KIND", "LinearStudent"]

log = logging.getLogger(__name__)

STUDENT_KIND = "linear_student"


def _texts(X: Any) -> list[str]:
    if X is None or isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
        raise InputError(f"X must be a list of texts, got {type(X).__name__}")
    texts = list(X)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InputError(f"X must hold strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return [check_text(t, f"X[{i}]") for i, t in enumerate(texts)]


#: The saved ``params`` a student folder records (its constructor's scalar settings).
_SAVED_PARAMS = ("temperature", "l2", "max_length")


def _check_settings(temperature: Any, l2: Any, max_length: Any) -> None:
    """Refuse settings :meth:`LinearStudent.fit` cannot use (:class:`InputError`)."""
    for name, v in (("temperature", temperature), ("l2", l2)):
        if not is_real_number(v) or v < 0 or (name == "temperature" and v == 0):
            raise InputError(f"{name} must be a number > 0 (l2: >= 0), got {v!r}")
        if not isinstance(v, (int, np.integer)) and not np.isfinite(v):
            raise InputError(f"{name}={v!r} is not finite; {name} must be a finite number")
    PARAMETERS["max_length"].check("max_length", max_length)


def _class_order(labels: np.ndarray, classes: Any) -> list[Hashable]:
    """The classes of hard labels ``labels``: ``classes`` (checked) or the sorted labels."""
    for i, label in enumerate(labels):
        check_label(label, i)
    if classes is not None:
        order = list(classes)
        if len(set(map(repr, order))) != len(order):
            raise InputError(f"classes holds a label twice: {order}; list each label once")
        if len(order) < 2:
            raise InputError(f"classes must list at least two labels, got {order}")
        return order
    try:
        order = sorted(set(labels))
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in labels})
        raise InputError(
            f"y mixes labels of types {kinds}, which have no order; use labels of one type,"
            " or pass classes=[...] to give the order"
        ) from exc
    if len(order) < 2:
        raise InputError(
            f"y contains only one class ({order[0]!r}); a classifier needs at least two"
        )
    return order


def _check_soft_labels(y: np.ndarray) -> torch.Tensor:
    """Soft labels as a float tensor; each row finite, >= 0, with a positive sum."""
    try:
        target = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"soft labels y must hold numbers, got {y!r:.80}") from exc
    bad = np.flatnonzero(~np.isfinite(target).all(1) | (target < 0).any(1) | (target.sum(1) <= 0))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"soft labels y[{i}] = {target[i].tolist()} are not class probabilities; each row"
            " must hold finite numbers >= 0 with a positive sum"
        )
    return torch.as_tensor(target, dtype=torch.float32)


class LinearStudent(ClassifierMixin, BaseEstimator):
    """Softmax regression on the frozen backbone's mean-pooled embeddings.

    Parameters
    ----------
    model, tokenizer : optional
        The backbone (as in :class:`~pet_kit.PromptClassifier`; default: the embedded
        one). Only its encoder is used; it is never changed.
    classes : sequence, optional
        The label order; required when ``y`` is given as soft labels (columns in this
        order), otherwise the sorted labels of ``y``.
    temperature : float, default=1.0
        Soft labels are fitted with ``T^2 * cross-entropy(y, softmax(z / T))``.
    l2 : float, default=1e-3
        L2 penalty on the weights.
    max_length : int, default=128
        Tokens per text embedded.
    device : str, optional

    Attributes
    ----------
    classes_ : ndarray
    coef_ : ndarray of shape (n_classes, hidden)
    intercept_ : ndarray of shape (n_classes,)
    backbone_name_, backbone_fingerprint_ : str
    """

    def __init__(
        self,
        model: Any = None,
        *,
        tokenizer: Any = None,
        classes: Any = None,
        temperature: float = 1.0,
        l2: float = 1e-3,
        max_length: int = 128,
        device: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.classes = classes
        self.temperature = temperature
        self.l2 = l2
        self.max_length = max_length
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    def _backbone(self) -> Backbone:
        return load_backbone(self.model, self.tokenizer, self.device)  # cached per process

    def _fitted_backbone(self) -> Backbone:
        """The backbone, refused unless it is the one the student was fitted on (the
        model at a path may have been replaced since, e.g. before unpickling)."""
        backbone = self._backbone()
        if not identity_matches(backbone, self.backbone_fingerprint_, "LinearStudent"):
            raise BackboneMismatchError(
                f"this student was fitted on backbone {self.backbone_name_!r}"
                f" ({self.backbone_fingerprint_}), but {backbone.name!r} now has fingerprint"
                f" {backbone.fingerprint}: its weights differ. Use the original backbone or"
                " fit the student again"
            )
        return backbone

    def _embed(self, texts: list[str], backbone: Backbone | None = None) -> torch.Tensor:
        backbone = backbone if backbone is not None else self._fitted_backbone()
        with frozen(backbone.model):
            emb = embed_texts(backbone, texts, max_length=int(self.max_length))
        return torch.from_numpy(emb)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearStudent:
        """Fit on texts ``X`` and labels (or soft labels of shape (n, n_classes)) ``y``.

        Parameters
        ----------
        X : list of str
        y : array-like
            Labels (a column of labels, ``(n, 1)`` or a one-column DataFrame, is read as
            its labels), or soft labels of shape ``(n, n_classes)`` in ``classes``
            order.
        sample_weight : array-like of shape (n,), optional
            A weight >= 0 per text multiplying its loss (scaled to average 1: integer
            weights train as repeated texts). Texts of weight 0 are left out; equal
            weights train exactly as none.

        Returns
        -------
        self

        Raises
        ------
        InputError
            Invalid parameters, texts, labels or ``sample_weight``.
        TrainingDivergedError
            The loss or the weights became NaN or infinite.
        """
        _check_settings(self.temperature, self.l2, self.max_length)
        texts = _texts(X)
        if len(texts) == 0:
            raise InputError("X is empty; the student needs training texts")
        if y is None:
            raise InputError(
                f"{type(self).__name__} requires y to be passed, but the target y is None;"
                " pass fit(X, y) with labels or soft labels"
            )
        y = label_vector(y)
        y_arr = np.asarray(y, dtype=object if np.ndim(y) == 1 else None)
        if np.ndim(y_arr) == 2:
            if self.classes is None:
                raise InputError("soft labels y need classes=[...] (the column order)")
            classes: list[Hashable] = _class_order(np.asarray([]), self.classes)
            if y_arr.shape != (len(texts), len(classes)):
                raise InputError(
                    f"soft labels y must have shape ({len(texts)}, {len(classes)}), got"
                    f" {y_arr.shape}"
                )
            target = _check_soft_labels(y_arr)
            idx = target.argmax(1).numpy()
        else:
            if self.classes is None and looks_continuous(y_arr):
                raise InputError(
                    f"{CONTINUOUS_HINT}; pass class labels (or soft labels of shape"
                    " (n, n_classes) with classes=[...])"
                )
            classes = _class_order(y_arr, self.classes)
            idx = to_label_indices(y_arr, classes, len(texts))
            target = torch.eye(len(classes))[torch.as_tensor(idx)]
        keep, sample_w = fit_weights(sample_weight, idx, classes, hard=np.ndim(y_arr) == 1)
        if keep is not None:
            texts = [texts[i] for i in np.flatnonzero(keep)]
            target = target[torch.as_tensor(keep)]
        w = None
        if sample_w is not None:
            w = torch.as_tensor(sample_w / sample_w.mean(), dtype=torch.float32)
        backbone = self._backbone()
        emb = self._embed(texts, backbone)
        temp = float(self.temperature)
        linear = torch.nn.Linear(emb.shape[1], len(classes))
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        optim = torch.optim.LBFGS(linear.parameters(), max_iter=500, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optim.zero_grad()
            logp = torch.log_softmax(linear(emb) / temp, dim=1)
            per_text = -(target * logp).sum(1)
            loss = (per_text if w is None else per_text * w).mean() * temp * temp
            loss = loss + float(self.l2) * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        try:
            optim.step(closure)
            weights = torch.cat([linear.weight.detach().ravel(), linear.bias.detach()])
            diverged = not bool(torch.isfinite(weights).all())
        except RuntimeError as exc:  # e.g. temperature**2 overflowing float32
            if "overflow" not in str(exc):
                raise
            diverged = True
        if diverged:
            raise TrainingDivergedError(
                f"LinearStudent training diverged: its loss or weights became NaN or inf"
                f" (temperature={temp:g}, l2={float(self.l2):g}); use a temperature near 1"
                " and a smaller l2 (e.g. the defaults)",
                step=0,
                loss=float("nan"),
                learning_rates={},
            )
        self.classes_ = np.asarray(classes)
        self.coef_ = linear.weight.detach().numpy().copy()
        self.intercept_ = linear.bias.detach().numpy().copy()
        self.backbone_name_ = backbone.name
        self.backbone_fingerprint_ = backbone.fingerprint
        return self

    def _logits(self, X: Any) -> np.ndarray:
        """Logits, shape (n, n_classes)."""
        check_is_fitted(self, "coef_")
        emb = self._embed(_texts(X)).numpy()
        return emb @ self.coef_.T + self.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits in scikit-learn's shape: (n,) for two classes (that of ``classes_[1]``
        minus that of ``classes_[0]``; positive means ``classes_[1]``), else
        (n, n_classes)."""
        return decision_scores(self._logits(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities; columns follow ``classes_``."""
        return torch.softmax(torch.from_numpy(self._logits(X)).double(), 1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels."""
        return self.classes_[self._logits(X).argmax(1)]

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save atomically to folder ``path`` (safetensors + JSON).

        ``overwrite=True`` replaces a student or prompt already in ``path``; without it such
        a folder is refused and left as it was (the rule of every folder pet_kit writes).
        """
        check_is_fitted(self, "coef_")
        check_replace(
            path,
            overwrite=overwrite,
            fix="Pass overwrite=True to save() to replace it, or choose another folder",
        )
        meta = {
            "kind": STUDENT_KIND,
            "pet_kit_version": __version__,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes_],
            "params": {
                "temperature": float(self.temperature),
                "l2": float(self.l2),
                "max_length": int(self.max_length),
            },
            "backbone": {"name": self.backbone_name_, "fingerprint": self.backbone_fingerprint_},
        }
        tensors = {
            "weight": torch.from_numpy(self.coef_),
            "bias": torch.from_numpy(self.intercept_),
        }
        return write_prompt_dir(path, tensors, meta)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], model: Any = None, *, device: str | None = None
    ) -> LinearStudent:
        """Load a student saved by :meth:`save` (on the backbone it was trained on)."""
        from ..model.default_backbone import DEFAULT_MODEL_NAME

        tensors, meta = read_prompt_dir(path)
        if meta.get("kind") != STUDENT_KIND:
            raise SavedPromptError(
                f"{path}: not a linear-student folder (a prompt? use PromptClassifier.load)"
            )
        try:
            recorded = dict(meta["backbone"])
            classes = meta["classes"]
            params = dict(meta["params"])
            weight, bias = tensors["weight"], tensors["bias"]
        except (KeyError, TypeError, ValueError) as exc:
            raise SavedPromptError(f"{path}: incomplete student files ({exc})") from exc
        _check_saved(Path(path), params, classes, weight, bias)
        if model is None and recorded.get("name") != DEFAULT_MODEL_NAME:
            model = recorded.get("name")
        est = cls(model=model, device=device, **{k: params[k] for k in _SAVED_PARAMS})
        backbone = load_backbone(model, None, device)
        if not identity_matches(backbone, recorded.get("fingerprint"), str(path)):
            raise BackboneMismatchError(
                f"{path}: this student was trained on backbone {recorded.get('name')!r}"
                f" ({recorded.get('fingerprint')}), not {backbone.name!r}"
                f" ({backbone.fingerprint}); load it with model=<the original backbone>"
            )
        if weight.shape[1] != backbone.model.config.hidden_size:
            raise SavedPromptError(f"{path}: weight width does not match the backbone")
        est.classes_ = np.asarray(classes)
        est.coef_ = weight.float().numpy()
        est.intercept_ = bias.float().numpy()
        est.backbone_name_ = backbone.name
        est.backbone_fingerprint_ = backbone.fingerprint
        return est


def _check_saved(
    path: Path, params: dict[str, Any], classes: list[Any], weight: Any, bias: Any
) -> None:
    """A student folder's ``params``, ``classes`` and tensors must be what :meth:`save`
    writes (:class:`SavedPromptError` naming the file and the value otherwise)."""
    where = path / "prompt.json"
    edited = "the file was edited or damaged; restore it, or fit and save the student again"
    if sorted(params) != sorted(_SAVED_PARAMS):
        raise SavedPromptError(
            f"{where}: params holds {sorted(params)}, not {list(_SAVED_PARAMS)}; {edited}"
        )
    try:
        _check_settings(params["temperature"], params["l2"], params["max_length"])
    except InputError as exc:
        raise SavedPromptError(f"{where}: params: {exc}; {edited}") from exc
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, (str, int, float)) for c in classes)
        or len(set(map(repr, classes))) != len(classes)
    ):
        raise SavedPromptError(
            f"{where}: classes {classes!r:.120} are not two or more distinct labels (strings"
            f" or numbers); {edited}"
        )
    tensors = path / "prompt.safetensors"
    shapes = (tuple(weight.shape), tuple(bias.shape))
    if weight.ndim != 2 or shapes[0][0] != len(classes) or shapes[1] != (len(classes),):
        raise SavedPromptError(
            f"{tensors}: weight and bias have shapes {shapes[0]} and {shapes[1]}, not"
            f" ({len(classes)}, hidden) and ({len(classes)},) for the {len(classes)}"
            f" classes; {edited}"
        )
    for name, value in (("weight", weight), ("bias", bias)):
        if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise SavedPromptError(
                f"{tensors}: {name} is not finite floating-point numbers (dtype"
                f" {value.dtype}); {edited}"
            )
