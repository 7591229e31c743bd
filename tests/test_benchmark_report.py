"""The few-shot benchmark's report (tables, summary, plots) from recorded runs."""

from __future__ import annotations

import importlib
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


#: The benchmark's own modules (imported from benchmarks/, as the scripts import them).
MODULES = (
    "few_shot",
    "few_shot_methods",
    "few_shot_report",
    "few_shot_parallel",
    "adapt_domain",
    "cloze_readout",
    "never_worse",
)
Importer = Callable[[str], ModuleType]


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[Importer]:
    """Import a module of benchmarks/ by name; they are all forgotten afterwards."""
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(str(BENCH))
    yield importlib.import_module
    for name in MODULES:
        sys.modules.pop(name, None)


@pytest.fixture()
def few_shot(bench: Importer) -> ModuleType:
    return bench("few_shot")


@pytest.fixture()
def report(bench: Importer) -> ModuleType:
    return bench("few_shot_report")


@pytest.fixture()
def methods(bench: Importer) -> ModuleType:
    return bench("few_shot_methods")


def _runs(method: str, accs: list[float], k: int = 8) -> list[dict]:
    return [
        {
            "task": "toy",
            "method": method,
            "k": k,
            "seed": s,
            "accuracy": a,
            "seconds": 1.0,
            "n_test": 10,
            "threads": 1,
        }
        for s, a in enumerate(accs)
    ]


def test_report_of_peer_rows_only_writes_tables_and_skips_the_empty_pet_plot(report, tmp_path):
    data = {"runs": _runs("setfit", [0.5, 0.7]), "machine": {}, "invocations": []}
    out = tmp_path / "fs.json"
    report.report(data, out)
    peers = (tmp_path / "fs.md").read_text()
    assert "| setfit | 0.600 ± 0.100 (n=2) | 1.0 |" in peers  # fewer than 5 seeds: n=
    assert (tmp_path / "fs.png").stat().st_size > 0
    assert not (tmp_path / "fs_pet.png").exists()  # no PET-family rows: no plot, no crash
    assert "**toy**" not in (tmp_path / "fs_pet.md").read_text()
    summary = json.loads(out.read_text())["summary"]
    assert summary["toy"]["setfit"]["8"]["n_seeds"] == 2


def test_report_with_pet_rows_draws_both_plots(report, tmp_path):
    runs = _runs("pet_kit", [0.8] * 5) + _runs("pet_kit_lora", [0.6, 0.8, 0.7, 0.7, 0.7])
    out = tmp_path / "fs.json"
    report.report({"runs": runs, "machine": {}, "invocations": []}, out)
    assert (tmp_path / "fs_pet.png").stat().st_size > 0
    pet = (tmp_path / "fs_pet.md").read_text()
    assert "| pet_kit_lora | 0.700 ± 0.063 |" in pet


def test_merge_adds_only_missing_runs_and_keeps_their_machine(few_shot, report, tmp_path):
    mine = {"runs": _runs("pet_kit", [0.5, 0.6]), "machine": {"platform": "cpu-box"}}
    theirs = tmp_path / "worker.json"
    gpu = {"platform": "gpu-box", "cpu_count": 16, "torch": "2.x", "cuda": "H200"}
    other_runs = [{**r, "device": "cuda (H200)"} for r in _runs("pet_kit", [0.9, 0.9, 0.7])]
    theirs.write_text(
        json.dumps({"runs": other_runs, "invocations": [{"config": {}, "machine": gpu}]})
    )
    assert few_shot.merge(mine, [theirs]) == 1  # seeds 0 and 1 were there: the first wins
    assert [r["accuracy"] for r in mine["runs"]] == [0.5, 0.6, 0.7]
    assert mine["invocations"][0]["merged_from"] == "worker.json"
    assert "GPU H200" in report.machines_note(mine)
    assert report.devices_note(mine) == "toy cpu + cuda (H200)"
    assert few_shot.merge(mine, [theirs]) == 0  # merging twice adds nothing
    assert len(mine["invocations"]) == 1 and len(mine["runs"]) == 3


def test_merge_keeps_the_first_record_of_each_tasks_set_up_cost(few_shot, tmp_path):
    mine = {"runs": [], "transfer": {"a": {"seconds": 1.0}}}
    theirs = tmp_path / "worker.json"
    costs = {"a": {"seconds": 9.0}, "b": {"seconds": 2.0}}
    theirs.write_text(json.dumps({"runs": [], "transfer": costs, "adapt": {"b": {"steps": 3}}}))
    few_shot.merge(mine, [theirs])
    assert mine["transfer"] == {"a": {"seconds": 1.0}, "b": {"seconds": 2.0}}
    assert mine["adapt"] == {"b": {"steps": 3}}


@pytest.fixture()
def parallel(bench: Importer) -> ModuleType:
    return bench("few_shot_parallel")


def test_missing_cells_count_an_ensemble_seed_done_only_with_all_its_rows(parallel):
    runs = _runs("zero_shot_calibrated", [0.5], k=0)
    for row in parallel.ENSEMBLE_ROWS:
        runs += _runs(row, [0.9, 0.9])  # seeds 0 and 1 complete
    runs += _runs("pet_kit_ensemble", [0.9, 0.9, 0.9])[2:]  # seed 2: one row only
    cells = parallel.missing_cells(
        {"runs": runs},
        ["toy"],
        ["zero_shot_calibrated", "pet_kit_ensemble", "pet_kit_lora"],
        [8],
        [0, 1, 2, 3],
    )
    assert cells == [
        ("toy", "pet_kit_ensemble", 8, [2, 3]),
        ("toy", "pet_kit_lora", 8, [0, 1, 2, 3]),
    ]
    assert parallel.cost(cells[0]) > parallel.cost(cells[1])  # the ensemble trains 3 members


def test_split_seeds_gives_one_job_per_seed(parallel):
    cells = [("toy", "pet_kit_ensemble", 8, [2, 3]), ("toy", "pet_kit_lora", 16, [0])]
    jobs = parallel.split_seeds(cells)
    assert jobs == [
        ("toy", "pet_kit_ensemble", 8, [2]),
        ("toy", "pet_kit_ensemble", 8, [3]),
        ("toy", "pet_kit_lora", 16, [0]),
    ]
    assert parallel.cost(jobs[0]) == parallel.cost(cells[0]) / 2


def test_paired_compares_the_same_seed_and_k_only(report):
    runs = _runs("pet_kit", [0.5, 0.6, 0.7]) + _runs("pet_kit", [0.8, 0.8], k=16)
    runs += _runs("pet_kit_lora", [0.6, 0.6, 0.6, 0.9])  # seed 3 has no pet_kit pair
    runs += _runs("pet_kit_lora", [0.9, 0.7], k=16)
    runs += _runs("zero_shot_calibrated", [0.9], k=0)  # K = 0: nothing to pair with
    pairs = report.paired(runs)
    lora = pairs["toy"]["pet_kit_lora"]
    deltas = [0.1, 0.0, -0.1, 0.1, -0.1]
    assert lora["n"] == 5 and lora["wins"] == 2
    assert lora["mean_delta"] == pytest.approx(sum(deltas) / 5)
    assert lora["std_delta"] == pytest.approx(statistics.pstdev(deltas))
    # K=8: std 0 < pet_kit's; K=16: 0.1 > 0
    assert (lora["std_smaller"], lora["n_k"]) == (1, 2)
    assert "zero_shot_calibrated" not in pairs["toy"]
    text = report.paired_markdown(pairs, ("pet_kit_lora", "pet_kit_full"))
    assert "| pet_kit_lora | +0.000 ± 0.089, wins 2/5, σ↓ 1/2 |" in text
    assert "pet_kit_full" not in text  # no runs: no row
    assert report.paired_markdown(pairs, ("pet_kit_full",)) == ""


def test_adapted_rows_sit_with_the_peers_and_say_what_adapting_cost(report, tmp_path):
    runs = _runs("linear_probe", [0.6] * 5) + _runs("pet_kit_adapted", [0.7] * 5)
    info = {
        "steps": 300,
        "seconds": 540.0,
        "device": "cpu",
        "threads": 1,
        "train_texts": 9000,
        "heldout_mlm_before": {"accuracy": 0.27},
        "heldout_mlm_after": {"accuracy": 0.31},
    }
    data = {"runs": runs, "machine": {}, "invocations": [], "adapt": {"toy": info}}
    report.report(data, tmp_path / "fs.json")
    peers = (tmp_path / "fs.md").read_text()
    assert "| pet_kit_adapted | 0.700 ± 0.000 | 1.0 |" in peers
    assert "300 continued-MLM steps on the 9000 train texts (9.0 min on cpu" in peers
    assert "0.270 -> 0.310" in peers
    assert "pet_kit_adapted" not in (tmp_path / "fs_pet.md").read_text()


def test_adapted_rows_run_at_the_same_ks_as_their_plain_rows(methods):
    assert methods.ZERO_SHOT_ONLY[-1] == "zero_shot_adapted"
    assert "pet_kit_adapted" in methods.WITH_K0
    assert set(methods.RUNNERS) == set(methods.METHODS)


def test_transfer_rows_are_paired_with_the_prefix_row_and_say_what_the_source_cost(
    report, tmp_path
):
    runs = _runs("pet_kit", [0.5] * 3) + _runs("pet_kit_prefix", [0.6, 0.6, 0.7])
    runs += _runs("pet_kit_transfer", [0.7, 0.5, 0.8])
    source = {
        "sources": ["a", "b"],
        "settings": {"per_class": 64, "max_steps": 300},
        "seconds": 120.0,
    }
    data = {"runs": runs, "machine": {}, "invocations": [], "transfer": {"toy": source}}
    report.report(data, tmp_path / "fs.json")
    pet = (tmp_path / "fs_pet.md").read_text()
    assert "trained on a, b (64 examples per class each, 300 steps; 2.0 min)" in pet
    assert "**Paired with pet_kit_prefix**" in pet
    assert "| pet_kit_transfer | +0.033 ± 0.094, wins 2/3, σ↓ 0/1 |" in pet
    saved = json.loads((tmp_path / "fs.json").read_text())
    assert set(saved["paired_with_pet_kit_prefix"]["toy"]) == {"pet_kit_transfer"}


def test_prefix_pattern_puts_the_slots_before_each_tasks_hard_pattern(methods):
    for task in methods.TRANSFER_TASKS:
        pvp = methods.prefix_pvp(task)
        assert pvp.pattern.text.startswith(f"[SOFT*{methods.TRANSFER_SLOTS}] ")
        assert "[MASK]" in pvp.pattern.text and pvp.verbalizer.labels


def test_cv_check_holds_the_cv_row_against_the_better_reference(report, tmp_path):
    runs = (
        _runs("zero_shot", [0.70], k=0)
        + _runs("zero_shot_calibrated", [0.75], k=0)
        + _runs("pet_kit", [0.60] * 5)
        + _runs("pet_kit_cv", [0.70, 0.74, 0.72, 0.66, 0.68])  # 0.70 +- 0.028
        + _runs("pet_kit", [0.80] * 5, k=16)
        + _runs("pet_kit_cv", [0.79] * 5, k=16)
    )
    chosen = [{"epochs": 0, "calibration": None}, {"learning_rate": 0.03}, {"epochs": 0}]
    cv8 = [r for r in runs if r["method"] == "pet_kit_cv" and r["k"] == 8]
    for run, params in zip(cv8[:3], chosen, strict=True):  # 3 of 5 recorded, 1 trained
        run["chosen"] = params
    out = tmp_path / "fs.json"
    report.report({"runs": runs, "machine": {}, "invocations": []}, out)
    by_k = {c["k"]: c for c in json.loads(out.read_text())["cv_check"]}
    assert by_k[8]["reference"] == "zero_shot_calibrated"  # 0.75 beats pet_kit's 0.60
    assert by_k[8]["beats_default"] is True
    assert by_k[8]["within_one_std"] is False  # 0.70 + 0.028 < 0.75
    assert by_k[16]["reference"] == "pet_kit"
    assert by_k[16]["beats_default"] is False
    assert by_k[16]["within_one_std"] is False  # std 0: any shortfall is a miss
    assert (by_k[8]["trained_chosen"], by_k[8]["choices_recorded"]) == (1, 3)
    assert by_k[16]["choices_recorded"] == 0
    table = (tmp_path / "fs_cv.md").read_text()
    assert (
        "| toy | 8 | 0.700 ± 0.028 | 0.600 | yes | 0.750 (zero_shot_calibrated) | **no** | 1 of 3 |"
        in table
    )
    assert (
        "| toy | 16 | 0.790 ± 0.000 | 0.800 | no | 0.800 (pet_kit) | **no** | not recorded |"
        in table
    )


def test_cv_table_without_recorded_choices_has_no_choice_column(report, tmp_path):
    runs = _runs("zero_shot", [0.70], k=0) + _runs("pet_kit_cv", [0.72] * 5)
    out = tmp_path / "fs.json"
    report.report({"runs": runs, "machine": {}, "invocations": []}, out)
    table = (tmp_path / "fs_cv.md").read_text()
    assert "| toy | 8 | 0.720 ± 0.000 |  |  | 0.700 (zero_shot) | yes |\n" in table
    assert "trained chosen" not in table.lower()


def test_each_cv_row_gets_its_own_check(report, tmp_path):
    runs = (
        _runs("zero_shot", [0.70], k=0)
        + _runs("pet_kit_cv", [0.72] * 5)
        + _runs("pet_kit_cv_head", [0.60] * 5)
    )
    out = tmp_path / "fs.json"
    report.report({"runs": runs, "machine": {}, "invocations": []}, out)
    checks = {c["method"]: c for c in json.loads(out.read_text())["cv_check"]}
    assert (
        checks["pet_kit_cv"]["within_one_std"] and not checks["pet_kit_cv_head"]["within_one_std"]
    )
    table = (tmp_path / "fs_cv.md").read_text()
    assert table.index("pet_kit_cv against") < table.index("pet_kit_cv_head against")
    assert "| toy | 8 | 0.600 ± 0.000 |  |  | 0.700 (zero_shot) | **no** |" in table


def test_no_cv_rows_no_cv_table(report, tmp_path):
    out = tmp_path / "fs.json"
    report.report({"runs": _runs("pet_kit", [0.8] * 2), "machine": {}, "invocations": []}, out)
    assert not (tmp_path / "fs_cv.md").exists()
    assert "cv_check" not in json.loads(out.read_text())


def test_like_transfer_rows_run_only_where_a_like_source_exists(methods):
    assert set(methods.LIKE_ROWS) <= set(methods.METHODS) and set(methods.LIKE_ROWS) <= set(
        methods.RUNNERS
    )
    for target, sources in methods.LIKE_SOURCES.items():
        assert target not in sources
        for source in sources:  # like = same labels and language
            assert methods.pvp_refs(source)  # a template file exists for it
            from pet_kit.datasets import task_info

            assert task_info(source).labels == task_info(target).labels
            assert task_info(source).language == task_info(target).language


def test_adapt_domain_report_names_the_run_and_both_backbones(bench):
    adapt_domain = bench("adapt_domain")
    probes = {"The movie was [MASK].": [".", "the"], "X [MASK].": ["a", "b"]}
    cell = {f"{t}/{c}": 0.5 for t in adapt_domain.EVAL_TASKS for c in ("raw", "content_free")}
    data = {
        "run": {
            "steps": 664,
            "texts": 39672,
            "source": "imdb",
            "complete": False,
            "heldout_before": {"accuracy": 0.2255},
            "heldout_after": {"accuracy": 0.2634},
        },
        "default": {**cell, "fill_mask_top5": probes},
        "adapted": {**cell, "imdb/content_free": 0.617, "fill_mask_top5": probes},
    }
    text = adapt_domain.markdown(data)
    assert "after 664 continued-MLM steps" in text and "unfinished run, snapshot" in text
    assert "0.226 -> 0.263" in text
    assert "| adapted | 0.500 | 0.500 | 0.500 | 0.617 |" in text
    assert "| `The movie was [MASK].` | ., the | ., the |" in text


def test_cloze_readout_reads_the_mask_pet_kit_scores(bench, make_clf, toy_data):
    """The readout's mask features are the ones pet_kit scores with: the label words'
    vocabulary log-probabilities are the class scores shifted by one constant per text."""
    import numpy as np

    readout = bench("cloze_readout")
    clf = make_clf(
        pvp={
            "pattern": "{text} It was [MASK].",
            "verbalizer": {"positive": ["great"], "negative": ["terrible"]},
        }
    ).fit(None)
    texts = [*toy_data[0][:5], "a much longer text " * 3]
    feats = readout.cloze_features(clf, texts, batch_size=4)  # two batches, length-sorted
    hidden = clf.model_.backbone.model.config.hidden_size
    assert feats["state"].shape == (len(texts), hidden)
    assert feats["vocab"].shape[0] == len(texts) and feats["cloze"].shape == (len(texts), 2)
    tok = clf.model_.backbone.tokenizer
    cols = [tok.convert_tokens_to_ids(w) for w in ("great", "terrible")]  # classes_ order
    order = [list(clf.classes_).index(c) for c in ("positive", "negative")]
    shift = feats["vocab"][:, cols] - feats["cloze"][:, order]
    np.testing.assert_allclose(shift, shift[:, :1].repeat(2, 1), atol=1e-4)
    assert np.ptp(shift[:, 0]) > 1e-3  # a per-text constant (the log-partition), not global


def test_cloze_readout_table(bench):
    readout = bench("cloze_readout")
    cell = {"mean": 0.61, "std": 0.02, "n_seeds": 5, "runs": []}
    data = {
        "config": {"ks": [8], "seeds": [0, 1]},
        "results": [
            {
                "backbone": "mine",
                "model": "/models/mine",
                "task": "toy",
                "readouts": {"mask_state_lr": {"8": {**cell, "mean": 0.7}}},
            },
            {
                "backbone": "default",
                "model": None,
                "task": "toy",
                "readouts": {
                    "cloze": {"0": {**cell, "mean": 0.5, "std": 0.0}},
                    "mask_state_lr": {"8": cell},
                },
            },
        ],
    }
    table = readout.markdown(data)
    rows = [line for line in table.splitlines() if line.startswith("| toy")]
    assert rows == [  # the default backbone first
        "| toy | default | cloze | 0.500 ± 0.000 |  |",
        "| toy | default | mask_state_lr |  | 0.610 ± 0.020 |",
        "| toy | mine | mask_state_lr |  | 0.700 ± 0.020 |",
    ]
    assert "`default` = the embedded default; `mine` = /models/mine." in table


def test_cv_row_read_off_the_head_search_equals_its_own_search(methods, tiny_dir, toy_data):
    """One pet_kit_cv_head run gives the pet_kit_cv row: the same choice, cross-validated
    accuracy and test accuracy as running pet_kit_cv's own search, whether its choice is
    the larger search's (reused) or another candidate (refitted)."""
    import pandas as pd
    from conftest import SENTIMENT_PVP

    from pet_kit.estimators.prompt_classifier_cv import DEFAULT_CANDIDATES

    X, y = toy_data
    train = pd.DataFrame({"text": X, "label": y})
    test = pd.DataFrame({"text": [f"{t} indeed" for t in X], "label": y})
    params = {"model": str(tiny_dir), "epochs": 2, "batch_size": 4, "device": "cpu"}
    ctx = {"soft": SENTIMENT_PVP, "max_length": 32, "pet_params": params}
    seed = 2
    both = methods.run_pet_kit_cv_head(ctx, train, test, seed)
    alone = methods.run_pet_kit_cv(ctx, train, test, seed)["pet_kit_cv"]
    assert (
        both["pet_kit_cv"][0] == alone[0] and both["pet_kit_cv"][2]["chosen"] == alone[2]["chosen"]
    )
    assert both["pet_kit_cv"][2]["derived_from"] == "pet_kit_cv_head"

    first = {"epochs": [0], "calibration": [None]}  # the first candidate alone
    big = methods._cv_search(ctx, train, test, seed, [*DEFAULT_CANDIDATES, {"tuning": ["head"]}])
    assert big.clf.best_params_ != {"epochs": 0, "calibration": None}  # so it is refitted
    derived = big.subset_row(1, train, test)
    own = methods._cv_search(ctx, train, test, seed, [first]).row()
    assert derived[0] == own[0] and derived[2]["chosen"] == own[2]["chosen"]
    assert derived[2]["cv_accuracy"] == pytest.approx(own[2]["cv_accuracy"])


def test_the_benchmark_runs_its_rows_on_another_backbone_when_asked(
    few_shot, monkeypatch, capsys, tiny_dir, toy_data, tmp_path
):
    """``few_shot.py --model``: pet_kit's rows and the peers' encoder load that folder, the
    results file records it, and rows that would silently use another backbone, a missing
    folder, the default results file or a file of another backbone's runs are refused."""
    import pandas as pd
    from conftest import SENTIMENT_PVP

    import pet_kit

    X, y = toy_data
    frame = pd.DataFrame({"text": X, "label": y})
    monkeypatch.setattr(few_shot, "task_data", lambda task, size: (frame, frame))
    hard = {**SENTIMENT_PVP, "pattern": "{text} It was [MASK]."}
    monkeypatch.setattr(few_shot, "pvp_refs", lambda task: (hard, SENTIMENT_PVP))
    monkeypatch.setattr(few_shot, "soft_refs", lambda task: [SENTIMENT_PVP])
    models = []

    class Spy(pet_kit.PromptClassifier):
        def fit(self, X, y=None, **kw):
            models.append(self.model)
            return super().fit(X, y, **kw)

    monkeypatch.setattr(pet_kit, "PromptClassifier", Spy)
    encoders = []

    class EncoderSpy(few_shot.Encoder):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            encoders.append(self.path)

    monkeypatch.setattr(few_shot, "Encoder", EncoderSpy)
    out = tmp_path / "candidate.json"
    argv = ["--tasks", "toy", "--ks", "0", "4", "--seeds", "0", "--epochs", "1",
            "--max-length", "32", "--threads", "1", "--out", str(out)]  # fmt: skip
    few_shot.main([*argv, "--methods", "zero_shot", "pet_kit", "linear_probe",
                   "--model", str(tiny_dir)])  # fmt: skip
    data = json.loads(out.read_text())
    assert data["model"] == str(tiny_dir.resolve()) and not data.get("failures")
    ran = {(r["method"], r["k"]) for r in data["runs"]}
    assert ran == {("zero_shot", 0), ("pet_kit", 0), ("pet_kit", 4), ("linear_probe", 4)}
    assert models and set(models) == {str(tiny_dir.resolve())} and encoders == [models[0]]
    table = out.with_suffix(".md").read_text()
    assert "from candidate.json; do not edit" in table
    assert f"`{'/'.join(tiny_dir.resolve().parts[-2:])}` (`--model`)" in table
    with pytest.raises(SystemExit, match="pet_kit_ensemble always run on their own"):
        few_shot.main([*argv, "--methods", "pet_kit_ensemble", "--model", str(tiny_dir)])
    with pytest.raises(SystemExit, match="no model folder there"):
        few_shot.main([*argv, "--methods", "pet_kit", "--model", str(tmp_path / "nowhere")])
    default_out = [a if a != str(out) else str(few_shot.RESULTS / "few_shot.json") for a in argv]
    with pytest.raises(SystemExit, match="results file of its own"):
        few_shot.main([*default_out, "--methods", "pet_kit", "--model", str(tiny_dir)])
    capsys.readouterr()
    with pytest.raises(SystemExit):  # the file holds the tiny model's runs, not the default's
        few_shot.main([*argv, "--methods", "pet_kit"])
    assert "not on the default backbone: pass the matching --model" in capsys.readouterr().err
    assert json.loads(out.read_text()) == data  # nothing written by the refusals
    few_shot.main(["--report-only", "--out", str(out), "--model", str(tiny_dir)])  # no rows run


def test_the_guard_benchmark_refuses_a_backbone_it_would_mix_up(bench, tiny_dir, tmp_path):
    """``never_worse.py --model``: a missing folder, the default results file and a file of
    another backbone's runs are refused before anything runs or is written."""
    never_worse = bench("never_worse")
    with pytest.raises(SystemExit, match="no model folder there"):
        never_worse.main(["--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a.json")])
    with pytest.raises(SystemExit, match="results file of its own"):
        never_worse.main(["--model", str(tiny_dir)])
    other = tmp_path / "default_runs.json"
    other.write_text(json.dumps({"runs": [{"task": "toy"}]}))
    with pytest.raises(SystemExit, match="holds runs on the default backbone"):
        never_worse.main(["--model", str(tiny_dir), "--out", str(other)])
    assert json.loads(other.read_text()) == {"runs": [{"task": "toy"}]}


def test_the_guard_benchmark_composes_each_rule_and_reads_older_records(bench):
    """A rule is read off the recorded held-out scores; a check recorded before the Brier
    score counts as what the guard decided then, and the rules table leaves Brier out."""
    nw = bench("never_worse")
    u = {"accuracy": 0.5, "log_loss": 0.8, "brier": 0.6}
    new = {"untrained": u, "trained": {"accuracy": 0.75, "log_loss": 1.2, "brier": 0.4}}
    new["helps"] = True
    assert nw.helps(new, "brier_and_accuracy") and nw.helps(new) is True  # pet_kit's rule
    assert not nw.helps(new, "loss_and_accuracy")
    old = {
        "untrained": {"accuracy": 0.5, "log_loss": 0.8},
        "trained": {"accuracy": 0.75, "log_loss": 0.7},
        "helps": False,
    }
    assert nw.helps(old, "brier_and_accuracy") is False and nw.helps(old, "loss") is True
    rows = [{"guards": {"2fold": {"check": c}}} for c in (old, new)]
    assert "brier_and_accuracy" not in nw._recorded_rules(rows, "2fold")
    assert nw._recorded_rules(rows[1:], "2fold") == list(nw.RULES)


def test_the_guard_benchmark_keeps_each_free_slot_start_in_its_own_file(bench, tmp_path):
    """``--prompt-init``: never into the default results file, never continuing a file of
    another start."""
    nw = bench("never_worse")
    with pytest.raises(SystemExit, match="prompt_init='vocab', not 'mean'"):
        nw.main(["--prompt-init", "mean"])
    other = tmp_path / "mean.json"
    other.write_text(json.dumps({"prompt_init": "text", "runs": [{"task": "t"}]}))
    with pytest.raises(SystemExit, match="prompt_init='text', not 'mean'"):
        nw.main(["--prompt-init", "mean", "--out", str(other)])
    with pytest.raises(SystemExit, match="prompt_init='text', not 'vocab'"):
        nw.main(["--out", str(other)])
    # a new file (or one without runs yet) takes any start
    new = tmp_path / "new.json"
    assert nw.setting_mismatch(new, {}, "prompt_init", "mean", "vocab") is None
    assert nw.setting_mismatch(new, {"runs": []}, "prompt_init", "text", "vocab") is None
    assert nw.setting_mismatch(new, {"runs": [{}]}, "prompt_init", "vocab", "vocab") is None


def test_the_guard_benchmark_keeps_each_soft_pattern_in_its_own_file(bench, tmp_path):
    """``--soft-pattern``: trains that pattern with the task's verbalizer, in its own file."""
    nw = bench("never_worse")
    assert nw.soft_pvp("rotten_tomatoes", None) == "rotten_tomatoes#soft"
    pattern = "[SOFT*4] {text} [SOFT:It was] [MASK]."
    assert nw.soft_pvp("bbc_news", pattern) == {"pattern": pattern, "verbalizer": "bbc_news"}
    with pytest.raises(SystemExit, match=re.escape(f"soft_pattern=None, not {pattern!r}")):
        nw.main(["--soft-pattern", pattern])
    other = tmp_path / "words.json"
    other.write_text(json.dumps({"soft_pattern": pattern, "runs": [{"task": "t"}]}))
    with pytest.raises(SystemExit, match=re.escape(f"soft_pattern={pattern!r}, not None")):
        nw.main(["--out", str(other)])
    with pytest.raises(SystemExit, match=re.escape("not '{text} [SOFT:It was] [MASK].'")):
        nw.main(["--soft-pattern", "{text} [SOFT:It was] [MASK].", "--out", str(other)])
    # the report names the pattern trained
    run = {
        "task": "t",
        "k": 8,
        "seed": 0,
        "n_test": 3,
        "n_dev": 2,
        "untrained_test": 0.5,
        "untrained_dev": 0.5,
        "trained_test": 0.6,
        "trained_dev": 0.6,
        "fit_cpu_no_guard": 1.0,
    }
    scores = {"accuracy": 0.5, "log_loss": 0.7, "brier": 0.25}
    check = {"untrained": scores, "trained": {**scores, "brier": 0.2}}
    run["guards"] = {"2fold": {"check": check, "check_cpu": 1.0}}
    text = nw.report({"soft_pattern": pattern, "runs": [run]}, other)
    assert f"Soft pattern `{pattern}` (`--soft-pattern`" in text


def test_the_guard_benchmark_records_probes_at_the_fits_steps_apart(bench, tmp_path):
    """``--probe-steps fit``: its checks get their own key and label, and a check still
    being added to the recorded runs stays out of the report until every run has it."""
    nw = bench("never_worse")
    assert nw.guard_key("2fold", "epochs") == "2fold"
    assert nw.guard_key("2fold", "fit") == "2fold+fit-steps"
    assert nw.guard_label("2fold") == "guard='2fold'"
    assert nw.guard_label("2fold+fit-steps") == "guard='2fold', probes at the fit's steps"
    scores = {"accuracy": 0.5, "log_loss": 0.7, "brier": 0.25}
    check = {"untrained": scores, "trained": {**scores, "brier": 0.2}}
    runs = []
    for seed in (0, 1):
        runs.append(
            {
                "task": "t", "k": 8, "seed": seed, "n_test": 3, "n_dev": 2,
                "untrained_test": 0.5, "untrained_dev": 0.5, "trained_test": 0.6,
                "trained_dev": 0.6, "fit_cpu_no_guard": 1.0,
                "guards": {"2fold": {"check": check, "check_cpu": 1.0}},
            }
        )  # fmt: skip
    runs[0]["guards"]["2fold+fit-steps"] = {"check": check, "check_cpu": 2.0}
    text = nw.report({"runs": runs}, tmp_path / "r.json")
    assert "guard='2fold', brier_and_accuracy (pet_kit)" in text
    assert "probes at the fit's steps" not in text
    runs[1]["guards"]["2fold+fit-steps"] = {"check": check, "check_cpu": 2.0}
    text = nw.report({"runs": runs}, tmp_path / "r.json")
    assert "guard='2fold', probes at the fit's steps, brier_and_accuracy |" in text
