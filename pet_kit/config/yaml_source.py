"""Safe YAML reading that remembers where every key came from.

``yaml.safe_load`` returns plain data and forgets line numbers; error messages need
them. :func:`read_yaml` composes the node tree once (safe loader only: no Python
object construction, ever), builds the data from it, and keeps the tree so that
:meth:`YamlSource.line_of` can map a key path such as ``("patterns", 0, "pattern")``
back to a 1-based line.

Before anything is parsed, a file's size is checked against :data:`MAX_YAML_BYTES`
(specifications are a few KB; parsing tens of MB takes minutes). Keys that YAML would
silently merge are refused: the same key written twice, and keys spelled differently
that read as the same value (``1:``, ``1.0:``, ``0x1:``, ``+1:`` are all the number 1;
``yes:`` and ``true:`` are True, which Python treats as 1 too).
"""

from __future__ import annotations

import difflib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, Problem
from ..limits import env_limit

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_YAML_BYTES",
    "YamlSource",
    "max_yaml_bytes",
    "parse_yaml_text",
    "read_yaml",
    "resolve_path",
]

#: Largest number of values a document may expand to (aliases counted expanded).
MAX_NODES = 100_000
#: Deepest nesting of mappings/sequences accepted.
MAX_DEPTH = 64
#: Largest YAML file (bytes) read; the environment variable ``PET_KIT_MAX_YAML_BYTES``
#: overrides it. Specifications are a few KB: a larger file is most likely the wrong file.
MAX_YAML_BYTES = 1 << 20
_MAX_YAML_BYTES_ENV = "PET_KIT_MAX_YAML_BYTES"


def max_yaml_bytes() -> int:
    """The YAML size limit in bytes: ``$PET_KIT_MAX_YAML_BYTES`` or :data:`MAX_YAML_BYTES`.

    Raises
    ------
    ConfigError
        The environment variable is set but not a positive integer.
    """
    return env_limit(
        _MAX_YAML_BYTES_ENV,
        MAX_YAML_BYTES,
        lambda raw: ConfigError(
            f"{_MAX_YAML_BYTES_ENV}={raw!r} is not a positive integer (a size in bytes);"
            f" set it to e.g. {4 * MAX_YAML_BYTES} or unset it",
            source=_MAX_YAML_BYTES_ENV,
        ),
    )


def _too_large(size: int, limit: int, unit: str) -> str:
    return (
        f"the YAML is {size} {unit}, over the limit of {limit} {unit} for a specification"
        " (PVP and verbalizer files are a few KB); check that this is the right file, or"
        f" raise the limit with the environment variable {_MAX_YAML_BYTES_ENV}"
    )


@dataclass(frozen=True)
class YamlSource:
    """Parsed YAML data plus its node tree, for locating keys.

    Attributes
    ----------
    data : Any
        The plain Python data (dicts, lists, scalars).
    name : str
        File path, or ``"<inline>"`` for data that did not come from a file.
    node : yaml.Node or None
        Root of the composed node tree (``None`` for inline data).
    """

    data: Any
    name: str = "<inline>"
    node: yaml.Node | None = None

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths inside this source are resolved against."""
        if self.name.startswith("<"):
            return Path.cwd()
        return Path(self.name).resolve().parent

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """Return the 1-based line of the deepest node found along ``loc``."""
        return self.position_of(loc)[0]

    def position_of(self, loc: tuple[Any, ...]) -> tuple[int | None, int | None]:
        """Return the 1-based (line, column) of the deepest node found along ``loc``.

        For a key of a mapping this is where the key is written; ``(None, None)`` for
        inline data.
        """
        node = self.node
        if node is None:
            return None, None
        mark = node.start_mark
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if str(key_node.value) == str(part):
                        mark = key_node.start_mark
                        node = value_node
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                mark = node.start_mark
            else:
                break
        return mark.line + 1, mark.column + 1

    def problem(self, message: str, loc: tuple[Any, ...] = ()) -> Problem:
        """A :class:`~pet_kit.errors.Problem` located at key path ``loc`` in this source."""
        line, column = self.position_of(loc)
        key = ".".join(str(p) for p in loc) or None
        return Problem(message, source=self.name, line=line, column=column, key=key)

    def error(
        self, problem: str, loc: tuple[Any, ...] = (), cls: type[ConfigError] = ConfigError
    ) -> ConfigError:
        """Build a ``cls`` error located at ``loc`` in this source."""
        return cls.from_problems([self.problem(problem, loc)])


_FLOW_VALUE = re.compile(r"^\s*(?:-\s+)?(?:[\w.-]+\s*:\s+)?(?P<value>[\[{].*)$")


def _quote_hint(text: str, exc: yaml.MarkedYAMLError) -> str:
    """A hint for the commonest slip: an unquoted value starting with ``[`` or ``{``
    (``pattern: [MASK] News: {text}``), which YAML reads as a list or mapping."""
    lines = text.splitlines()
    marks = [m for m in (exc.context_mark, exc.problem_mark) if m is not None]
    for mark in marks:
        if 0 <= mark.line < len(lines):
            match = _FLOW_VALUE.match(lines[mark.line])
            if match:
                value = match.group("value").rstrip()
                return (
                    f"; a value starting with {value[0]!r} is read as a YAML"
                    f" {'list' if value[0] == '[' else 'mapping'}: quote the whole value,"
                    f' e.g. "{value}"'
                )
    return ""


def _parse(text: str, name: str) -> YamlSource:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_graph(node, name)
        # build the data from a second parse: the constructor rewrites merge keys (<<)
        # in the node tree it works on, and the tree must stay as written for line lookups
        loader = yaml.SafeLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if "could not determine a constructor" in problem:
            problem += (
                " (pet_kit reads YAML with the safe loader only: Python-object tags such as"
                " !!python/object are never executed; remove the tag)"
            )
        if column is not None:
            problem += f" (column {column})"
        problem += _quote_hint(text, exc)
        raise ConfigError(
            f"invalid YAML: {problem}", source=name, line=line, column=column
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=name) from exc
    except RecursionError as exc:
        raise ConfigError(
            f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels); a"
            " specification needs only a few levels",
            source=name,
        ) from exc
    _reject_duplicate_keys(node, name)
    return YamlSource(data=data, name=name, node=node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_graph(root: yaml.Node | None, name: str) -> None:
    """Refuse recursive aliases, alias bombs and very deep nesting, before building data.

    Aliases (``*a``) make the node tree a graph: a recursive anchor (``&a [*a]``) never
    ends, and a few lines of nested aliases can expand to billions of nodes ("billion
    laughs"). Sizes are computed per distinct node (memoised), so the check itself is
    linear in the document's length.
    """
    if root is None:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        nid = id(node)
        if finished:
            kids = _children(node)
            on_path.discard(nid)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            line = node.start_mark.line + 1
            if size[nid] > MAX_NODES:
                raise ConfigError(
                    f"invalid YAML: the document expands to more than {MAX_NODES} values"
                    " through anchors and aliases (&name / *name), e.g. an alias bomb;"
                    " write the values out or use fewer aliases",
                    source=name,
                    line=line,
                )
            if depth[nid] > MAX_DEPTH:
                raise ConfigError(
                    f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels); a"
                    " specification needs only a few levels",
                    source=name,
                    line=line,
                )
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise ConfigError(
                "invalid YAML: an alias refers to the collection that contains it"
                " (a recursive anchor such as '&a [*a]'); remove the alias",
                source=name,
                line=node.start_mark.line + 1,
            )
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node))


def _reject_duplicate_keys(node: yaml.Node | None, name: str) -> None:
    """YAML lets a later duplicate key silently win; a strict spec refuses it.

    Besides the same spelling twice, keys that are spelled differently but read as the
    same value are refused (``1:``, ``1.0:`` and ``0x1:`` are all 1; ``yes:`` is True,
    and Python's ``True == 1``), in every mapping of the document.
    """
    stack = [node] if node is not None else []
    visited: set[int] = set()
    constructor = yaml.constructor.SafeConstructor()
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            values: dict[Any, yaml.ScalarNode] = {}
            for key_node, value_node in current.value:
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if isinstance(key_node, yaml.ScalarNode) and key in seen:
                    raise ConfigError(
                        f"duplicate key '{key}' (first on line {seen[key]}); YAML would"
                        " silently keep only the last one: remove or rename one",
                        source=name,
                        line=line,
                        key=key,
                        column=key_node.start_mark.column + 1,
                    )
                seen[key] = line
                if isinstance(key_node, yaml.ScalarNode):
                    _reject_same_value(constructor, key_node, values, name)
                stack.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _reject_same_value(
    constructor: yaml.constructor.SafeConstructor,
    key_node: yaml.ScalarNode,
    values: dict[Any, yaml.ScalarNode],
    name: str,
) -> None:
    """Refuse ``key_node`` if an earlier key of its mapping reads as an equal value."""
    try:
        value = constructor.construct_object(key_node)
        other = values.setdefault(value, key_node)
    except (yaml.YAMLError, TypeError):  # merge keys (<<), unhashable values
        return
    if other is key_node:
        return

    def shown(node: yaml.ScalarNode) -> str:
        read = constructor.construct_object(node)
        return f"'{node.value}' (line {node.start_mark.line + 1}, read as {read!r})"

    first, second = str(other.value), str(key_node.value)
    raise ConfigError(
        f"keys {shown(other)} and {shown(key_node)} are the same key once read (Python"
        " treats equal numbers, and True/False and 1/0, as one key), so YAML would"
        f' silently keep only the last one; quote them as distinct strings ("{first}": and'
        f' "{second}":) or remove one',
        source=name,
        line=key_node.start_mark.line + 1,
        key=second,
        column=key_node.start_mark.column + 1,
    )


def _nearby_file(path: Path) -> str:
    """``" (did you mean 'x.yaml'?)"`` for the YAML file beside ``path`` whose name is
    closest to it, ``" (no folder ...)"`` when its folder is missing, else ``""``."""
    folder = path.parent
    if not folder.is_dir():
        return f" (no folder {str(folder)!r})"
    try:
        names = sorted(f.name for f in folder.iterdir() if f.suffix in (".yaml", ".yml"))
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names[:10_000], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an existing file; a path the system refuses to look up (a
    name too long, a NUL byte, a folder it may not look into) is none, not an error."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def resolve_path(base: Path, ref: str) -> str:
    """A path written in a YAML file (``path`` or ``path#name``) as a path from the
    current folder: a relative one is relative to that file's folder, ``base``."""
    path, sep, name = ref.partition("#")
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = base / p
    return str(p) + (sep + name if sep else "")


def read_yaml(path: str | os.PathLike[str]) -> YamlSource:
    """Read and safely parse a YAML file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read (UTF-8).

    Returns
    -------
    YamlSource
        The data with its node tree.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, larger than :func:`max_yaml_bytes` (checked
        before it is read), not UTF-8, not valid YAML, or has keys YAML would merge.
    """
    p = Path(path)
    name = str(path)
    try:
        found = p.is_file()
    except OSError as exc:  # a name too long, a folder it may not look into, ...
        raise ConfigError(
            f"cannot look up the file ({exc.strerror}); check the path", source=name
        ) from exc
    if not found:
        hint = " (it is a folder)" if p.is_dir() else _nearby_file(p)
        raise ConfigError(f"file not found{hint}; check the path", source=name)
    limit = max_yaml_bytes()
    try:
        size = p.stat().st_size
        if size > limit:
            raise ConfigError(_too_large(size, limit, "bytes"), source=name)
        with p.open("rb") as fh:
            raw = fh.read(limit + 1)  # the file may have grown since the stat
        if len(raw) > limit:
            raise ConfigError(_too_large(len(raw), limit, "bytes"), source=name)
        text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8").read()
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8",
            source=name,
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=name) from exc
    return _parse(text, name)


def parse_yaml_text(text: str, name: str = "<string>") -> YamlSource:
    """Parse YAML given as a string (same rules as :func:`read_yaml`; the size limit
    counts characters)."""
    limit = max_yaml_bytes()
    if len(text) > limit:
        raise ConfigError(_too_large(len(text), limit, "characters"), source=name)
    return _parse(text, name)
