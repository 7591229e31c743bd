"""Turning records into token ids for one PVP and one tokenizer.

Truncation only ever shortens *shortenable text fields* (longest first, cut at the
end); pattern literals, the mask position(s) and soft slots are never cut. A pattern
whose fixed part alone does not fit ``max_length`` is rejected when it is compiled,
not at predict time. Batches are padded dynamically (to the longest in the batch).

Text that comes from the user (fields, demonstrations, calibration texts) is tokenized
as *plain text* (:func:`plain_text_ids`): a ``[MASK]``, ``[SEP]``, ``<s>`` or ``</s>``
written in a text is read as its ordinary characters (``[``, ``mask``, ``]``), never as
the tokenizer's special token. Pattern literals are tokenized as written.
"""

from __future__ import annotations

import logging
import re
import string
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config.pattern import Field, Literal, Mask, Soft
from ..config.pvp import PVP
from ..config.verbalizer import CompiledVerbalizer, Verbalizer
from ..errors import InputError, PatternError
from ..io.inputs import check_text

__all__ = [
    "ClozeEncoder",
    "Encoded",
    "OwnText",
    "check_with_tokenizer",
    "plain_text_ids",
    "special_frame",
    "tokenize_plain",
]

log = logging.getLogger(__name__)


class OwnText(str):
    """A text pet_kit itself supplies (the content-free calibration input ``[MASK]``), in
    which special-token strings keep their meaning. Text from users never does: it is
    always read as plain characters."""


_FINAL_PUNCT = string.punctuation + "。！？，、；：…"
# Characters per token we tokenize before cutting very long texts (see _tokenize).
_CHARS_PER_TOKEN_CAP = 32
# Serialises pet_kit's switching of a fast tokenizer's ``encode_special_tokens`` flag.
_PLAIN_LOCK = threading.Lock()
# A special-token string cut into ordinary pieces: "[MASK]" -> "[", "MASK", "]".
_SUB_PIECE = re.compile(r"[^\W_]+|[^\w\s]|_|\s+")


def tokenize_plain(tokenizer: Any, texts: str | list[str], **kwargs: Any) -> Any:
    """Call ``tokenizer`` on ``texts`` with special-token strings read as plain text.

    ``split_special_tokens=True`` where the tokenizer accepts it (slow tokenizers; fast
    ones from transformers 4.42); fast tokenizers of older versions get their backend's
    ``encode_special_tokens`` flag set for the call instead. The backend flag is restored
    afterwards, so other calls of the same tokenizer are unaffected. Some slow tokenizers
    accept the argument but still keep special tokens whole: check the ids (as
    :func:`plain_text_ids` does) where it matters.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
    texts : str or list of str
    **kwargs
        Passed to the tokenizer (default ``add_special_tokens=False, verbose=False``).

    Returns
    -------
    transformers.BatchEncoding
    """
    kwargs = {"add_special_tokens": False, "verbose": False, **kwargs}
    backend = getattr(tokenizer, "_tokenizer", None)
    before = getattr(backend, "encode_special_tokens", None)
    with _PLAIN_LOCK:
        try:
            try:
                return tokenizer(texts, split_special_tokens=True, **kwargs)
            except TypeError as exc:  # fast tokenizers of transformers < 4.42
                if "split_special_tokens" not in str(exc):
                    raise
            if before is not None:
                backend.encode_special_tokens = True
            return tokenizer(texts, **kwargs)
        finally:
            if before is not None and backend.encode_special_tokens != before:
                backend.encode_special_tokens = before


def _forbidden_ids(tokenizer: Any) -> set[int]:
    """Special ids that plain text must never produce (the unknown token may)."""
    ids = set(getattr(tokenizer, "all_special_ids", ()) or ())
    ids.discard(getattr(tokenizer, "unk_token_id", None))
    return ids


def plain_text_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids (no special tokens added) of user texts, read as plain text.

    A special-token string in a text (``[MASK]``, ``[SEP]``, ``<s>``, ``</s>``,
    ``<pad>``...) gives its ordinary pieces (``[``, ``mask``, ``]``), never the special
    id: the ids returned never hold a special id other than the unknown token's.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
    texts : sequence of str

    Returns
    -------
    list of list of int

    Raises
    ------
    InputError
        A text holds a special token that this tokenizer cannot read as plain text
        (a tokenizer whose special token is an ordinary word); the message names it.
    """
    texts = list(texts)
    if not texts:
        return []
    ids = [list(row) for row in tokenize_plain(tokenizer, texts)["input_ids"]]
    forbidden = _forbidden_ids(tokenizer)
    for i, row in enumerate(ids):
        if forbidden.intersection(row):
            ids[i] = _piecewise_ids(tokenizer, texts[i], forbidden, i)
    return ids


def _piecewise_ids(tokenizer: Any, text: str, forbidden: set[int], index: int) -> list[int]:
    """Ids of ``text`` with each special-token string tokenized as separate ordinary pieces.

    The fallback for tokenizers that keep special tokens whole even when asked to split
    them (e.g. slow BERT tokenizers of transformers 4.x).
    """
    specials = sorted(
        {s for s in getattr(tokenizer, "all_special_tokens", ()) if s}, key=len, reverse=True
    )
    pieces: list[str] = []
    pos = 0
    if specials:
        for m in re.finditer("|".join(map(re.escape, specials)), text):
            head = text[pos : m.start()]
            stripped = head.rstrip()
            pieces.append(stripped)
            subs = _SUB_PIECE.findall(m.group())
            subs[0] = head[len(stripped) :] + subs[0]  # keep the space before it
            pieces.extend(subs)
            pos = m.end()
    pieces.append(text[pos:])
    pieces = [p for p in pieces if p]
    out: list[int] = []
    rows = tokenizer(pieces, add_special_tokens=False, verbose=False)["input_ids"] if pieces else []
    for row in rows:
        out.extend(row)
    bad = sorted(forbidden.intersection(out))
    if bad:
        names = tokenizer.convert_ids_to_tokens(bad)
        raise InputError(
            f"example {index}: its text contains {names}, which this tokenizer reads only as"
            " special token(s), never as plain text; remove or reword them in the text"
        )
    return out


def special_frame(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Special ids the tokenizer puts before/after a single sequence (``None``: unknown).

    Found by encoding the mask token with ``add_special_tokens=True`` and locating it.
    """
    probe = getattr(tokenizer, "mask_token_id", None)
    mask = getattr(tokenizer, "mask_token", None)
    if probe is None or not mask:
        return None
    built = list(tokenizer(mask, add_special_tokens=True)["input_ids"])
    if built.count(probe) != 1:
        return None
    i = built.index(probe)
    return tuple(built[:i]), tuple(built[i + 1 :])


@dataclass(frozen=True)
class Encoded:
    """One example's field token ids, already truncated to fit ``max_length``."""

    fields: tuple[tuple[int, ...], ...]

    def length(self) -> int:
        """Number of field tokens (the fixed part is added by the encoder)."""
        return sum(len(f) for f in self.fields)


@dataclass(frozen=True)
class _Part:
    kind: str  # "lit" | "field" | "mask" | "soft"
    ids: tuple[int, ...] = ()
    field: str = ""
    space_before: bool = False
    slots: tuple[int, ...] = ()


class ClozeEncoder:
    """A PVP compiled against a tokenizer.

    Parameters
    ----------
    pvp : PVP
    tokenizer : transformers.PreTrainedTokenizerBase
    max_length : int
        Maximum sequence length including special tokens and all mask positions.

    Attributes
    ----------
    verbalizer : CompiledVerbalizer
    n_slots : int
        Number of distinct soft-slot vectors.
    slot_init_ids : list of int or None
        For each slot, the token id it is initialised from (``[SOFT:words]``) or None.
    """

    def __init__(self, pvp: PVP, tokenizer: object, max_length: int) -> None:
        self.pvp = pvp
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        tok = tokenizer
        if getattr(tok, "mask_token_id", None) is None:
            raise PatternError(
                "the tokenizer has no mask token, so it cannot serve a masked LM;"
                " use the tokenizer that belongs to the masked-LM backbone",
                source=pvp.source,
            )
        self.mask_id: int = tok.mask_token_id
        self.pad_id: int = tok.pad_token_id if tok.pad_token_id is not None else 0
        mask_part = next(s for s in pvp.pattern.segments if isinstance(s, Mask))
        self.verbalizer: CompiledVerbalizer = pvp.verbalizer.compile(
            tok, space_before=mask_part.space_before
        )
        self.slot_init_ids: list[int | None] = []
        shared: dict[str, tuple[int, ...]] = {}
        parts: list[_Part] = []
        mask_token = tok.mask_token
        for seg in pvp.pattern.segments:
            if isinstance(seg, Literal):
                if mask_token and mask_token in seg.text:
                    raise PatternError(
                        f"the literal text {seg.text!r} contains the tokenizer's mask token"
                        f" {mask_token!r}; write [MASK] instead",
                        source=pvp.source,
                        key="pattern",
                    )
                text = seg.text.rstrip()
                if text.strip():
                    parts.append(_Part("lit", ids=self._ids(text)))
            elif isinstance(seg, Field):
                parts.append(_Part("field", field=seg.name, space_before=seg.space_before))
            elif isinstance(seg, Mask):
                parts.append(_Part("mask"))
            elif isinstance(seg, Soft):
                if seg.shared is not None and seg.shared in shared:
                    parts.append(_Part("soft", slots=shared[seg.shared]))
                    continue
                if seg.init is not None:
                    init_ids = self._ids(seg.init)
                    if not init_ids:
                        raise PatternError(
                            f"[SOFT:{seg.init}] init words tokenize to nothing",
                            source=pvp.source,
                            key="pattern",
                        )
                    inits: list[int | None] = list(init_ids)
                else:
                    inits = [None] * int(seg.count or 1)
                start = len(self.slot_init_ids)
                self.slot_init_ids.extend(inits)
                slots = tuple(range(start, start + len(inits)))
                if seg.shared is not None:
                    shared[seg.shared] = slots
                parts.append(_Part("soft", slots=slots))
        self.parts = tuple(parts)
        self.n_slots = len(self.slot_init_ids)
        self.field_names = tuple(p.field for p in self.parts if p.kind == "field")
        self._prefix, self._suffix = self._special_frame()
        fixed = (
            len(self._prefix)
            + len(self._suffix)
            + sum(len(p.ids) + len(p.slots) for p in self.parts)
            + self.verbalizer.max_length
        )
        self.fixed_length = fixed
        if fixed > self.max_length:
            raise PatternError(
                f"the pattern alone needs {fixed} tokens (literals, soft slots, special tokens"
                f" and {self.verbalizer.max_length} mask position(s)) but max_length is"
                f" {self.max_length}; shorten the pattern or raise max_length",
                source=pvp.source,
                key="pattern",
            )

    # ------------------------------------------------------------------ helpers
    def _ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _special_frame(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Special tokens the tokenizer puts before/after a single sequence."""
        frame = special_frame(self.tokenizer)
        if frame is None:
            built = list(
                self.tokenizer(self.tokenizer.mask_token, add_special_tokens=True)["input_ids"]
            )
            raise PatternError(
                "cannot locate the tokenizer's special-token frame around its mask token"
                f" (got {built}); use a standard masked-LM tokenizer",
                source=self.pvp.source,
            )
        return frame

    @property
    def labels(self) -> tuple[Hashable, ...]:
        """The verbalizer's labels, in verbalizer order."""
        return self.verbalizer.labels

    # ----------------------------------------------------------------- encoding
    def _field_text(self, value: str, name: str) -> str:
        opts = self.pvp.field_options(name)
        text = value.strip()
        if opts.strip_final_punct:
            text = text.rstrip(_FINAL_PUNCT + " \t\n\r\f\v\u3000")
        if opts.lowercase_first and text:
            text = text[0].lower() + text[1:]
        return text

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """Tokenize many texts at once, as plain text (:func:`plain_text_ids`); very
        long texts are cut first (then checked)."""
        cap = max(self.max_length, 1) * _CHARS_PER_TOKEN_CAP
        cut = [_cut_at_space(t, cap) for t in texts]
        # verbose=False (in plain_text_ids): pet_kit truncates these ids itself (below), so
        # the tokenizer's "longer than the specified maximum" warning would be false
        ids = plain_text_ids(self.tokenizer, cut)
        for i, (t, c) in enumerate(zip(texts, cut, strict=True)):
            if len(t) > len(c) and len(ids[i]) < self.max_length:
                # whitespace-heavy text: the cut lost tokens that might have fit
                ids[i] = plain_text_ids(self.tokenizer, [t])[0]
        return ids

    def encode(self, records: Sequence[dict[str, str]]) -> list[Encoded]:
        """Tokenize and truncate ``records`` (dicts of field name -> text).

        Raises
        ------
        InputError
            A record lacks a field, a field is not a usable text (see
            :func:`pet_kit.io.inputs.check_text`), or a non-shortenable field alone is too
            long.
        """
        n = len(records)
        per_part: list[list[list[int]]] = []
        for part in self.parts:
            if part.kind != "field":
                continue
            texts, own = [], []
            for i, rec in enumerate(records):
                try:
                    value = rec[part.field]
                except KeyError as exc:
                    raise InputError(
                        f"example {i} has no field {part.field!r} used by the pattern"
                        f" {self.pvp.pattern.text!r} (it has: {sorted(rec)})"
                    ) from exc
                own.append(isinstance(value, OwnText))
                # texts that did not come through to_records (calibration texts...)
                # get the same check
                value = check_text(value, f"example {i} field {part.field!r}")
                text = self._field_text(value, part.field)
                texts.append((" " + text) if part.space_before and text else text)
            ids = self._tokenize(texts) if n else []
            for i in (i for i, mine in enumerate(own) if mine):
                ids[i] = list(self.tokenizer(texts[i], add_special_tokens=False)["input_ids"])
            per_part.append(ids)
        shortenable = [
            self.pvp.field_options(p.field).shortenable for p in self.parts if p.kind == "field"
        ]
        budget = self.max_length - self.fixed_length
        out = []
        for i in range(n):
            fields = [per_part[j][i] for j in range(len(per_part))]
            out.append(Encoded(tuple(map(tuple, _truncate(fields, shortenable, budget, i)))))
        return out

    def assemble(self, enc: Encoded, n_masks: int) -> tuple[list[int], list[int], int]:
        """Build ``(input_ids, soft_index, mask_start)`` with ``n_masks`` mask tokens.

        ``soft_index`` is -1 except at soft-slot positions, where it holds the slot.
        """
        ids: list[int] = list(self._prefix)
        soft: list[int] = [-1] * len(ids)
        mask_start = -1
        fi = 0
        for part in self.parts:
            if part.kind == "lit":
                ids.extend(part.ids)
                soft.extend([-1] * len(part.ids))
            elif part.kind == "field":
                field = enc.fields[fi]
                fi += 1
                ids.extend(field)
                soft.extend([-1] * len(field))
            elif part.kind == "mask":
                mask_start = len(ids)
                ids.extend([self.mask_id] * n_masks)
                soft.extend([-1] * n_masks)
            else:
                ids.extend([self.mask_id] * len(part.slots))  # placeholder, replaced by vectors
                soft.extend(part.slots)
        ids.extend(self._suffix)
        soft.extend([-1] * len(self._suffix))
        return ids, soft, mask_start

    def collate(self, batch: Sequence[Encoded], n_masks: int) -> dict[str, torch.Tensor]:
        """Pad a batch dynamically and return tensors for the cloze model."""
        rows = [self.assemble(e, n_masks) for e in batch]
        width = max(len(r[0]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        soft_index = torch.full((len(rows), width), -1, dtype=torch.long)
        mask_pos = torch.empty(len(rows), dtype=torch.long)
        for i, (ids, soft, start) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            soft_index[i, : len(soft)] = torch.tensor(soft)
            mask_pos[i] = start
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "soft_index": soft_index,
            "mask_pos": mask_pos,
        }


def check_with_tokenizer(spec: PVP | Verbalizer, tokenizer: Any) -> None:
    """Raise what encoding ``spec`` with ``tokenizer`` raises (``pet-kit validate
    --model``): a label word the tokenizer does not know, a pattern that does not fit.

    Parameters
    ----------
    spec : PVP or Verbalizer
        A loaded PVP, or a verbalizer file's label words alone.
    tokenizer : transformers tokenizer
    """
    if isinstance(spec, Verbalizer):
        spec.compile(tokenizer, space_before=True)
    else:
        ClozeEncoder(spec, tokenizer, max_length=512)


def _cut_at_space(text: str, cap: int) -> str:
    """``text`` cut to at most ``cap`` characters, at a whitespace if there is one."""
    if len(text) <= cap:
        return text
    space = max(text.rfind(" ", 0, cap + 1), text.rfind("\n", 0, cap + 1))
    return text[:space] if space > cap // 2 else text[:cap]


def _truncate(
    fields: list[list[int]], shortenable: list[bool], budget: int, index: int
) -> list[list[int]]:
    """Cut shortenable fields, longest first, so their total fits ``budget``."""
    total = sum(len(f) for f in fields)
    if total <= budget:
        return fields
    fixed = sum(len(f) for f, s in zip(fields, shortenable, strict=True) if not s)
    room = budget - fixed
    if room < 0:
        raise InputError(
            f"example {index}: its non-shortenable field(s) need {fixed} tokens but only"
            f" {budget} fit beside the pattern; mark the field shortenable or raise max_length"
        )
    lengths = [len(f) if s else 0 for f, s in zip(fields, shortenable, strict=True)]
    # water-filling: largest cap c with sum(min(len, c)) <= room
    lo, hi = 0, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= room:
            lo = mid
        else:
            hi = mid - 1
    caps = [min(n, lo) for n in lengths]
    spare = room - sum(caps)
    for j, n in enumerate(lengths):
        if spare and n > caps[j]:
            caps[j] += 1
            spare -= 1
    return [
        f[: caps[j]] if s else f for j, (f, s) in enumerate(zip(fields, shortenable, strict=True))
    ]
