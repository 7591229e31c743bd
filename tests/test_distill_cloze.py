"""scripts/default_backbone/distill_cloze.py: teacher phrases, windows, and a tiny run that
resumes bit-identically from its single-file checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from conftest import backbone_scripts


@pytest.fixture()
def script():
    with backbone_scripts("distill_cloze") as loaded:
        yield loaded["distill_cloze"]


def test_pattern_phrase_leaves_the_text_out_and_fills_the_slot(script):
    assert script.pattern_phrase("{text} It was [MASK].", "great") == "It was great."
    assert script.pattern_phrase("[MASK]: {text}", "review") == "review:"
    assert script.pattern_phrase("[MASK] - {text}", "sport") == "sport"
    assert script.pattern_phrase("It was [MASK], because {text}", "bad") == "It was bad, because"


def test_generic_patterns_each_have_one_text_and_one_slot(script):
    patterns = script.read_patterns()
    assert len(patterns) >= 20
    for p in patterns:
        assert p.count("{text}") == 1 and p.count("[MASK]") == 1, p
    starts = sum(p.startswith("[MASK]") for p in patterns)
    ends = sum(p.endswith(("[MASK].", "[MASK]")) for p in patterns)
    assert starts and ends and len(patterns) - starts - ends  # start, end and middle


def test_windows_cut_at_sentence_ends_and_drop_short_pieces(script):
    unit = "One two three four five six. " * 5 + "Tiny."
    out = script.windows(unit, 12)
    assert all(6 <= len(w.split()) <= 12 for w in out)
    assert script.windows("too short here", 12) == []


def test_config_key_changes_with_any_setting(script):
    a = script.Config()
    assert a.key() == script.Config().key()
    assert a.key() != script.Config(tau=0.1).key()


class _HashTeacher:
    """A deterministic stand-in teacher: normalised bag of hashed words."""

    name = "fake"

    def encode(self, texts, batch_size=64):
        import torch

        out = torch.zeros(len(texts), 16)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w)) % 16] += 1.0
        return torch.nn.functional.normalize(out + 1e-3, dim=-1)


def _prepared(run: Path, tok) -> None:
    import torch
    from safetensors.torch import save_file

    prep = run / "prepared"
    prep.mkdir(parents=True)
    texts = [f"a great movie and a good film number {i} with bad music" for i in range(20)]
    (prep / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (prep / "mlm_units.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (prep / "heldout.txt").write_text("a terrible movie\n", encoding="utf-8")
    vocab = tok.get_vocab()
    words = [w for w in ("great", "good", "bad", "terrible", "movie", "film") if w in vocab]
    multi = ["fantastic"]  # fan ##tastic in the test vocabulary
    patterns = ["{text} It was [MASK].", "[MASK]: {text}"]
    info = {"teacher": "fake", "words": words, "multi_words": multi, "patterns": patterns}
    (prep / "manifest.json").write_text(json.dumps(info), encoding="utf-8")
    g = torch.Generator().manual_seed(0)
    fills = {
        "single": torch.nn.functional.normalize(
            torch.randn(2, len(words), 16, generator=g), dim=-1
        ),
        "multi": torch.nn.functional.normalize(torch.randn(2, len(multi), 16, generator=g), dim=-1),
    }
    save_file({k: v.half().contiguous() for k, v in fills.items()}, prep / "fills-fake.safetensors")


def _run(script, run: Path, tiny_dir: Path, max_steps: int):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_dir))
    args = argparse.Namespace(run=run, mlm_units=100)
    cfg = script.Config(teacher="fake", train_layers=1, max_steps=max_steps, texts_per_step=2,
                        patterns_per_text=2, multi_per_step=2, mlm_per_step=2, mlm_length=16,
                        max_length=32, warmup_steps=2)  # fmt: skip
    return script.Run(args, cfg, student=(model, tok), teacher=_HashTeacher())


def test_a_run_resumed_from_its_checkpoint_equals_an_uninterrupted_one(script, tmp_path, tiny_dir):
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    for name in ("straight", "resumed"):
        _prepared(tmp_path / name, tok)
    straight = _run(script, tmp_path / "straight", tiny_dir, max_steps=4)
    before = {n: p.detach().clone() for n, p in straight.params.items()}
    straight.train(None, checkpoint_every=100)
    assert straight.step == 4
    assert any(not torch.equal(before[n], p) for n, p in straight.params.items())

    first = _run(script, tmp_path / "resumed", tiny_dir, max_steps=4)
    assert not first.restore()  # nothing saved yet
    first.train(None, checkpoint_every=1, stop_at=2)
    assert (tmp_path / "resumed" / script.CHECKPOINT).is_file()
    again = _run(script, tmp_path / "resumed", tiny_dir, max_steps=4)
    assert again.restore() and again.step == 2
    again.train(None, checkpoint_every=100)
    for name, p in straight.params.items():
        torch.testing.assert_close(again.params[name], p, rtol=0, atol=0)


def test_a_checkpoint_of_another_configuration_is_refused(script, tmp_path, tiny_dir):
    from transformers import AutoTokenizer

    _prepared(tmp_path / "r", AutoTokenizer.from_pretrained(str(tiny_dir)))
    _run(script, tmp_path / "r", tiny_dir, max_steps=1).train(None, checkpoint_every=1)
    other = _run(script, tmp_path / "r", tiny_dir, max_steps=2)
    with pytest.raises(SystemExit, match="another configuration"):
        other.restore()


def _measured(rt: float, paris: bool, mlm: float, dev: float) -> dict:
    return {
        "gates": {"rotten_tomatoes#it_was": rt, "bbc_news": 0.71, "subjectivity": 0.61},
        "dev": {"fortune_topics": dev},
        "fill_mask_top5": {
            "The capital of France is [MASK].": ["paris" if paris else "rome"],
            "He drank a glass of [MASK].": ["water"],
            "She opened the [MASK] and walked into the room.": ["door"],
            "A dog is a kind of [MASK].": ["animal"],
        },
        "heldout_mlm": {"accuracy": mlm},
    }


def test_gate_checks_name_every_gate_and_fail_each_on_its_own(script):
    old = _measured(0.58, True, 0.23, 0.5)
    good = script.gate_checks(old, _measured(0.70, True, 0.30, 0.6))
    assert all(good.values()) and len(good) == 3 + 4 + 1 + 1
    for bad, name in (
        (_measured(0.67, True, 0.30, 0.6), "zero-shot rotten_tomatoes#it_was >= 0.68"),
        (_measured(0.70, False, 0.30, 0.6),
         "fill-mask 'The capital of France is [MASK].' keeps paris"),
        (_measured(0.70, True, 0.22, 0.6), "held-out MLM accuracy >= current default"),
        (_measured(0.70, True, 0.30, 0.5), "dev fortune_topics improves"),
    ):  # fmt: skip
        checks = script.gate_checks(old, bad)
        assert [k for k, v in checks.items() if not v] == [name]


def test_a_candidate_of_another_recipe_describes_itself(script):
    report = {"description": "all-mpnet-base-v2 backbone, distilled head", "config": {}}
    assert script.describe(report) == "all-mpnet-base-v2 backbone, distilled head"
    cpu = {"config": {"teacher": "mpnet", "train_layers": 4, "texts_per_step": 8,
                      "patterns_per_text": 4}, "step": 362, "of": 362, "trained_seconds": 1800,
           "device_run": {"device": "cpu", "pace_s_per_step": 5.0,
                          "init": {"run": "/x/mpnet-l4", "step": 4262,
                                   "config": {"teacher": "mpnet"}}}}  # fmt: skip
    line = script.describe(cpu)
    assert line.endswith("0.50 h on CPU, continuing mpnet-l4 (step 4262, teacher mpnet)"), line


def test_a_runs_provenance_keeps_the_corpus_totals_and_each_sources_hash(script, tmp_path):
    manifest = {"totals": {"units": 12, "tokens": 340},
                "sources": {"fortunes": {"packages": [{"name": "fortunes", "version": "1"}],
                                         "tokens": 340, "sha256": "ab", "units": 12}}}  # fmt: skip
    record = script.corpus_record(tmp_path, manifest)
    assert record["totals"] == {"units": 12, "tokens": 340}
    assert record["sources"]["fortunes"] == {
        "packages": [{"name": "fortunes", "version": "1"}],
        "tokens": 340,
        "sha256": "ab",
    }
    assert record["path"] == str(tmp_path)


def test_the_gates_table_names_each_gates_real_test_size(script):
    """bbc_news has fewer test texts than the gate's cap: the table says how many."""
    from pet_kit.io.datasets import load_task

    old = {**_measured(0.58, True, 0.23, 0.5), "heldout_mlm": {"accuracy": 0.23, "tokens": 9}}
    new = {**_measured(0.70, True, 0.30, 0.6), "heldout_mlm": {"accuracy": 0.3, "tokens": 9}}
    report = {"current_default": old, "new": new, "description": "x", "measured_at": "now"}
    table = script.gates_table([report], probes="facts")
    for pvp in script.GATES:
        n = len(load_task(pvp.split("#")[0], "test", max_size=script.GATE_TEST_SIZE))
        assert f"zero-shot `{pvp}` ({n} test texts)" in table
    assert "zero-shot `bbc_news` (1000 test texts)" not in table


def test_the_gates_table_marks_a_fact_probe_whose_answers_left_the_top_5(script):
    old = {**_measured(0.58, True, 0.23, 0.5), "heldout_mlm": {"accuracy": 0.23, "tokens": 9}}
    new = {**_measured(0.70, False, 0.30, 0.6), "heldout_mlm": {"accuracy": 0.3, "tokens": 9}}
    report = {"current_default": old, "new": new, "description": "x", "measured_at": "now"}
    table = script.gates_table([report, {**report, "new": old}], probes="facts")
    assert "| The capital of France is [MASK]. | paris | rome ✗ | paris |" in table
    assert "| He drank a glass of [MASK]. | water | water | water |" in table
    assert "wine / beer / water / milk" in table


def test_adding_to_the_published_report_keeps_candidates_whose_folders_are_gone(script, tmp_path):
    """A fresh machine holds only its own runs: --add keeps the published candidates and
    appends the new ones; a run rebuilt where a published one sat is a new candidate, and
    adding the same evaluation twice adds it once."""
    published = tmp_path / "gates.json"
    old = [{"run": "/gone/a", "measured_at": "t1"}, {"run": "/gone/b", "measured_at": "t2"}]
    published.write_text(json.dumps({"gates": {}, "candidates": old}), encoding="utf-8")
    rebuilt = {"run": "/gone/a", "measured_at": "t3"}
    new = [{"run": "/here/c", "measured_at": "t4"}, rebuilt, old[1], rebuilt]
    out = script.add_to_published(published, new)
    assert [(r["run"], r["measured_at"]) for r in out] == [
        ("/gone/a", "t1"), ("/gone/b", "t2"), ("/here/c", "t4"), ("/gone/a", "t3")
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="without --add first"):
        script.add_to_published(tmp_path / "missing.json", [])


def test_similarity_zero_shot_averages_each_class_words_phrases(script):
    """The teacher's ceiling: each text goes to the class whose pattern phrases (all its
    words) it is most similar to on average."""
    import torch

    vectors = {"It was great.": [1.0, 0.0], "It was good.": [0.0, 1.0],
               "It was bad.": [0.95, 0.1], "a fine film": [0.3, 1.0],
               "a dull film": [1.0, -1.0], "meh": [0.6, 0.8]}  # fmt: skip

    class Fake:
        def encode(self, texts):
            return torch.tensor([vectors[t] for t in texts])

    words = {"positive": ["great", "good"], "negative": ["bad"]}
    texts = ["a fine film", "a dull film", "meh"]
    # "meh" is positive by the mean of great and good (0.70 > 0.65), though "great" alone
    # (0.60) would call it negative
    acc = script.similarity_zero_shot(Fake(), "{text} It was [MASK].", words, texts,
                                      ["positive", "negative", "positive"])  # fmt: skip
    assert acc == 1.0
    acc = script.similarity_zero_shot(Fake(), "{text} It was [MASK].", words, texts,
                                      ["positive", "negative", "negative"])  # fmt: skip
    assert acc == pytest.approx(2 / 3, abs=1e-4)


def test_saved_tensors_round_trip_with_the_umasks_mode(script, tmp_path):
    import os
    import stat

    import torch
    from safetensors.torch import load_file

    path = tmp_path / "fills.safetensors"
    old = os.umask(0o022)
    try:
        script.atomic_save_tensors(path, {"a": torch.arange(6.0).view(2, 3).T}, {"k": "v"})
    finally:
        os.umask(old)
    assert torch.equal(load_file(str(path))["a"], torch.arange(6.0).view(2, 3).T)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # safetensors' own save_file gives 0600
    assert [p.name for p in tmp_path.iterdir()] == ["fills.safetensors"]


def test_candidates_past_z_are_named_aa_ab_and_keep_earlier_names(script):
    names = [script.candidate_name(i) for i in range(60)]
    assert names[:3] == ["A", "B", "C"] and names[25] == "Z"
    assert names[26:29] == ["AA", "AB", "AC"] and names[51] == "AZ" and names[52] == "BA"
    assert len(set(names)) == 60


def _prepared_fills(run: Path, script, words: list[str], multi: list[str]) -> None:
    import torch

    prep = run / "prepared"
    prep.mkdir(parents=True)
    info = {"teacher": "mpnet", "patterns": ["It was [MASK]. {text}", "[MASK]: {text}"],
            "words": words, "multi_words": multi}  # fmt: skip
    (prep / "manifest.json").write_text(json.dumps(info), encoding="utf-8")
    fills = {"single": torch.arange(2 * len(words) * 3.0).view(2, len(words), 3).half(),
             "multi": torch.ones(2, len(multi), 3).half()}  # fmt: skip
    script.atomic_save_tensors(prep / "fills-mpnet.safetensors", fills, {"format": "pt"})


def test_fills_of_a_run_with_fewer_words_are_reused_as_a_prefix(script, tmp_path):
    _prepared_fills(tmp_path / "w2", script, ["good", "bad"], ["awful"])
    patterns = ["It was [MASK]. {text}", "[MASK]: {text}"]
    known = script.reusable_fills(tmp_path / "w2", "mpnet", patterns, ["good", "bad", "fine"],
                                  ["awful", "lovely"])  # fmt: skip
    assert known["single"].shape == (2, 2, 3) and known["multi"].shape == (2, 1, 3)
    assert known["single"][1, 1].tolist() == [9.0, 10.0, 11.0]  # pattern 2, word "bad"
    # a run with more words than this one gives this one's words, all of them
    fewer = script.reusable_fills(tmp_path / "w2", "mpnet", patterns, ["good"], ["awful"])
    assert fewer["single"].shape == (2, 1, 3)


@pytest.mark.parametrize(
    ("teacher", "patterns", "words", "message"),
    [
        ("minilm", None, ["good"], "its teacher is mpnet, not minilm"),
        ("mpnet", ["[MASK]: {text}"], ["good"], "its patterns differ"),
        ("mpnet", None, ["fine", "good"], "single candidate words are not a prefix"),
    ],
)
def test_fills_that_do_not_match_are_refused_by_name(script, tmp_path, teacher, patterns,
                                                       words, message):  # fmt: skip
    _prepared_fills(tmp_path / "w2", script, ["good", "bad"], ["awful"])
    patterns = patterns or ["It was [MASK]. {text}", "[MASK]: {text}"]
    with pytest.raises(SystemExit, match=message):
        script.reusable_fills(tmp_path / "w2", teacher, patterns, words, ["awful"])
    with pytest.raises(SystemExit, match="no prepared run there"):
        script.reusable_fills(tmp_path / "nothing", "mpnet", patterns, words, ["awful"])


def test_distillation_weights_override_the_manifests_and_refuse_unknown_sources(script):
    manifest = {"sources": {"chitchat": {"weight": 3.0}, "gcide": {}, "austen": {"weight": 2}}}
    assert script.distill_weights(manifest, []) == {"austen": 2.0, "chitchat": 3.0, "gcide": 1.0}
    assert script.distill_weights(manifest, [("gcide", 0.5)])["gcide"] == 0.5
    with pytest.raises(SystemExit, match=r"no source 'fortune'.*austen, chitchat, gcide"):
        script.distill_weights(manifest, [("fortune", 2.0)])
    with pytest.raises(SystemExit, match="gcide is weighted twice"):
        script.distill_weights(manifest, [("gcide", 2.0), ("gcide", 3.0)])
    with pytest.raises(SystemExit, match=r"chitchat=3 gcide=1: every weight given is the corpus"):
        script.distill_weights(manifest, [("chitchat", 3.0), ("gcide", 1.0)])
    assert script.distill_weights(manifest, [("chitchat", 3.0), ("gcide", 2.0)])["gcide"] == 2.0


@pytest.mark.parametrize("text", ["chitchat", "=3", "chitchat=nan", "chitchat=-1",
                                  "chitchat=0", "chitchat=inf", "chitchat=lots"])  # fmt: skip
def test_a_source_weight_that_is_not_a_positive_number_is_refused_when_parsed(text):
    with backbone_scripts("argtypes") as loaded:
        with pytest.raises(argparse.ArgumentTypeError):
            loaded["argtypes"].named_weight(text)
        assert loaded["argtypes"].named_weight("chitchat=9") == ("chitchat", 9.0)


def test_reweighted_distillation_units_never_include_held_out_or_dropped_units(script):
    import numpy as np

    # units 0-499 from a source weighted 1, 500-999 from one weighted 1 or 20
    kept = [i for i in range(1000) if i % 10]  # every tenth unit held out or dropped
    even = script.reweighted(kept, np.ones(1000), seed=0)
    heavy = script.reweighted(kept, np.r_[np.ones(500), np.full(500, 20.0)], seed=0)
    for order in (even, heavy):
        assert sorted(order) == kept  # each kept unit once, no other
    assert sum(i >= 500 for i in heavy[:200]) > 180 > sum(i >= 500 for i in even[:200])
    assert script.reweighted(kept, np.ones(1000), seed=0) == even
    assert script.reweighted(kept, np.ones(1000), seed=1) != even


def test_candidate_words_taken_from_another_run_are_its_lists_whole(script, tmp_path):
    _prepared_fills(tmp_path / "w2", script, ["good", "bad"], ["awful"])
    assert script.words_of(tmp_path / "w2") == (["good", "bad"], ["awful"])
    with pytest.raises(SystemExit, match=r"--words-from .*no prepared run there"):
        script.words_of(tmp_path / "nothing")
    # the fills come with the words, and a refusal names the option the user gave
    patterns = ["It was [MASK]. {text}", "[MASK]: {text}"]
    with pytest.raises(SystemExit, match=r"^--words-from .*its teacher is mpnet, not minilm"):
        script.reusable_fills(tmp_path / "w2", "minilm", patterns, ["good", "bad"], ["awful"],
                              "--words-from")  # fmt: skip


def test_a_killed_prepare_resumes_from_each_patterns_saved_fills(script, tmp_path):
    import torch

    calls = []

    class Teacher:
        def encode(self, phrases, batch_size):
            calls.append(list(phrases))
            return torch.arange(len(phrases) * 2.0).view(len(phrases), 2) / 3

    part = tmp_path / "run" / script.PARTS / "single-000.safetensors"
    first = script.teacher_part(Teacher(), "mpnet", ["It was good.", "It was bad."], part)
    assert part.is_file() and first.dtype == torch.float16 and len(calls) == 1
    # run again (the prepare was killed after this file): read back, not encoded again
    again = script.teacher_part(Teacher(), "mpnet", ["It was good.", "It was bad."], part)
    assert torch.equal(again, first) and len(calls) == 1
    # other phrases or another teacher: the file is not theirs, so they are encoded
    script.teacher_part(Teacher(), "mpnet", ["It was fine."], part)
    script.teacher_part(Teacher(), "minilm", ["It was fine."], part)
    assert calls[1:] == [["It was fine."], ["It was fine."]]
