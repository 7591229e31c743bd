"""Verbalizers: which words stand for which label.

Scoring rule (documented in the README):

* A label word is tokenized **as it appears in context**: when the pattern has a
  space before ``[MASK]`` the word is tokenized with a leading space, which gives the
  ``Ġgreat`` form on byte-level BPE tokenizers (RoBERTa, GPT-2 style) and is a
  no-op for WordPiece/SentencePiece.
* A word of ``n`` tokens fills ``n`` consecutive mask positions; its score is the
  **mean** of its tokens' log-probabilities (per-token mean, so words of different
  lengths compete fairly; a sum would favour short words). Words of equal length
  are scored in one forward pass; each distinct length costs one pass. When every
  word has the same length the log-normaliser is the same for all words, so raw
  MLM logits are used (identical class probabilities, no vocabulary-sized softmax).
* Several words of one label combine by ``aggregate``: ``mean`` (default, as in
  PET: robust to one very frequent word), ``max``, or ``logsumexp`` (the label's
  probability is the sum of its words' probabilities).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import VerbalizerError
from ..io.inputs import SURROGATE

__all__ = ["AGGREGATES", "CompiledVerbalizer", "Verbalizer", "WordGroup"]

#: How the scores of one label's words combine into its class score (``aggregate``).
AGGREGATES = ("mean", "max", "logsumexp")


@dataclass(frozen=True)
class Verbalizer:
    """Label -> label words.

    Parameters
    ----------
    labels : mapping
        Each label (str, int, float or bool) to a non-empty list of words.
    aggregate : {"mean", "max", "logsumexp"}
        How several words of one label combine.
    name : str, optional
    source : str, optional
        Where it came from (file path or ``"<inline>"``), used in messages.
    key : str, optional
        Key path of the labels mapping in ``source`` (e.g. ``verbalizer.labels``).
    lines : mapping, optional
        Line of each label in ``source``, so that errors found later (when the words are
        tokenized) still point at the line.
    """

    labels: Mapping[Hashable, tuple[str, ...]]
    aggregate: str = "mean"
    name: str | None = None
    source: str = "<inline>"
    key: str = "labels"
    lines: Mapping[Hashable, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise VerbalizerError(
                f"aggregate must be one of {', '.join(AGGREGATES)} (got {self.aggregate!r})",
                source=self.source,
                key="aggregate",
            )
        if len(self.labels) < 2:
            raise VerbalizerError(
                f"a verbalizer needs at least 2 labels (got {list(self.labels)})",
                source=self.source,
                key=self.key,
            )
        as_text: dict[str, Hashable] = {}
        for label in self.labels:
            self._check_text(f"label {label!r}", label, f"{self.key}.{label}")
            if isinstance(label, str) and not label.strip():
                raise VerbalizerError(
                    f"label {label!r} is empty or whitespace: its predictions would be empty"
                    " cells, read back as missing values; name the class",
                    source=self.source,
                    key=f"{self.key}.{label}",
                )
            if isinstance(label, float) and not math.isfinite(label):
                raise VerbalizerError(
                    f"label {label!r} is not a finite number: no label in y can match it (y"
                    " refuses NaN and infinite labels); use a string or an integer label (in"
                    f' YAML, quote the key: "{label}":)',
                    source=self.source,
                    key=f"{self.key}.{label}",
                )
            other = as_text.setdefault(str(label), label)
            if other is not label and other != label:
                raise VerbalizerError(
                    f"labels {other!r} and {label!r} have the same text form {str(label)!r},"
                    " so labels read from text files could match either; keep one",
                    source=self.source,
                    key=f"{self.key}.{label}",
                )
        seen: dict[str, Hashable] = {}
        for label, words in self.labels.items():
            where = f"{self.key}.{label}"
            if not words:
                raise VerbalizerError(
                    "no label words; give at least one word", source=self.source, key=where
                )
            for word in words:
                if not isinstance(word, str) or not word.strip():
                    raise VerbalizerError(
                        f"label word {word!r} is empty or whitespace; write a real word",
                        source=self.source,
                        key=where,
                    )
                self._check_text(f"label word {word!r}", word, where)
                norm = word.strip()
                if norm in seen:
                    other = seen[norm]
                    what = "twice" if other == label else f"for both {other!r} and {label!r}"
                    raise VerbalizerError(
                        f"label word {norm!r} is listed {what}; each word may stand for one"
                        " label only",
                        source=self.source,
                        key=where,
                    )
                seen[norm] = label

    def _check_text(self, what: str, value: Any, key: str) -> None:
        """Refuse a label or word holding a lone surrogate: it is not text (a tokenizer
        refuses it, no UTF-8 file can hold it)."""
        bad = SURROGATE.search(value) if isinstance(value, str) else None
        if bad is not None:
            raise VerbalizerError(
                f"{what} has a lone surrogate {bad.group()!r} at character {bad.start()}"
                " (bytes that are not UTF-8, decoded with errors='surrogateescape'); write it"
                " as text",
                source=self.source,
                key=key,
            )

    @classmethod
    def from_mapping(
        cls,
        labels: Mapping[Any, Any],
        *,
        aggregate: str = "mean",
        name: str | None = None,
        source: str = "<inline>",
    ) -> Verbalizer:
        """Build from ``{label: word | [words]}``."""
        fixed: dict[Hashable, tuple[str, ...]] = {}
        for label, words in labels.items():
            if isinstance(words, str):
                words = [words]
            if not isinstance(words, Sequence):
                raise VerbalizerError(
                    f"label words must be a list of strings (got {type(words).__name__})",
                    source=source,
                    key=f"labels.{label}",
                )
            fixed[label] = tuple(w.strip() if isinstance(w, str) else w for w in words)
        return cls(labels=fixed, aggregate=aggregate, name=name, source=source)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready form (labels as a list of pairs keeps non-str labels)."""
        return {
            "name": self.name,
            "aggregate": self.aggregate,
            "labels": [[label, list(words)] for label, words in self.labels.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<saved>") -> Verbalizer:
        """Inverse of :meth:`to_dict`."""
        labels = {_hashable(label): tuple(words) for label, words in data["labels"]}
        return cls(labels=labels, aggregate=data["aggregate"], name=data.get("name"), source=source)

    def compile(self, tokenizer: Any, *, space_before: bool) -> CompiledVerbalizer:
        """Tokenize every word as it appears after the mask's left context.

        Raises
        ------
        VerbalizerError
            A word maps to the unknown token or to a special token.
        """
        special = set(tokenizer.all_special_ids)
        unk = tokenizer.unk_token_id
        words: list[tuple[int, str, tuple[int, ...]]] = []
        labels = list(self.labels)
        by_ids: dict[tuple[int, ...], tuple[Hashable, str]] = {}
        for li, label in enumerate(labels):
            for word in self.labels[label]:
                text = (" " + word) if space_before else word
                ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
                problem = None
                bad = [i for i in ids if i in special]
                if not ids:
                    problem = f"label word {word!r} tokenizes to nothing; choose another word"
                elif unk is not None and unk in ids:
                    pieces = tokenizer.convert_ids_to_tokens(list(ids))
                    problem = (
                        f"label word {word!r} is not in the backbone's vocabulary (it tokenizes"
                        f" to {pieces}); choose a word the tokenizer knows"
                    )
                elif bad:
                    problem = (
                        f"label word {word!r} is a special token"
                        f" ({tokenizer.convert_ids_to_tokens(bad)}); use an ordinary word"
                    )
                elif ids in by_ids:
                    other_label, other_word = by_ids[ids]
                    problem = (
                        f"label words {other_word!r} ({other_label!r}) and {word!r} ({label!r})"
                        " tokenize identically for this backbone; keep only one"
                    )
                if problem is not None:
                    raise VerbalizerError(
                        problem,
                        source=self.source,
                        line=self.lines.get(label),
                        key=f"{self.key}.{label}",
                    )
                by_ids[ids] = (label, word)
                words.append((li, word, ids))
        lengths = sorted({len(ids) for _, _, ids in words})
        groups = tuple(
            WordGroup(
                length=n,
                token_ids=tuple(ids for _, _, ids in words if len(ids) == n),
                label_index=tuple(li for li, _, ids in words if len(ids) == n),
                words=tuple(w for _, w, ids in words if len(ids) == n),
            )
            for n in lengths
        )
        return CompiledVerbalizer(labels=tuple(labels), groups=groups, aggregate=self.aggregate)


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class WordGroup:
    """Label words of one token length (scored in one forward pass)."""

    length: int
    token_ids: tuple[tuple[int, ...], ...]
    label_index: tuple[int, ...]
    words: tuple[str, ...]


@dataclass(frozen=True)
class CompiledVerbalizer:
    """A verbalizer bound to a tokenizer."""

    labels: tuple[Hashable, ...]
    groups: tuple[WordGroup, ...]
    aggregate: str
    max_length: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_length", max(g.length for g in self.groups))

    @property
    def n_words(self) -> int:
        """Total number of label words."""
        return sum(len(g.token_ids) for g in self.groups)
