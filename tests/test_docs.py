"""The README and the reference pages in docs/: generated tables in sync, README size,
relative links, no stale test counts or CI timings.

Standard library only (no torch): fast, and independent of the package's state.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 12 * 1024


def _load_build_docs():
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_docs = _load_build_docs()


def doc_files() -> list[Path]:
    return [README, *build_docs.pages(ROOT)]


# ------------------------------------------------------------------ helpers
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def prose(text: str, code_spans: bool = False) -> str:
    """``text`` without fenced code blocks, HTML comments and (unless ``code_spans``)
    inline code spans."""
    kept, fence = [], ""
    for line in text.splitlines():
        m = _FENCE_RE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            kept.append("")
            continue
        if m:
            fence = m.group(1)
            kept.append("")
            continue
        kept.append(line)
    out = "\n".join(kept)
    out = re.sub(r"<!--.*?-->", "", out, flags=re.S)
    if code_spans:
        return out
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "code", out)


_INLINE_LINK_RE = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HTML_LINK_RE = re.compile(r"\b(?:href|src)\s*=\s*\"([^\"]+)\"")
_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def link_targets(text: str) -> list[str]:
    """Every link target in Markdown ``text`` (inline, reference, HTML), code excluded."""
    body = prose(text)
    return [
        m.group(1)
        for regex in (_INLINE_LINK_RE, _REF_LINK_RE, _HTML_LINK_RE)
        for m in regex.finditer(body)
    ]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = prose(path.read_text(encoding="utf-8"), code_spans=True)
    return {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def broken_links(path: Path) -> list[str]:
    """Relative links of ``path`` to files (or headings of .md files) that do not exist."""
    problems = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if _SCHEME_RE.match(target) or target.startswith("//"):
            continue  # an external URL
        file_part, _, fragment = target.partition("#")
        file_part = unquote(file_part.split("?", 1)[0])
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{target}: no heading #{fragment} in {dest.name}")
    return problems


#: Phrases that quote test counts or CI timings: true on the day they are written, stale
#: the day after.
STALE_PHRASES = [
    re.compile(r"\b\d[\d,]*\s+tests\b", re.I),
    re.compile(r"\b\d[\d,]*\s+(?:passed|failed|skipped|xfailed|xpassed|deselected|errors)\b"),
    re.compile(r"\bCI\b[^\n]{0,80}?\b\d+(?:\.\d+)?\s?(?:s|secs?|seconds|min|minutes)\b"),
    re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|secs?|seconds|min|minutes)\b[^\n]{0,40}?\b(?:on|in) CI\b"),
]


def stale_phrases(text: str) -> list[str]:
    return [m.group(0) for regex in STALE_PHRASES for m in regex.finditer(text)]


# ------------------------------------------------------------------- checks
def test_generated_includes_are_in_sync():
    stale = build_docs.stale_pages(ROOT)
    assert not stale, (
        f"pages with out-of-date generated tables: {[p.name for p in stale]};"
        " run python scripts/build_docs.py"
    )


def test_readme_is_a_front_door():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}: move reference material to docs/"
    )


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    assert not broken_links(path), f"{path.name}: broken links {broken_links(path)}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_no_test_counts_or_ci_timings(path):
    found = stale_phrases(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: test counts / CI timings go stale, drop them: {found}"


def test_readme_links_every_docs_page():
    linked = {
        (README.parent / t.partition("#")[0]).resolve()
        for t in link_targets(README.read_text(encoding="utf-8"))
        if not _SCHEME_RE.match(t)
    }
    missing = [p.name for p in build_docs.pages(ROOT) if p.resolve() not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_readme_keeps_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Set-up: two commands", 1)[-1].split("\n## ", 1)[0]
    assert "## Set-up: two commands" in text
    for command in ("bash scripts/run_demo.sh", "bash scripts/run_tests.sh"):
        assert re.search(rf"^{re.escape(command)}\b", section, re.M), command
    assert (ROOT / ".ci" / "run").read_text().count("scripts/run_tests.sh") == 1


# ---------------------------------------------- the checks above can fail
def test_stale_include_is_detected_and_rebuilt(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    table = tmp_path / "benchmarks" / "results" / "t.md"
    table.write_text("| a |\n|---|\n| 1 |\n", encoding="utf-8")
    page = tmp_path / "docs" / "p.md"
    page.write_text(
        "# P\n\n<!-- include: benchmarks/results/t.md -->\nold copy\n<!-- end include -->\n\n"
        "```\n<!-- include: benchmarks/results/t.md -->\n<!-- end include -->\n```\n",
        encoding="utf-8",
    )
    assert build_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert build_docs.stale_pages(tmp_path) == [page]
    assert build_docs.main(["--root", str(tmp_path)]) == 0
    built = page.read_text(encoding="utf-8")
    assert "| 1 |" in built and "old copy" not in built
    assert built.count("| 1 |") == 1  # the example inside the code block stays as it was
    assert build_docs.main(["--check", "--root", str(tmp_path)]) == 0  # idempotent
    assert build_docs.render(built, tmp_path) == built
    table.write_text("| a |\n|---|\n| 2 |\n", encoding="utf-8")
    assert build_docs.stale_pages(tmp_path) == [page]


@pytest.mark.parametrize(
    "page",
    [
        "<!-- include: benchmarks/results/t.md -->\nno end\n",
        "<!-- end include -->\n",
        "<!-- include: benchmarks/results/missing.md -->\n<!-- end include -->\n",
        "<!-- include: pet_kit/cli.py -->\n<!-- end include -->\n",
        "<!-- include: benchmarks/results/../../README.md -->\n<!-- end include -->\n",
    ],
)
def test_malformed_includes_are_errors(tmp_path, page):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "t.md").write_text("x\n", encoding="utf-8")
    with pytest.raises(build_docs.DocsError):
        build_docs.render(page, tmp_path)


def test_broken_links_are_detected(tmp_path):
    (tmp_path / "there.md").write_text("# A heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page `x`\n[ok](there.md) [ok](there.md#a-heading) [web](https://example.com)\n"
        "[self](#page-x) [self](#nowhere)\n"
        "[gone](missing.md) ![img](img/none.png) [bad anchor](there.md#nope)\n"
        "[ref]: also_missing.txt\n`[in code](not_checked.md)`\n```\n[x](fenced.md)\n```\n"
        '<img src="nope.png">\n',
        encoding="utf-8",
    )
    problems = broken_links(page)
    assert [p.split(":")[0] for p in problems] == [
        "#nowhere",
        "missing.md",
        "img/none.png",
        "there.md#nope",
        "also_missing.txt",
        "nope.png",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "The suite has 612 tests.",
        "11 passed in 19 s",
        "3 failed, 1 skipped",
        "CI runs the whole suite in 95 s",
        "about 4 min on CI",
    ],
)
def test_stale_phrases_are_detected(text):
    assert stale_phrases(text)


@pytest.mark.parametrize(
    "text",
    ["1,000 test texts", "426 test examples", "CI has no GPU", "331 s of wall time"],
)
def test_ordinary_numbers_are_not_stale_phrases(text):
    assert not stale_phrases(text)
