"""The pattern language.

A pattern is a string such as ``"[SOFT*2] Review: {text} It was [MASK]."``:

``{name}``
    A text field filled from the input (``{text}``, ``{text_a}``/``{text_b}``,
    or any column name). Literal braces are written ``{{`` and ``}}``.
``[MASK]``
    Where the label word goes; mapped to the backbone's own mask token
    (``[MASK]``, ``<mask>``...). Exactly one per pattern. A label word of
    several tokens fills several consecutive mask positions.
``[SOFT]``, ``[SOFT*N]``
    One / N trainable vectors (soft slots).
``[SOFT:some words]``
    One slot per token of ``some words``, initialised from those tokens' embeddings.
``[SOFT#name]`` / ``[SOFT#name*N]``
    Slots that share vectors: every occurrence of ``#name`` uses the same vectors.

Everything else is literal text, tokenized as written.

A pattern longer than :data:`MAX_PATTERN_CHARS` characters (overridable with the
environment variable ``PET_KIT_MAX_PATTERN_CHARS``) is refused before it is parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PatternError
from ..io.inputs import SURROGATE as _SURROGATE
from ..limits import env_limit

__all__ = [
    "MAX_PATTERN_CHARS",
    "Field",
    "Literal",
    "Mask",
    "Pattern",
    "Segment",
    "Soft",
    "max_pattern_chars",
    "parse_pattern",
]

#: Longest pattern (characters) parsed; the environment variable
#: ``PET_KIT_MAX_PATTERN_CHARS`` overrides it. A prompt is a sentence or two, and every
#: literal token costs sequence length on every example.
MAX_PATTERN_CHARS = 10_000
_MAX_PATTERN_CHARS_ENV = "PET_KIT_MAX_PATTERN_CHARS"


def max_pattern_chars() -> int:
    """The pattern length limit: ``$PET_KIT_MAX_PATTERN_CHARS`` or :data:`MAX_PATTERN_CHARS`.

    Raises
    ------
    PatternError
        The environment variable is set but not a positive integer.
    """
    return env_limit(
        _MAX_PATTERN_CHARS_ENV,
        MAX_PATTERN_CHARS,
        lambda raw: PatternError(
            f"{_MAX_PATTERN_CHARS_ENV}={raw!r} is not a positive integer (a number of"
            f" characters); set it to e.g. {10 * MAX_PATTERN_CHARS} or unset it",
            source=_MAX_PATTERN_CHARS_ENV,
        ),
    )


@dataclass(frozen=True)
class Literal:
    """Fixed pattern text (never truncated)."""

    text: str


@dataclass(frozen=True)
class Field:
    """A text field filled from the input."""

    name: str
    space_before: bool


@dataclass(frozen=True)
class Mask:
    """The position(s) of the label word."""

    space_before: bool


@dataclass(frozen=True)
class Soft:
    """Trainable slot(s).

    Attributes
    ----------
    count : int or None
        Number of slots (``None`` when given by the tokens of ``init``).
    init : str or None
        Text whose token embeddings initialise the slots.
    shared : str or None
        Share vectors with every other occurrence of this name.
    """

    count: int | None
    init: str | None
    shared: str | None


Segment = Literal | Field | Mask | Soft

_TOKEN = re.compile(
    r"""(?P<lbrace>\{\{)|(?P<rbrace>\}\})
      |\{(?P<field>[^{}]*)\}
      |(?P<mask>\[MASK\])
      |\[SOFT(?:\#(?P<shared>[A-Za-z0-9_]+))?(?:\*(?P<count>[0-9]+))?(?::(?P<init>[^\]]*))?\]
      |(?P<badsoft>\[SOFT[^\]]*\])
      |(?P<badmask>\[(?i:mask)\]|<(?i:mask)>)
      |(?P<stray>[{}])""",
    re.VERBOSE,
)
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_SLOTS = 512


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern.

    Attributes
    ----------
    text : str
        The pattern as written.
    segments : tuple of Segment
        Literals, fields, the mask and soft slots in order.
    """

    text: str
    segments: tuple[Segment, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the text fields, in order of first appearance."""
        seen: dict[str, None] = {}
        for seg in self.segments:
            if isinstance(seg, Field):
                seen.setdefault(seg.name)
        return tuple(seen)

    @property
    def has_soft(self) -> bool:
        """Whether the pattern has trainable slots."""
        return any(isinstance(s, Soft) for s in self.segments)


def parse_pattern(text: str, *, source: str | None = None, key: str | None = None) -> Pattern:
    """Parse a pattern string.

    Parameters
    ----------
    text : str
        The pattern.
    source, key : str, optional
        Where the pattern came from, for error messages.

    Returns
    -------
    Pattern

    Raises
    ------
    PatternError
        No ``[MASK]`` or more than one, unbalanced braces, a bad field name, a
        malformed ``[SOFT...]`` slot, no text field at all, longer than
        :func:`max_pattern_chars` characters.
    """

    def fail(problem: str) -> PatternError:
        return PatternError(f"{problem} in pattern {text!r}", source=source, key=key)

    if not isinstance(text, str) or not text.strip():
        raise fail("the pattern is empty; write e.g. '{text} It was [MASK].'")
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise fail(
            f"a lone surrogate {bad.group()!r} at character {bad.start()} (bytes that are not"
            " UTF-8, decoded with errors='surrogateescape'; no tokenizer takes it); write the"
            " pattern as text"
        )
    limit = max_pattern_chars()
    if len(text) > limit:
        raise PatternError(
            f"the pattern is {len(text)} characters long, over the limit of {limit} (it"
            f" starts {text[:40]!r}); a prompt is a sentence or two: check that this is"
            f" the pattern you meant, or raise the limit with the environment variable"
            f" {_MAX_PATTERN_CHARS_ENV}",
            source=source,
            key=key,
        )
    segments: list[Segment] = []
    buf: list[str] = []
    pos = 0

    def flush() -> None:
        joined = "".join(buf)
        if joined:
            segments.append(Literal(joined))
        buf.clear()

    def space_before(start: int) -> bool:
        return start > 0 and text[start - 1].isspace()

    for m in _TOKEN.finditer(text):
        buf.append(text[pos : m.start()])
        pos = m.end()
        kind = m.lastgroup
        col = m.start() + 1
        if kind == "lbrace":
            buf.append("{")
        elif kind == "rbrace":
            buf.append("}")
        elif kind == "stray":
            raise fail(
                f"unbalanced '{m.group()}' at column {col};"
                " write '{{' or '}}' for a literal brace"
            )
        elif kind == "field":
            name = m.group("field").strip()
            if not _FIELD_NAME.match(name):
                raise fail(
                    f"bad field name {{{m.group('field')}}} at column {col}; field names are"
                    " identifiers such as {text} or {text_b}"
                )
            flush()
            segments.append(Field(name, space_before(m.start())))
        elif kind == "mask":
            flush()
            segments.append(Mask(space_before(m.start())))
        elif kind == "badmask":
            raise fail(
                f"{m.group()!r} at column {col} is not the mask marker; write [MASK] (upper case):"
                " pet_kit maps it to the backbone's own mask token"
            )
        elif kind == "badsoft":
            raise fail(
                f"malformed soft slot {m.group()!r} at column {col}; use [SOFT], [SOFT*N],"
                " [SOFT:init words], [SOFT#name] or [SOFT#name*N]"
            )
        else:  # soft slot
            count_s, init, shared = m.group("count"), m.group("init"), m.group("shared")
            if count_s is not None and init is not None:
                raise fail(
                    f"{m.group()!r}: give either *N or :init words, not both"
                    " ([SOFT:words] makes one slot per token of the words)"
                )
            count = int(count_s) if count_s is not None else (None if init else 1)
            if count is not None and not 1 <= count <= MAX_SLOTS:
                raise fail(f"{m.group()!r}: the slot count must be between 1 and {MAX_SLOTS}")
            if init is not None and not init.strip():
                raise fail(f"{m.group()!r}: the init words are empty")
            flush()
            segments.append(Soft(count, init.strip() if init else None, shared))
    buf.append(text[pos:])
    flush()

    n_masks = sum(isinstance(s, Mask) for s in segments)
    if n_masks == 0:
        raise fail("no [MASK]; add [MASK] where the label word should go")
    if n_masks > 1:
        raise fail(
            f"{n_masks} [MASK] markers; use exactly one (label words of several tokens are"
            " expanded to several mask positions automatically)"
        )
    if not any(isinstance(s, Field) for s in segments):
        raise fail("no text field; add {text} (or a column name such as {text_a})")
    shared_defs: dict[str, Soft] = {}
    for seg in segments:
        if isinstance(seg, Soft) and seg.shared is not None:
            first = shared_defs.setdefault(seg.shared, seg)
            if (first.count, first.init) != (seg.count, seg.init):
                raise fail(
                    f"[SOFT#{seg.shared}...] is used with different sizes or init words;"
                    " shared slots must be written identically each time"
                )
    return Pattern(text=text, segments=tuple(segments))
