"""Pattern-verbalizer pairs (PVPs) and how they are loaded.

A PVP can be given as

* the name of a PVP shipped with pet_kit, optionally with ``#pattern_name``
  (``"sentiment_en"``, ``"rotten_tomatoes#soft"``; :func:`shipped_pvp_names` lists them,
  ``pet-kit list-pvps`` too);
* a path to a template file, optionally with ``#pattern_name``
  (``"my_templates/sentiment.yaml#soft"``); without a name the file's ``default``
  pattern (or its first) is used;
* a path to a PVP file (keys ``pattern`` and ``verbalizer``);
* an inline dict of the same shape, e.g.
  ``{"pattern": "[SOFT*2] {text} It was [MASK].", "verbalizer": {"pos": ["great"]}}``;
* a :class:`PVP` object.

``verbalizer`` may be a path to a verbalizer file, the name of a shipped verbalizer, a
full verbalizer mapping (with a ``labels`` key) or just the labels mapping. Relative
paths inside a file are resolved against that file's folder.

Names and paths: a string with no path separator and no ``.yaml``/``.yml`` suffix that is
not an existing file (relative to the working directory, or to the file that names it)
is the name of a shipped PVP; an existing file always wins. The shipped files live at the
top of a checkout (``templates/NAME.yaml`` and ``verbalizers/NAME.yaml``, where a user
edits them) and are mapped into the wheel as package data (``pet_kit/pvps/templates/``,
``pet_kit/pvps/verbalizers/``), so names work from any folder, in a checkout and in an
installed wheel.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, display_path
from .pattern import Pattern, parse_pattern
from .schema import FieldOptions, PVPSpec, TemplateFile, VerbalizerSpec, did_you_mean, validate
from .verbalizer import Verbalizer
from .yaml_source import YamlSource, is_file, read_yaml

__all__ = [
    "PVP",
    "SHIPPED_DIR",
    "ShippedPVP",
    "load_pvp",
    "load_pvps",
    "load_verbalizer",
    "pvp_reference",
    "shipped_pvp_names",
    "shipped_pvp_path",
    "shipped_pvps",
    "shipped_verbalizer_names",
]

log = logging.getLogger(__name__)

_YAML_SUFFIXES = (".yaml", ".yml")


def _shipped_dir() -> Path:
    """The folder holding the shipped ``templates/`` and ``verbalizers/``: ``pet_kit/pvps``
    in an installed wheel, else the checkout's top level (an editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "pvps"
    return installed if (installed / "templates").is_dir() else package.parent


#: Folder of the PVPs shipped with pet_kit: ``templates/`` and ``verbalizers/``, one YAML
#: file per name (the checkout's top level, or ``pet_kit/pvps`` in a wheel).
SHIPPED_DIR = _shipped_dir()


@dataclass(frozen=True)
class PVP:
    """A pattern with its verbalizer and per-field options.

    Attributes
    ----------
    pattern : Pattern
    verbalizer : Verbalizer
    fields : dict of str to FieldOptions
        Options per text field (missing fields use the defaults).
    name : str, optional
    source : str
        Where it was loaded from.
    """

    pattern: Pattern
    verbalizer: Verbalizer
    fields: Mapping[str, FieldOptions] = field(default_factory=dict)
    name: str | None = None
    source: str = "<inline>"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fields) - set(self.pattern.fields))
        if unknown:
            raise ConfigError(
                f"options given for field(s) {unknown} that the pattern does not use"
                f" (its fields: {list(self.pattern.fields)})",
                source=self.source,
                key="fields",
            )

    def field_options(self, name: str) -> FieldOptions:
        """Options of field ``name`` (defaults if none were given)."""
        return self.fields.get(name) or FieldOptions()

    def to_dict(self) -> dict[str, Any]:
        """Self-contained JSON-ready form (used in saved prompts)."""
        return {
            "name": self.name,
            "pattern": self.pattern.text,
            "fields": {k: v.model_dump() for k, v in self.fields.items()},
            "verbalizer": self.verbalizer.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<saved>") -> PVP:
        """Inverse of :meth:`to_dict`."""
        return cls(
            pattern=parse_pattern(data["pattern"], source=source, key="pattern"),
            verbalizer=Verbalizer.from_dict(data["verbalizer"], source=source),
            fields={k: FieldOptions(**v) for k, v in data.get("fields", {}).items()},
            name=data.get("name"),
            source=source,
        )


def _split_ref(ref: str | os.PathLike[str]) -> tuple[str, str | None]:
    text = os.fspath(ref)
    path, sep, name = text.partition("#")
    return path, (name if sep else None)


def _looks_like_path(text: str) -> bool:
    path, _ = _split_ref(text)
    return path.lower().endswith(_YAML_SUFFIXES)


_NAME_RE = re.compile(r"[\w.\-]+")


def _is_bare_name(path: str) -> bool:
    """Whether ``path`` (a reference without ``#pattern``) has the form of a shipped name:
    one word (letters, digits, ``_ . -``: no path separator, no spaces), no YAML suffix."""
    return bool(_NAME_RE.fullmatch(path)) and not path.lower().endswith(_YAML_SUFFIXES)


def _names_in(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())


def shipped_pvp_names() -> list[str]:
    """Names of the PVPs shipped with pet_kit (the template files' stems), sorted.

    Returns
    -------
    list of str
        E.g. ``["bbc_news", ..., "sentiment_en", ...]``; each works as
        ``PromptClassifier(pvp=name)`` or ``pvp="name#pattern_name"``.
    """
    return _names_in(SHIPPED_DIR / "templates")


def shipped_verbalizer_names() -> list[str]:
    """Names of the verbalizers shipped with pet_kit (their files' stems), sorted."""
    return _names_in(SHIPPED_DIR / "verbalizers")


def _unknown_name(name: str, names: list[str], what: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return ConfigError(
        f"{name!r} is not a file and not the name of a shipped {what}{hint}; the shipped"
        f" {what}s are: {', '.join(names)} (pet-kit list-pvps shows them); for a file of"
        " your own pass its path, e.g. 'my_pvp.yaml' or './my_pvp'",
        source=source,
    )


def shipped_pvp_path(name: str) -> Path:
    """The template file of the shipped PVP ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`shipped_pvp_names` (without ``#pattern_name``).

    Returns
    -------
    Path

    Raises
    ------
    ConfigError
        ``name`` is not a shipped PVP; the message lists them, with the closest matches.
    """
    names = shipped_pvp_names()
    if name not in names:
        raise _unknown_name(name, names, "PVP", source="pvp")
    return SHIPPED_DIR / "templates" / f"{name}.yaml"


def _shipped_verbalizer_path(name: str, source: str) -> Path:
    names = shipped_verbalizer_names()
    if name not in names:
        raise _unknown_name(name, names, "verbalizer", source=source)
    return SHIPPED_DIR / "verbalizers" / f"{name}.yaml"


def pvp_reference(ref: str | os.PathLike[str], base_dir: Path | None = None) -> str:
    """The file reference ``ref`` stands for: a path, or the shipped PVP's template file.

    An existing file (relative to ``base_dir``) always wins; a bare name (one word: no
    path separator, no spaces, no ``.yaml``/``.yml`` suffix) that is not a file is a
    shipped PVP's name. Anything else is a path: resolved against ``base_dir`` when one is
    given, else returned unchanged.

    Parameters
    ----------
    ref : str or PathLike
        ``"sentiment_en"``, ``"sentiment_en#soft"``, ``"my/file.yaml#name"``...
    base_dir : Path, optional
        Folder relative paths are resolved against (default: the working directory).

    Returns
    -------
    str
        A file path, with the ``#pattern_name`` of ``ref`` kept.

    Raises
    ------
    ConfigError
        ``ref`` is a bare name that is neither a file nor a shipped PVP.
    """
    text = os.fspath(ref)
    path, name = _split_ref(text)
    if not path:
        return text
    tail = f"#{name}" if name is not None else ""
    full = _resolve(base_dir or Path.cwd(), path)
    if not is_file(full) and _is_bare_name(path):
        return os.fspath(shipped_pvp_path(path)) + tail
    return text if base_dir is None else os.fspath(full) + tail


@dataclass(frozen=True)
class ShippedPVP:
    """Summary of one shipped PVP (what ``pet-kit list-pvps`` prints).

    Attributes
    ----------
    name : str
        The name to pass as ``pvp=``.
    language : str or None
    labels : tuple
        The verbalizer's labels, in file order.
    patterns : tuple of str
        Pattern names, in file order (``name#pattern`` selects one).
    default : str
        The pattern used when none is named.
    description : str or None
    path : Path
        The template file.
    """

    name: str
    language: str | None
    labels: tuple[Any, ...]
    patterns: tuple[str, ...]
    default: str
    description: str | None
    path: Path


def shipped_pvps() -> list[ShippedPVP]:
    """Every shipped PVP, loaded and summarised (sorted by name; no torch needed).

    Returns
    -------
    list of ShippedPVP

    Raises
    ------
    ConfigError
        A shipped file is invalid (a packaging bug).
    """
    out = []
    for name in shipped_pvp_names():
        path = SHIPPED_DIR / "templates" / f"{name}.yaml"
        src = read_yaml(path)
        spec, names = _template(src)
        default = names[_select(src, spec, names, None)]
        pvp = _template_pvps(src, [names.index(default)], spec, names)[0]
        out.append(
            ShippedPVP(
                name=name,
                language=spec.language,
                labels=tuple(pvp.verbalizer.labels),
                patterns=tuple(names),
                default=default,
                description=spec.description,
                path=path,
            )
        )
    return out


def _resolve(base: Path, ref: str) -> Path:
    p = Path(ref).expanduser()
    return p if p.is_absolute() else base / p


def _verbalizer_from_source(
    src: YamlSource, loc: tuple[Any, ...] = (), nested: bool = True
) -> Verbalizer:
    """Build a verbalizer from the mapping at ``loc``.

    A nested mapping (inside a PVP/template, or an inline dict) may be just the labels
    mapping; a verbalizer *file* must have ``labels`` (so a misspelled ``lables`` is
    reported instead of being read as a label).
    """
    data = src.data
    for part in loc:
        data = data[part]
    meta_keys = set(VerbalizerSpec.model_fields) - {"labels"}
    bare = (
        nested
        and isinstance(data, Mapping)
        and "labels" not in data
        and not meta_keys & {str(k) for k in data}
    )
    label_loc = loc if bare else (*loc, "labels")
    _check_label_keys(src, label_loc)
    spec = validate(VerbalizerSpec, src, "verbalizer", base=loc, wrap="labels" if bare else None)
    labels = {k: tuple(w.strip() for w in v) for k, v in spec.labels.items()}
    for key in labels:
        if isinstance(key, bool):
            log.warning(
                "%s: label %r is a boolean: YAML reads unquoted yes/no/true/false/on/off keys"
                ' as booleans; quote the key ("yes":) if you meant the word',
                src.name,
                key,
            )
    vkey = ".".join(map(str, label_loc)) or "labels"
    lines: dict[Any, int] = {}
    if src.node is not None:
        for label in labels:
            line = src.line_of((*label_loc, label))
            if line is not None:
                lines[label] = line
    try:
        return Verbalizer(
            labels=labels,
            aggregate=spec.aggregate,
            name=spec.name,
            source=src.name,
            key=vkey,
            lines=lines,
        )
    except ConfigError as exc:
        # locate the error on the original node tree: key is vkey or "<vkey>.<label>"
        key = exc.key or ""
        tail = [key[len(vkey) + 1 :]] if key.startswith(vkey + ".") else []
        raise src.error(exc.problem, (*label_loc, *tail), type(exc)) from exc


# Unquoted label keys that YAML 1.1 reads as booleans although they look like words.
_WORDY_BOOLEANS = frozenset({"yes", "no", "on", "off"})


def _node_at(src: YamlSource, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The node at key path ``loc`` in ``src``'s node tree (``None``: not found)."""
    node = src.node
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            return None
    return node


def _check_label_keys(src: YamlSource, label_loc: tuple[Any, ...]) -> None:
    """Refuse label keys that YAML reads as something else than they look like.

    An unquoted ``yes:``/``no:``/``on:``/``off:`` is the boolean True/False, not the word
    (refused like unquoted ``yes``/``no`` label words; ``true:``/``false:`` are taken as
    the booleans they spell). ``~:``, ``null:`` or an empty key is null, which is no label.
    """
    node = _node_at(src, label_loc)
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.style is not None:
            continue  # quoted keys are strings
        spelled = str(key_node.value)
        if key_node.tag == "tag:yaml.org,2002:bool" and spelled.lower() in _WORDY_BOOLEANS:
            read = spelled.lower() in ("yes", "on")
            problem = (
                f"label '{spelled}' is read by YAML as the boolean {read}, not the word (so y"
                f' would have to contain {read}); quote it ("{spelled}":) to use the word as'
                f" the label, or write {str(read).lower()}: if you mean a boolean label"
            )
        elif key_node.tag == "tag:yaml.org,2002:null":
            problem = (
                f"label '{spelled}' is read by YAML as null (no value), which cannot be a"
                f' label; quote it ("{spelled}":) or name the label'
            )
        else:
            continue
        raise src.error(problem, (*label_loc, spelled))


def load_verbalizer(
    spec: str | os.PathLike[str] | Mapping[str, Any] | Verbalizer,
    *,
    base_dir: Path | None = None,
    referenced_from: tuple[YamlSource, tuple[Any, ...]] | None = None,
) -> Verbalizer:
    """Load a verbalizer from a file path, a mapping, or pass one through.

    Parameters
    ----------
    spec : str, PathLike, mapping or Verbalizer
        A verbalizer file (must have ``labels``), the name of a shipped verbalizer
        (``"sentiment_en"``; an existing file of that name wins), a mapping (full or just
        the labels).
    base_dir : Path, optional
        Folder relative paths are resolved against (default: the working directory).
    referenced_from : (YamlSource, key path), optional
        The file and key that named ``spec``, so a missing file is reported there.
    """
    if isinstance(spec, Verbalizer):
        return spec
    if isinstance(spec, Mapping):
        return _verbalizer_from_source(YamlSource(dict(spec)))
    text = os.fspath(spec)
    path = _resolve(base_dir or Path.cwd(), text)
    if not path.is_file() and _is_bare_name(text):  # the name of a shipped verbalizer
        try:
            path = _shipped_verbalizer_path(text, source="verbalizer")
        except ConfigError as exc:
            if referenced_from is None:
                raise
            src_ref, loc = referenced_from
            raise src_ref.error(exc.problem, loc) from exc
    if referenced_from is not None and not path.is_file():
        src_ref, loc = referenced_from
        raise src_ref.error(
            f"verbalizer file {os.fspath(spec)!r} not found (looked for"
            f" {display_path(str(path))}); paths are relative to the file that names them",
            loc,
        )
    src = read_yaml(path)
    if isinstance(src.data, Mapping) and ("patterns" in src.data or "pattern" in src.data):
        raise src.error(
            "this is a template/PVP file, not a verbalizer file; a verbalizer file has a"
            " 'labels' mapping"
        )
    return _verbalizer_from_source(src, nested=False)


def _template(src: YamlSource) -> tuple[TemplateFile, list[str]]:
    spec: TemplateFile = validate(TemplateFile, src, "template file")
    names = [e.name or str(i) for i, e in enumerate(spec.patterns)]
    if len(set(names)) != len(names):
        raise src.error("pattern names must be unique", ("patterns",))
    return spec, names


def _select(src: YamlSource, spec: TemplateFile, names: list[str], wanted: str | None) -> int:
    """Index of the pattern ``wanted`` (or the file's default, or the first)."""
    key: tuple[Any, ...] = ("patterns",)
    if wanted is None:
        wanted, key = spec.default, ("default",)
    if wanted is None:
        return 0
    if wanted not in names:
        raise src.error(
            f"no pattern named {wanted!r}{did_you_mean(wanted, names) or ';'} this file has:"
            f" {', '.join(names)}",
            key,
        )
    return names.index(wanted)


def _template_pvps(
    src: YamlSource, indices: list[int] | None, spec: TemplateFile, names: list[str]
) -> list[PVP]:
    if spec.verbalizer is None:
        raise src.error(
            "the template file has no 'verbalizer'; add 'verbalizer: ../verbalizers/NAME.yaml'"
            " or pass a PVP dict {'pattern': ..., 'verbalizer': ...}"
        )
    if isinstance(spec.verbalizer, str):
        verbalizer = load_verbalizer(
            spec.verbalizer, base_dir=src.base_dir, referenced_from=(src, ("verbalizer",))
        )
    else:
        verbalizer = _verbalizer_from_source(src, ("verbalizer",))
    stem = spec.name or Path(src.name).stem
    pvps = []
    for i in indices if indices is not None else range(len(spec.patterns)):
        entry = spec.patterns[i]
        pattern = _parse_located(src, ("patterns", i, "pattern"), entry.pattern)
        fields = {k: v for k, v in spec.fields.items() if k in pattern.fields}
        fields.update(entry.fields)
        try:
            pvps.append(
                PVP(pattern, verbalizer, fields, name=f"{stem}#{names[i]}", source=src.name)
            )
        except ConfigError as exc:
            raise src.error(exc.problem, ("patterns", i, "fields")) from exc
    return pvps


def _parse_located(src: YamlSource, loc: tuple[Any, ...], text: str) -> Pattern:
    try:
        return parse_pattern(text, source=src.name, key=".".join(map(str, loc)))
    except ConfigError as exc:
        raise src.error(exc.problem, loc, type(exc)) from exc


def _names_shipped_template(src: YamlSource, pattern: str) -> bool:
    """Whether a PVP's ``pattern`` is a shipped template's name (``"sentiment_en#soft"``),
    not a pattern string (which has a ``[MASK]`` and so is never a bare name)."""
    path, _ = _split_ref(pattern)
    return (
        _is_bare_name(path)
        and path in shipped_pvp_names()
        and not _resolve(src.base_dir, path).is_file()
    )


def _pvp_from_spec(src: YamlSource) -> PVP:
    spec: PVPSpec = validate(PVPSpec, src, "PVP")
    if _looks_like_path(spec.pattern) or _names_shipped_template(src, spec.pattern):
        path, name = _split_ref(pvp_reference(spec.pattern, src.base_dir))
        tpl = read_yaml(path)
        tspec, names = _template(tpl)
        idx = _select(tpl, tspec, names, name)
        pattern = _parse_located(tpl, ("patterns", idx, "pattern"), tspec.patterns[idx].pattern)
    else:
        pattern = _parse_located(src, ("pattern",), spec.pattern)
    if isinstance(spec.verbalizer, str):
        verbalizer = load_verbalizer(
            spec.verbalizer, base_dir=src.base_dir, referenced_from=(src, ("verbalizer",))
        )
    else:
        verbalizer = _verbalizer_from_source(src, ("verbalizer",))
    try:
        return PVP(pattern, verbalizer, dict(spec.fields), name=spec.name, source=src.name)
    except ConfigError as exc:
        raise src.error(exc.problem, ("fields",)) from exc


def _source_for(spec: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[YamlSource, str | None]:
    if isinstance(spec, Mapping):
        return YamlSource(dict(spec)), None
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(
            f"pvp must be a YAML path, a dict or a PVP object (got {type(spec).__name__})",
            source="pvp",
        )
    text = os.fspath(spec)
    path, name = _split_ref(text)
    if path and is_file(path):  # an existing file always wins
        return read_yaml(path), name
    if _is_bare_name(path):
        return read_yaml(shipped_pvp_path(path)), name
    if not _looks_like_path(text):
        raise ConfigError(
            f"{text!r} is neither a YAML file path (.yaml/.yml, optionally with"
            " #pattern_name), nor an existing file, nor the name of a shipped PVP (one word:"
            " pet-kit list-pvps lists them), nor a PVP dict; pass e.g. 'sentiment_en',"
            " 'my_pvp.yaml' or"
            " {'pattern': '{text} It was [MASK].', 'verbalizer': {...}}",
            source="pvp",
        )
    stem = Path(path).stem
    if not os.path.exists(path) and stem in shipped_pvp_names():
        tail = f"#{name}" if name is not None else ""
        raise ConfigError(
            f"file not found; check the path. pet_kit's own {stem!r} PVP is addressed by"
            f" name from any folder: pvp={stem + tail!r}",
            source=path,
        )
    return read_yaml(path), name


def _load(
    spec: str | os.PathLike[str] | Mapping[str, Any] | PVP, *, all_patterns: bool
) -> list[PVP]:
    if isinstance(spec, PVP):
        return [spec]
    src, name = _source_for(spec)
    data = src.data
    if isinstance(data, Mapping) and "patterns" in data:
        tspec, names = _template(src)
        selected = _select(src, tspec, names, name)  # also checks `default`
        if all_patterns and name is None:
            return _template_pvps(src, None, tspec, names)
        return _template_pvps(src, [selected], tspec, names)
    if name is not None:
        raise src.error(f"'#{name}' selects a pattern, but this file has no 'patterns' list")
    if isinstance(data, Mapping) and "labels" in data and "pattern" not in data:
        raise src.error(
            "this is a verbalizer file; a PVP needs a pattern too: pass a template file or"
            " {'pattern': ..., 'verbalizer': <this file>}"
        )
    return [_pvp_from_spec(src)]


def load_pvps(spec: str | os.PathLike[str] | Mapping[str, Any] | PVP) -> list[PVP]:
    """Load every pattern of a template file (or the single PVP of ``spec``).

    Parameters
    ----------
    spec : str, PathLike, dict or PVP
        See the module docstring. ``path#name`` selects one pattern.

    Returns
    -------
    list of PVP
    """
    return _load(spec, all_patterns=True)


def load_pvp(spec: str | os.PathLike[str] | Mapping[str, Any] | PVP) -> PVP:
    """Load one PVP (a template file's default pattern, a PVP file or dict).

    Parameters
    ----------
    spec : str, PathLike, dict or PVP
        See the module docstring.

    Returns
    -------
    PVP

    Raises
    ------
    ConfigError
        Anything wrong with the specification; the message names file, line and key.
    """
    return _load(spec, all_patterns=False)[0]
