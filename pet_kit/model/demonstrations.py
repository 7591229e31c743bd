"""LM-BFF-style demonstrations: one filled-in labelled example per class after each input.

A demonstration is the pattern filled with a training example, its mask replaced by
its label's (first) label word and its soft slots left out, e.g. ``"a gem of a film. It
was great."``. With ``demonstrations="random"`` a demonstration per class is drawn from
the labelled pool (deterministically per input text); with ``"similar"`` the pool
example closest to the input (cosine similarity of the backbone's mean-pooled hidden
states) is taken per class. The demonstrations go into an extra, non-shortenable pattern
field after the pattern, each cut beforehand to a token budget, so truncation can only
shorten the input's own text and never a demonstration's label word.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..config.pattern import Field, Literal, Mask, Soft, parse_pattern
from ..config.pvp import PVP
from ..config.schema import FieldOptions
from ..config.settings import DEMO_MODES as MODES
from ..errors import InputError
from .encoding import plain_text_ids, special_frame, tokenize_plain

__all__ = ["DEMO_FIELD", "MODES", "DemoBuilder", "DemoPool", "render_demo", "with_demo_field"]

DEMO_FIELD = "demonstrations"


def with_demo_field(pvp: PVP) -> PVP:
    """``pvp`` with a non-shortenable ``{demonstrations}`` field after its pattern."""
    if DEMO_FIELD in pvp.pattern.fields:
        raise InputError(
            f"the pattern {pvp.pattern.text!r} already uses a field named {DEMO_FIELD!r},"
            " which demonstrations need; rename that field"
        )
    pattern = parse_pattern(pvp.pattern.text + " {" + DEMO_FIELD + "}", source=pvp.source)
    fields = {**pvp.fields, DEMO_FIELD: FieldOptions(shortenable=False)}
    return dataclasses.replace(pvp, pattern=pattern, fields=fields)


def _cut(text: str, tokenizer: Any, budget: int) -> str:
    """``text`` cut at the end to at most ``budget`` tokens (on the original string).

    Tokens are counted as the encoder counts them: special-token strings in ``text``
    (``[MASK]``, ``</s>``...) as plain text.
    """
    enc = tokenize_plain(tokenizer, text, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= budget:
        return text
    if budget <= 0:
        return ""
    return text[: enc["offset_mapping"][budget - 1][1]]


def render_demo(pvp: PVP, record: dict[str, str], word: str, tokenizer: Any, budget: int) -> str:
    """The pattern filled with ``record`` and ``word`` at the mask, without soft slots."""
    out = []
    for seg in pvp.pattern.segments:
        if isinstance(seg, Literal):
            out.append(seg.text)
        elif isinstance(seg, Field):
            text = _cut(str(record[seg.name]), tokenizer, budget)
            out.append((" " if seg.space_before else "") + text)
        elif isinstance(seg, Mask):
            out.append((" " if seg.space_before else "") + word)
        elif isinstance(seg, Soft):
            continue
    return " ".join("".join(out).split())


def embed_texts(
    backbone: Any, texts: Sequence[str], batch_size: int = 32, max_length: int = 128
) -> np.ndarray:
    """L2-normalised mean-pooled last hidden states of the backbone's encoder.

    The texts are tokenized as plain text (:func:`pet_kit.model.encoding.plain_text_ids`: a
    ``[MASK]`` in a text is its characters, not the mask token), framed by the
    tokenizer's special tokens, cut to ``max_length`` and padded on the right.
    """
    model, tok = backbone.model, backbone.tokenizer
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    prefix, suffix = special_frame(tok) or ((), ())
    room = max(max_length - len(prefix) - len(suffix), 1)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            rows = [
                [*prefix, *ids[:room], *suffix]
                for ids in plain_text_ids(tok, [texts[i] for i in idx])
            ]
            width = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                input_ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
                attention[j, : len(r)] = 1
            hidden = model.base_model(
                input_ids=input_ids.to(backbone.device),
                attention_mask=attention.to(backbone.device),
            )[0]
            mask = attention.to(backbone.device).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(pooled.float(), dim=1).cpu().numpy()
    return out


@dataclasses.dataclass
class DemoPool:
    """The labelled examples demonstrations are drawn from.

    Attributes
    ----------
    records : list of dict
        The examples' fields.
    labels : ndarray of int
        Label index per example.
    """

    records: list[dict[str, str]]
    labels: np.ndarray
    _emb: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved with the prompt)."""
        return {"records": self.records, "labels": [int(v) for v in self.labels]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoPool:
        """Inverse of :meth:`to_dict`."""
        records = [{str(k): str(v) for k, v in r.items()} for r in data["records"]]
        labels = np.asarray(data["labels"], dtype=np.int64)
        if len(records) != len(labels):
            raise ValueError("records and labels differ in length")
        return cls(records, labels)

    def choose(
        self,
        queries: Sequence[dict[str, str]],
        fields: Sequence[str],
        n_labels: int,
        mode: str,
        seed: int,
        backbone: Any = None,
        exclude_self: bool = False,
    ) -> list[list[int]]:
        """Pool indices of the demonstrations for each query (one per class that has any).

        ``exclude_self``: the queries are the pool itself (training), so query ``i``
        never gets pool example ``i``.
        """
        key = list(fields)
        by_class = [np.flatnonzero(self.labels == c) for c in range(n_labels)]
        sims = None
        if mode == "similar" and queries:
            if self._emb is None:
                self._emb = embed_texts(backbone, [_joined(r, key) for r in self.records])
            q = (
                self._emb
                if exclude_self
                else embed_texts(backbone, [_joined(r, key) for r in queries])
            )
            sims = q @ self._emb.T
        out = []
        for i, rec in enumerate(queries):
            picks = []
            rng = None
            for c in range(n_labels):
                cand = by_class[c]
                if exclude_self:
                    cand = cand[cand != i]
                if not len(cand):
                    continue
                if sims is not None:
                    picks.append(int(cand[np.argmax(sims[i, cand])]))
                else:
                    if rng is None:
                        text = _joined(rec, key).encode("utf-8", "surrogatepass")
                        rng = np.random.default_rng([seed, zlib.crc32(text)])
                    picks.append(int(rng.choice(cand)))
            out.append(picks)
        return out


def _joined(record: dict[str, str], keys: Sequence[str]) -> str:
    return " ".join(str(record.get(k, "")) for k in keys)


@dataclasses.dataclass
class DemoBuilder:
    """Adds the ``demonstrations`` field to records (attached to a ClozeEncoder).

    Attributes
    ----------
    pvp : PVP
        The user's PVP (without the demonstrations field): demonstrations render it.
    fields : list of str
        The user's text fields.
    words : list of str
        Label word per label index (the label's first word).
    mode : {"random", "similar"}
    budget : int
        Tokens per demonstration text field.
    seed : int
    backbone : Backbone
        For ``"similar"`` (embeddings) and the tokenizer.
    """

    pvp: PVP
    fields: list[str]
    words: list[str]
    mode: str
    budget: int
    seed: int
    backbone: Any

    def attach(
        self, records: list[dict[str, str]], pool: DemoPool, exclude_self: bool = False
    ) -> list[dict[str, str]]:
        """``records`` with their demonstrations (a new list; the input is not changed)."""
        picks = pool.choose(
            records,
            self.fields,
            len(self.words),
            self.mode,
            self.seed,
            backbone=self.backbone,
            exclude_self=exclude_self,
        )
        tok = self.backbone.tokenizer
        out = []
        for rec, idx in zip(records, picks, strict=True):
            demos = [
                render_demo(
                    self.pvp, pool.records[j], self.words[int(pool.labels[j])], tok, self.budget
                )
                for j in idx
            ]
            out.append({**rec, DEMO_FIELD: " ".join(demos)})
        return out
