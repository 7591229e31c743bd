"""Every ``python`` / ``bash`` / ``sh`` / ``console`` block of README.md runs as written.

Each block runs from an empty temporary folder, offline, on the embedded default
backbone, with the project environment's ``bin`` first on ``PATH`` (so ``pet-kit`` and
``python`` are the project's); a bash block runs with ``-e -o pipefail``, so any failing
command fails the test. ``TMPDIR`` points into the test's folder (``mktemp -d`` too).

A block is left out only when the line just before it is a marker comment
``<!-- not run by tests: REASON -->`` (the set-up block: it installs things and runs the
whole suite). A quick check, outside the ``integration`` marker, keeps that honest: every
block that installs or runs the set-up/demo/test scripts must carry the marker, and the
quick starts must be among the blocks run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RUN_LANGS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "console": "bash"}
SKIP_RE = re.compile(r"^\s*<!--\s*not run by tests:\s*(?P<reason>.+?)\s*-->\s*$")
FENCE_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
#: What only the set-up block may do: install things, run the set-up/demo/test scripts.
SETUP_RE = re.compile(r"pip install|scripts/(setup|run_tests|run_demo)\.sh|\bpytest\b")
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    skip: str | None  # the marker's reason, if the block is marked not to run

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of Markdown ``text``, with their skip markers."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, start = m.group("fence"), len(m.group("indent")), i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = FENCE_RE.match(lines[i])
            if (
                close
                and close.group("fence")[0] == fence[0]
                and len(close.group("fence")) >= len(fence)
                and not close.group("lang")
            ):
                break
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = SKIP_RE.match(before)
        blocks.append(
            Block(
                lang=m.group("lang").lower(),
                code="\n".join(body) + "\n",
                line=start + 1,
                skip=marker.group("reason") if marker else None,
            )
        )
        i += 1
    return blocks


def _console_commands(code: str) -> str:
    """The commands of a console transcript (``$ cmd`` lines; output lines dropped)."""
    return "".join(ln[2:] + "\n" for ln in code.splitlines() if ln.startswith("$ "))


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.lang in RUN_LANGS and b.skip is None]


# ------------------------------------------------------------- quick checks
def test_the_marker_leaves_out_only_the_set_up_block():
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert skipped, "README.md: the set-up block should carry the not-run marker"
    assert any("scripts/run_tests.sh" in b.code for b in skipped)
    for block in RUN:
        assert not SETUP_RE.search(block.code), (
            f"README.md line {block.line}: this block installs things or runs the set-up/test"
            " scripts; put '<!-- not run by tests: set-up -->' on the line before it, or"
            " make it runnable from an empty folder"
        )
    langs = {RUN_LANGS[b.lang] for b in RUN}
    assert langs == {"python", "bash"}, f"the quick starts should be run: {langs}"


def test_block_parser():
    text = (
        "x\n\n<!-- not run by tests: set-up -->\n```bash\npip install .\n```\n"
        "````python\nprint(1)\n```\nstill code\n````\n\n  ```sh\n  echo hi\n  ```\n"
        "```yaml\na: 1\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(b.lang, b.skip, b.line) for b in blocks] == [
        ("bash", "set-up", 4),
        ("python", None, 7),
        ("sh", None, 13),
        ("yaml", None, 16),
    ]
    assert blocks[1].code == "print(1)\n```\nstill code\n"
    assert blocks[2].code == "echo hi\n"
    assert _console_commands("$ pet-kit list-pvps\nNAME LANG\n$ echo\n") == (
        "pet-kit list-pvps\necho\n"
    )


# ---------------------------------------------------------------- the runs
def run_block(block: Block, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``block`` from an empty folder under ``tmp_path``, as the README reader would."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "tmp").mkdir()
    kind = RUN_LANGS[block.lang]
    code = _console_commands(block.code) if block.lang == "console" else block.code
    script = tmp_path / ("block.py" if kind == "python" else "block.sh")
    script.write_text(code, encoding="utf-8")
    cmd = (
        [sys.executable, str(script)]
        if kind == "python"
        else ["bash", "-e", "-o", "pipefail", str(script)]
    )
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TMPDIR": str(tmp_path / "tmp"),
        "MPLBACKEND": "Agg",
    }
    return subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )


@pytest.mark.parametrize(
    ("lang", "code"),
    [
        ("bash", "false\necho after\n"),
        ("sh", "echo a | false | cat\n"),
        ("console", "$ pet-kit validate no_such_pvp\nOK\n"),
        ("python", "raise SystemExit('boom')\n"),
    ],
)
def test_a_failing_block_fails(tmp_path, lang, code):
    assert run_block(Block(lang, code, 1, None), tmp_path).returncode != 0


def test_blocks_run_in_an_empty_folder_with_the_project_first_on_path(tmp_path):
    code = 'test -z "$(ls -A)"; command -v pet-kit; command -v python\n'
    proc = run_block(Block("bash", code, 1, None), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        str(Path(sys.executable).parent / "pet-kit"),
        str(Path(sys.executable).parent / "python"),
    ]


@pytest.mark.integration
@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_readme_block_runs(block, tmp_path):
    proc = run_block(block, tmp_path)
    assert proc.returncode == 0, (
        f"README.md block at line {block.line} ({block.lang}) failed with exit status"
        f" {proc.returncode}:\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n"
        f"{proc.stderr[-4000:]}"
    )
