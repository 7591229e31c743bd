"""Cloze scoring: class scores from MLM logits at the mask position(s).

The fast path runs the bare encoder, gathers the hidden states at the mask
positions only, applies the MLM head's transform there and projects onto the
label-word rows only. Architectures without a known head split fall back to the
model's full forward pass; both give the same numbers (tested).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config.verbalizer import AGGREGATES, WordGroup
from ..errors import InputError
from .backbone import Backbone, head_parts
from .encoding import ClozeEncoder, Encoded

__all__ = ["ClozeScorer", "LabelHead", "Scorer", "batch_scores"]


class Scorer(Protocol):
    """What every scorer offers: class scores of a batch of encoded examples.

    :class:`ClozeScorer` scores one PVP on one backbone; stand-ins for training implement
    the same (:class:`~pet_kit.model.state_cache.CachedStates`, from cached encoder states;
    the multi-task mixer in :mod:`pet_kit.train.trainer`, several PVPs at once). The
    training loop and :func:`batch_scores` are typed against this protocol. (A
    :class:`~pet_kit.model.cloze_model.ClozeModel`'s ``class_scores`` is another thing:
    it takes raw inputs and returns calibrated numpy scores.)

    Attributes
    ----------
    n_labels : int
        Columns of the scores.
    device : torch.device
        Where the scores (and the slots given to :meth:`class_scores`) live.
    """

    n_labels: int
    device: torch.device

    def class_scores(self, batch: Sequence[Encoded], slots: torch.Tensor | None) -> torch.Tensor:
        """Class scores ``(B, n_labels)`` (logits; softmax gives probabilities) of
        ``batch`` with the soft ``slots``."""
        ...


def batch_scores(
    scorer: Scorer,
    examples: Sequence[Encoded],
    slots: torch.Tensor | None,
    groups: Iterable[list[int]],
    verbose: int = 0,
) -> np.ndarray:
    """Class scores of ``examples`` as float32, shape ``(n, n_labels)``, in input order:
    one :meth:`Scorer.class_scores` call per list of indices in ``groups`` (the caller
    chooses the batches and the gradient or inference mode).

    With ``verbose >= 1`` and more than one batch, a ``predict`` progress bar (unit:
    texts, with the total and an ETA) shows on stderr; one batch is quick enough
    without one.
    """
    out = np.empty((len(examples), scorer.n_labels), dtype=np.float32)
    groups = list(groups)
    quiet = verbose <= 0 or len(groups) <= 1
    with tqdm(total=len(examples), desc="predict", unit="text", disable=quiet, leave=False) as bar:
        for idx in groups:
            out[idx] = scorer.class_scores([examples[i] for i in idx], slots).float().cpu().numpy()
            bar.update(len(idx))
    return out


class LabelHead(nn.Module):
    """Trainable copies of the MLM decoder rows (and biases) of the label words' tokens.

    A "soft verbalizer" (``tuning="prompt+head"`` or ``"head"``): it starts equal to the
    frozen head's rows, so an untrained label head scores exactly like the frozen model. One weight
    ``(U_g, hidden)`` and bias ``(U_g,)`` per word-length group ``g``.
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> None:
        super().__init__()
        self.weight = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in weights])
        self.bias = nn.ParameterList([nn.Parameter(b.detach().clone()) for b in biases])

    def rows(self, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of group ``group``."""
        return self.weight[group], self.bias[group]


class _GroupIndex:
    """Per word-length group: the unique vocabulary rows and how words index them."""

    def __init__(self, group: WordGroup, device: torch.device, index: int) -> None:
        self.index = index
        ids = torch.tensor(group.token_ids, dtype=torch.long)  # (W, L)
        rows, inverse = torch.unique(ids, return_inverse=True)
        self.length = group.length
        self.rows = rows.to(device)  # (U,)
        self.inverse = inverse.to(device)  # (W, L) -> index into rows
        self.full_ids = ids.to(device)


class ClozeScorer:
    """Scores examples for one compiled PVP on one backbone.

    Parameters
    ----------
    backbone : Backbone
    encoder : ClozeEncoder
    fast : bool
        Use the mask-only / label-rows-only head when the architecture allows it.
    """

    def __init__(self, backbone: Backbone, encoder: ClozeEncoder, fast: bool = True) -> None:
        self.backbone = backbone
        self.encoder = encoder
        self.model = backbone.model
        self.device = backbone.device
        self.head = head_parts(self.model) if fast else None
        groups = encoder.verbalizer.groups
        self.groups = [_GroupIndex(g, self.device, i) for i, g in enumerate(groups)]
        self.label_head: LabelHead | None = None
        self.deep: Any = None  # a pet_kit.model.deep.DeepStates, when the prompt has one
        self.normalise = len(groups) > 1
        labels = torch.tensor(
            [li for g in groups for li in g.label_index], dtype=torch.long, device=self.device
        )
        n_labels = len(encoder.labels)
        self.word_label = labels
        self.n_labels = n_labels
        onehot = torch.zeros(labels.numel(), n_labels, device=self.device)
        onehot[torch.arange(labels.numel()), labels] = 1.0
        self.mean_matrix = onehot / onehot.sum(0, keepdim=True)
        self.aggregate = encoder.verbalizer.aggregate
        if self.aggregate not in AGGREGATES:
            raise InputError(
                f"the verbalizer's aggregate must be one of {AGGREGATES}, got {self.aggregate!r}"
            )

    # ---------------------------------------------------------------- internals
    def embed(self, batch: dict[str, torch.Tensor], slots: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings of a collated ``batch`` with ``slots`` at its soft positions."""
        emb_layer = self.model.get_input_embeddings()
        emb = emb_layer(batch["input_ids"])
        if slots is not None and slots.shape[0]:
            idx = batch["soft_index"]
            is_soft = (idx >= 0).unsqueeze(-1)
            soft = slots.to(emb.dtype)[idx.clamp(min=0)]
            emb = torch.where(is_soft, soft, emb)
        return emb

    def _layers(self, batch: dict[str, torch.Tensor]) -> contextlib.AbstractContextManager:
        """The deep prompt's layer hooks for this batch (nothing without one)."""
        if self.deep is None:
            return contextlib.nullcontext()
        return self.deep.attached(self.model, batch["soft_index"])

    def _collated(self, batch: Sequence[Encoded], length: int) -> dict[str, torch.Tensor]:
        """``batch`` collated for a mask of ``length`` tokens, on the scorer's device."""
        return {k: v.to(self.device) for k, v in self.encoder.collate(batch, length).items()}

    def _pass(
        self, batch: dict[str, torch.Tensor], length: int, slots: torch.Tensor | None
    ) -> torch.Tensor:
        """One encoder pass over a collated ``batch``; at its ``length`` mask positions,
        the final hidden states ``(B, L, H)`` when the head is split, else the full
        vocabulary logits ``(B, L, V)``."""
        emb = self.embed(batch, slots)
        am = batch["attention_mask"]
        n = batch["mask_pos"].shape[0]
        pos = batch["mask_pos"].unsqueeze(1) + torch.arange(length, device=am.device)
        rows_b = torch.arange(n, device=am.device).unsqueeze(1)
        with self._layers(batch):
            if self.head is not None:
                return self.model.base_model(inputs_embeds=emb, attention_mask=am)[0][rows_b, pos]
            return self.model(inputs_embeds=emb, attention_mask=am).logits[rows_b, pos]

    def group_states(
        self, batch: Sequence[Encoded], gi: _GroupIndex, slots: torch.Tensor | None
    ) -> torch.Tensor:
        """The encoder's final hidden states at group ``gi``'s mask positions,
        ``(B, L, H)`` (split head only): the input of :meth:`words_from_hidden`."""
        return self._pass(self._collated(batch, gi.length), gi.length, slots)

    def _group_scores(
        self, batch: dict[str, torch.Tensor], gi: _GroupIndex, slots: torch.Tensor | None
    ) -> torch.Tensor:
        """Word scores ``(B, W_g)``: mean over each word's tokens of its (log-)score."""
        out = self._pass(batch, gi.length, slots)
        if self.head is not None:
            return self.words_from_hidden(out, gi)
        full = out  # (B, L, V) vocabulary logits
        logits = full[..., gi.rows]
        if self.normalise:
            logits = logits - full.logsumexp(-1, keepdim=True)
        return self._pick(logits, gi)

    def words_from_hidden(self, hidden: torch.Tensor, gi: _GroupIndex) -> torch.Tensor:
        """Word scores ``(B, W_g)`` from the encoder's hidden states at the group's mask
        positions, ``(B, L, H)`` (fast path only: ``self.head`` is set)."""
        h = self.head.transform(hidden)  # (B, L, H)
        soft = None
        if self.label_head is not None:
            w, b = self.label_head.rows(gi.index)
            soft = h @ w.T.to(h.dtype) + b.to(h.dtype)
        if self.normalise:
            full = h @ self.head.weight.T
            if self.head.bias is not None:
                full = full + self.head.bias
            if soft is not None:  # the label rows are the trainable copies
                full = full.index_copy(-1, gi.rows, soft)
            logits = full[..., gi.rows] - full.logsumexp(-1, keepdim=True)
        elif soft is not None:
            logits = soft
        else:
            logits = h @ self.head.weight[gi.rows].T
            if self.head.bias is not None:
                logits = logits + self.head.bias[gi.rows]
        return self._pick(logits, gi)

    @staticmethod
    def _pick(logits: torch.Tensor, gi: _GroupIndex) -> torch.Tensor:
        # logits: (B, L, U); pick, for word w and position j, row inverse[w, j]
        pos_idx = torch.arange(gi.length, device=logits.device)
        picked = logits[:, pos_idx.unsqueeze(0), gi.inverse]  # (B, W, L)
        return picked.mean(-1)

    def aggregate_words(self, words: torch.Tensor) -> torch.Tensor:
        """Class scores ``(B, n_labels)`` from word scores in verbalizer group order."""
        if self.aggregate == "mean":
            return words @ self.mean_matrix
        out = []
        for c in range(self.n_labels):
            cols = words[:, self.word_label == c]
            out.append(cols.max(-1).values if self.aggregate == "max" else cols.logsumexp(-1))
        return torch.stack(out, -1)  # "logsumexp": the constructor refuses any other

    # ------------------------------------------------------------------- public
    def make_label_head(self) -> LabelHead:
        """A :class:`LabelHead` initialised from the frozen head's label-word rows.

        Raises
        ------
        InputError
            The architecture has no known head split (``tuning="prompt+head"`` / ``"head"`` need
            the hidden state at the mask).
        """
        if self.head is None:
            raise InputError(
                f"tuning='prompt+head' / 'head' is not available for {type(self.model).__name__}:"
                " pet_kit cannot split its MLM head into transform + decoder. Use"
                " tuning='prompt' (or a BERT/RoBERTa/MPNet/ALBERT/DistilBERT/ELECTRA backbone)"
            )
        weights, biases = [], []
        for gi in self.groups:
            weights.append(self.head.weight[gi.rows].float())
            bias = self.head.bias
            biases.append(
                bias[gi.rows].float()
                if bias is not None
                else torch.zeros(len(gi.rows), device=self.device)
            )
        return LabelHead(weights, biases).to(self.device)

    def _at_mask(self, batch: Sequence[Encoded], slots: torch.Tensor | None) -> torch.Tensor:
        """One encoder pass; at the (first) mask, the final hidden states ``(B, H)`` when
        the head is split (``self.head``), else the full vocabulary logits ``(B, V)``."""
        return self._pass(self._collated(batch, 1), 1, slots)[:, 0]

    def mask_states(self, batch: Sequence[Encoded], slots: torch.Tensor | None) -> torch.Tensor:
        """The encoder's final hidden states at the (first) mask, ``(B, H)``: what the MLM
        head reads.

        Raises
        ------
        InputError
            The architecture has no known head split.
        """
        if self.head is None:
            raise InputError(
                f"{type(self.model).__name__}: pet_kit cannot split its MLM head into"
                " transform + decoder, so the hidden states at the mask are not available"
            )
        return self._at_mask(batch, slots)

    def vocab_logprobs(self, states: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the whole vocabulary, ``(B, V)``, from hidden states at
        the mask (:meth:`mask_states`; split head only)."""
        logits = self.head.transform(states) @ self.head.weight.T
        if self.head.bias is not None:
            logits = logits + self.head.bias
        return torch.log_softmax(logits.float(), dim=-1)

    def mask_logprobs(self, batch: Sequence[Encoded], slots: torch.Tensor | None) -> torch.Tensor:
        """Log-probabilities over the whole vocabulary at the (first) mask, ``(B, V)``."""
        at_mask = self._at_mask(batch, slots)
        if self.head is not None:
            return self.vocab_logprobs(at_mask)
        return torch.log_softmax(at_mask.float(), dim=-1)

    def word_scores(
        self, batch: Sequence[Encoded], slots: torch.Tensor | None, drop_slot: int | None = None
    ) -> torch.Tensor:
        """Per-label-word scores ``(B, n_words)`` in verbalizer group order.

        ``drop_slot`` (one example only): score it with that soft slot's position removed
        from the input (``pet_kit.tools.explain``'s ablation).
        """
        if drop_slot is not None and len(batch) != 1:
            raise ValueError("drop_slot scores one example at a time")
        parts = []
        for gi in self.groups:
            tensors = self.encoder.collate(batch, gi.length)
            if drop_slot is not None:
                keep = tensors["soft_index"][0] != drop_slot
                before_mask = int((~keep[: int(tensors["mask_pos"][0])]).sum())
                tensors = {
                    "input_ids": tensors["input_ids"][:, keep],
                    "attention_mask": tensors["attention_mask"][:, keep],
                    "soft_index": tensors["soft_index"][:, keep],
                    "mask_pos": tensors["mask_pos"] - before_mask,
                }
            tensors = {k: v.to(self.device) for k, v in tensors.items()}
            parts.append(self._group_scores(tensors, gi, slots))
        return torch.cat(parts, dim=1)

    def class_scores(self, batch: Sequence[Encoded], slots: torch.Tensor | None) -> torch.Tensor:
        """Class scores ``(B, n_labels)`` (logits; softmax gives probabilities)."""
        return self.aggregate_words(self.word_scores(batch, slots))
