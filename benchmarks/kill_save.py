"""Kill-during-save loop: SIGKILL a process saving a prompt folder at random moments.

A forked child saves two different prompts alternately into one folder that also holds
the user's own files; the parent kills it after a random delay, then checks what pet_kit's
loader (:func:`pet_kit.io.prompt_folder.read_prompt_dir`, the file half of
``PromptClassifier.load``) sees: the prompt saved last (old) or the one being saved (new),
tensors and metadata exactly, never a missing or damaged folder; that the user's files are
unchanged; and that the next save (in the parent) leaves no hidden leftovers, neither in
the folder nor beside it. Prints a table and writes ``benchmarks/results/kill_save.json``;
exits with status 1 if any check failed.

    python benchmarks/kill_save.py [--kills 250] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine, markdown_table, write_json

from pet_kit.errors import SavedPromptError
from pet_kit.io.prompt_folder import META_FILE, TENSOR_FILE, read_prompt_dir, write_prompt_dir

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
USER_FILES = {"notes.txt": b"my notes, not pet_kit's\n", "data/train.csv": b"text,label\n"}
Prompt = tuple[dict[str, torch.Tensor], dict[str, Any]]


def prompts() -> list[Prompt]:
    """Two different prompts, shaped like real ones (slots, initial slots, a soft
    verbalizer), the second with a LoRA-sized tensor so that kills also land mid-write."""
    out = []
    for which, extra in (("A", 0), ("B", 200_000)):
        g = torch.Generator().manual_seed(len(which) + extra)
        tensors = {
            "slots": torch.randn(4, 32, generator=g),
            "slots_init": torch.randn(4, 32, generator=g),
            "label_head.weight": torch.randn(2, 32, generator=g),
        }
        if extra:
            tensors["backbone.lora_A"] = torch.randn(extra, generator=g)
        meta = {"which": which, "demonstrations": {"records": ["x" * 50] * 200}}
        out.append((tensors, meta))
    return out


def _saver(folder: str, pair: list[Prompt], done: Any, started: Any) -> None:
    """The child: save the two prompts alternately until killed; ``done`` counts the
    saves completed (the committed prompt is ``pair[(done - 1) % 2]``)."""
    logging.disable(logging.WARNING)
    started.value = 1
    while True:
        k = done.value
        write_prompt_dir(folder, *pair[k % 2])
        done.value = k + 1


def _identify(folder: Path, pair: list[Prompt]) -> str | None:
    """Which prompt pet_kit's loader sees in ``folder`` ("A" / "B"); ``None``: missing,
    damaged or a mix."""
    try:
        tensors, meta = read_prompt_dir(folder)
    except SavedPromptError:
        return None
    for expected, expected_meta in pair:
        same = set(tensors) == set(expected) and all(
            torch.equal(tensors[k], expected[k]) for k in expected
        )
        if same and meta.get("which") == expected_meta["which"]:
            return str(meta["which"])
    return None


def _interrupted_commit(folder: Path) -> bool:
    """Whether the kill fell between the two file replacements (``prompt.json`` still
    describes the old tensor file: the loader must roll forward)."""
    try:
        meta = json.loads((folder / META_FILE).read_text("utf-8"))
        data = (folder / TENSOR_FILE).read_bytes()
    except (OSError, ValueError):
        return False
    return meta.get("files", {}).get(TENSOR_FILE) != hashlib.sha256(data).hexdigest()


def _user_files_intact(folder: Path) -> bool:
    files = ((folder / name, data) for name, data in USER_FILES.items())
    return all(path.is_file() and path.read_bytes() == data for path, data in files)


def _leftovers(folder: Path) -> list[str]:
    """Names in or beside ``folder`` that are neither pet_kit's files nor the user's."""
    expected = {META_FILE, TENSOR_FILE, *(n.split("/")[0] for n in USER_FILES)}
    inside = [n for n in os.listdir(folder) if n not in expected] if folder.is_dir() else []
    beside = [n for n in os.listdir(folder.parent) if n != folder.name]
    return inside + beside


def _calibrate(folder: Path, pair: list[Prompt]) -> float:
    """Seconds one save takes here (the kill delays are drawn around it)."""
    for k in range(4):  # warm-up
        write_prompt_dir(folder, *pair[k % 2])
    start, n = time.perf_counter(), 16
    for k in range(n):
        write_prompt_dir(folder, *pair[k % 2])
    return (time.perf_counter() - start) / n


def run(kills: int, seed: int, workdir: Path) -> dict[str, Any]:
    """The loop; returns the counts."""
    ctx = mp.get_context("fork")
    pair, rng = prompts(), random.Random(seed)
    folder = workdir / "run" / "prompt"
    folder.parent.mkdir(parents=True)
    write_prompt_dir(folder, *pair[1])  # the user adds files to a saved prompt folder
    for name, data in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    per_save = _calibrate(folder, pair)  # leaves prompt B (20 saves: k = 19)
    done, started = ctx.Value("q", 20, lock=False), ctx.Value("b", 0, lock=False)
    counts = dict.fromkeys(
        ("old_prompt_intact", "new_prompt", "missing_or_corrupt", "user_files_lost"), 0
    )
    counts.update(
        kills_between_the_two_replacements=0, leftovers_after_kill=0, leftovers_after_next_save=0
    )
    start = time.perf_counter()
    for _ in range(kills):
        started.value = 0
        child = ctx.Process(target=_saver, args=(str(folder), pair, done, started), daemon=True)
        child.start()
        while not started.value:
            time.sleep(0.0002)
        time.sleep(rng.uniform(0.0, 2.5 * per_save))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        counts["kills_between_the_two_replacements"] += _interrupted_commit(folder)
        seen = _identify(folder, pair)
        old = pair[(done.value - 1) % 2][1]["which"]
        new = pair[done.value % 2][1]["which"]
        outcome = {old: "old_prompt_intact", new: "new_prompt"}.get(seen, "missing_or_corrupt")
        counts[outcome] += 1
        counts["user_files_lost"] += not _user_files_intact(folder)
        counts["leftovers_after_kill"] += bool(_leftovers(folder))
        write_prompt_dir(folder, *pair[done.value % 2])  # the next save
        done.value += 1
        counts["leftovers_after_next_save"] += bool(_leftovers(folder))
        counts["user_files_lost"] += not _user_files_intact(folder)
    return {
        "kills": kills,
        **counts,
        "saves_completed_by_killed_children": done.value - 20 - kills,
        "seconds_per_save": round(per_save, 5),
        "kill_delay_s_after_the_child_started": [0.0, round(2.5 * per_save, 5)],
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 1),
    }


def failed(result: dict[str, Any]) -> bool:
    """Whether any guarantee was broken."""
    keys = ("missing_or_corrupt", "leftovers_after_next_save", "user_files_lost")
    broken = any(result[k] for k in keys)
    return broken or result["old_prompt_intact"] + result["new_prompt"] != result["kills"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "kill_save.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.kills, args.seed, Path(tmp))
    result["machine"] = machine()
    write_json(Path(args.out), result)
    rows = [[k, str(v)] for k, v in result.items() if isinstance(v, int) and k != "seed"]
    print("\n".join(markdown_table(["kill-during-save", "count"], rows)))
    print(f"{'FAILED' if failed(result) else 'ok'}: {args.out}")
    return 1 if failed(result) else 0


if __name__ == "__main__":
    sys.exit(main())
