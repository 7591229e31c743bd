"""Copy generated benchmark tables into the docs pages that include them.

A page in ``docs/`` includes a generated file (``benchmarks/results/NAME.md``, written by
a benchmark script) between two marker lines::

    <!-- include: benchmarks/results/NAME.md -->
    ...replaced by the file's current content...
    <!-- end include -->

``python scripts/build_docs.py`` rewrites the text between every such pair with the
file's current content (a blank line on each side) and reports the pages it changed;
running it again changes nothing. ``--check`` changes nothing: it lists the pages whose
includes are out of date and exits 1 (0 when all are in sync). A malformed page (a
marker without its pair, an included path outside ``benchmarks/results/`` or missing)
is an error: exit 2, naming the page and line.

Standard library only, so it runs before (and without) the package's dependencies.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Only generated results may be included.
INCLUDE_DIR = "benchmarks/results"

START_RE = re.compile(r"^<!--\s*include:\s*(?P<path>\S+)\s*-->\s*$")
FENCE_RE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
END_RE = re.compile(r"^<!--\s*end include\s*-->\s*$")


class DocsError(Exception):
    """A page's include markers are malformed or name a file that cannot be included."""


def _included_text(root: Path, rel: str, where: str) -> str:
    """The content of ``rel`` (relative to ``root``) as it goes between the markers."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or "/".join(parts[:2]) != INCLUDE_DIR:
        raise DocsError(f"{where}: can include only files under {INCLUDE_DIR}/, not {rel!r}")
    path = root / rel
    if not path.is_file():
        raise DocsError(f"{where}: included file {rel} does not exist")
    body = path.read_text(encoding="utf-8").strip("\n")
    return f"\n{body}\n\n" if body else "\n"


def render(text: str, root: Path = ROOT, name: str = "<page>") -> str:
    """``text`` with every include block filled with its file's current content.

    Parameters
    ----------
    text : str
        A Markdown page.
    root : Path
        The repository root the included paths are relative to.
    name : str
        The page's name, for messages.

    Returns
    -------
    str
        The page with each block between ``<!-- include: PATH -->`` and
        ``<!-- end include -->`` replaced; everything else unchanged (markers inside
        fenced code blocks are text).

    Raises
    ------
    DocsError
        A start marker without an end marker (or the reverse), nested markers, or an
        included path outside ``benchmarks/results/`` or missing.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    fence = ""  # the open code fence: markers inside code blocks are text, not markers
    i = 0
    while i < len(lines):
        line = lines[i]
        opened = FENCE_RE.match(line)
        if fence or opened:
            if not fence:
                fence = opened["fence"]
            elif opened and opened["fence"][0] == fence[0] and len(opened["fence"]) >= len(fence):
                fence = ""
            out.append(line)
            i += 1
            continue
        start = START_RE.match(line.rstrip("\n"))
        if END_RE.match(line.rstrip("\n")):
            raise DocsError(f"{name}:{i + 1}: '<!-- end include -->' without a start marker")
        if not start:
            out.append(line)
            i += 1
            continue
        where = f"{name}:{i + 1}"
        j = i + 1
        while j < len(lines) and not END_RE.match(lines[j].rstrip("\n")):
            if START_RE.match(lines[j].rstrip("\n")):
                raise DocsError(f"{where}: include not closed before the next one (line {j + 1})")
            j += 1
        if j == len(lines):
            raise DocsError(f"{where}: include of {start['path']} has no '<!-- end include -->'")
        out.append(line if line.endswith("\n") else line + "\n")
        out.append(_included_text(root, start["path"], where))
        out.append(lines[j])
        i = j + 1
    return "".join(out)


def pages(root: Path = ROOT) -> list[Path]:
    """The docs pages: ``docs/*.md``, sorted."""
    return sorted((root / "docs").glob("*.md"))


def stale_pages(root: Path = ROOT) -> list[Path]:
    """The pages whose include blocks differ from their files' current content."""
    return [p for p in pages(root) if render(_read(p), root, _name(p, root)) != _read(p)]


def build(root: Path = ROOT) -> list[Path]:
    """Rewrite the stale pages; returns them."""
    changed = []
    for page in pages(root):
        old = _read(page)
        new = render(old, root, _name(page, root))
        if new != old:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _name(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 listing stale pages"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.check:
            stale = stale_pages(root)
            for page in stale:
                print(f"stale: {_name(page, root)} (run python scripts/build_docs.py)")
            return 1 if stale else 0
        for page in build(root):
            print(f"updated {_name(page, root)}")
    except DocsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
