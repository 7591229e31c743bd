"""scripts/default_backbone/mpnet_recipe.sh: the steps' order, what a second run skips, and
the head's states linked from the pairs' cache (a stand-in interpreter records each call
and writes what the step would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "scripts" / "default_backbone" / "mpnet_recipe.sh"

# Records "script subcommand" and writes each step's output under $HOME/.cache/pet_kit.
STUB = r"""
import os, sys
from pathlib import Path
args = sys.argv[1:]
script = Path(args[0]).stem
sub = next(a for a in args[1:] if not a.startswith("-") and not a.startswith("/")
           and not a[0].isdigit()) if script != "build_corpus" else ""
with open(os.environ["RECIPE_CALLS"], "a") as fh:
    fh.write(f"{script} {sub}\n")
def value(flag):
    return args[args.index(flag) + 1]
cache = Path(os.environ["HOME"]) / ".cache" / "pet_kit"
if script == "build_corpus":
    (cache / "mlm_corpus").mkdir(parents=True)
    (cache / "mlm_corpus" / "manifest.json").write_text("{}")
elif sub == "cache" and "--top" in args and value("--mlm-windows") == "0":
    states = Path(value("--out")) / f"states-{value('--texts')}"
    states.mkdir(parents=True, exist_ok=True)
    for i in range(0, 2 * int(value("--texts")), 64):
        (states / f"{i:07d}.pt").write_text(str(i))
elif sub == "encode":  # the teacher's embeddings of the texts
    emb = Path(value("--run")) / "bundle-src" / "text-emb-mpnet"
    emb.mkdir(parents=True, exist_ok=True)
    for i in range(0, int(value("--texts")), 512):
        (emb / f"{i:07d}.npy").write_text(str(i))
elif sub == "prepare":
    with open(Path(os.environ["HOME"]) / "prepare_argv", "a") as fh:
        fh.write(" ".join(args) + "\n")
elif sub == "cache-eval":
    (Path(value("--out")) / "eval-top.pt").write_text("x")
elif sub == "train":
    with open(Path(os.environ["HOME"]) / "argv", "a") as fh:
        fh.write(" ".join(args) + "\n")
    (Path(value("--models")) / f"model-{value('--epochs')}").mkdir(parents=True)
    (Path(value("--models")) / f"model-{value('--epochs')}" / "run").write_text(value("--run"))
elif sub == "soup":  # the members' folders, one a line
    dest = Path(value("--models")) / f"model-{value('--epochs')}"
    dest.mkdir(parents=True)
    (dest / "members").write_text("\n".join(args[args.index("soup") + 1 :]))
elif sub == "evaluate":
    Path(value("--models"), f"evaluation-{value('--epochs')}.json").write_text(value("--run"))
"""


def _run(home: Path, calls: Path, *args: str) -> list[str]:
    stub = home / "stub.py"
    stub.write_text(STUB, encoding="utf-8")
    wrapper = home / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{stub}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    env = {**os.environ, "HOME": str(home), "PYTHON": str(wrapper), "RECIPE_CALLS": str(calls)}
    calls.write_text("", encoding="utf-8")
    done = subprocess.run(["bash", str(RECIPE), *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return calls.read_text(encoding="utf-8").splitlines()


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_the_recipe_runs_each_step_once_and_links_the_heads_states(tmp_path):
    calls = tmp_path / "calls.txt"
    first = _run(tmp_path, calls, "1", "2")
    assert first == [
        "build_corpus ",
        "distill_cloze prepare",
        "distill_bundle encode",
        "mpnet_head cache",
        "mpnet_head cache",
        "mpnet_head cache",
        "mpnet_head cache-eval",
        "mpnet_head train",
        "mpnet_head evaluate",
        "mpnet_top train",
        "mpnet_head evaluate",
    ]
    out = tmp_path / ".cache" / "pet_kit" / "mpnet_head"
    # the head's 6,144 texts are the first 12,288 pairs of the same cache: the same files
    linked = sorted(p.name for p in (out / "states-6144").iterdir())
    assert linked == sorted(p.name for p in (out / "states-12288").iterdir())[:192]
    assert os.path.samefile(out / "states-6144" / linked[-1], out / "states-12288" / linked[-1])
    # the seed and the offset weight name the candidate's folder
    assert (out / "variants" / "top-K-w03-t12288-off2-s1" / "model-2").is_dir()
    # a second run trains and measures nothing again: only the steps that resume by
    # themselves (prepare, encode, cache: each skips what it has) are called
    again = _run(tmp_path, calls, "1", "2")
    assert again == ["distill_cloze prepare", "distill_bundle encode"] + 3 * ["mpnet_head cache"]
    # another seed trains only its own top layer, on the same head
    other = _run(tmp_path, calls, "2", "2")
    assert other.count("mpnet_top train") == 1 and "mpnet_head train" not in other


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_other_candidate_words_train_the_top_layer_on_a_second_run_of_the_same_texts(tmp_path):
    calls = tmp_path / "calls.txt"
    _run(tmp_path, calls)  # today's 5,000 words: head and top layer
    wide = _run(tmp_path, calls, "0", "5", "20000")
    # the head K is reused; a second prepare (the wide candidates) before the top layer
    assert "mpnet_head train" not in wide
    assert wide == ["distill_cloze prepare", "distill_bundle encode", *3 * ["mpnet_head cache"],
                    "distill_cloze prepare", "mpnet_top train", "mpnet_head evaluate"]  # fmt: skip
    cache = tmp_path / ".cache" / "pet_kit"
    run, wide_run = cache / "cloze_distill_run", cache / "cloze_distill_run_w20k"
    # the wide prepare reuses the first run's fills (its words are a prefix of the wide ones)
    wide_prepare = (tmp_path / "prepare_argv").read_text().splitlines()[-1]
    assert f"--run {wide_run} prepare" in wide_prepare
    assert wide_prepare.endswith(f"--words 20000 --fills-from {run}")
    variant = cache / "mpnet_head" / "variants" / "top-K-w03-t12288-off5-w20k"
    assert (variant / "model-2" / "run").read_text() == str(wide_run)
    assert (variant / "evaluation-2.json").read_text() == str(wide_run)
    first = cache / "mpnet_head" / "variants" / "top-K-w03-t12288-off5" / "model-2"
    assert (first / "run").read_text() == str(run)  # 5,000 words: the first run
    # the texts' embeddings are the first run's files, linked
    emb = sorted((run / "bundle-src" / "text-emb-mpnet").iterdir())
    assert [p.name for p in sorted((wide_run / "bundle-src" / "text-emb-mpnet").iterdir())] == [
        p.name for p in emb
    ]
    assert os.path.samefile(emb[-1], wide_run / "bundle-src" / "text-emb-mpnet" / emb[-1].name)
    # a number of words that is no multiple of 1000 names itself
    _run(tmp_path, calls, "1", "5", "7500")
    assert (cache / "mpnet_head" / "variants" / "top-K-w03-t12288-off5-w7500-s1").is_dir()
    bad = subprocess.run(["bash", str(RECIPE), "0", "5", "20k"], capture_output=True, text=True,
                         env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip
    assert bad.returncode == 2 and "WORDS must be a whole number, not '20k'" in bad.stderr
    # the MLM weight reaches the top layer's training and names the folder without its point
    _run(tmp_path, calls, "1", "5", "20000", "0.5")
    assert (cache / "mpnet_head" / "variants" / "top-K-w05-t12288-off5-w20k-s1").is_dir()
    assert "--weight-mlm 0.5 " in (tmp_path / "argv").read_text()
    bad = subprocess.run(["bash", str(RECIPE), "0", "5", "20000", "nan"], capture_output=True,
                         text=True, env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip
    assert bad.returncode == 2 and "MLM_WEIGHT must be a number, not 'nan'" in bad.stderr
    for argv, message in (
        (["x1"], "SEEDS must be a whole number or several joined by commas (0,1,2,3), not 'x1'"),
        (["0,,1"], "not '0,,1'"),
        (["01"], "not '01'"),
        (["1,0,1"], "SEEDS names a seed twice ('1,0,1'): each run counts once in a soup"),
        (["0", "inf"], "OFFSET_WEIGHT must be a number, not 'inf'"),
    ):
        bad = subprocess.run(["bash", str(RECIPE), *argv], capture_output=True, text=True,
                             env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip
        assert bad.returncode == 2 and message in bad.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a bash script")
def test_several_seeds_train_in_turn_and_their_soup_is_written_and_measured(tmp_path):
    calls = tmp_path / "calls.txt"
    _run(tmp_path, calls, "1", "5", "20000", "0.5")  # one member trained earlier
    soup = _run(tmp_path, calls, "0,1,2,3", "5", "20000", "0.5")
    # the members not yet trained (0, 2, 3) train and are measured, then the soup
    assert soup[-8:] == [*3 * ["mpnet_top train", "mpnet_head evaluate"],
                         "mpnet_top soup", "mpnet_head evaluate"]  # fmt: skip
    variants = tmp_path / ".cache" / "pet_kit" / "mpnet_head" / "variants"
    folder = variants / "soup-w05-w20k-s0123"  # AE's name in docs/default_backbone.md
    members = (folder / "model-2" / "members").read_text().splitlines()
    stem = "top-K-w05-t12288-off5-w20k"
    assert members == [str(variants / f"{stem}{tail}" / "model-2")
                       for tail in ("", "-s1", "-s2", "-s3")]  # fmt: skip
    wide_run = tmp_path / ".cache" / "pet_kit" / "cloze_distill_run_w20k"
    assert (folder / "evaluation-2.json").read_text() == str(wide_run)
    # run again: nothing trains, averages or measures again
    again = _run(tmp_path, calls, "0,1,2,3", "5", "20000", "0.5")
    assert not {"mpnet_top train", "mpnet_top soup", "mpnet_head evaluate"} & set(again)
    # seeds of two digits are joined by a dash, another offset weight is named
    _run(tmp_path, calls, "1,12", "2")
    assert (variants / "soup-w03-off2-s1-12" / "model-2").is_dir()
