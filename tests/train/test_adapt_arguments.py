"""adapt checks its arguments as PromptClassifier does, and refuses what it cannot use
(a corpus with nothing to mask, an edited checkpoint, a folder as the texts file)."""

from __future__ import annotations

import json
import logging
import os
import re

import pytest
import torch
from conftest import NEG, POS

from pet_kit import InputError
from pet_kit.train.adapt import _chunks, adapt

TEXTS = [f"{a} {b}" for a in POS + NEG for b in ("indeed", "so it seems", "")] * 2
FAST = dict(max_steps=4, batch_size=4, max_length=16, checkpoint_every=2, verbose=0, seed=0)


def _stop_at(n: int):
    def stop(step: int, loss: float) -> None:
        if step == n:
            raise KeyboardInterrupt

    return stop


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, "threads must be None or a positive integer, got 0"),
        ({"seed": 2**70}, "seed must be an integer from 0 to 2**32 - 1"),
        ({"seed": "x"}, "seed must be an integer from 0 to 2**32 - 1, got 'x'"),
        ({"train": "top²"}, "train must be 'head', 'top<N>'"),
        ({"warmup_steps": -5}, "warmup_steps must be None (6% of max_steps) or an integer >= 0"),
        ({"device": "nonsense"}, "is not a torch device"),
    ],
)
def test_adapt_checks_its_arguments_as_the_estimator_does(tiny_dir, tmp_path, kwargs, match):
    with pytest.raises(InputError, match=re.escape(match)):
        adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **{**FAST, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_dir, tmp_path, capsys):
    from pet_kit.cli import main

    with pytest.raises(InputError, match="CUDA is not available"):
        adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), device="cuda", **FAST)
    (tmp_path / "t.txt").write_text("\n".join(TEXTS), encoding="utf-8")
    argv = ["adapt", str(tmp_path / "t.txt"), "--output", str(tmp_path / "m"), "--device", "cuda"]
    assert main([*argv, "--model", str(tiny_dir)]) == 1
    assert "CUDA is not available" in capsys.readouterr().err


def test_max_length_is_capped_to_the_backbone_as_the_estimator_caps_it(tiny_dir, tmp_path):
    res = adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **{**FAST, "max_length": 100_000})
    info = json.loads((res.path / "pet_kit_adapt.json").read_text("utf-8"))
    assert res.complete and info["settings"]["max_length"] == 128


def test_output_paths_are_checked_before_training(tiny_dir, tmp_path):
    steps = []
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(InputError, match="is a symbolic link"):
        adapt(TEXTS, tmp_path / "link", model=str(tiny_dir), on_step=steps.append, **FAST)
    with pytest.raises(InputError, match="contains a NUL byte"):
        adapt(TEXTS, tmp_path / "a\0b", model=str(tiny_dir), on_step=steps.append, **FAST)
    assert steps == []


def test_a_corpus_with_nothing_to_mask_is_refused(tiny_dir, tmp_path):
    unknown = ["ζζζ ωωω", "ξξξ ψψψ", "φφφ χχχ"] * 4  # not in the tiny vocabulary: all [UNK]
    with pytest.raises(InputError, match="nothing to mask"):
        adapt(unknown, tmp_path / "a", model=str(tiny_dir), **FAST)
    assert not (tmp_path / ".a.adapt-checkpoint").exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: {**m, "step": 10**9}, "step is 1000000000, not an integer from 0 to"),
        (lambda m: [m], "not an adapt checkpoint (a JSON list"),
        (lambda m: {k: v for k, v in m.items() if k != "adam_steps"}, "adam_steps is missing"),
        (lambda m: {**m, "tensors_file": "../x.safetensors"}, "is not a checkpoint tensor file"),
    ],
)
def test_a_hand_edited_checkpoint_is_a_clear_error(tiny_dir, tmp_path, edit, match):
    with pytest.raises(KeyboardInterrupt):
        adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), on_step=_stop_at(2), **FAST)
    state = tmp_path / ".a.adapt-checkpoint" / "adapt_state.json"
    state.write_text(json.dumps(edit(json.loads(state.read_text("utf-8")))), encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(match)):
        adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **FAST)
    assert not (tmp_path / "a").exists()


def test_one_very_long_text_keeps_small_word_indices(tiny_tokenizer):
    long_text = " ".join(["great", "film"] * 150_000)  # 300,000 words
    chunks = _chunks(tiny_tokenizer, [long_text], 16)
    assert len(chunks) > 20_000
    assert max(max(c.words) for c in chunks) < 16


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_fifo_as_the_texts_file_says_what_it_is(tiny_dir, tmp_path, kind):
    path = tmp_path / "texts"
    if kind == "folder":
        path.mkdir()
    else:
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(path)
    match = "is a folder" if kind == "folder" else "is not a regular file"
    with pytest.raises(InputError, match=match):
        adapt(path, tmp_path / "a", model=str(tiny_dir), **FAST)


def test_a_time_boxed_call_logs_that_the_run_is_unfinished(tiny_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pet_kit.train.adapt"):
        res = adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), max_minutes=1e-9, **FAST)
    assert res.path is None
    assert "unfinished" in caplog.text and "call adapt again" in caplog.text
