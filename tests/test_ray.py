"""examples/ray_predict.py: Ray Data prediction writes exactly what ``pet-kit predict`` writes.

Needs the ``ray`` extra (skipped without it). Runs a local Ray instance (2 CPUs, no
dashboard) on the suite's tiny backbone: a prompt folder loaded by each worker (1 and 2
workers), and a pickled fitted estimator whose backbone each worker rebuilds.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from conftest import NEG, POS, REPO, tiny_clf

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

# Ray's own DataContext warns about its deprecated settings on every copy
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

from pet_kit.cli import main as pet_kit_main  # noqa: E402

TEXTS = [
    *POS,
    *NEG,
    'great, "really" good',
    "非常喜欢这个电影",
    "bad; awful\tplot",
    "  spaced  text ",
    "a line\nbreak in a quoted cell",
]
BATCH = 3  # rows per Ray batch and per pet-kit predict chunk


def load_example() -> ModuleType:
    """The example as a module that is not in ``sys.modules``: cloudpickle then ships
    its ``Predictor`` class to the workers by value, as when it runs as a script."""
    spec = importlib.util.spec_from_file_location(
        "ray_predict_example", REPO / "examples" / "ray_predict.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def clf(tiny_dir: Path) -> Any:
    return tiny_clf(tiny_dir).fit(POS + NEG, ["positive"] * len(POS) + ["negative"] * len(NEG))


@pytest.fixture(scope="module")
def files(clf: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved prompt, an input CSV and ``pet-kit predict``'s output for it."""
    folder = tmp_path_factory.mktemp("ray")
    prompt_dir = clf.save(folder / "prompt")
    inp = folder / "in.csv"
    ids = [f"{i:03d}" for i in range(len(TEXTS))]  # leading zeros stay text
    pd.DataFrame({"id": ids, "text": TEXTS}).to_csv(inp, index=False)
    expected = folder / "expected.csv"
    argv = ["predict", str(prompt_dir), str(inp), "--output", str(expected), "--no-progress"]
    argv += ["--chunk-size", str(BATCH)]  # the rows predicted together: the same bytes
    assert pet_kit_main(argv) == 0
    return {"prompt": prompt_dir, "input": inp, "expected": expected}


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_loading_the_prompt_folder_write_what_pet_kit_predict_writes(
    example: ModuleType, local_ray: None, files: dict[str, Path], tmp_path: Path, workers: int
) -> None:
    out = tmp_path / "out.csv"
    rows = example.predict_file_ray(
        str(files["prompt"]), files["input"], out, workers=workers, batch_size=BATCH
    )
    assert rows == len(TEXTS)
    assert out.read_bytes() == files["expected"].read_bytes()


def test_a_pickled_estimator_rebuilds_its_backbone_on_each_worker(
    example: ModuleType, local_ray: None, clf: Any
) -> None:
    """What ``--pickled`` ships: the estimator without its backbone, rebuilt on the
    worker from the recorded model reference on first use."""
    assert pickle.loads(pickle.dumps(clf)).model_._backbone is None

    @ray.remote
    def on_a_worker(estimator: Any) -> tuple[int, bool, bool, list[str]]:
        before = estimator.model_._backbone is not None
        pred = estimator.predict(["a great movie", "a terrible movie"]).tolist()
        return os.getpid(), before, estimator.model_._backbone is not None, pred

    pid, before, after, pred = ray.get(on_a_worker.remote(ray.put(clf)))
    assert pid != os.getpid() and not before and after
    assert pred == clf.predict(["a great movie", "a terrible movie"]).tolist()


def test_cli_with_pickled_estimator_and_two_workers(
    example: ModuleType,
    local_ray: None,
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.csv"
    argv = [str(files["prompt"]), str(files["input"]), "--output", str(out)]
    assert example.main([*argv, "--pickled", "--workers", "2", "--batch-size", str(BATCH)]) == 0
    assert f"wrote {len(TEXTS)} predictions" in capsys.readouterr().out
    assert out.read_bytes() == files["expected"].read_bytes()

    # other batches than pet-kit predict's chunks: other padding, float32-close values
    other = tmp_path / "other.csv"
    assert example.main([*argv[:-1], str(other), "--pickled", "--batch-size", "5"]) == 0
    got, want = (pd.read_csv(p, dtype={"id": str}) for p in (other, files["expected"]))
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-5, rtol=0)
    assert ray.is_initialized()  # the caller's Ray instance is left running

    assert example.main(argv) == 1  # an existing output is not replaced silently
    assert "--overwrite" in capsys.readouterr().err
