"""pet_kit.train.adapt: continued MLM training on unlabeled texts, written as a new model folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import NEG, POS, SENTIMENT_PVP, tiny_clf
from safetensors.torch import load_file

from pet_kit import BackboneMismatchError, InputError, PromptClassifier
from pet_kit.model.backbone import fingerprint
from pet_kit.train.adapt import ADAPT_FILE, adapt, read_texts, snapshot

TEXTS = [f"{a} {b}" for a in POS + NEG for b in ("indeed", "so it seems", "")] * 2
FAST = dict(max_steps=6, batch_size=4, max_length=16, checkpoint_every=2, verbose=0, seed=0)


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_writes_a_loadable_model_with_its_own_fingerprint_and_provenance(tiny_dir, tmp_path):
    from transformers import AutoModelForMaskedLM

    result = adapt(TEXTS, tmp_path / "adapted", model=str(tiny_dir), **FAST)
    assert result.complete and result.steps == 6 and result.path == tmp_path / "adapted"
    assert not result.checkpoint_dir.exists()  # removed once the output is written
    source = AutoModelForMaskedLM.from_pretrained(str(tiny_dir))
    adapted = AutoModelForMaskedLM.from_pretrained(str(result.path))
    assert fingerprint(adapted) != fingerprint(source)
    # embeddings frozen by default; the top layers and the head moved
    before, after = source.state_dict(), adapted.state_dict()
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(before[emb], after[emb])
    last = [k for k in after if ".layer.1." in k]
    assert last and any(not torch.equal(before[k], after[k]) for k in last)
    info = json.loads((result.path / ADAPT_FILE).read_text("utf-8"))
    assert info["texts"]["labels_read"] is False
    assert info["texts"]["train"] + info["texts"]["heldout"] == len([t for t in TEXTS if t.strip()])
    assert info["fingerprint"] == fingerprint(adapted)
    assert info["source"]["fingerprint"] == fingerprint(source)
    for key in ("loss", "accuracy", "masked_tokens"):
        assert key in info["heldout_before"] and key in info["heldout_after"]
    assert info["heldout_before"]["masked_tokens"] == info["heldout_after"]["masked_tokens"]
    assert info["steps"] == 6 and len(info["train_losses"]) == 6


def test_head_only_trains_no_encoder_layer(tiny_dir, tmp_path):
    out = adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), train="head", **FAST).path
    src = _weights(tiny_dir)
    new = _weights(out)
    changed = {k for k in new if k in src and not torch.equal(src[k], new[k])}
    assert changed and all(k.startswith("cls.") for k in changed)


def test_prompt_trained_on_the_adapted_backbone_loads_only_with_it(tiny_dir, tmp_path):
    out = adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **FAST).path
    clf = tiny_clf(out, epochs=1).fit(POS + NEG, ["positive"] * 8 + ["negative"] * 8)
    clf.save(tmp_path / "prompt")
    PromptClassifier.load(tmp_path / "prompt")  # its own backbone: fine
    with pytest.raises(BackboneMismatchError):
        PromptClassifier.load(tmp_path / "prompt", model=str(tiny_dir))


def test_interrupted_run_resumes_bit_identically(tiny_dir, tmp_path):
    whole = adapt(TEXTS, tmp_path / "whole", model=str(tiny_dir), **FAST).path

    def stop_at_3(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapt(TEXTS, tmp_path / "resumed", model=str(tiny_dir), on_step=stop_at_3, **FAST)
    ckpt = tmp_path / ".resumed.adapt-checkpoint"
    assert json.loads((ckpt / "adapt_state.json").read_text("utf-8"))["step"] == 3
    assert not (tmp_path / "resumed").exists()  # the output is written once, complete
    result = adapt(TEXTS, tmp_path / "resumed", model=str(tiny_dir), **FAST)
    assert result.complete
    a, b = _weights(whole), _weights(result.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_time_box_returns_an_unfinished_result_to_continue(tiny_dir, tmp_path):
    res = adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), max_minutes=1e-9, **FAST)
    assert not res.complete and res.path is None and res.steps == 0
    assert (res.checkpoint_dir / "adapt_state.json").is_file()
    assert adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **FAST).complete


def test_a_checkpoint_of_another_run_is_refused(tiny_dir, tmp_path):
    def stop(step: int, loss: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), on_step=stop, **FAST)
    with pytest.raises(InputError, match=r"another adapt run .*texts_sha256"):
        adapt(TEXTS[:-3], tmp_path / "a", model=str(tiny_dir), **FAST)
    assert adapt(TEXTS[:-3], tmp_path / "a", model=str(tiny_dir), resume=False, **FAST).complete


def test_table_files_give_only_their_text_column(tmp_path):
    frame = pd.DataFrame({"text": ["first text", "second text"], "label": ["pos", "neg"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert read_texts(tmp_path / "d.csv") == ["first text", "second text"]
    (tmp_path / "d.txt").write_text("one\n\n two \n", encoding="utf-8")
    assert read_texts(tmp_path / "d.txt") == ["one", "two"]
    with pytest.raises(InputError, match="no column 'body'"):
        read_texts(tmp_path / "d.csv", text_column="body")


def test_datasets_dataset_is_read_by_column():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["a b", "c d"], "label": [0, 1]})
    assert read_texts(ds) == ["a b", "c d"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train": "top9"}, "has 2 layers"),
        ({"train": "middle"}, "train must be 'head'"),
        ({"learning_rate": float("inf")}, "learning_rate must be a number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a number"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_minutes": float("nan")}, "max_minutes"),
    ],
)
def test_bad_settings_are_named(tiny_dir, tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **{**FAST, **kwargs})


def test_an_existing_output_is_never_overwritten(tiny_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(InputError, match="already exists"):
        adapt(TEXTS, out, model=str(tiny_dir), **FAST)
    assert (out / "notes.txt").read_text("utf-8") == "keep me"


def test_a_model_object_is_copied_not_changed(tiny_model, tiny_dir, tmp_path):
    from pet_kit.model.backbone import load_backbone

    tok = load_backbone(str(tiny_dir), device="cpu").tokenizer
    tiny_model.name_or_path = str(tiny_dir)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    flags = [p.requires_grad for p in tiny_model.parameters()]
    adapt(TEXTS, tmp_path / "a", model=tiny_model, **FAST)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert flags == [p.requires_grad for p in tiny_model.parameters()]
    assert tok is not None


def test_masks_never_touch_special_tokens_and_cover_whole_words(tiny_tokenizer):
    from pet_kit.train.adapt import _chunks, _mask_batch

    chunks = _chunks(tiny_tokenizer, ["a great movie indeed", "bad boring film"], 16)
    gen = torch.Generator().manual_seed(0)
    batch = _mask_batch(chunks, tiny_tokenizer, gen, 0.5, whole_word=True)
    specials = set(tiny_tokenizer.all_special_ids)
    for row, chunk in enumerate(chunks):
        for j, tok in enumerate(chunk.ids):
            if tok in specials:
                assert batch["labels"][row, j] == -100
        masked_words = {
            chunk.words[j] for j in range(len(chunk.ids)) if batch["labels"][row, j] >= 0
        }
        for j, w in enumerate(chunk.words):  # a word is masked whole or not at all
            assert (batch["labels"][row, j] >= 0) == (w in masked_words and w >= 0)
    assert np.all((batch["labels"] >= 0).sum(1).numpy() >= 1)


def test_estimator_runs_on_the_adapted_folder_like_any_model(tiny_dir, tmp_path):
    out = adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), **FAST).path
    clf = PromptClassifier(pvp=SENTIMENT_PVP, model=str(out), device="cpu", verbose=0).fit(None)
    assert clf.predict_proba(["a great movie"]).shape == (1, 2)


def test_cli_adapts_a_text_file_and_continues_after_a_time_box(tiny_dir, tmp_path, capsys):
    from pet_kit.cli import main

    (tmp_path / "texts.txt").write_text("\n".join(TEXTS), encoding="utf-8")
    args = ["adapt", str(tmp_path / "texts.txt"), "--output", str(tmp_path / "m")]
    args += ["--model", str(tiny_dir), "--max-steps", "4", "--batch-size", "4"]
    args += ["--max-length", "16"]
    assert main([*args, "--max-minutes", "1e-9"]) == 0
    assert "run the same command again" in capsys.readouterr().out
    assert main(args) == 0
    assert "held-out MLM accuracy" in capsys.readouterr().out
    assert (tmp_path / "m" / ADAPT_FILE).is_file()
    assert main(args) == 1  # the output exists now: never overwritten
    assert "already holds an adapted model" in capsys.readouterr().err


def test_packing_fills_windows_without_mixing_words(tiny_tokenizer):
    from pet_kit.train.adapt import _chunks

    texts = ["a great movie", "bad boring film", "i love this book", "awful acting"]
    plain = _chunks(tiny_tokenizer, texts, 16)
    packed = _chunks(tiny_tokenizer, texts, 16, pack=True)
    assert len(packed) < len(plain) and all(len(c.ids) <= 16 for c in packed)
    sep = tiny_tokenizer.sep_token_id
    inner = [t for c in packed for t in c.ids[1:-1] if t != sep]
    assert inner == [t for c in plain for t in c.ids[1:-1]]  # every token, in order
    # within a window, one text's words never share an index with another's
    n_words = sum(len({w for w in c.words if w >= 0}) for c in plain)
    assert sum(len({w for w in c.words if w >= 0}) for c in packed) == n_words


def test_packed_run_trains_and_records_the_setting(tiny_dir, tmp_path):
    res = adapt(TEXTS, tmp_path / "p", model=str(tiny_dir), pack=True, **FAST)
    info = json.loads((res.path / ADAPT_FILE).read_text("utf-8"))
    assert info["settings"]["pack"] is True


def test_checkpoint_files_follow_the_umask(tiny_dir, tmp_path):
    import os

    def stop(step: int, loss: float) -> None:
        raise KeyboardInterrupt

    old = os.umask(0o022)
    try:
        with pytest.raises(KeyboardInterrupt):
            adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), on_step=stop, **FAST)
    finally:
        os.umask(old)
    ckpt = tmp_path / ".a.adapt-checkpoint"
    tensors = json.loads((ckpt / "adapt_state.json").read_text("utf-8"))["tensors_file"]
    for name in ("adapt_state.json", tensors):
        assert (ckpt / name).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["adapt_state.json", tensors])


def test_an_output_appearing_during_the_run_is_kept_and_the_training_too(tiny_dir, tmp_path):
    out = tmp_path / "m"

    def squat(step: int, loss: float) -> None:
        if step == FAST["max_steps"]:
            out.mkdir()
            (out / "theirs.txt").write_text("keep", encoding="utf-8")

    with pytest.raises(InputError, match="appeared while adapting"):
        adapt(TEXTS, out, model=str(tiny_dir), on_step=squat, **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["theirs.txt"]
    ckpt = tmp_path / ".m.adapt-checkpoint"
    assert json.loads((ckpt / "adapt_state.json").read_text("utf-8"))["step"] == FAST["max_steps"]
    res = adapt(TEXTS, tmp_path / "m2", model=str(tiny_dir), checkpoint_dir=ckpt, **FAST)
    assert res.complete and res.steps == FAST["max_steps"] and not ckpt.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_snapshot_writes_an_unfinished_run_and_leaves_it_to_continue(tiny_dir, tmp_path):
    def stop_at_4(step: int, loss: float) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), on_step=stop_at_4, **FAST)
    ckpt = tmp_path / ".out.adapt-checkpoint"
    tensor_file = ckpt / json.loads((ckpt / "adapt_state.json").read_text("utf-8"))["tensors_file"]
    state = tensor_file.read_bytes()
    snap = snapshot(TEXTS, tmp_path / "snap", checkpoint_dir=ckpt, model=str(tiny_dir))
    assert snap.steps == 4 and not snap.complete and snap.path == tmp_path / "snap"
    info = json.loads((snap.path / ADAPT_FILE).read_text("utf-8"))
    assert info["snapshot"] is True and info["steps"] == 4
    assert info["heldout_after"] == snap.heldout_after and snap.heldout_after["masked_tokens"] > 0
    trained = load_file(str(tensor_file))
    weights = _weights(snap.path)
    for key, value in trained.items():  # the checkpoint's trained values, nothing else
        if key.startswith("param."):
            name = key.removeprefix("param.")
            assert torch.equal(weights[name], value), name
    assert tensor_file.read_bytes() == state  # only read
    whole = adapt(TEXTS, tmp_path / "whole", model=str(tiny_dir), **FAST).path
    done = adapt(TEXTS, tmp_path / "out", model=str(tiny_dir), **FAST)
    a, b = _weights(whole), _weights(done.path)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the run went on as if never snapshotted
    clf = PromptClassifier(pvp=SENTIMENT_PVP, model=str(snap.path), verbose=0).fit(None)
    assert clf.predict(["good"]).shape == (1,)


def test_snapshot_refuses_other_texts_and_a_missing_checkpoint(tiny_dir, tmp_path):
    with pytest.raises(InputError, match="no adapt checkpoint"):
        snapshot(TEXTS, tmp_path / "s", checkpoint_dir=tmp_path / "none", model=str(tiny_dir))
    adapt(TEXTS, tmp_path / "a", model=str(tiny_dir), max_minutes=1e-9, **FAST)
    with pytest.raises(InputError, match="another adapt run"):
        snapshot(
            TEXTS[:-3],
            tmp_path / "s",
            checkpoint_dir=tmp_path / ".a.adapt-checkpoint",
            model=str(tiny_dir),
        )
