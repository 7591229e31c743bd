"""Every ``python`` block of the pages in docs/ runs as written, as tests/test_readme_blocks.py
runs the README's blocks (its parser and its runner: an empty temporary folder, offline,
the embedded default backbone, the project environment first on ``PATH``).

Each block defines its own data (a few inline texts, small settings), so that it runs
alone. The runs load the embedded backbone, so they carry the ``integration`` marker, as
the README's do; a quick check outside it keeps the blocks honest without running them:
each compiles, and every name it uses is defined in it (imported, assigned) or a builtin.
A block is left out only when the line just before it is the README's marker comment
``<!-- not run by tests: REASON -->``.
"""

from __future__ import annotations

import builtins
import symtable
from pathlib import Path

import pytest
from test_readme_blocks import RUN_LANGS, Block, readme_blocks, run_block

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md"))
PYTHON = {lang for lang, kind in RUN_LANGS.items() if kind == "python"}


def python_blocks(pages: list[Path]) -> list[tuple[Path, Block]]:
    """The ``python`` blocks of ``pages``, each with its page."""
    return [
        (page, block)
        for page in pages
        for block in readme_blocks(page.read_text(encoding="utf-8"))
        if block.lang in PYTHON
    ]


def undefined_names(code: str) -> set[str]:
    """The global names ``code`` reads but never binds (imports, assignments, ``def``,
    ``for`` targets...), builtins excepted. Raises ``SyntaxError`` if it does not compile."""
    top = symtable.symtable(code, "<block>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for sym in table.get_symbols():
            at_top = table is top or sym.is_global()
            if at_top and sym.is_referenced() and not sym.is_assigned() and not sym.is_imported():
                read.add(sym.get_name())
    return read - bound - set(dir(builtins))


BLOCKS = python_blocks(PAGES)
RUN = [(page, block) for page, block in BLOCKS if block.skip is None]


def _id(item: tuple[Path, Block]) -> str:
    page, block = item
    return f"{page.stem}-line{block.line}"


# ------------------------------------------------------------- quick checks
def test_undefined_names_are_found():
    code = (
        "import os\nfrom a import b as c\nx = 1\nfor i in range(3): pass\n"
        "def f(arg):\n    return arg + x + os.sep + c + y\n"
        "[k for k in texts]\nclf.fit(X)\n"
    )
    assert undefined_names(code) == {"y", "texts", "clf", "X"}
    with pytest.raises(SyntaxError):
        undefined_names("f(a, *, b=1)\n")


def test_every_docs_page_with_code_has_python_blocks_found():
    pages = {page.name for page, _ in BLOCKS}
    assert {"training.md", "patterns.md", "ensembles.md", "choosing_settings.md"} <= pages


@pytest.mark.parametrize("item", BLOCKS, ids=_id)
def test_docs_block_defines_what_it_uses(item):
    page, block = item
    try:
        missing = undefined_names(block.code)
    except SyntaxError as exc:
        pytest.fail(f"docs/{page.name} block at line {block.line} is not Python: {exc}")
    assert not missing, (
        f"docs/{page.name} block at line {block.line} uses {sorted(missing)} without"
        " defining them: define its data in the block (a few inline texts), so that it runs"
        " as written"
    )


# ---------------------------------------------------------------- the runs
@pytest.mark.integration
@pytest.mark.parametrize("item", RUN, ids=_id)
def test_docs_block_runs(item, tmp_path):
    page, block = item
    proc = run_block(block, tmp_path)
    assert proc.returncode == 0, (
        f"docs/{page.name} block at line {block.line} failed with exit status"
        f" {proc.returncode}:\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n"
        f"{proc.stderr[-4000:]}"
    )
