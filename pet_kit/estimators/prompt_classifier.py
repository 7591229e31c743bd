"""The scikit-learn estimator: :class:`PromptClassifier`.

A thin face over the layers below: it resolves its settings
(:mod:`pet_kit.config.settings`), builds a :class:`~pet_kit.ClozeModel`, hands it to the
trainer (:mod:`pet_kit.train.trainer`) and keeps the result as ``model_``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..config.pvp import PVP, load_pvp
from ..config.settings import (
    CALIBRATIONS,
    GROUPS,
    Calibration,
    Settings,
    as_group,
    from_json,
    resolve,
    to_json,
)
from ..errors import InputError, SavedPromptError
from ..io.inputs import label_vector, to_label_indices
from ..io.result_folder import check_replace, check_save_target
from ..model.cloze_model import BuildOptions, ClozeModel
from ..model.threads import torch_threads
from ..train import trainer
from ..train.loop import TrainResult
from ._sklearn import decision_scores, fit_weights, no_weight_without_data

__all__ = ["PromptClassifier"]

log = logging.getLogger(__name__)

# Parameters that are objects, not JSON-able settings (handled separately on save).
_OBJECT_PARAMS = ("pvp", "model", "tokenizer")
# Recorded in prompt.json for information but not restored by load(): machine-specific.
_NOT_RESTORED = ("device", "n_threads")


def _sorted_labels(labels: list[Hashable]) -> list[Hashable]:
    try:
        return sorted(labels)
    except TypeError:
        return labels


def _weighted(
    data: trainer.TrainingData | None, sample_weight: Any, labels: list[Any]
) -> trainer.TrainingData | None:
    """``data`` with ``fit``'s ``sample_weight``: examples of weight 0 left out, the
    others' weights kept (``None`` when all are equal).

    Raises
    ------
    InputError
        An invalid ``sample_weight``, or one given without training data.
    """
    if data is None:
        no_weight_without_data(sample_weight)
        return None
    keep, weights = fit_weights(sample_weight, data.y, labels, hard=data.targets.ndim == 1)
    if keep is None:
        return dataclasses.replace(data, weights=weights)
    idx = np.flatnonzero(keep)
    return dataclasses.replace(
        data,
        examples=[data.examples[i] for i in idx],
        y=data.y[idx],
        targets=data.targets[idx],
        weights=weights,
    )


class PromptClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot text classifier: a cloze pattern + verbalizer on a frozen masked LM.

    Only the pattern's soft slots (``[SOFT]``...) are trained; the backbone and its MLM
    head are frozen, so a trained task is a few KB of vectors. A PVP without soft slots
    classifies zero-shot: under ``tuning="prompt"`` ``fit(X, y)`` then trains nothing and
    says so with a :class:`~pet_kit.NothingTrainedWarning` (``tuning="head"`` trains its
    label-word readout; ``fit(None)`` asks for zero-shot without a warning).

    Settings that belong together are grouped in small objects
    (:class:`~pet_kit.Tuning`, :class:`~pet_kit.DeepPrompt`,
    :class:`~pet_kit.EarlyStopping`, :class:`~pet_kit.Calibration`,
    :class:`~pet_kit.Demonstrations`, :class:`~pet_kit.Checkpoints`,
    :class:`~pet_kit.Batching`); each also takes a shorthand (``tuning="lora"``,
    ``deep_prompt=4``, ``early_stopping=True``...) or a dict of its fields (YAML).
    Nested names reach their fields: ``set_params(tuning__rank=4)``, and a
    ``GridSearchCV`` grid over ``"tuning__rank"`` when ``tuning`` is a ``Tuning``.
    Defaults and constraints: :data:`pet_kit.config.settings.PARAMETERS`.

    Parameters
    ----------
    pvp : str, PathLike, dict or PVP
        Pattern-verbalizer pair: the name of a shipped PVP (``"sentiment_en"`` or
        ``"sentiment_en#pattern_name"``; ``pet-kit list-pvps`` lists them), a template
        YAML path (``"my/x.yaml"`` or ``"my/x.yaml#pattern_name"``), a PVP YAML path, an
        inline dict such as
        ``{"pattern": "[SOFT*2] {text} It was [MASK].", "verbalizer": {"pos": ["great"],
        "neg": ["terrible"]}}``, or a :class:`~pet_kit.PVP`.
    model : None, str, PathLike or transformers model
        ``None``: pet_kit's embedded offline default backbone. A hub name or local folder
        of a masked LM (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA generator...). A
        model object is used as is and never modified.
    tokenizer : None, str, PathLike or tokenizer
        Defaults to the model's tokenizer.
    max_length : int, default=256
        Maximum tokens per input; only shortenable text fields are ever cut.
    learning_rate : float, default=3e-2
        AdamW learning rate for the prompt vectors (chosen on a dev split carved from the
        Rotten Tomatoes train split: ``benchmarks/results/tune_pet_kit.json``). Like every
        float parameter, it must be finite; a rate so high that training produces NaN
        or inf stops ``fit`` with :class:`~pet_kit.errors.TrainingDivergedError`.
    epochs : int, default=20
        Passes over the training data (ignored when ``max_steps`` is set).
    max_steps : int, optional
        Total optimizer steps, overriding ``epochs``.
    batch_size : int, default=8
        Examples per optimizer step.
    weight_decay : float, default=0.0
    prompt_init : {"vocab", "random", "text", "mean"} or path, default="vocab"
        Initialisation of slots without init words (see
        :func:`~pet_kit.model.soft_prompt.initial_vectors`), or the folder of a prompt
        saved on the same backbone to start from (prompt transfer: slot ``i`` from its
        slot ``i``).
    prompt_encoder : {None, "mlp", "lstm", "rank1"}, default=None
        Reparameterisation of the slots during training: P-tuning's MLP or LSTM, or
        ``"rank1"``: the starting vectors frozen, scaled by a trained rank-1 matrix (with
        ``prompt_init=<saved prompt>``: multi-task prompt tuning's per-task adaptation).
    tuning : str, dict or Tuning, default="prompt"
        What training changes (:class:`~pet_kit.Tuning`: ``mode``, LoRA ``rank`` and
        ``alpha``, the backbone's ``learning_rate``, PET's ``mlm_loss_weight``).
        ``"prompt"``: the soft slots only (backbone and MLM head frozen).
        ``"prompt+head"``: also a soft verbalizer — trainable copies of the MLM decoder
        rows and biases of the label words' tokens, initialised from the frozen head;
        trains even a pattern without soft slots. ``"head"``: that soft verbalizer only,
        the slots kept at their initial vectors (a trained readout of the untrained
        prompt). ``"lora"``: also LoRA adapters
        (``peft``, ``pip install 'pet_kit[lora]'``) on the attention query/value
        projections of a private copy of the backbone. ``"full"``: every weight of a
        private copy trains (PET's fine-tuning) with PET's auxiliary MLM loss on
        ``fit(..., X_unlabeled=)`` (else the training texts). The shared backbone (and a
        model object you passed) is never changed in any mode; LoRA / full copies cost
        one model's memory per estimator. Dropout stays off in every mode.
    deep_prompt : int, dict or DeepPrompt, default=0
        Deep prompt (P-tuning v2 / prefix tuning in hidden-state form,
        :class:`~pet_kit.DeepPrompt`: ``length`` slots in front of the pattern whose
        states are also trainable at the input of every layer, optionally reparameterised
        by an ``encoder``); they start from the states those positions naturally get.
        0: input-layer slots only. BERT, RoBERTa, XLM-R, DistilBERT, ALBERT, ELECTRA.
    early_stopping : bool, dict or EarlyStopping, default=False
        Hold out ``validation_fraction`` of the training data (stratified) and keep the
        prompt of the best held-out accuracy; stop after ``n_iter_no_change`` epochs
        without improvement (:class:`~pet_kit.EarlyStopping`).
    guard : {"2fold", "4fold", "holdout", None}, default="2fold"
        Train only when the examples show that training helps. Before training, the labelled
        examples are split — ``"2fold"``: two seeded, stratified halves, each held out in
        turn, so every example is scored; ``"4fold"``: four stratified folds likewise, so
        the probes train on three quarters of the examples, at about three fits' cost;
        ``"holdout"``: a stratified quarter held out (at least one per class), cheaper and
        noisier — a probe trains on each training part
        with the same settings from the same start, and the untrained prompt and the probes
        are scored on the held-out examples (Brier score and accuracy, calibrated as
        predictions would be, weighted by ``sample_weight``). Training then goes ahead on
        *all* the examples (exactly the prompt ``guard=None`` gives) only if the probes have
        a lower held-out Brier score and at least the same held-out accuracy; otherwise the
        prompt stays untrained (its initialisation: what ``epochs=0`` gives),
        ``fit_summary_["kept_untrained"]`` is True and a WARNING is logged (at ``verbose >=
        1``). The check costs about one more fit (measured, and how the default was chosen:
        ``benchmarks/never_worse.py``). When a class has fewer than 2 examples there is
        nothing to hold out: training goes ahead unchecked
        (``fit_summary_["guard"]["skipped"]`` says why). ``None``: always train. Nothing is
        checked when nothing trains (``fit(None)``, ``epochs=0``, a pattern without soft
        slots under ``tuning="prompt"``). On a warm start, "untrained" is the fitted prompt
        training continues from.
    calibration : None, str, dict or Calibration, default=None
        Contextual calibration (Zhao et al., 2021): after ``fit``, estimate the class
        prior the prompt gives to inputs without content and divide it out of every
        prediction (``p(c|x) ∝ p_raw(c|x) / prior(c)``). ``"content_free"`` averages the
        probabilities of the :class:`~pet_kit.Calibration`'s ``texts`` (default:
        ``"N/A"``, ``""`` and the mask token, put in every text field); ``"unlabeled"``
        averages them over ``fit(..., X_unlabeled=...)`` (or, without those, the training
        texts). Works zero-shot and after training; saved with the prompt.
    demonstrations : None, str, dict or Demonstrations, default=None
        LM-BFF in-context demonstrations (:class:`~pet_kit.Demonstrations`): after each
        input's pattern, one training example per class filled into the pattern with its
        label word at the mask, drawn at random (``"random"``, deterministic per input
        text and ``random_state``) or the most similar one (``"similar"``: cosine of the
        backbone's mean-pooled states); ``max_tokens`` of each demonstration's text are
        kept (default: an equal share of ``max_length``). Training examples never get
        themselves as a demonstration. The labelled examples are saved with the prompt.
    checkpoint : None, str, PathLike, dict or Checkpoints, default=None
        A prompt folder (:class:`~pet_kit.Checkpoints`: ``dir`` and ``every`` optimizer
        steps, default every epoch) that ``fit`` keeps up to date while training, at the
        end and when interrupted (Ctrl-C); written atomically, loadable with :meth:`load`.
        With early stopping the final write holds the best prompt, as ``prompt_`` does.
    batching : None, dict or Batching, default=None
        Batch mechanics (:class:`~pet_kit.Batching`): ``eval_batch_size`` (examples per
        forward pass when predicting), ``gradient_accumulation_steps`` (same result, less
        memory) and ``group_by_length`` (batches of similar lengths once the training set
        holds more than 50 batches).
    warm_start : bool, default=False
        When the estimator is already fitted with the same PVP on the same backbone,
        ``fit`` continues training from the current prompt with a fresh optimizer
        instead of re-initialising it. Fitted with another PVP or backbone, ``fit``
        raises :class:`~pet_kit.InputError`.
    temperature : float, default=1.0
        Soft-label training only (``y`` given as class probabilities, e.g. a teacher's
        ``predict_proba``): the loss is ``T^2 * cross-entropy(y, softmax(scores / T))``.
    random_state : int, RandomState or None
        Seeds slot initialisation, shuffling and the validation split.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA when available (models pet_kit
        loads only; a model object stays where it is).
    n_threads : int, optional
        CPU threads torch uses inside ``fit`` and prediction (restored afterwards; the
        setting is process-wide). ``None`` keeps torch's current setting.
    verbose : int, default=1
        ``0``: silent (no progress bars; the fit summary is logged at DEBUG). ``1``:
        a ``fit`` bar while training, a bar with a total and ETA when ``predict``,
        ``predict_proba``, ``decision_function`` or ``score`` get more than one batch
        (``batching.eval_batch_size`` texts), and the fit summary logged at INFO
        (logger ``pet_kit.train.trainer``). ``2``: transformers' own progress bars and
        messages while the backbone loads, too.

    Attributes
    ----------
    model_ : ClozeModel
        The compiled PVP on its backbone with the trained parts; encode, score, save.
    classes_ : ndarray
        The verbalizer's labels, sorted; ``predict_proba`` columns follow this order.
    history_ : dict
        Losses per epoch, steps, early-stopping information, ``interrupted`` (True when
        ``fit`` was stopped by Ctrl-C), ``warm_started``, what trained (``trained``: part
        -> values), held-out accuracy before and after training (early stopping),
        ``guard`` and ``kept_untrained`` (what the guard found; see ``fit_summary_``) and
        ``summary`` (as ``fit_summary_``).
    fit_summary_ : dict
        What the last ``fit`` did: the trained parts and their value counts
        (``trained``, ``n_trained``), ``steps``, ``epochs``, ``n_examples``,
        ``final_train_loss``, ``held_out`` (early stopping's split: ``{"n", "before",
        "after"}`` accuracies, else ``None``), ``kept_untrained`` (the guard kept the
        untrained prompt), ``guard`` (``None`` when it did not run; else ``mode``,
        ``kept_untrained``, ``skipped``, ``n_train``, ``n_held_out``, the held-out
        ``untrained`` and ``trained`` scores ``{"accuracy", "log_loss", "brier"}``,
        ``probe_steps``, ``seconds``, ``interrupted``) and a one-sentence ``text``, which
        ``fit`` logs.
    pvp_, prompt_, n_slots_, prompt_init_, calibration_prior_, label_head_, \
deep_prompt_, backbone_delta_, demo_pool_, backbone_name_, backbone_fingerprint_
        Views of ``model_``'s parts (the PVP, the soft prompt, its slot count and
        initial vectors, the calibration prior, soft verbalizer, deep states, backbone
        delta, demonstration pool, and the backbone's name and fingerprint).
    """

    def __init__(
        self,
        pvp: Any = None,
        model: Any = None,
        *,
        tokenizer: Any = None,
        max_length: int = 256,
        learning_rate: float = 3e-2,
        epochs: int = 20,
        max_steps: int | None = None,
        batch_size: int = 8,
        weight_decay: float = 0.0,
        prompt_init: str = "vocab",
        prompt_encoder: str | None = None,
        tuning: Any = "prompt",
        deep_prompt: Any = 0,
        early_stopping: Any = False,
        guard: str | None = "2fold",
        calibration: Any = None,
        demonstrations: Any = None,
        checkpoint: Any = None,
        batching: Any = None,
        warm_start: bool = False,
        temperature: float = 1.0,
        random_state: Any = None,
        device: str | None = None,
        n_threads: int | None = None,
        verbose: int = 1,
    ) -> None:
        self.pvp = pvp
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.prompt_init = prompt_init
        self.prompt_encoder = prompt_encoder
        self.tuning = tuning
        self.deep_prompt = deep_prompt
        self.early_stopping = early_stopping
        self.guard = guard
        self.calibration = calibration
        self.demonstrations = demonstrations
        self.checkpoint = checkpoint
        self.batching = batching
        self.warm_start = warm_start
        self.temperature = temperature
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = False
        return tags

    def set_params(self, **params: Any) -> PromptClassifier:
        """Set parameters; ``group__field`` names reach a grouped setting's field.

        When the group is given as a shorthand (``tuning="lora"``), a dict or "off"
        (``deep_prompt=0``), it first becomes its object (``Tuning("lora")``), so
        ``set_params(tuning__rank=4)`` and grids over ``"tuning__rank"`` work with
        every form.

        Returns
        -------
        self
        """
        for name in {k.split("__", 1)[0] for k in params if "__" in k} & set(GROUPS):
            prefix = name + "__"
            fields = {k[len(prefix) :]: params.pop(k) for k in list(params) if k.startswith(prefix)}
            if any("__" in f for f in fields):
                continue  # deeper nesting: let scikit-learn report it
            current = params.pop(name, getattr(self, name))
            params[name] = as_group(name, current, fields)
        return super().set_params(**params)

    # ----------------------------------------------------------------- settings
    def settings(self) -> Settings:
        """The parameters, checked and with shorthands resolved into their groups.

        Raises
        ------
        InputError
            The first invalid parameter, named, with the fix.
        """
        return resolve(self.get_params(deep=False))

    def resolved_pvp(self) -> PVP:
        """The PVP, its labels sorted (the order of ``classes_``)."""
        if self.pvp is None:
            raise InputError(
                "no pvp given; pass e.g. PromptClassifier(pvp='sentiment_en') or"
                " an inline {'pattern': ..., 'verbalizer': ...}"
            )
        pvp = load_pvp(self.pvp)
        labels = _sorted_labels(list(pvp.verbalizer.labels))
        verbalizer = dataclasses.replace(
            pvp.verbalizer, labels={k: pvp.verbalizer.labels[k] for k in labels}
        )
        return dataclasses.replace(pvp, verbalizer=verbalizer)

    def _threads(self, settings: Settings | None = None) -> AbstractContextManager[None]:
        """torch's thread count for a fit/predict call."""
        n = (settings or self.settings()).n_threads
        return torch_threads(None if n is None else int(n))

    def _json_params(self) -> dict[str, Any]:
        """The settings recorded in ``prompt.json`` (objects such as the model aside)."""
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in _OBJECT_PARAMS}
        return to_json(params)

    # ---------------------------------------------------------------------- fit
    def fit(
        self, X: Any, y: Any = None, X_unlabeled: Any = None, sample_weight: Any = None
    ) -> PromptClassifier:
        """Train the soft slots on ``(X, y)``.

        Parameters
        ----------
        X : list of str, array, Series, DataFrame, Dataset, or None
            Training texts. ``None`` gives a zero-shot classifier; an empty ``X`` (no
            rows) is an :class:`~pet_kit.InputError`.
        y : array-like
            Labels; every label must be defined by the verbalizer. A column of labels
            (an ``(n, 1)`` array, a one-column DataFrame) is read as its labels, with
            scikit-learn's ``DataConversionWarning``. Or soft labels: an array of shape
            ``(n, n_classes)`` of class probabilities, columns in ``classes_`` order (the
            verbalizer's labels, sorted), trained with the ``temperature``-scaled
            cross-entropy.
        X_unlabeled : texts, optional
            Unlabeled texts for ``calibration="unlabeled"`` (the class prior) and PET's
            auxiliary MLM loss (``tuning="full"``).
        sample_weight : array-like of shape (n_examples,), optional
            A weight >= 0 per example: each example's training loss is multiplied by its
            weight (scaled to average 1, so only relative weights matter). Examples of
            weight 0 are left out of training; equal weights train exactly as none.
            Positive weight must fall on two classes at least (hard labels). Nothing
            uses the weights when nothing trains (``fit(None)``, ``epochs=0``, a
            pattern without soft slots under ``tuning="prompt"``); nor do early
            stopping's held-out accuracy, the ``calibration="unlabeled"`` prior
            estimated from the training texts, the demonstration pool
            (``demonstrations``) and PET's auxiliary MLM loss (``tuning="full"``).

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            Ctrl-C during training is re-raised *after* the estimator was left fitted
            with the prompt so far (the best one with early stopping) and
            ``history_["interrupted"] = True`` (and, with ``checkpoint``, that prompt was
            written there), so it can be used, saved or trained further with
            ``warm_start=True``.
        InputError
            ``X`` is empty. A parameter is invalid, e.g. a float parameter that is not finite
            (``learning_rate=inf``); nothing was loaded or trained. Or ``sample_weight``
            is invalid (its length, a negative or non-finite value, every weight 0).
        TrainingDivergedError
            The training loss or a trained value became NaN or infinite (usually a
            learning rate that is too high; the message names the step, the loss, the
            learning rates and the fix). The estimator is left exactly as it was before
            this call. No non-finite prompt is ever kept or written. Under
            ``GridSearchCV`` the grid point gets ``error_score`` (the error is a
            ``ValueError``).
        """
        settings = self.settings()
        if X is not None and y is None:
            raise InputError(
                f"{type(self).__name__} requires y to be passed, but the target y is None;"
                " pass fit(X, y) with one label per text, or fit(None) for zero-shot"
            )
        with self._threads(settings):
            return self._fit(settings, X, label_vector(y), X_unlabeled, sample_weight)

    def _fit(
        self, settings: Settings, X: Any, y: Any, X_unlabeled: Any, sample_weight: Any = None
    ) -> PromptClassifier:
        self._check_checkpoint_target(settings)
        model = ClozeModel.build(
            self.resolved_pvp(), BuildOptions.from_settings(settings, self.model, self.tokenizer)
        )
        fitted = getattr(self, "model_", None) if settings.warm_start else None
        result = trainer.fit(
            model,
            trainer.TaskData(X, y, X_unlabeled),
            settings,
            fitted=fitted,
            on_checkpoint=self._checkpoint_writer(model, settings, fitted is not None),
            weigh=lambda data: _weighted(data, sample_weight, model.labels),
        )
        # fitted attributes are set only once everything above succeeded (or was
        # interrupted with a usable prompt)
        self.model_ = model
        self.classes_ = model.classes
        self.history_ = result.history
        self.fit_summary_ = result.summary
        if result.trained and settings.checkpoint is not None:
            path = self.save(settings.checkpoint.dir, overwrite=True)  # checked before fit
            log.info("final checkpoint written to %s", path)
        if result.interrupt is not None:
            log.warning(
                "fit interrupted after %d step(s): the estimator holds the prompt so far",
                result.history["steps"],
            )
            raise result.interrupt
        return self

    def _check_checkpoint_target(self, settings: Settings) -> None:
        """Refuse an unusable checkpoint folder before anything is loaded or trained (a
        file, an unwritable folder, a folder of other files, a prompt of another task
        without ``checkpoint.overwrite``)."""
        if settings.checkpoint is None:
            return
        folder = settings.checkpoint.dir
        try:
            check_save_target(folder)
            check_replace(
                folder,
                overwrite=settings.checkpoint.overwrite,
                own=self._same_task,
                fix="Choose another checkpoint folder, or pass checkpoint=Checkpoints(dir,"
                " overwrite=True) (in a pet-kit train config: checkpoint: {dir: ...,"
                " overwrite: true}, or --overwrite) to replace it",
                role="checkpoint folder",
            )
        except SavedPromptError as exc:
            raise SavedPromptError(
                f"checkpoint folder cannot hold checkpoints, nothing was trained: {exc}"
            ) from exc

    def _same_task(self, meta: dict[str, Any]) -> bool:
        """Whether a saved prompt's ``prompt.json`` is of this estimator's PVP (labels
        included): an earlier checkpoint of the same task, which ``fit`` may replace."""
        mine = json.loads(json.dumps(self.resolved_pvp().to_dict(), default=str))
        return bool(meta.get("pvp") == mine)

    def _checkpoint_writer(
        self, model: ClozeModel, settings: Settings, warm: bool
    ) -> Callable[[int, TrainResult], None] | None:
        """The trainer's ``on_checkpoint`` callback: writes ``model`` as it trains."""
        if settings.checkpoint is None:
            return None
        folder = settings.checkpoint.dir
        params = self._json_params()

        def on_checkpoint(step: int, result: TrainResult) -> None:
            history = {
                **result.as_dict(),
                "zero_shot": False,
                "warm_started": warm,
                "checkpoint": True,
            }
            model.save(folder, params, history)
            log.info("checkpoint at step %d written to %s", step, folder)

        return on_checkpoint

    def calibrate(self, X_unlabeled: Any = None, method: str | None = None) -> PromptClassifier:
        """Estimate ``calibration_prior_`` for the fitted prompt, without retraining.

        Parameters
        ----------
        X_unlabeled : texts, optional
            Inputs whose mean predicted distribution is the prior (``"unlabeled"``).
        method : {None, "content_free", "unlabeled"}
            ``None``: ``"unlabeled"`` when ``X_unlabeled`` is given, else
            ``"content_free"`` (with the ``calibration`` setting's texts, if any).

        Returns
        -------
        self
            Predictions from now on divide the prior out; :meth:`save` keeps it.
        """
        check_is_fitted(self, "model_")
        if method is None:
            method = "unlabeled" if X_unlabeled is not None else "content_free"
        if method not in CALIBRATIONS[1:]:
            raise InputError(f"method must be None, 'content_free' or 'unlabeled', got {method!r}")
        if method == "unlabeled" and X_unlabeled is None:
            raise InputError("calibrate(method='unlabeled') needs X_unlabeled texts")
        settings = self.settings()
        texts = settings.calibration.texts if settings.calibration is not None else None
        calibration = Calibration(mode=method, texts=texts)
        with self._threads(settings):
            unlabeled = trainer.read_unlabeled(self.model_, settings, X_unlabeled, calibration)
            self.model_.set_prior(
                trainer.calibration_prior(self.model_, settings, calibration, unlabeled=unlabeled)
            )
        return self

    # ------------------------------------------------------------------ predict
    def optimize(self, inference: str | None = "bf16") -> PromptClassifier:
        """Predict faster from now on, on the same backbone.

        ``"bf16"``: the forward pass in bfloat16 under ``torch.autocast`` (CPUs with
        AVX512-BF16/AMX, or GPUs; nothing is copied). ``"int8"``: the encoder's linear
        layers dynamically quantized to int8 (CPU; one quantized copy per backbone and
        process, shared by every prompt; the MLM head and embeddings stay float32) —
        faster but it changes more labels on the default backbone. ``None`` goes back to
        float32. Training and saved prompts are unaffected. Measured speed and agreement
        with float32: ``benchmarks/speed.py``.

        Returns
        -------
        self
        """
        check_is_fitted(self, "model_")
        self.model_.set_inference(inference)
        return self

    def _class_scores(self, X: Any) -> np.ndarray:
        """Class scores, shape (n, n_classes) for any number of classes (as
        ``model_.class_scores``); softmax gives ``predict_proba``."""
        check_is_fitted(self, "model_")
        settings = self.settings()
        with self._threads(settings):
            return self.model_.class_scores(
                X, int(settings.batching.eval_batch_size), verbose=int(settings.verbose)
            )

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores in scikit-learn's shape.

        The label-word logits aggregated per class; with calibration, the class
        log-probabilities minus the log of ``calibration_prior_``. Two classes: shape
        (n,), the score of ``classes_[1]`` minus that of ``classes_[0]`` (positive means
        ``classes_[1]``; its sigmoid is ``predict_proba[:, 1]``), so
        ``scoring="roc_auc"`` works. More classes: shape (n, n_classes), whose softmax is
        ``predict_proba``. ``model_.class_scores(X)`` gives one column per class for
        any number of classes.
        """
        return decision_scores(self._class_scores(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities; columns follow ``classes_``."""
        return ClozeModel.probabilities(self._class_scores(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (elements of ``classes_``)."""
        scores = self._class_scores(X)
        return self.classes_[scores.argmax(axis=1)] if len(scores) else self.classes_[:0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on ``(X, y)``; labels match ``classes_`` as in ``fit`` (``"1"`` == 1)."""
        from sklearn.metrics import accuracy_score

        pred = self.predict(X)
        y_true = self.classes_[to_label_indices(y, self.classes_.tolist(), len(pred))]
        return float(accuracy_score(y_true, pred, sample_weight=sample_weight))

    # ------------------------------------------------------- views of model_
    def _part(self, name: str) -> Any:
        model = self.__dict__.get("model_")
        if model is None:
            raise AttributeError(f"this PromptClassifier is not fitted yet (no {name}_)")
        return model

    @property
    def pvp_(self) -> PVP:
        """The fitted PVP (labels sorted)."""
        return self._part("pvp").pvp

    @property
    def prompt_(self) -> Any:
        """The trained soft prompt (``prompt_()`` returns the slot vectors)."""
        return self._part("prompt").prompt

    @property
    def n_slots_(self) -> int:
        """Soft slots in the compiled pattern."""
        return self._part("n_slots").n_slots

    @property
    def prompt_init_(self) -> torch.Tensor | None:
        """The slot vectors before training."""
        return self._part("prompt_init").slots_init

    @property
    def calibration_prior_(self) -> np.ndarray | None:
        """The class prior divided out of predictions (``None``: uncalibrated)."""
        return self._part("calibration_prior").prior

    @property
    def label_head_(self) -> Any:
        """The trained soft verbalizer (``tuning="prompt+head"`` or ``"head"``)."""
        return self._part("label_head").label_head

    @property
    def deep_prompt_(self) -> Any:
        """The trained deep-prompt states."""
        return self._part("deep_prompt").deep

    @property
    def backbone_delta_(self) -> dict[str, torch.Tensor] | None:
        """The trained LoRA / full-tuning weights, by parameter name."""
        return self._part("backbone_delta").delta

    @property
    def demo_pool_(self) -> Any:
        """The labelled examples demonstrations are drawn from."""
        return self._part("demo_pool").demo_pool

    @property
    def backbone_name_(self) -> str:
        """The backbone's name."""
        return self._part("backbone_name").backbone.name

    @property
    def backbone_fingerprint_(self) -> str:
        """The backbone's fingerprint (what a saved prompt must match)."""
        return self._part("backbone_fingerprint").backbone.fingerprint

    # ---------------------------------------------------------- save and load
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save only the prompt (a few KB) to folder ``path``, atomically.

        The folder holds ``prompt.safetensors`` (slot vectors) and ``prompt.json``
        (PVP, classes, settings, pet_kit version, backbone name and fingerprint). Load
        with :meth:`load` on the same backbone.

        Parameters
        ----------
        path : str or PathLike
            The folder: new, empty, or (with ``overwrite=True``) a prompt folder, whose
            two prompt files are replaced (each atomically, ``prompt.json`` last) while
            any other file there is kept. A ``prompt.json`` that is not pet_kit's, or a
            non-empty folder without one, is refused whatever ``overwrite`` says.
            Concurrent saves to one folder wait for each other.
        overwrite : bool, default=False
            Replace a prompt already in ``path``. Without it such a folder is refused
            and left as it was, as ``pet-kit train`` refuses it without ``--overwrite``.

        Returns
        -------
        Path
            The folder written.

        Raises
        ------
        SavedPromptError
            The folder already holds a pet_kit result and ``overwrite`` is false; the
            path cannot be written (a parent that is a file, an unwritable folder, a
            NUL byte, another program's files), a tensor is NaN or infinite, or the
            write failed (the folder then still holds the previous prompt).
        """
        check_is_fitted(self, "model_")
        check_save_target(path)  # another program's files first: refused whatever overwrite
        check_replace(
            path,
            overwrite=overwrite,
            fix="Pass overwrite=True to save() to replace it, or choose another folder",
        )
        return self.model_.save(path, self._json_params(), self.history_)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        model: Any = None,
        *,
        tokenizer: Any = None,
        device: str | None = None,
    ) -> PromptClassifier:
        """Load a prompt saved by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike
            The prompt folder.
        model : None, str, PathLike or model object, optional
            The backbone to use; default: the one recorded in the folder. It must have
            the same fingerprint as the backbone the prompt was trained on.
        tokenizer : optional
            As in the constructor.
        device : str, optional
            Where to run (``None``: CUDA if available). The device recorded at save
            time is not restored: a prompt saved on a GPU machine loads on a CPU one.

        Returns
        -------
        PromptClassifier
            Fitted, with the saved settings (e.g. for ``warm_start``).

        Raises
        ------
        SavedPromptError
            Missing/corrupted files, unsupported format version, shape mismatch,
            edited metadata or non-finite vectors.
        BackboneError
            The recorded (or given) backbone cannot be loaded.
        BackboneMismatchError
            The backbone differs from the one the prompt was trained on.
        """
        cm, meta = ClozeModel.load(path, model, tokenizer=tokenizer, device=device)
        valid = set(cls().get_params())
        skip = set(_OBJECT_PARAMS) | set(_NOT_RESTORED)
        restored = {
            k: v for k, v in from_json(meta["params"]).items() if k in valid and k not in skip
        }
        est = cls(pvp=cm.pvp, model=cm.options.model, tokenizer=tokenizer, **restored)
        est.device = device
        est.model_ = cm
        est.classes_ = cm.classes
        history = meta.get("history")
        est.history_ = history if isinstance(history, dict) else {}
        summary = est.history_.get("summary")
        est.fit_summary_ = summary if isinstance(summary, dict) else {}
        return est
