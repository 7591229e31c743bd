"""Checking YAML files as what they are (``pet-kit validate``): templates, PVPs,
verbalizers and train configs, every problem found at its line (not only the first).

No torch: what a backbone adds (``--model``) comes in as a ``check`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem, display_path
from .yaml_source import YamlSource, read_yaml, resolve_path

__all__ = ["validate_file"]

#: What a backbone adds to the checks: called with each loaded PVP and verbalizer.
Check = Callable[[Any], None]

#: How each kind of file is named (:data:`~pet_kit.config.schema.KINDS`).
_KIND_NAMES = {
    "template file": "template file",
    "PVP": "PVP file",
    "train config": "train config",
    "verbalizer": "verbalizer file",
}


class _Collect:
    """``with _Collect(problems):`` adds the problems of a :class:`ConfigError` raised in
    the block to ``problems`` and goes on after the block (other errors propagate)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.failed = False

    def __enter__(self) -> _Collect:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, ConfigError):
            self.problems.extend(exc.problems)
            self.failed = True
            return True
        return False


def _key_loc(key: str | None) -> tuple[Any, ...]:
    """A dotted key (``patterns.0.pattern``) as a key path (digits as list indices)."""
    if not key:
        return ()
    return tuple(int(p) if p.isdigit() and str(int(p)) == p else p for p in key.split("."))


def _moved(problems: list[Problem], src: Any, base: tuple[Any, ...]) -> list[Problem]:
    """``problems`` of inline data (no file) located where that data is: at ``base`` in
    ``src``; problems in files stay as they are."""
    return [
        src.problem(p.message, (*base, *_key_loc(p.key))) if p.source in (None, "<inline>") else p
        for p in problems
    ]


def _in_order(problems: list[Problem]) -> list[Problem]:
    """Each problem once; files in the order first named, each file top to bottom."""
    unique: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        unique.setdefault((display_path(p.source or ""), p.line, p.key, p.message), p)
    files = list(dict.fromkeys(key[0] for key in unique))
    order = sorted(unique, key=lambda key: (files.index(key[0]), key[1] or 0))
    return [unique[key] for key in order]


def _is_reference(pattern: str) -> bool:
    """Whether a PVP's ``pattern`` names a template (``file.yaml#name``, ``sentiment_en``)
    rather than being a pattern, which always has ``[MASK]`` and a ``{field}``."""
    return not any(c.isspace() or c in "[]{}" for c in pattern)


def _check_pvp(spec: str | dict[Any, Any], check: Check | None, problems: list[Problem]) -> str:
    """Check a template/PVP file (``path`` or ``path#name``) or an inline PVP, adding
    every problem found to ``problems``; returns what it holds (when it loads)."""
    from .pattern import parse_pattern
    from .pvp import load_pvps, load_verbalizer

    with _Collect(problems) as loading:
        pvps = load_pvps(spec)
    if not loading.failed:
        if check is not None:
            for pvp in pvps:
                with _Collect(problems):
                    check(pvp)
        return f"{len(pvps)} pattern(s), labels {list(pvps[0].verbalizer.labels)}"
    if not isinstance(spec, str):
        return ""
    # loading stops at the first problem: check each pattern and the verbalizer alone
    file, _, wanted = spec.partition("#")
    src = read_yaml(file)
    data = src.data
    if not isinstance(data, dict):
        return ""
    from .schema import PVPSpec, TemplateFile, check_schema

    model, what = (TemplateFile, "template file") if "patterns" in data else (PVPSpec, "PVP")
    if check_schema(model, src, what)[1]:
        return ""  # the schema's problems, already found by load_pvps
    entries = [("pattern",)] if "pattern" in data and "patterns" not in data else []
    for i, entry in enumerate(data.get("patterns") or []):
        if not wanted or wanted == str(entry.get("name") or i):
            entries.append(("patterns", i, "pattern"))
    for loc in entries:
        text = data[loc[0]] if len(loc) == 1 else data["patterns"][loc[1]]["pattern"]
        if len(loc) == 1 and _is_reference(text):
            continue
        found: list[Problem] = []
        with _Collect(found):
            parse_pattern(text, source=src.name, key=".".join(map(str, loc)))
        problems.extend(src.problem(p.message, loc) for p in found)
    verbalizer = data.get("verbalizer")
    if isinstance(verbalizer, str):
        with _Collect(problems):
            load_verbalizer(
                verbalizer, base_dir=src.base_dir, referenced_from=(src, ("verbalizer",))
            )
    elif isinstance(verbalizer, dict):
        found = []
        with _Collect(found):
            load_verbalizer(verbalizer)
        problems.extend(_moved(found, src, ("verbalizer",)))
    return ""


def _check_train_config(src: YamlSource, check: Check | None, problems: list[Problem]) -> str:
    """Check a train config: its keys, its ``params`` (names, grouped settings' fields,
    values), the PVP it names and its data files; adds every problem to ``problems``."""
    from .pvp import pvp_reference
    from .schema import TrainFile, check_schema, check_train_params

    problems.extend(check_schema(TrainFile, src, "train config")[1])
    problems.extend(check_train_params(src))
    data, base = src.data, src.base_dir
    pvp = data.get("pvp")
    held = ""
    if isinstance(pvp, str):
        try:
            ref = pvp_reference(pvp, base)
        except ConfigError as exc:
            problems.append(src.problem(exc.problem, ("pvp",)))
        else:
            file = ref.partition("#")[0]
            if Path(file).is_file():
                held = _check_pvp(ref, check, problems)
            else:
                problems.append(
                    src.problem(
                        f"PVP file {pvp!r} not found (looked for {display_path(file)}); paths"
                        " are relative to the train config's folder",
                        ("pvp",),
                    )
                )
    elif isinstance(pvp, dict):
        found: list[Problem] = []
        held = _check_pvp(pvp, check, found)
        problems.extend(_moved(found, src, ("pvp",)))
    spec = data.get("data")
    if isinstance(spec, dict) and spec.get("task") is None:
        if spec.get("train") is None and not any(
            (p.key or "").startswith("data.") for p in problems
        ):  # (not when a misspelled key under data is the reason)
            problems.append(
                src.problem(
                    "data needs either 'task' (a built-in task) or 'train' (a CSV/TSV/JSONL"
                    " file with a label column)",
                    ("data",),
                )
            )
        for key in ("train", "eval"):
            name = spec.get(key)
            if isinstance(name, str) and not Path(resolve_path(base, name)).is_file():
                problems.append(
                    src.problem(
                        f"file {name!r} not found (looked for"
                        f" {display_path(resolve_path(base, name))}); paths are relative to the"
                        " train config's folder",
                        ("data", key),
                    )
                )
    params = data.get("params")
    n_params = len(params) if isinstance(params, dict) else 0
    return f"PVP with {held}; {n_params} param(s)"


def validate_file(path: str, check: Check | None = None) -> tuple[str, str, list[Problem]]:
    """Check one file as what its keys say it is (:func:`~pet_kit.config.schema.detect_kind`).

    Parameters
    ----------
    path : str
        A template/PVP/verbalizer YAML file or train config (``path#name`` selects a
        pattern of a template file), or the name of a shipped PVP.
    check : callable, optional
        ``check(spec)``, given each PVP and verbalizer the file loads: checks it against a
        backbone (``pet-kit validate --model``:
        :func:`~pet_kit.model.encoding.check_with_tokenizer`); the
        :class:`~pet_kit.errors.ConfigError` it raises is one of the file's problems.

    Returns
    -------
    (str, str, list of Problem)
        The kind of file, what it holds, and every problem found (empty: valid).

    Raises
    ------
    PetKitError
        The file cannot be read (missing, not YAML...), or the backbone fails.
    """
    from .pvp import load_verbalizer, pvp_reference
    from .schema import KINDS, detect_kind

    path = pvp_reference(path)  # the name of a shipped PVP -> its template file
    src = read_yaml(path.partition("#")[0])
    kind = detect_kind(src.data)
    if "#" in path and kind not in ("template file", "PVP"):
        kind = "template file"  # path#name selects a pattern of a template file
    problems: list[Problem] = []
    if kind == "verbalizer":
        with _Collect(problems) as loading:
            verbalizer = load_verbalizer(path)
        if not loading.failed:
            if check is not None:
                with _Collect(problems):
                    check(verbalizer)
            labels = list(verbalizer.labels)
            return _KIND_NAMES[kind], f"verbalizer with {len(labels)} labels {labels}", problems
        return _KIND_NAMES[kind], "", _in_order(problems)
    if kind == "train config":
        held = _check_train_config(src, check, problems)
        return _KIND_NAMES[kind], f"train config: {held}", _in_order(problems)
    if kind is None:
        if isinstance(src.data, dict):
            got = f"its keys {', '.join(map(str, src.data))} are none of"
        else:
            got = f"it is {'empty' if src.data is None else type(src.data).__name__}, not one of"
        kinds = "; ".join(f"a {k} has {', '.join(map(repr, v))}" for k, v in KINDS.items())
        problems.append(src.problem(f"cannot tell what this file is: {got} these: {kinds}"))
        return "file", "", problems
    held = _check_pvp(path, check, problems)
    return _KIND_NAMES[kind], f"{_KIND_NAMES[kind]} with {held}", _in_order(problems)
