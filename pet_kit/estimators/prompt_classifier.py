"""The scikit-learn estimator: :class:`PromptClassifier`."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._version import __version__
from ..errors import (
    BackboneError,
    BackboneMismatchError,
    InputError,
    PetKitError,
    SavedPromptError,
)
from ..io.inputs import check_positive_int, to_label_indices, to_records
from ..io.prompt_folder import check_save_target, read_prompt_dir, write_prompt_dir
from ..model.backbone import Backbone, frozen, load_backbone
from ..model.backbone_tuning import (
    BACKBONE_TUNINGS,
    DEFAULT_BACKBONE_LR,
    backbone_delta,
    mlm_loss_fn,
    trainable_backbone_params,
    training_params,
    tuned_backbone,
)
from ..model.deep import DeepStates, initial_states, layer_hooks_spec, with_deep_prefix
from ..model.demonstrations import DEMO_FIELD, DemoBuilder, DemoPool, with_demo_field
from ..model.encoding import ClozeEncoder, Encoded, OwnText
from ..model.prompt_tensors import (
    loaded_deep_states,
    loaded_delta,
    loaded_label_head,
    loaded_pool,
    loaded_prior,
    loaded_slots,
    loaded_slots_init,
    prompt_tensors,
)
from ..model.scorer import ClozeScorer
from ..model.soft_prompt import SoftPrompt, initial_vectors
from ..model.threads import torch_threads
from ..spec.pvp import PVP, load_pvp
from ..train.loop import TrainConfig, TrainingInterrupted, TrainResult, predict_scores, train_prompt
from .settings import CALIBRATIONS, check_classifier_params

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


def _labels_array(labels: list[Hashable]) -> np.ndarray:
    kinds = {type(v) for v in labels}
    if len(kinds) == 1 and kinds <= {str, int, float}:
        return np.asarray(labels)
    arr = np.empty(len(labels), dtype=object)
    arr[:] = labels
    return arr


def _to_json_label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _encoder_kind(prompt: SoftPrompt) -> str | None:
    enc = getattr(prompt, "encoder", None)
    if enc is None:
        return None
    return "lstm" if hasattr(enc, "lstm") else "mlp"


def _pvp_identity(pvp: PVP) -> dict[str, Any]:
    """What makes two PVPs the same for warm starts (names and sources aside)."""
    data = pvp.to_dict()
    data.pop("name", None)
    data["verbalizer"] = {k: v for k, v in data["verbalizer"].items() if k != "name"}
    return data


def _soft_labels(y: Any, labels: list[Hashable], n: int) -> np.ndarray | None:
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


@dataclasses.dataclass
class _FitState:
    """What one ``fit`` call trains, kept together for checkpoints and the fitted
    attributes."""

    pvp: PVP
    runtime: tuple[Backbone, ClozeEncoder, ClozeScorer]
    prompt: SoftPrompt
    slots_init: torch.Tensor
    label_head: nn.Module | None
    deep: DeepStates | None
    pool: DemoPool | None
    classes: np.ndarray
    warm: bool


class PromptClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot text classifier: a cloze pattern + verbalizer on a frozen masked LM.

    Only the pattern's soft slots (``[SOFT]``...) are trained; the backbone and its MLM
    head are frozen, so a trained task is a few KB of vectors. A PVP without soft slots
    classifies zero-shot: ``fit`` then only checks the data (or call ``fit(None)``).

    Parameters
    ----------
    pvp : str, PathLike, dict or PVP
        Pattern-verbalizer pair: a template YAML path (``"templates/x.yaml"`` or
        ``"templates/x.yaml#pattern_name"``), a PVP YAML path, an inline dict such as
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
    eval_batch_size : int, default=32
        Examples per forward pass when predicting.
    weight_decay : float, default=0.0
    gradient_accumulation_steps : int, default=1
        Split each batch into this many forward/backward passes (same result, less
        memory).
    prompt_init : {"vocab", "random", "text"}, default="vocab"
        Initialisation of slots without init words (see :func:`initial_vectors`).
    prompt_encoder : {None, "mlp", "lstm"}, default=None
        P-tuning reparameterisation of the slots during training.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified) and keep
        the prompt of the best held-out accuracy.
    validation_fraction : float, default=0.2
    n_iter_no_change : int, default=5
        With early stopping: stop after this many epochs without improvement.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA when available (models pet_kit
        loads only; a model object stays where it is).
    random_state : int, RandomState or None
        Seeds slot initialisation, shuffling and the validation split.
    verbose : int, default=1
        ``0`` silences progress bars.
    warm_start : bool, default=False
        When the estimator is already fitted with the same PVP on the same backbone,
        ``fit`` continues training from the current ``prompt_`` instead of
        re-initialising it (scikit-learn's sense). Each ``fit`` call runs ``epochs`` /
        ``max_steps`` anew with a fresh optimizer: AdamW's moment estimates and the
        shuffling position are not carried over (nor saved in checkpoints), so
        "k steps, then m more" is close to, but not bit-identical with, "k + m steps".
        Resuming from a checkpoint loaded with :meth:`load` gives exactly the same
        result as resuming the in-memory estimator that wrote it (without
        ``prompt_encoder``; a loaded prompt holds only the final vectors, so a P-tuning
        encoder restarts from zero on top of them). Fitted with another PVP or backbone,
        ``fit`` raises :class:`~pet_kit.InputError`.
    checkpoint_dir : str or PathLike, optional
        A prompt folder (the format of :meth:`save`, written atomically, loadable with
        :meth:`load`) that ``fit`` keeps up to date while training: every
        ``checkpoint_every`` optimizer steps, at the end of training and when training
        is interrupted (Ctrl-C). It holds the current vectors (with early stopping, the
        final write holds the best ones, as ``prompt_`` does).
    checkpoint_every : int, optional
        Optimizer steps between checkpoints; ``None`` (with ``checkpoint_dir``): at the
        end of every epoch. Requires ``checkpoint_dir``.
    group_by_length : bool or "auto", default="auto"
        Training batches of similar lengths (less padding, faster epochs on large
        training sets): each epoch's shuffled order is cut into groups of 50 batches,
        sorted by length inside a group, and the batches are shuffled. With at most
        one group of data this would make every epoch use the same batches (in a new
        order), so ``"auto"`` groups only when the training set holds more than 50
        batches (``batch_size * 50`` examples): few-shot training is unaffected.
    tuning : {"prompt", "prompt+head", "lora", "full"}, default="prompt"
        What training changes. ``"prompt"``: the soft slots only (backbone and MLM head
        frozen). ``"prompt+head"``: also a soft verbalizer — trainable copies of the MLM
        decoder rows and biases of the label words' tokens, initialised from the frozen
        head (so an untrained one scores exactly like the frozen model; the backbone's own
        head is never changed); trains even a pattern without soft slots. Saved with the
        prompt (label words x hidden size numbers). ``"lora"``: also LoRA adapters
        (``peft``, ``pip install 'pet_kit[lora]'``) on the attention query/value
        projections of a private copy of the backbone; saved: the adapters (rank x
        hidden x 4 per layer). ``"full"``: every weight of a private copy of the masked
        LM trains (PET's original fine-tuning) with PET's auxiliary MLM loss; saved: the
        whole model (as large as the backbone). The shared backbone (and a model object
        you passed) is never changed in any mode; LoRA / full copies cost one model's
        memory per estimator. Dropout stays off in every mode.
    deep_prompt : int, default=0
        Deep prompt length ``P`` (P-tuning v2 / prefix tuning in hidden-state form,
        :mod:`pet_kit.model.deep`): ``P`` soft slots in front of the pattern whose states are
        also trainable at the input of every layer (``(layers - 1) x P x hidden`` more
        numbers, saved with the prompt); they start from the states those positions
        naturally get. 0: input-layer slots only. BERT, RoBERTa, XLM-R, DistilBERT, ALBERT,
        ELECTRA.
    deep_prompt_encoder : {None, "mlp"}, default=None
        Reparameterise the deep states by a residual MLP while training (only the final
        states are kept).
    backbone_learning_rate : float, optional
        AdamW learning rate of the backbone weights in ``"lora"`` / ``"full"`` mode
        (``learning_rate`` stays the prompt's). ``None``: 5e-4 for LoRA, 3e-5 for full.
    lora_rank : int, default=8
        LoRA rank ``r``.
    lora_alpha : float, default=16.0
        LoRA scaling numerator (updates are scaled by ``lora_alpha / lora_rank``).
    mlm_loss_weight : float, default=1e-4
        ``tuning="full"`` only: PET's auxiliary masked-LM loss on unlabeled text
        (``fit(..., X_unlabeled=)``, else the training texts) mixed in as
        ``(1 - w) * task_loss + w * mlm_loss`` (PET's default ``w = 1e-4``); 0 turns it
        off.
    temperature : float, default=1.0
        Soft-label training only (``y`` given as class probabilities, e.g. a teacher's
        ``predict_proba`` for distillation): the loss is
        ``T^2 * cross-entropy(y, softmax(scores / T))``.
    calibration : {None, "content_free", "unlabeled"}, default=None
        Contextual calibration (Zhao et al., 2021): after ``fit``, estimate the class
        prior the prompt gives to inputs without content and divide it out of every
        prediction (``p(c|x) ∝ p_raw(c|x) / prior(c)``). ``"content_free"`` averages the
        probabilities of ``calibration_texts`` (default: ``"N/A"``, ``""`` and the mask
        token, put in every text field); ``"unlabeled"`` averages them over the texts
        passed as ``fit(..., X_unlabeled=...)`` (or, without those, the training texts).
        Works zero-shot (``fit(None)``) and after training; the prior is in
        ``calibration_prior_`` and saved with the prompt.
    calibration_texts : sequence of str, optional
        Content-free inputs for ``calibration="content_free"``.
    demonstrations : {None, "random", "similar"}, default=None
        LM-BFF in-context demonstrations: after each input's pattern, one training
        example per class filled into the pattern with its label word at the mask (soft
        slots left out): drawn at random (deterministically per input text and
        ``random_state``) or the most similar one (cosine similarity of the backbone's
        mean-pooled hidden states). Training examples never get themselves as a
        demonstration, and keep the same demonstrations in every epoch. The labelled
        examples are kept as ``demo_pool_`` and saved with the prompt.
    demo_max_tokens : int, optional
        Tokens kept of each demonstration's text (cut at the end before it is
        rendered; demonstrations are never truncated afterwards, only the input is).
        Default: an equal share of ``max_length`` for the input and one demonstration
        per class.
    n_threads : int, optional
        CPU threads torch uses inside ``fit`` and prediction (``torch.set_num_threads``
        for the call, restored afterwards; the setting is process-wide). ``None`` keeps
        torch's current setting (by default one per physical core).

    Attributes
    ----------
    classes_ : ndarray
        The verbalizer's labels, sorted; ``predict_proba`` columns follow this order.
    pvp_ : PVP
        The loaded PVP.
    prompt_ : SoftPrompt
        The trained slot vectors (``prompt_()`` returns them).
    n_slots_ : int
    prompt_init_ : Tensor or None
        The slot vectors before training (saved with the prompt; used by
        :mod:`pet_kit.tools.explain` to show how far each slot moved).
    calibration_prior_ : ndarray or None
        With ``calibration``: the class prior divided out of predictions.
    label_head_ : LabelHead or None
        With ``tuning="prompt+head"``: the trained label-word rows.
    deep_prompt_ : DeepStates or None
        With ``deep_prompt``: the trained per-layer states.
    backbone_delta_ : dict of str to Tensor, or None
        With ``tuning="lora"`` / ``"full"``: the trained backbone weights (the LoRA
        adapters, or every weight), by parameter name.
    demo_pool_ : DemoPool or None
        With ``demonstrations``: the labelled examples they are drawn from.
    history_ : dict
        Losses per epoch, steps, early-stopping information, ``interrupted`` (True when
        ``fit`` was stopped by Ctrl-C) and ``warm_started``.
    backbone_name_ : str
    backbone_fingerprint_ : str
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
        eval_batch_size: int = 32,
        weight_decay: float = 0.0,
        gradient_accumulation_steps: int = 1,
        prompt_init: str = "vocab",
        prompt_encoder: str | None = None,
        early_stopping: bool = False,
        validation_fraction: float = 0.2,
        n_iter_no_change: int = 5,
        device: str | None = None,
        random_state: Any = None,
        verbose: int = 1,
        warm_start: bool = False,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        group_by_length: bool | str = "auto",
        tuning: str = "prompt",
        deep_prompt: int = 0,
        deep_prompt_encoder: str | None = None,
        backbone_learning_rate: float | None = None,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        mlm_loss_weight: float = 1e-4,
        temperature: float = 1.0,
        calibration: str | None = None,
        calibration_texts: Any = None,
        demonstrations: str | None = None,
        demo_max_tokens: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.pvp = pvp
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.weight_decay = weight_decay
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.prompt_init = prompt_init
        self.prompt_encoder = prompt_encoder
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.group_by_length = group_by_length
        self.tuning = tuning
        self.deep_prompt = deep_prompt
        self.deep_prompt_encoder = deep_prompt_encoder
        self.backbone_learning_rate = backbone_learning_rate
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.mlm_loss_weight = mlm_loss_weight
        self.temperature = temperature
        self.calibration = calibration
        self.calibration_texts = calibration_texts
        self.demonstrations = demonstrations
        self.demo_max_tokens = demo_max_tokens
        self.n_threads = n_threads

    # ------------------------------------------------------------------ sklearn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = False
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_backbone", "_encoder", "_scorer"):
            state.pop(key, None)
        return state

    # --------------------------------------------------------------- internals
    def _check_params(self) -> None:
        check_classifier_params(self)

    def _load_pvp(self) -> PVP:
        if self.pvp is None:
            raise InputError(
                "no pvp given; pass e.g. PromptClassifier(pvp='templates/sentiment_en.yaml') or"
                " an inline {'pattern': ..., 'verbalizer': ...}"
            )
        pvp = load_pvp(self.pvp)
        labels = _sorted_labels(list(pvp.verbalizer.labels))
        verbalizer = dataclasses.replace(
            pvp.verbalizer, labels={k: pvp.verbalizer.labels[k] for k in labels}
        )
        return dataclasses.replace(pvp, verbalizer=verbalizer)

    def _runtime(self) -> tuple[Backbone, ClozeEncoder, ClozeScorer]:
        """The fitted PVP's backbone, encoder and scorer (rebuilt after unpickling)."""
        if getattr(self, "_scorer", None) is None:
            runtime = self._build_runtime(self.pvp_)
            delta = getattr(self, "backbone_delta_", None)
            if delta is not None:
                runtime = self._tuned_runtime(runtime, delta)
            self._set_runtime(runtime)
            self._scorer.label_head = getattr(self, "label_head_", None)
            self._scorer.deep = getattr(self, "deep_prompt_", None)
        return self._backbone, self._encoder, self._scorer

    def _set_runtime(self, runtime: tuple[Backbone, ClozeEncoder, ClozeScorer]) -> None:
        self._backbone, self._encoder, self._scorer = runtime

    def _build_runtime(self, pvp: PVP) -> tuple[Backbone, ClozeEncoder, ClozeScorer]:
        """Load the backbone (cached per process) and compile ``pvp`` for it."""
        backbone = load_backbone(self.model, self.tokenizer, self.device)
        max_length = int(self.max_length)
        limit = backbone.max_positions()
        if limit is not None and max_length > limit:
            log.info("max_length %d capped to the backbone's limit %d", max_length, limit)
            max_length = limit
        compiled = pvp
        if self.deep_prompt:
            layer_hooks_spec(backbone.model)  # refuses unknown architectures early
            compiled = with_deep_prefix(pvp, int(self.deep_prompt))
        if not self.demonstrations:
            encoder = ClozeEncoder(compiled, backbone.tokenizer, max_length)
            encoder.demos = None
            return backbone, encoder, ClozeScorer(backbone, encoder)
        encoder = ClozeEncoder(with_demo_field(compiled), backbone.tokenizer, max_length)
        n_labels = len(encoder.labels)
        budget = self.demo_max_tokens
        if budget is None:  # share what the pattern leaves: input + one text per class
            budget = max(8, (max_length - encoder.fixed_length) // (2 * (n_labels + 1)))
        seed = self.random_state
        encoder.demos = DemoBuilder(
            pvp=pvp,
            fields=[f for f in encoder.field_names if f != DEMO_FIELD],
            words=[pvp.verbalizer.labels[label][0] for label in encoder.labels],
            mode=str(self.demonstrations),
            budget=int(budget),
            seed=int(seed) if isinstance(seed, (int, np.integer)) else 0,
            backbone=backbone,
        )
        return backbone, encoder, ClozeScorer(backbone, encoder)

    def _tuned_runtime(
        self,
        runtime: tuple[Backbone, ClozeEncoder, ClozeScorer],
        delta: dict[str, torch.Tensor] | None = None,
        where: str = "",
    ) -> tuple[Backbone, ClozeEncoder, ClozeScorer]:
        """``runtime`` on a private LoRA / full-tuning copy of its backbone."""
        backbone, encoder, _ = runtime
        tuned = tuned_backbone(
            backbone,
            self.tuning,
            lora_rank=int(self.lora_rank),
            lora_alpha=float(self.lora_alpha),
            delta=delta,
            where=where,
        )
        return tuned, encoder, ClozeScorer(tuned, encoder)

    def _delta(self, backbone: Backbone) -> dict[str, torch.Tensor] | None:
        """The trained backbone weights of a LoRA / full-tuning copy (else ``None``)."""
        if self.tuning not in BACKBONE_TUNINGS:
            return None
        return backbone_delta(backbone.model, self.tuning)

    @staticmethod
    def _user_fields(encoder: ClozeEncoder) -> list[str]:
        """The pattern's fields the input fills (not the demonstrations field)."""
        if encoder.demos is None:
            return list(encoder.field_names)
        return list(encoder.demos.fields)

    def _encode(
        self,
        X: Any,
        encoder: ClozeEncoder,
        pool: DemoPool | None = None,
        exclude_self: bool = False,
    ) -> list[Encoded]:
        records = to_records(X, self._user_fields(encoder))
        return self._encode_records(records, encoder, pool, exclude_self)

    def _encode_records(
        self,
        records: list[dict[str, str]],
        encoder: ClozeEncoder,
        pool: DemoPool | None = None,
        exclude_self: bool = False,
    ) -> list[Encoded]:
        """Encode records, adding their demonstrations when the encoder uses them."""
        if encoder.demos is not None and records:
            pool = pool if pool is not None else self.demo_pool_
            records = encoder.demos.attach(records, pool, exclude_self=exclude_self)
        return encoder.encode(records)

    def _new_prompt(
        self, backbone: Backbone, encoder: ClozeEncoder, generator: torch.Generator
    ) -> SoftPrompt:
        emb = backbone.model.get_input_embeddings().weight
        init = initial_vectors(
            emb,
            encoder.slot_init_ids,
            self.prompt_init,
            generator,
            exclude_ids=backbone.tokenizer.all_special_ids,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            prompt = SoftPrompt(init, encoder=self.prompt_encoder)
        return prompt.to(backbone.device)

    # --------------------------------------------------------------------- API
    def fit(self, X: Any, y: Any = None, X_unlabeled: Any = None) -> PromptClassifier:
        """Train the soft slots on ``(X, y)``.

        Parameters
        ----------
        X : list of str, array, Series, DataFrame, Dataset, or None
            Training texts. ``None`` (or empty) gives a zero-shot classifier.
        y : array-like
            Labels; every label must be defined by the verbalizer. Or soft labels: an
            array of shape ``(n, n_classes)`` of class probabilities, columns in
            ``classes_`` order (the verbalizer's labels, sorted), trained with the
            ``temperature``-scaled cross-entropy.
        X_unlabeled : texts, optional
            Unlabeled texts, used only by ``calibration="unlabeled"`` to estimate the
            class prior.

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            Ctrl-C during training is re-raised *after* the estimator was left fitted
            with the prompt so far (the best one with early stopping) and
            ``history_["interrupted"] = True`` (and, with ``checkpoint_dir``, that
            prompt was written there), so it can be used, saved or trained further
            with ``warm_start=True``.
        InputError
            A parameter is invalid, e.g. a float parameter that is not finite
            (``learning_rate=inf``); nothing was loaded or trained.
        TrainingDivergedError
            The training loss or a trained value became NaN or infinite (usually a
            learning rate that is too high; the message names the step, the loss, the
            learning rates and the fix). The estimator is left exactly as it was before
            this call: unfitted if it was, else still holding its previous fit (so a
            ``warm_start`` run can be retried with a lower learning rate). No non-finite
            prompt is ever kept or written: ``checkpoint_dir`` holds at most the last
            checkpoint written before the divergence, which was checked finite. Under
            ``GridSearchCV`` the grid point gets ``error_score`` (the error is a
            ``ValueError``).
        """
        self._check_params()
        with self._threads():
            return self._fit(X, y, X_unlabeled)

    def _fit(self, X: Any, y: Any, X_unlabeled: Any = None) -> PromptClassifier:
        self._check_checkpoint_dir()
        pvp = self._load_pvp()
        runtime = self._build_runtime(pvp)
        examples, y_idx, targets, pool = self._training_data(X, y, runtime[1])
        rs = check_random_state(self.random_state)
        generator = torch.Generator().manual_seed(int(rs.randint(2**31 - 1)))
        state = self._fit_state(pvp, runtime, examples, pool, generator)
        encoder = state.runtime[1]
        history: dict[str, Any] = {
            "steps": 0,
            "train_loss": [],
            "zero_shot": True,
            "interrupted": False,
            "warm_started": state.warm,
        }
        interrupt: TrainingInterrupted | None = None
        trained = False
        if examples is None:
            log.info("no training data: zero-shot classifier")
        elif (
            encoder.n_slots == 0
            and state.label_head is None
            and self.tuning not in BACKBONE_TUNINGS
        ):
            log.info("the pattern has no soft slots: zero-shot, nothing to train")
        else:
            train_ex, train_y, validation = self._split_validation(examples, y_idx, targets, rs)
            mlm_texts = X_unlabeled if X_unlabeled is not None else X
            try:
                result = self._train(state, train_ex, train_y, validation, generator, mlm_texts)
            except TrainingInterrupted as exc:
                interrupt, result = exc, exc.result
            history = {**result.as_dict(), "zero_shot": False, "warm_started": state.warm}
            trained = True
        prior = self._calibration_prior(state.runtime, state.prompt, X, X_unlabeled, pool)
        # fitted attributes are set only once everything above succeeded (or was
        # interrupted with a usable prompt)
        self._set_fitted(state, prior, history)
        if trained and self.checkpoint_dir is not None:
            path = self.save(self.checkpoint_dir)
            log.info("final checkpoint written to %s", path)
        if interrupt is not None:
            log.warning(
                "fit interrupted after %d step(s): the estimator holds the prompt so far",
                history["steps"],
            )
            raise interrupt
        return self

    def _fit_state(
        self,
        pvp: PVP,
        runtime: tuple[Backbone, ClozeEncoder, ClozeScorer],
        examples: list[Encoded] | None,
        pool: DemoPool | None,
        generator: torch.Generator,
    ) -> _FitState:
        """The modules this fit trains: prompt, and the label head / deep prompt / private
        backbone copy its parameters ask for (continued from the fitted ones on a warm
        start)."""
        prompt = self._warm_prompt(pvp, runtime[0], generator) if self.warm_start else None
        warm = prompt is not None
        if self.tuning in BACKBONE_TUNINGS:  # a private copy: the shared one never changes
            previous = getattr(self, "backbone_delta_", None) if warm else None
            runtime = self._tuned_runtime(runtime, previous)
        backbone, encoder, scorer = runtime
        if prompt is None:
            prompt = self._new_prompt(backbone, encoder, generator)
        with torch.no_grad():
            slots_init = prompt().detach().float().cpu().clone()  # for explain: drift
        label_head = None
        if self.tuning == "prompt+head":
            label_head = scorer.make_label_head()
            previous = getattr(self, "label_head_", None)
            if warm and previous is not None:
                label_head.load_state_dict(previous.state_dict())
        scorer.label_head = label_head
        deep = None
        if self.deep_prompt:
            previous = getattr(self, "deep_prompt_", None) if warm else None
            if previous is not None:
                init = previous.states().detach()
            else:  # the states the deep positions naturally get, in context
                probe = (
                    examples[0]
                    if examples
                    else encoder.encode([dict.fromkeys(self._user_fields(encoder), "N/A")])[0]
                )
                init = initial_states(scorer, probe, prompt().detach(), int(self.deep_prompt))
            deep = DeepStates(init, encoder=self.deep_prompt_encoder).to(backbone.device)
        scorer.deep = deep
        return _FitState(
            pvp=pvp,
            runtime=runtime,
            prompt=prompt,
            slots_init=slots_init,
            label_head=label_head,
            deep=deep,
            pool=pool,
            classes=_labels_array(list(encoder.labels)),
            warm=warm,
        )

    def _train_config(self) -> TrainConfig:
        """The training loop's settings from the estimator's parameters."""
        return TrainConfig(
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            epochs=int(self.epochs),
            max_steps=self.max_steps,
            batch_size=int(self.batch_size),
            gradient_accumulation_steps=int(self.gradient_accumulation_steps),
            n_iter_no_change=int(self.n_iter_no_change) if self.early_stopping else None,
            verbose=int(self.verbose),
            checkpoint_every=self.checkpoint_every,
            temperature=float(self.temperature),
            backbone_learning_rate=float(
                self.backbone_learning_rate or DEFAULT_BACKBONE_LR.get(self.tuning, 1e-4)
            ),
            aux_loss_weight=float(self.mlm_loss_weight) if self.tuning == "full" else 0.0,
            group_by_length=(
                "auto" if self.group_by_length == "auto" else bool(self.group_by_length)
            ),
        )

    def _train(
        self,
        state: _FitState,
        train_ex: list[Encoded],
        train_y: np.ndarray,
        validation: tuple[list[Encoded], np.ndarray] | None,
        generator: torch.Generator,
        mlm_texts: Any,
    ) -> TrainResult:
        """Run the training loop on ``state``'s modules (the backbone stays frozen except
        for the LoRA / full-tuning copy's own weights)."""
        backbone, encoder, scorer = state.runtime
        config = self._train_config()
        trainable = [m for m in (state.label_head, state.deep) if m is not None]
        extra = trainable[0] if len(trainable) == 1 else (nn.ModuleList(trainable) or None)
        named: list[tuple[str, nn.Parameter]] = []
        aux_loss = None
        if self.tuning in BACKBONE_TUNINGS:
            named = trainable_backbone_params(backbone.model, self.tuning)
            if config.aux_loss_weight > 0:  # PET's auxiliary MLM loss on the texts
                records = to_records(mlm_texts, self._user_fields(encoder))
                texts = [" ".join(r.values()) for r in records]
                aux_loss = mlm_loss_fn(
                    backbone, texts, int(self.batch_size), int(self.max_length), generator
                )
        with frozen(backbone.model), training_params(named):
            return train_prompt(
                scorer,
                state.prompt,
                train_ex,
                train_y,
                config,
                generator,
                validation=validation,
                on_checkpoint=self._checkpoint_writer(state),
                extra=extra,
                backbone_params=named,
                aux_loss=aux_loss,
            )

    def _check_checkpoint_dir(self) -> None:
        """Refuse an unusable ``checkpoint_dir`` before anything is loaded or trained
        (a file, an unwritable folder, a folder of other files; see
        :func:`~pet_kit.io.prompt_folder.check_save_target`)."""
        if self.checkpoint_dir is None:
            return
        try:
            check_save_target(self.checkpoint_dir)
        except SavedPromptError as exc:
            raise SavedPromptError(
                f"checkpoint_dir cannot hold checkpoints, nothing was trained: {exc}"
            ) from None

    def _checkpoint_writer(self, state: _FitState) -> Callable[[int, TrainResult], None] | None:
        """The ``on_checkpoint`` callback writing ``state`` to ``checkpoint_dir``."""
        if self.checkpoint_dir is None:
            return None
        backbone, encoder, _ = state.runtime

        def on_checkpoint(step: int, result: TrainResult) -> None:
            history = {
                **result.as_dict(),
                "zero_shot": False,
                "warm_started": state.warm,
                "checkpoint": True,
            }
            meta = self._meta(
                state.pvp,
                state.classes,
                encoder.n_slots,
                backbone.name,
                backbone.fingerprint,
                backbone,
                history,
                state.pool,
            )
            tensors = prompt_tensors(
                state.prompt,
                state.label_head,
                None,
                self._delta(backbone),
                state.slots_init,
                state.deep,
            )
            write_prompt_dir(self.checkpoint_dir, tensors, meta)
            log.info("checkpoint at step %d written to %s", step, self.checkpoint_dir)

        return on_checkpoint

    def _set_fitted(
        self, state: _FitState, prior: np.ndarray | None, history: dict[str, Any]
    ) -> None:
        """Set the fitted attributes (only after training succeeded or was interrupted)."""
        backbone, encoder, scorer = state.runtime
        self._set_runtime(state.runtime)
        self.calibration_prior_ = prior
        self.demo_pool_ = state.pool
        self.label_head_ = state.label_head
        self.deep_prompt_ = None
        if state.deep is not None:  # the final states (a P-tuning MLP folded in)
            with torch.no_grad():
                self.deep_prompt_ = DeepStates(state.deep.states().detach()).eval()
            scorer.deep = self.deep_prompt_
        self.backbone_delta_ = self._delta(backbone)
        self.pvp_ = state.pvp
        self.classes_ = state.classes
        self.n_slots_ = encoder.n_slots
        self.backbone_name_ = backbone.name
        self.backbone_fingerprint_ = backbone.fingerprint
        self.prompt_ = state.prompt
        self.prompt_init_ = state.slots_init
        self.history_ = history

    def _calibration_prior(
        self,
        runtime: tuple[Backbone, ClozeEncoder, ClozeScorer],
        prompt: SoftPrompt,
        X: Any,
        X_unlabeled: Any,
        pool: DemoPool | None = None,
        mode: str | None = None,
    ) -> np.ndarray | None:
        """Mean class probabilities on content-free or unlabeled inputs (``None``: off).

        ``mode`` defaults to the ``calibration`` parameter.
        """
        mode = self.calibration if mode is None else mode
        if mode is None:
            return None
        backbone, encoder, scorer = runtime
        if mode == "content_free":
            texts = self.calibration_texts
            if texts is None:
                # the mask token itself, as in Zhao et al. (2021): pet_kit's own text
                mask = backbone.tokenizer.mask_token
                texts = ["N/A", "", OwnText(mask) if mask else "N/A"]
            fields = self._user_fields(encoder)
            records = [dict.fromkeys(fields, t) for t in texts]
            examples = self._encode_records(records, encoder, pool)
        else:
            source = X_unlabeled if X_unlabeled is not None else X
            if source is None or not hasattr(source, "__len__") or len(source) == 0:
                raise InputError(
                    "calibration='unlabeled' needs texts to estimate the class prior: pass"
                    " fit(X, y, X_unlabeled=texts), or training texts X, or use"
                    " calibration='content_free'"
                )
            examples = self._encode(source, encoder, pool)
        with torch.no_grad():
            slots = prompt().detach()
        with frozen(backbone.model):
            scores = predict_scores(scorer, examples, slots, int(self.eval_batch_size))
        prior = torch.softmax(torch.from_numpy(scores).double(), dim=1).mean(0).numpy()
        log.info("calibration prior over %d inputs: %s", len(examples), np.round(prior, 4))
        return prior

    def _warm_prompt(
        self, pvp: PVP, backbone: Backbone, generator: torch.Generator
    ) -> SoftPrompt | None:
        """A copy of the fitted prompt to continue from (``None``: not fitted yet)."""
        if getattr(self, "prompt_", None) is None or not hasattr(self, "pvp_"):
            return None
        if _pvp_identity(self.pvp_) != _pvp_identity(pvp):
            raise InputError(
                f"warm_start=True, but this estimator was fitted with another PVP (pattern"
                f" {self.pvp_.pattern.text!r}, labels {list(self.pvp_.verbalizer.labels)});"
                f" the new one has pattern {pvp.pattern.text!r}, labels"
                f" {list(pvp.verbalizer.labels)}. Set warm_start=False to train a new prompt"
            )
        if self.backbone_fingerprint_ != backbone.fingerprint:
            raise InputError(
                f"warm_start=True, but the fitted prompt was trained on backbone"
                f" {self.backbone_name_!r} ({self.backbone_fingerprint_}), not on"
                f" {backbone.name!r} ({backbone.fingerprint}). Set warm_start=False to train"
                " a new prompt"
            )
        current = self.prompt_
        has_encoder = getattr(current, "encoder", None) is not None
        if has_encoder == (self.prompt_encoder is not None) and (
            not has_encoder or _encoder_kind(current) == self.prompt_encoder
        ):
            prompt = copy.deepcopy(current)  # fit must not change prompt_ unless it succeeds
        else:
            with torch.no_grad():
                vectors = current().detach().float().cpu()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
                prompt = SoftPrompt(vectors, encoder=self.prompt_encoder)
        log.info("warm start from the fitted prompt (%d slot(s))", prompt.n_slots)
        return prompt.to(backbone.device)

    def _training_data(
        self, X: Any, y: Any, encoder: ClozeEncoder
    ) -> tuple[list[Encoded] | None, np.ndarray | None, np.ndarray | None, DemoPool | None]:
        """Encoded examples, label indices, training targets and the demonstration pool.

        All ``None`` for zero-shot. The targets are the label indices, or the soft labels
        when ``y`` is a 2-D array of class probabilities (then the indices are its
        row-wise argmax). The pool (demonstrations only) is the training data itself.
        """
        empty_pair = hasattr(X, "__len__") and len(X) == 0 and y is not None and len(y) == 0
        if X is None or empty_pair:
            if y is not None and len(y):
                raise InputError("y was given without X; pass both or neither")
            if encoder.demos is not None:
                raise InputError(
                    f"demonstrations={self.demonstrations!r} needs labelled examples to draw"
                    " demonstrations from: fit(X, y), or set demonstrations=None for"
                    " zero-shot"
                )
            return None, None, None, None
        if y is None:
            raise InputError("y is required with X; for zero-shot use fit(None)")
        records = to_records(X, self._user_fields(encoder))
        if not records:
            raise InputError("X is empty; pass training texts or fit(None) for zero-shot")
        soft = _soft_labels(y, list(encoder.labels), len(records))
        if soft is not None:
            y_idx, targets = soft.argmax(1), soft
        else:
            y_idx = to_label_indices(y, encoder.labels, len(records))
            present = np.unique(y_idx)
            if len(present) < 2:
                raise InputError(
                    f"y contains only one class ({encoder.labels[present[0]]!r}); training"
                    " needs examples of at least two classes. For zero-shot use fit(None)"
                )
            targets = y_idx
        pool = DemoPool(records, np.asarray(y_idx)) if encoder.demos is not None else None
        examples = self._encode_records(records, encoder, pool, exclude_self=True)
        return examples, y_idx, targets, pool

    def _split_validation(
        self,
        examples: list[Encoded],
        y_idx: np.ndarray,
        targets: np.ndarray,
        rs: np.random.RandomState,
    ) -> tuple[list[Encoded], np.ndarray, tuple[list[Encoded], np.ndarray] | None]:
        """Hold out a stratified validation set when early stopping is on."""
        if not self.early_stopping:
            return examples, targets, None
        idx = np.arange(len(examples))
        counts = np.bincount(y_idx)
        strat = y_idx if counts[counts > 0].min() >= 2 else None
        try:
            tr, va = train_test_split(
                idx, test_size=self.validation_fraction, stratify=strat, random_state=rs
            )
        except ValueError as exc:
            raise InputError(
                f"cannot hold out validation_fraction={self.validation_fraction} of"
                f" {len(idx)} examples for early stopping ({exc}); add examples or set"
                " early_stopping=False"
            ) from None
        return [examples[i] for i in tr], targets[tr], ([examples[i] for i in va], y_idx[va])

    def _threads(self) -> AbstractContextManager[None]:
        """torch's thread count for a fit/predict call; checks ``n_threads`` (fit and
        prediction both come through here)."""
        n = self.n_threads
        check_positive_int("n_threads", n, none_ok=True)
        return torch_threads(None if n is None else int(n))

    def _slots(self) -> torch.Tensor:
        with torch.no_grad():
            return self.prompt_().detach()

    def calibrate(self, X_unlabeled: Any = None, method: str | None = None) -> PromptClassifier:
        """Estimate ``calibration_prior_`` for the fitted prompt, without retraining.

        Parameters
        ----------
        X_unlabeled : texts, optional
            Inputs whose mean predicted distribution is the prior (``"unlabeled"``).
        method : {None, "content_free", "unlabeled"}
            ``None``: ``"unlabeled"`` when ``X_unlabeled`` is given, else
            ``"content_free"`` (with ``calibration_texts``).

        Returns
        -------
        self
            Predictions from now on divide the prior out; :meth:`save` keeps it.
        """
        check_is_fitted(self, "classes_")
        if method is None:
            method = "unlabeled" if X_unlabeled is not None else "content_free"
        if method not in CALIBRATIONS[1:]:
            raise InputError(f"method must be None, 'content_free' or 'unlabeled', got {method!r}")
        if method == "unlabeled" and X_unlabeled is None:
            raise InputError("calibrate(method='unlabeled') needs X_unlabeled texts")
        self.calibration_prior_ = None  # the prior is estimated on raw probabilities
        runtime = self._runtime()
        pool = getattr(self, "demo_pool_", None)
        with self._threads():
            self.calibration_prior_ = self._calibration_prior(
                runtime, self.prompt_, None, X_unlabeled, pool, mode=method
            )
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores, shape (n, n_classes); softmax gives ``predict_proba``.

        The label-word logits aggregated per class; with calibration, the class
        log-probabilities minus the log of ``calibration_prior_``.
        """
        check_is_fitted(self, "classes_")
        backbone, encoder, scorer = self._runtime()
        examples = self._encode(X, encoder)
        with self._threads(), frozen(backbone.model):
            scores = predict_scores(
                scorer,
                examples,
                self._slots(),
                int(self.eval_batch_size),
                verbose=int(self.verbose) - 1,
            )
        return self._calibrated(scores)

    def _calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Raw class scores with ``calibration_prior_`` divided out (if there is one)."""
        prior = getattr(self, "calibration_prior_", None)
        if prior is not None and len(scores):
            logp = torch.log_softmax(torch.from_numpy(scores).double(), dim=1)
            scores = (logp - torch.from_numpy(np.log(prior))).float().numpy()
        return scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities; columns follow ``classes_``."""
        scores = torch.from_numpy(self.decision_function(X))
        return torch.softmax(scores.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (elements of ``classes_``)."""
        scores = self.decision_function(X)
        return self.classes_[scores.argmax(axis=1)] if len(scores) else self.classes_[:0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on ``(X, y)``; labels match ``classes_`` as in ``fit`` (``"1"`` == 1)."""
        from sklearn.metrics import accuracy_score

        pred = self.predict(X)
        y_true = self.classes_[to_label_indices(y, self.classes_.tolist(), len(pred))]
        return float(accuracy_score(y_true, pred, sample_weight=sample_weight))

    # ---------------------------------------------------------- save and load
    def _json_params(self) -> dict[str, Any]:
        params = {}
        for key, value in self.get_params(deep=False).items():
            if key in _OBJECT_PARAMS:
                continue
            if isinstance(value, (np.integer, np.floating, np.bool_)):
                value = value.item()
            elif isinstance(value, os.PathLike):
                value = os.fspath(value)
            if value is None or isinstance(value, (bool, int, float, str)):
                params[key] = value
            elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                params[key] = list(value)
        return params

    def _meta(
        self,
        pvp: PVP,
        classes: np.ndarray,
        n_slots: int,
        backbone_name: str,
        backbone_fingerprint: str,
        backbone: Backbone,
        history: dict[str, Any],
        pool: DemoPool | None = None,
    ) -> dict[str, Any]:
        """The ``prompt.json`` content (without format marker and checksum)."""
        emb = backbone.model.get_input_embeddings().weight
        extra = {} if pool is None else {"demonstrations": pool.to_dict()}
        return {
            **extra,
            "pet_kit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pvp": pvp.to_dict(),
            "classes": [_to_json_label(c) for c in classes.tolist()],
            "n_slots": int(n_slots),
            "params": self._json_params(),
            "backbone": {
                "name": backbone_name,
                "fingerprint": backbone_fingerprint,
                "model_type": getattr(backbone.model.config, "model_type", None),
                "embedding_dim": int(emb.shape[1]),
                "vocab_size": int(emb.shape[0]),
            },
            "history": history,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save only the prompt (a few KB) to folder ``path``, atomically.

        The folder holds ``prompt.safetensors`` (slot vectors) and ``prompt.json``
        (PVP, classes, hyper-parameters, pet_kit version, backbone name and
        fingerprint). Load with :meth:`load` on the same backbone.

        Parameters
        ----------
        path : str or PathLike
            The folder: new, empty, or a prompt folder, whose two prompt files are
            replaced (each atomically, ``prompt.json`` last) while any other file there
            is kept. A ``prompt.json`` that is not pet_kit's, or a non-empty folder
            without one, is refused. Concurrent saves to one folder wait for each other.

        Returns
        -------
        Path
            The folder written.

        Raises
        ------
        SavedPromptError
            The path cannot be written (a parent that is a file, an unwritable folder, a
            NUL byte, another program's files), a tensor is NaN or infinite, or the
            write failed (the folder then still holds the previous prompt).
        """
        check_is_fitted(self, "classes_")
        backbone = self._runtime()[0]
        meta = self._meta(
            self.pvp_,
            self.classes_,
            self.n_slots_,
            self.backbone_name_,
            self.backbone_fingerprint_,
            backbone,
            self.history_,
            getattr(self, "demo_pool_", None),
        )
        tensors = prompt_tensors(
            self.prompt_,
            getattr(self, "label_head_", None),
            getattr(self, "calibration_prior_", None),
            getattr(self, "backbone_delta_", None),
            getattr(self, "prompt_init_", None),
            getattr(self, "deep_prompt_", None),
        )
        return write_prompt_dir(path, tensors, meta)

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
            Fitted, with the saved hyper-parameters (e.g. for ``warm_start``).

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
        from ..model.default_backbone import DEFAULT_MODEL_NAME

        tensors, meta = read_prompt_dir(path)
        where = str(Path(path) / "prompt.json")
        if meta.get("kind") == "linear_student":
            raise SavedPromptError(
                f"{where}: this folder holds a distilled linear classifier, not a prompt;"
                " load it with pet_kit.LinearStudent.load"
            )
        tensor_file = str(Path(path) / "prompt.safetensors")
        try:
            recorded = dict(meta["backbone"])
            params = dict(meta["params"])
            pvp = PVP.from_dict(meta["pvp"], source=where)
            classes = list(meta["classes"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SavedPromptError(
                f"{where}: incomplete or invalid prompt metadata ({type(exc).__name__}: {exc});"
                " the file was edited or damaged. Save the prompt again"
            ) from None
        slots = loaded_slots(tensors, tensor_file)
        from_record = model is None
        if from_record and recorded.get("name") != DEFAULT_MODEL_NAME:
            model = recorded.get("name")
        valid = set(cls().get_params())
        skip = set(_OBJECT_PARAMS) | set(_NOT_RESTORED)
        est = cls(
            pvp=pvp,
            model=model,
            tokenizer=tokenizer,
            **{k: v for k, v in params.items() if k in valid and k not in skip},
        )
        est.device = device
        try:
            est._check_params()
        except InputError as exc:
            raise SavedPromptError(f"{where}: params: {exc}; the file was edited") from None
        try:
            runtime = est._build_runtime(pvp)
        except BackboneError as exc:
            if not from_record:
                raise
            raise BackboneError(
                f"{where}: the recorded backbone {recorded.get('name')!r} cannot be loaded"
                f" ({exc}). Pass the backbone it was trained on: PromptClassifier.load(path,"
                " model=...)"
            ) from None
        except PetKitError as exc:
            raise SavedPromptError(
                f"{where}: the saved PVP does not compile for this backbone ({exc})"
            ) from None
        backbone, encoder, _ = runtime
        if est.tuning in BACKBONE_TUNINGS:
            delta = loaded_delta(tensors, est.tuning, tensor_file)
            if backbone.fingerprint == recorded.get("fingerprint"):
                runtime = est._tuned_runtime(runtime, delta, tensor_file)
                backbone, encoder, _ = runtime
        if backbone.fingerprint != recorded.get("fingerprint"):
            raise BackboneMismatchError(
                f"{path}: this prompt was trained on backbone {recorded.get('name')!r}"
                f" ({recorded.get('fingerprint')}), but the given backbone {backbone.name!r} has"
                f" fingerprint {backbone.fingerprint}. Load it with the original backbone"
                " (model=...) or retrain the prompt on this one"
            )
        emb_dim = backbone.model.get_input_embeddings().weight.shape[1]
        if tuple(slots.shape) != (encoder.n_slots, emb_dim):
            raise SavedPromptError(
                f"{path}: slot tensor has shape {tuple(slots.shape)} but the pattern needs"
                f" ({encoder.n_slots}, {emb_dim}); the files do not belong together"
            )
        claimed = (meta.get("n_slots"), recorded.get("embedding_dim"))
        if claimed != (encoder.n_slots, emb_dim):
            raise SavedPromptError(
                f"{where}: records n_slots={claimed[0]!r}, backbone.embedding_dim="
                f"{claimed[1]!r} but the slot tensor has shape {tuple(slots.shape)}; the file"
                " was edited. Restore it from the original save"
            )
        if [*encoder.labels] != classes:
            raise SavedPromptError(
                f"{where}: classes {classes} do not match the verbalizer's labels"
                f" {list(encoder.labels)}; the file was edited"
            )
        est._set_runtime(runtime)
        est.pvp_ = pvp
        est.classes_ = _labels_array(classes)
        est.n_slots_ = encoder.n_slots
        est.backbone_name_ = backbone.name
        est.backbone_fingerprint_ = backbone.fingerprint
        prompt = SoftPrompt(slots.to(torch.float32))
        est.prompt_ = prompt.to(backbone.device).eval()
        est.prompt_init_ = loaded_slots_init(tensors, slots, tensor_file)
        est.calibration_prior_ = loaded_prior(tensors, len(classes), tensor_file)
        est.demo_pool_ = loaded_pool(meta, est.demonstrations, len(classes), where)
        est.deep_prompt_ = None
        if est.deep_prompt:
            n_layers = layer_hooks_spec(backbone.model)[1]
            shape = (n_layers - 1, int(est.deep_prompt), emb_dim)
            states = loaded_deep_states(tensors, shape, int(est.deep_prompt), tensor_file)
            est.deep_prompt_ = DeepStates(states).to(backbone.device).eval()
        runtime[2].deep = est.deep_prompt_
        est.label_head_ = None
        est.backbone_delta_ = est._delta(backbone)
        if est.tuning == "prompt+head":
            est.label_head_ = loaded_label_head(runtime[2], tensors, tensor_file)
        runtime[2].label_head = est.label_head_
        history = meta.get("history")
        est.history_ = history if isinstance(history, dict) else {}
        return est
