"""Saving/loading only the prompt: safetensors + JSON, atomic, backbone identity checked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import build_model, build_tokenizer

from pet_kit import BackboneMismatchError, PromptClassifier, SavedPromptError
from pet_kit.io.prompt_folder import META_FILE, TENSOR_FILE


@pytest.fixture()
def fitted(make_clf, toy_data):
    return make_clf().fit(*toy_data)


def test_roundtrip_same_probabilities(fitted, toy_data, tmp_path):
    X, _ = toy_data
    out = fitted.save(tmp_path / "p")
    assert sorted(f.name for f in out.iterdir()) == [META_FILE, TENSOR_FILE]
    loaded = PromptClassifier.load(out)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert loaded.classes_.tolist() == fitted.classes_.tolist()
    assert loaded.get_params()["learning_rate"] == fitted.learning_rate


def test_saved_prompt_is_small_and_pickle_free(fitted, tmp_path):
    out = fitted.save(tmp_path / "p")
    size = sum(f.stat().st_size for f in out.iterdir())
    assert size < 8_000
    raw = (out / TENSOR_FILE).read_bytes()
    assert b"\x80\x04" not in raw[:16] and not raw.startswith(b"PK")  # not a pickle/zip
    meta = json.loads((out / META_FILE).read_text())
    assert meta["backbone"]["fingerprint"].startswith("weights-sha256:")
    assert meta["pvp"]["pattern"] == "[SOFT*2] {text} It was [MASK]."
    assert meta["classes"] == ["negative", "positive"]
    assert meta["pet_kit_version"] and meta["format_version"] == 1


def test_integer_classes_survive(make_clf, tmp_path):
    pvp = {"pattern": "[SOFT] {text} It was [MASK].", "verbalizer": {1: ["bad"], 5: ["great"]}}
    clf = make_clf(pvp=pvp).fit(["bad", "great"], [1, 5])
    loaded = PromptClassifier.load(clf.save(tmp_path / "p"))
    assert loaded.classes_.tolist() == [1, 5] and loaded.classes_.dtype.kind == "i"


def test_other_backbone_is_refused(fitted, tmp_path):
    out = fitted.save(tmp_path / "p")
    other_dir = tmp_path / "other"
    tok = build_tokenizer(other_dir / "tok")
    build_model(len(tok), seed=99).save_pretrained(other_dir)
    tok.save_pretrained(other_dir)
    with pytest.raises(BackboneMismatchError, match="fingerprint"):
        PromptClassifier.load(out, model=str(other_dir))


def test_overwrite_replaces_and_failed_save_keeps_old(
    fitted, make_clf, toy_data, tmp_path, monkeypatch
):
    X, y = toy_data
    target = tmp_path / "p"
    fitted.save(target)
    old = (target / TENSOR_FILE).read_bytes()
    other = make_clf(random_state=5).fit(X, y)

    import pet_kit.io.prompt_folder as persist

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(persist, "save_file", boom)
    with pytest.raises(SavedPromptError, match=r"disk full.*still holds the previous"):
        other.save(target, overwrite=True)
    monkeypatch.undo()
    assert (target / TENSOR_FILE).read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temp folders left
    assert sorted(p.name for p in target.iterdir()) == [META_FILE, TENSOR_FILE]  # nor files
    other.save(target, overwrite=True)
    assert (target / TENSOR_FILE).read_bytes() != old


def test_save_replaces_a_pet_kit_result_only_with_overwrite(fitted, make_clf, toy_data, tmp_path):
    """The rule of pet-kit train's output folder: a prompt already there is replaced only
    with overwrite=True; a new or empty folder needs none."""
    target = fitted.save(tmp_path / "p")
    before = {f.name: f.read_bytes() for f in target.iterdir()}
    other = make_clf(random_state=5).fit(*toy_data)
    with pytest.raises(SavedPromptError) as info:
        other.save(target)
    assert str(info.value) == (
        f"the folder {target} already holds a pet_kit prompt (classes 'negative', 'positive');"
        " refusing to replace it. Pass overwrite=True to save() to replace it, or choose"
        " another folder"
    )
    assert {f.name: f.read_bytes() for f in target.iterdir()} == before
    assert other.save(target, overwrite=True) == target
    assert (target / TENSOR_FILE).read_bytes() != before[TENSOR_FILE]

    (tmp_path / "empty").mkdir()
    assert (other.save(tmp_path / "empty") / META_FILE).is_file()


def test_refuses_to_overwrite_a_non_prompt_folder(fitted, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("important")
    with pytest.raises(SavedPromptError, match="not a pet_kit prompt folder"):
        fitted.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "important"


def test_killed_save_leaves_old_prompt_intact(fitted, tiny_dir, tmp_path):
    """A process killed in the middle of save() never damages the existing prompt."""
    target = fitted.save(tmp_path / "p")
    before = {f.name: f.read_bytes() for f in target.iterdir()}
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import torch
        torch.set_num_threads(1)
        from pet_kit import PromptClassifier
        import pet_kit.io.prompt_folder as persist
        clf = PromptClassifier.load({str(target)!r})
        real = persist.save_file
        def die(*a, **k):
            real(*a, **k)            # the tensor file is half of the new folder
            os.kill(os.getpid(), signal.SIGKILL)
        persist.save_file = die
        clf.save({str(target)!r}, overwrite=True)
    """)
    # the timeout only guards against a hang: a loaded machine takes minutes to import torch
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=600)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    after = {f.name: f.read_bytes() for f in target.iterdir() if not f.name.startswith(".")}
    assert after == before
    PromptClassifier.load(target)  # still loads
    fitted.save(target, overwrite=True)  # the next save removes the killed save's temp file
    assert sorted(f.name for f in target.iterdir()) == sorted(before)
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


@pytest.mark.parametrize(
    "damage",
    [
        "missing_tensor",
        "missing_json",
        "truncate",
        "bitflip",
        "bad_json",
        "future",
        "shape",
        "not_prompt",
    ],
)
def test_damaged_folders_are_clear_errors(fitted, tmp_path, damage):
    out = fitted.save(tmp_path / "p")
    t, m = out / TENSOR_FILE, out / META_FILE
    meta = json.loads(m.read_text())
    if damage == "missing_tensor":
        t.unlink()
    elif damage == "missing_json":
        m.unlink()
    elif damage == "truncate":
        t.write_bytes(t.read_bytes()[:40])
    elif damage == "bitflip":
        raw = bytearray(t.read_bytes())
        raw[-3] ^= 0x10
        t.write_bytes(bytes(raw))
    elif damage == "bad_json":
        m.write_text("{not json")
    elif damage == "future":
        meta["format_version"] = 99
        m.write_text(json.dumps(meta))
    elif damage == "shape":
        meta["pvp"]["pattern"] = "[SOFT*5] {text} It was [MASK]."
        m.write_text(json.dumps(meta))
    elif damage == "not_prompt":
        del meta["format"]
        m.write_text(json.dumps(meta))
    expected = {
        "missing_tensor": "missing",
        "missing_json": "missing",
        "truncate": "checksum",
        "bitflip": "checksum",
        "bad_json": "not valid JSON",
        "future": "newer pet_kit",
        "shape": "shape",
        "not_prompt": "not a pet_kit prompt",
    }[damage]
    with pytest.raises(SavedPromptError, match=expected):
        PromptClassifier.load(out)


def test_loaded_prompt_can_be_resaved(fitted, toy_data, tmp_path):
    a = PromptClassifier.load(fitted.save(tmp_path / "a"))
    b = PromptClassifier.load(a.save(tmp_path / "b"))
    np.testing.assert_array_equal(a.predict_proba(toy_data[0]), b.predict_proba(toy_data[0]))
