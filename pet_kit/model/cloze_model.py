"""The model object: one PVP compiled for one backbone, with what training produced.

A :class:`ClozeModel` holds the runtime (backbone, encoder, scorer) and the trained parts
(soft prompt, optional soft verbalizer, deep prompt, backbone delta, calibration prior,
demonstration pool). It encodes inputs, scores them, and saves or loads itself as a
prompt folder. The estimators build one, hand it to the trainer and keep it as
``model_``; :class:`~pet_kit.serving.bank.PromptBank`, the explain and label-search tools and the
server use only its public methods.

A model pickles without its backbone (which can be gigabytes and is shared per process);
the runtime is rebuilt from :attr:`ClozeModel.options` on first use after unpickling, and
refused (:class:`~pet_kit.errors.BackboneMismatchError`) when the backbone found there has
another fingerprint than the one the model was pickled with (another model saved at the
same path, say).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Hashable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..config.pvp import PVP
from ..config.settings import Settings, check_device, from_json, resolve
from ..errors import BackboneError, BackboneMismatchError, InputError, PetKitError, SavedPromptError
from ..io.inputs import to_records
from ..io.prompt_folder import read_prompt_dir, write_prompt_dir
from ..tuning import METHODS, TuningMethod
from .backbone import Backbone, frozen, identity_matches, load_backbone
from .backbone_tuning import backbone_delta, tuned_backbone
from .deep import DeepStates, layer_hooks_spec, with_deep_prefix
from .demonstrations import DEMO_FIELD, DemoBuilder, DemoPool, with_demo_field
from .encoding import ClozeEncoder, Encoded, OwnText
from .fast_inference import check_inference, inference_context, optimized_backbone
from .prompt_tensors import (
    loaded_deep_states,
    loaded_pool,
    loaded_prior,
    loaded_slots,
    loaded_slots_init,
    prompt_tensors,
)
from .scorer import ClozeScorer, LabelHead, batch_scores
from .soft_prompt import SoftPrompt, initial_vectors

__all__ = ["BuildOptions", "ClozeModel", "labels_array"]

log = logging.getLogger(__name__)


def labels_array(labels: Sequence[Hashable]) -> np.ndarray:
    """The class labels as a numpy array (an object array unless all are str/int/float)."""
    kinds = {type(v) for v in labels}
    if len(kinds) == 1 and kinds <= {str, int, float}:
        return np.asarray(labels)
    arr = np.empty(len(labels), dtype=object)
    arr[:] = list(labels)
    return arr


def _to_json_label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def batches(order: Sequence[int], size: int) -> list[list[int]]:
    """``order`` cut into consecutive lists of at most ``size`` items."""
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


def equal_length_batches(
    order: Sequence[int], lengths: Sequence[int], size: int
) -> list[list[int]]:
    """``order`` cut into consecutive lists of at most ``size`` items of one length each
    (``lengths[i]`` for item ``i``): batches that need no padding."""
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < size and lengths[out[-1][0]] == lengths[i]:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """What compiling a PVP for a backbone needs (the estimator's settings, resolved).

    Parameters
    ----------
    model, tokenizer : None, str, PathLike or object
        The backbone reference (``None``: the embedded default) and its tokenizer.
    device : str, optional
        ``None``: CUDA when available.
    max_length : int
        Token budget per input (capped to the backbone's limit).
    deep_length : int
        Deep-prompt slots (0: none).
    demonstrations : {None, "random", "similar"}
    demo_max_tokens : int, optional
    seed : int
        Seeds the choice of random demonstrations.
    tuning : str
        The tuning method's name (a key of :data:`pet_kit.tuning.METHODS`).
    tuning_settings : tuple of (str, object)
        The values of that method's own fields (LoRA's ``rank`` and ``alpha``...).
    verbose : int
        The estimator's ``verbose``: below ``2`` the backbone loads without
        transformers' own progress bars and messages (``2``: as transformers is
        configured).
    inference : {None, "bf16", "int8"}
        Run on an optimized copy of the backbone (:mod:`pet_kit.model.fast_inference`).
    """

    model: Any = None
    tokenizer: Any = None
    device: str | None = None
    max_length: int = 256
    deep_length: int = 0
    demonstrations: str | None = None
    demo_max_tokens: int | None = None
    seed: int = 0
    tuning: str = "prompt"
    tuning_settings: tuple[tuple[str, Any], ...] = ()
    verbose: int = 0
    inference: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, model: Any = None, tokenizer: Any = None
    ) -> BuildOptions:
        """The options resolved estimator settings ask for (see
        :func:`~pet_kit.config.settings.resolve`)."""
        seed = settings.random_state
        deep, demos, tuning = settings.deep_prompt, settings.demonstrations, settings.tuning
        return cls(
            model=model,
            tokenizer=tokenizer,
            device=settings.device,
            max_length=int(settings.max_length),
            deep_length=0 if deep is None else int(deep.length),
            demonstrations=None if demos is None else demos.mode,
            demo_max_tokens=None if demos is None else demos.max_tokens,
            seed=int(seed) if isinstance(seed, (int, np.integer)) else 0,
            tuning=tuning.mode,
            tuning_settings=tuple(
                (f.name, getattr(tuning, f.name)) for f in METHODS[tuning.mode].fields
            ),
            verbose=int(settings.verbose),
        )


class ClozeModel:
    """A PVP compiled for a backbone, plus the trained parts of one task.

    Build one with :meth:`build` (untrained: call :meth:`new_prompt` or train it with an
    estimator) or :meth:`load` (a saved prompt folder). ``class_scores`` and the
    probability helpers work once a prompt is set.

    Attributes
    ----------
    pvp : PVP
        The pattern-verbalizer pair, labels sorted.
    options : BuildOptions
    prompt : SoftPrompt or None
        The soft slots.
    slots_init : Tensor or None
        The slots before training (for drift reports).
    label_head : LabelHead or None
        Soft verbalizer (``tuning="prompt+head"`` or ``"head"``).
    deep : DeepStates or None
        Per-layer deep-prompt states.
    delta : dict of str to Tensor, or None
        LoRA / full-tuning weights of the private backbone copy.
    prior : ndarray or None
        Calibration prior divided out of the probabilities.
    demo_pool : DemoPool or None
        Labelled examples demonstrations are drawn from.
    """

    def __init__(self, pvp: PVP, options: BuildOptions) -> None:
        self.pvp = pvp
        self.options = options
        self.prompt: SoftPrompt | None = None
        self.slots_init: torch.Tensor | None = None
        self.delta: dict[str, torch.Tensor] | None = None
        self.prior: np.ndarray | None = None
        self.demo_pool: DemoPool | None = None
        self._label_head: LabelHead | None = None
        self._deep: DeepStates | None = None
        self._backbone: Backbone | None = None
        self._base: Backbone | None = None
        self._identity: str | None = None
        self._encoder: ClozeEncoder | None = None
        self._scorer: ClozeScorer | None = None

    # ---------------------------------------------------------------- building
    @classmethod
    def build(cls, pvp: PVP, options: BuildOptions) -> ClozeModel:
        """Load the backbone (cached per process) and compile ``pvp`` for it.

        Raises
        ------
        BackboneError
            The backbone cannot be loaded.
        PetKitError
            The PVP does not compile for this backbone (e.g. a label word that is not
            in its vocabulary).
        """
        model = cls(pvp, options)
        model._compile()
        return model

    def _compile(self) -> None:
        opts = self.options
        base = load_backbone(
            opts.model, opts.tokenizer, opts.device, verbose=max(0, int(opts.verbose) - 1)
        )
        self._check_identity(base)
        backbone = optimized_backbone(base, opts.inference)
        max_length = int(opts.max_length)
        limit = backbone.max_positions()
        if limit is not None and max_length > limit:
            log.info("max_length %d capped to the backbone's limit %d", max_length, limit)
            max_length = limit
        compiled = self.pvp
        if opts.deep_length:
            layer_hooks_spec(backbone.model)  # refuses unknown architectures early
            compiled = with_deep_prefix(self.pvp, int(opts.deep_length))
        if not opts.demonstrations:
            encoder = ClozeEncoder(compiled, backbone.tokenizer, max_length)
            encoder.demos = None
        else:
            encoder = ClozeEncoder(with_demo_field(compiled), backbone.tokenizer, max_length)
            budget = opts.demo_max_tokens
            if budget is None:  # share what the pattern leaves: input + one text per class
                n_labels = len(encoder.labels)
                budget = max(8, (max_length - encoder.fixed_length) // (2 * (n_labels + 1)))
            encoder.demos = DemoBuilder(
                pvp=self.pvp,
                fields=[f for f in encoder.field_names if f != DEMO_FIELD],
                words=[self.pvp.verbalizer.labels[label][0] for label in encoder.labels],
                mode=str(opts.demonstrations),
                budget=int(budget),
                seed=int(opts.seed),
                backbone=backbone,
            )
        self._base = base
        self._set_runtime(backbone, encoder)

    def _check_identity(self, base: Backbone) -> None:
        """Refuse a backbone other than the one this model was pickled with.

        Raises
        ------
        BackboneMismatchError
            ``base`` has another fingerprint than the recorded one.
        """
        expected = self.__dict__.get("_identity")  # absent in models pickled before it
        if expected is None or identity_matches(base, expected, "an unpickled model"):
            return
        raise BackboneMismatchError(
            f"this model was pickled with backbone {base.name!r} of fingerprint {expected},"
            f" but the backbone loaded from {base.name!r} now has fingerprint"
            f" {base.fingerprint}: its weights differ (another model saved at the same path?)."
            " Restore the original backbone there, or pass it as a model object, or train"
            " the prompt again on this one"
        )

    def _set_runtime(self, backbone: Backbone, encoder: ClozeEncoder) -> None:
        self._backbone, self._encoder = backbone, encoder
        self._scorer = ClozeScorer(backbone, encoder)
        self._scorer.label_head = self._label_head
        self._scorer.deep = self._deep

    def _runtime(self) -> None:
        """Rebuild the runtime after unpickling (the backbone is not pickled)."""
        if self._scorer is None:
            self._compile()
            if self.delta is not None:
                self.use_backbone_copy(self.delta)

    def use_backbone_copy(
        self, delta: dict[str, torch.Tensor] | None = None, where: str = ""
    ) -> None:
        """Run on a private LoRA / full-tuning copy of the backbone (the shared one and a
        model object the caller passed are never changed), optionally with trained
        weights ``delta`` loaded into it."""
        opts = self.options
        tuned = tuned_backbone(
            self.backbone, self.tuning, dict(opts.tuning_settings), delta=delta, where=where
        )
        self._set_runtime(tuned, self.encoder)
        self.delta = self.backbone_delta()

    def set_inference(self, mode: str | None) -> None:
        """Predict on an optimized copy of the backbone (``"int8"``: dynamically quantized
        encoder, CPU) or, with ``None``, on the backbone as loaded. Every prompt on the
        same backbone shares one optimized copy.

        Raises
        ------
        InputError
            An unknown mode, a model with a private LoRA / full-tuning backbone copy, or
            int8 on a GPU.
        """
        mode = check_inference(mode)
        if mode is not None and self.trains_backbone:
            raise InputError(
                f"inference={mode!r} works on the shared backbone; this prompt runs on its"
                f" own {self.options.tuning} copy (tuning={self.options.tuning!r})"
            )
        if mode == self.options.inference:
            return
        if self._scorer is not None and self._base is not None:
            self._set_runtime(optimized_backbone(self._base, mode), self.encoder)
        self.options = dataclasses.replace(self.options, inference=mode)

    def _current_inference(self) -> None:
        """Make sure an optimized copy still derives from the backbone's current weights
        (the caller may have changed a model object in place): a stale copy is replaced
        by :func:`~pet_kit.model.fast_inference.optimized_backbone`, which is keyed by
        the backbone's fingerprint."""
        if self.options.inference is None or self._base is None:
            return
        current = optimized_backbone(self._base, self.options.inference)
        if current is not self._backbone:
            self._set_runtime(current, self.encoder)

    def backbone_delta(self) -> dict[str, torch.Tensor] | None:
        """The current LoRA / full-tuning weights (``None`` in modes that train no backbone
        copy)."""
        if not self.tuning.copies_backbone:
            return None
        if self._scorer is None:  # not rebuilt since unpickling: nothing trained since
            return self.delta
        return backbone_delta(self.backbone.model, self.tuning)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("delta") is not None and self._scorer is not None:
            state["delta"] = self.backbone_delta()
        if self._backbone is not None:  # checked when the runtime is rebuilt
            state["_identity"] = self._backbone.fingerprint
        state.update(_backbone=None, _base=None, _encoder=None, _scorer=None)
        return state

    # ------------------------------------------------------------- components
    @property
    def backbone(self) -> Backbone:
        """The backbone the model runs on (a private copy in LoRA / full modes)."""
        self._runtime()
        assert self._backbone is not None  # set by _runtime
        return self._backbone

    @property
    def encoder(self) -> ClozeEncoder:
        """Turns records into token ids for this PVP."""
        self._runtime()
        assert self._encoder is not None
        return self._encoder

    @property
    def scorer(self) -> ClozeScorer:
        """Scores encoded examples."""
        self._runtime()
        assert self._scorer is not None
        return self._scorer

    @property
    def label_head(self) -> LabelHead | None:
        """The soft verbalizer (``None`` unless ``tuning`` is ``"prompt+head"`` or
        ``"head"``)."""
        return self._label_head

    @label_head.setter
    def label_head(self, head: LabelHead | None) -> None:
        self._label_head = head
        if self._scorer is not None:
            self._scorer.label_head = head

    def add_label_head(self, state: dict[str, torch.Tensor] | None = None) -> LabelHead:
        """Give the model a soft verbalizer, starting from the frozen head's label-word
        rows (or loaded with ``state``), and return it."""
        head = self.scorer.make_label_head()
        if state is not None:
            head.load_state_dict(state)
        self.label_head = head
        return head

    # ----------------------------------------------------------- training
    # what the trainer (pet_kit.train.trainer) changes, and nothing else does
    def set_prompt(self, prompt: SoftPrompt, start: torch.Tensor | None = None) -> None:
        """Train ``prompt``; its vectors now (or ``start``) are kept as :attr:`slots_init`
        (for drift reports)."""
        self.prompt = prompt
        if start is None:
            with torch.no_grad():
                start = prompt().detach().float().cpu().clone()
        self.slots_init = start

    def add_deep_prompt(self, states: torch.Tensor, encoder: str | None = None) -> None:
        """Train deep-prompt states starting from ``states`` (``encoder``: their
        reparameterisation while training)."""
        self.deep = DeepStates(states, encoder=encoder).to(self.backbone.device)

    def use_demo_pool(self, pool: DemoPool | None) -> None:
        """Draw demonstrations from ``pool`` (the training data)."""
        self.demo_pool = pool

    def finish_training(self) -> None:
        """Freeze what training produced for inference: the deep states with a P-tuning
        MLP folded in, and the backbone copy's weights as :attr:`delta`."""
        if self.deep is not None:
            with torch.no_grad():
                self.deep = DeepStates(self.deep.states().detach()).eval()
        self.delta = self.backbone_delta()

    def set_prior(self, prior: np.ndarray | None) -> None:
        """Divide ``prior`` out of the probabilities from now on (``None``: no
        calibration)."""
        self.prior = prior

    @property
    def tuning(self) -> TuningMethod:
        """The tuning method (:mod:`pet_kit.tuning`) the model was built for."""
        return METHODS[self.options.tuning]

    @property
    def deep(self) -> DeepStates | None:
        """The deep-prompt states (``None`` without a deep prompt)."""
        return self._deep

    @deep.setter
    def deep(self, states: DeepStates | None) -> None:
        self._deep = states
        if self._scorer is not None:
            self._scorer.deep = states

    @property
    def labels(self) -> list[Hashable]:
        """The class labels in score-column order."""
        return list(self.encoder.labels)

    @property
    def classes(self) -> np.ndarray:
        """:attr:`labels` as a numpy array (the estimators' ``classes_``)."""
        return labels_array(self.labels)

    @property
    def n_slots(self) -> int:
        """Soft slots in the compiled pattern (deep-prompt slots included)."""
        return int(self.encoder.n_slots)

    @property
    def user_fields(self) -> list[str]:
        """The pattern's fields an input fills (the demonstrations field aside)."""
        encoder = self.encoder
        return list(encoder.field_names if encoder.demos is None else encoder.demos.fields)

    @property
    def trains_backbone(self) -> bool:
        """Whether the model runs on a private LoRA / full-tuning backbone copy."""
        return self.tuning.copies_backbone

    @property
    def mixable(self) -> bool:
        """Whether items of this model can share an encoder pass with other prompts'
        (single-token label words, no deep prompt, demonstrations or backbone copy)."""
        scorer, encoder = self.scorer, self.encoder
        return (
            scorer.head is not None
            and scorer.deep is None
            and not self.trains_backbone
            and self.options.inference is None
            and encoder.demos is None
            and len(scorer.groups) == 1
            and scorer.groups[0].length == 1
        )

    # -------------------------------------------------------------- the prompt
    def text_init_ids(self) -> list[int]:
        """The task's own tokens, which ``prompt_init="text"`` copies into the slots.

        First the label words, taken in turn from each label (its first word, then each
        label's second word, ...; a word of several tokens gives all of them), then the
        tokens of the pattern's literal text, in pattern order; each token once.

        Returns
        -------
        list of int
            Token ids (special tokens are left to :func:`initial_vectors` to skip).
        """
        encoder = self.encoder
        compiled = encoder.verbalizer
        ids_of: dict[tuple[int, str], tuple[int, ...]] = {}
        for group in compiled.groups:
            for li, word, ids in zip(group.label_index, group.words, group.token_ids, strict=True):
                ids_of[(int(li), word)] = ids
        words = encoder.pvp.verbalizer.labels
        per_label = [list(words[label]) for label in compiled.labels]
        out: dict[int, None] = {}
        for rank in range(max((len(w) for w in per_label), default=0)):
            for li, label_words in enumerate(per_label):
                if rank < len(label_words):
                    out.update(dict.fromkeys(ids_of.get((li, label_words[rank]), ())))
        for part in encoder.parts:
            if part.kind == "lit":
                out.update(dict.fromkeys(part.ids))
        return list(out)

    def new_prompt(self, init: str, encoder: str | None, generator: torch.Generator) -> SoftPrompt:
        """Fresh soft slots for this pattern (``init``: see :func:`initial_vectors`;
        ``encoder``: the P-tuning reparameterisation, or ``None``). ``init="text"`` starts
        the slots without init words from :meth:`text_init_ids`, cycled over the slots."""
        backbone = self.backbone
        emb = backbone.model.get_input_embeddings().weight
        text_ids = self.text_init_ids() if init == "text" else []
        special = backbone.tokenizer.all_special_ids
        if init == "text" and not set(text_ids) - set(special):
            log.warning(
                "prompt_init='text': the pattern and label words give no tokens to copy;"
                " the slots start from random vocabulary words (as with 'vocab')"
            )
        vectors = initial_vectors(
            emb,
            self.encoder.slot_init_ids,
            init,
            generator,
            exclude_ids=special,
            text_ids=text_ids,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            prompt = SoftPrompt(vectors, encoder=encoder)
        return prompt.to(backbone.device)

    def slots(self) -> torch.Tensor:
        """The current slot vectors, shape ``(n_slots, hidden)``, without gradient."""
        if self.prompt is None:
            raise InputError("this model has no prompt yet; train it or load a saved one")
        with torch.no_grad():
            return self.prompt().detach()

    # ---------------------------------------------------------------- encoding
    def encode(
        self, X: Any, pool: DemoPool | None = None, exclude_self: bool = False
    ) -> list[Encoded]:
        """Encode inputs (texts, records, DataFrame, Dataset...; see
        :func:`~pet_kit.io.inputs.to_records`), with demonstrations when the model uses
        them (drawn from ``pool``, default :attr:`demo_pool`)."""
        return self.encode_records(to_records(X, self.user_fields), pool, exclude_self)

    def encode_records(
        self,
        records: list[dict[str, str]],
        pool: DemoPool | None = None,
        exclude_self: bool = False,
    ) -> list[Encoded]:
        """Encode field records (one dict per input), adding demonstrations."""
        encoder = self.encoder
        if encoder.demos is not None and records:
            pool = pool if pool is not None else self.demo_pool
            records = encoder.demos.attach(records, pool, exclude_self=exclude_self)
        return encoder.encode(records)

    def content_free(self, texts: Sequence[str] | None = None) -> list[Encoded]:
        """Content-free inputs (every field set to each text; default ``"N/A"``, ``""``
        and the mask token) for contextual calibration."""
        if texts is None:  # the mask token itself, as in Zhao et al. (2021)
            mask = self.backbone.tokenizer.mask_token
            texts = ["N/A", "", OwnText(mask) if mask else "N/A"]
        records = [dict.fromkeys(self.user_fields, t) for t in texts]
        return self.encode_records(records)

    # ----------------------------------------------------------------- scoring
    def raw_scores(
        self,
        examples: Sequence[Encoded],
        batch_size: int = 32,
        verbose: int = 0,
        slots: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Uncalibrated class scores of encoded examples, shape ``(n, n_classes)``, in
        input order (batched by similar length; with int8 inference, by equal length, so
        that no text is padded). ``slots`` defaults to the prompt's."""
        n = len(examples)
        self._current_inference()
        scorer = self.scorer
        if n == 0:
            return np.empty((0, scorer.n_labels), dtype=np.float32)
        if slots is None:
            slots = self.slots()
        lengths = [e.length() for e in examples]
        order = sorted(range(n), key=lambda i: lengths[i])
        if self.options.inference == "int8":  # no padding: see fast_inference
            groups = equal_length_batches(order, lengths, batch_size)
        else:
            groups = batches(order, batch_size)
        fast = inference_context(self.options.inference, self.backbone.device)
        with torch.inference_mode(), frozen(self.backbone.model), fast:
            return batch_scores(scorer, examples, slots, groups, verbose)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Raw class scores with :attr:`prior` divided out (unchanged without one)."""
        if self.prior is not None and len(scores):
            logp = torch.log_softmax(torch.from_numpy(scores).double(), dim=1)
            scores = (logp - torch.from_numpy(np.log(self.prior))).float().numpy()
        return scores

    def class_scores(self, X: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """Class scores of inputs ``X``, shape ``(n, n_classes)``, calibrated; softmax
        gives the class probabilities (columns: :attr:`labels`)."""
        return self.calibrated(self.raw_scores(self.encode(X), batch_size, verbose))

    @staticmethod
    def probabilities(scores: np.ndarray) -> np.ndarray:
        """Softmax of class scores, row-wise, in float64."""
        return torch.softmax(torch.from_numpy(scores).double(), dim=1).numpy()

    def estimate_prior(self, examples: Sequence[Encoded], batch_size: int = 32) -> np.ndarray:
        """The mean uncalibrated class probabilities over ``examples`` (the contextual
        calibration prior), always computed on the float32 backbone: the prior is part of
        the prompt (saved with it), while an inference mode (bf16, int8) is a runtime
        choice that saving does not keep."""
        mode = self.options.inference
        self.set_inference(None)
        try:
            raw = self.raw_scores(examples, batch_size)
        finally:
            self.set_inference(mode)
        prior = self.probabilities(raw).mean(0)
        log.info("calibration prior over %d inputs: %s", len(examples), np.round(prior, 4))
        return prior

    # ------------------------------------------------------------ save / load
    def tensors(self) -> dict[str, torch.Tensor]:
        """What the prompt folder's tensor file holds for this model."""
        if self.prompt is None:
            raise InputError("this model has no prompt to save; train it first")
        return prompt_tensors(
            self.prompt, self.prior, self.tuning.saved(self), self.slots_init, self.deep
        )

    def record(self, params: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
        """The ``prompt.json`` content (without format marker and checksum)."""
        backbone = self.backbone
        emb = backbone.model.get_input_embeddings().weight
        extra = {} if self.demo_pool is None else {"demonstrations": self.demo_pool.to_dict()}
        return {
            **extra,
            "pet_kit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pvp": self.pvp.to_dict(),
            "classes": [_to_json_label(c) for c in self.labels],
            "n_slots": self.n_slots,
            "params": params,
            "backbone": {
                "name": backbone.name,
                "fingerprint": backbone.fingerprint,
                "model_type": getattr(backbone.model.config, "model_type", None),
                "embedding_dim": int(emb.shape[1]),
                "vocab_size": int(emb.shape[0]),
            },
            "history": history,
        }

    def save(
        self, path: str | os.PathLike[str], params: dict[str, Any], history: dict[str, Any]
    ) -> Path:
        """Write the prompt folder atomically (see :func:`~pet_kit.io.prompt_folder.
        write_prompt_dir`); ``params`` are the settings recorded with it."""
        return write_prompt_dir(path, self.tensors(), self.record(params, history))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        model: Any = None,
        *,
        tokenizer: Any = None,
        device: str | None = None,
    ) -> tuple[ClozeModel, dict[str, Any]]:
        """Load a prompt folder; returns the model and the folder's ``prompt.json``.

        Parameters
        ----------
        path : str or PathLike
        model : None, str, PathLike or model object
            The backbone; default: the one recorded. Its fingerprint must match.
        tokenizer : optional
        device : str, optional
            Where to run (``None``: CUDA when available); the recorded device is not
            used.

        Raises
        ------
        SavedPromptError, BackboneError, BackboneMismatchError
        """
        from .default_backbone import DEFAULT_MODEL_NAME

        check_device(device)  # before the folder and the backbone are read
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
            ) from exc
        slots = loaded_slots(tensors, tensor_file)
        from_record = model is None
        if from_record and recorded.get("name") != DEFAULT_MODEL_NAME:
            model = recorded.get("name")
        machine = ("device", "n_threads")  # recorded, never restored
        try:
            settings = resolve({k: v for k, v in from_json(params).items() if k not in machine})
        except InputError as exc:
            raise SavedPromptError(f"{where}: params: {exc}; the file was edited") from exc
        options = dataclasses.replace(
            BuildOptions.from_settings(settings, model, tokenizer), device=device
        )
        try:
            cm = cls.build(pvp, options)
        except BackboneError as exc:
            if not from_record:
                raise
            raise BackboneError(
                f"{where}: the recorded backbone {recorded.get('name')!r} cannot be loaded"
                f" ({exc}). Pass the backbone it was trained on: load(path, model=...)"
            ) from exc
        except PetKitError as exc:
            raise SavedPromptError(
                f"{where}: the saved PVP does not compile for this backbone ({exc})"
            ) from exc
        cm._check_backbone(path, where, recorded)
        cm.tuning.load(cm, tensors, tensor_file)  # its own part: a backbone copy, a head
        cm._check_saved(path, where, recorded, meta, classes, slots)
        backbone = cm.backbone
        cm.prompt = SoftPrompt(slots.to(torch.float32)).to(backbone.device).eval()
        cm.slots_init = loaded_slots_init(tensors, slots, tensor_file)
        cm.prior = loaded_prior(tensors, len(classes), tensor_file)
        cm.demo_pool = loaded_pool(meta, options.demonstrations, len(classes), where)
        if options.deep_length:
            n_layers = layer_hooks_spec(backbone.model)[1]
            emb_dim = int(slots.shape[1])
            shape = (n_layers - 1, int(options.deep_length), emb_dim)
            states = loaded_deep_states(tensors, shape, int(options.deep_length), tensor_file)
            cm.deep = DeepStates(states).to(backbone.device).eval()
        return cm, meta

    def _check_backbone(
        self, path: str | os.PathLike[str], where: str, recorded: dict[str, Any]
    ) -> None:
        """Refuse a saved prompt trained on a backbone with another fingerprint (any
        weight differs: see :func:`~pet_kit.model.backbone.fingerprint`)."""
        backbone = self.backbone
        if not identity_matches(backbone, recorded.get("fingerprint"), where):
            raise BackboneMismatchError(
                f"{path}: this prompt was trained on backbone {recorded.get('name')!r}"
                f" ({recorded.get('fingerprint')}), but the given backbone {backbone.name!r} has"
                f" fingerprint {backbone.fingerprint}: their weights differ. Load it with the"
                " original backbone (model=...) or retrain the prompt on this one"
            )

    def _check_saved(
        self,
        path: str | os.PathLike[str],
        where: str,
        recorded: dict[str, Any],
        meta: dict[str, Any],
        classes: list[Any],
        slots: torch.Tensor,
    ) -> None:
        """Refuse a prompt folder that does not belong to this pattern."""
        backbone, encoder = self.backbone, self.encoder
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

    def trainable_modules(self) -> nn.Module | None:
        """The label head and deep states (those present), as one module for the
        optimizer; ``None`` when there are none."""
        parts = [m for m in (self.label_head, self.deep) if m is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else nn.ModuleList(parts)
