"""scripts/default_backbone/candidate_delta.py: a candidate packed as the tensors it changed
unpacks, bit for bit, onto the same base and is refused on another; nothing is replaced."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import backbone_scripts


@pytest.fixture()
def delta():
    with backbone_scripts("distill_cloze", "candidate_delta") as loaded:
        yield loaded["candidate_delta"]


def _model(folder: Path, seed: int, touch: tuple[str, ...] = ()) -> dict:
    """A tiny MPNet masked LM saved as a model folder (with a stand-in tokenizer file); the
    ``touch`` tensors are changed as training would change them."""
    import torch
    from transformers import MPNetConfig, MPNetForMaskedLM

    torch.manual_seed(seed)
    cfg = MPNetConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    model = MPNetForMaskedLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in touch:
                p.add_(0.5)
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_text('{"stand-in": true}', encoding="utf-8")
    if touch:
        (folder / "pet_kit_provenance.json").write_text('{"seed": 3}', encoding="utf-8")
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


TRAINED = ("mpnet.encoder.layer.1.output.dense.weight", "lm_head.dense.weight", "lm_head.bias")


def test_a_packed_candidate_keeps_only_what_changed_and_unpacks_bit_for_bit(delta, tmp_path):
    import torch

    base = tmp_path / "base"
    _model(base, seed=0)
    state = _model(tmp_path / "cand", seed=0, touch=TRAINED)
    packed = delta.pack(tmp_path / "cand", base, tmp_path / "cand.safetensors")
    assert packed == sorted(TRAINED)
    delta.unpack(tmp_path / "cand.safetensors", base, tmp_path / "again")
    from safetensors.torch import load_file

    back = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert sorted(back) == sorted(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert (tmp_path / "again" / "tokenizer.json").read_text() == '{"stand-in": true}'
    prov = json.loads((tmp_path / "again" / "pet_kit_provenance.json").read_text())
    assert prov == {"seed": 3, "unpacked_from": str(tmp_path / "cand.safetensors")}
    from transformers import MPNetForMaskedLM

    MPNetForMaskedLM.from_pretrained(str(tmp_path / "again"))  # a regular model folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "base", "cand",
                                                          "cand.safetensors"]  # fmt: skip


def test_another_base_is_refused_naming_the_tensor_and_nothing_is_written(delta, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    base = tmp_path / "base"
    _model(base, seed=0)
    _model(tmp_path / "cand", seed=0, touch=TRAINED)
    delta.pack(tmp_path / "cand", base, tmp_path / "cand.safetensors")
    other = tmp_path / "other"
    _model(other, seed=0)
    state = load_file(str(other / "model.safetensors"))
    state["mpnet.embeddings.word_embeddings.weight"] += torch.finfo(torch.float32).eps
    save_file(state, str(other / "model.safetensors"), metadata={"format": "pt"})
    shutil.rmtree(tmp_path / "cand")  # packed on another machine: only the file is here
    first = (
        r"in 1 of the \d+ tensors it gives \(first: mpnet\.embeddings\.word_embeddings\.weight\)"
    )
    with pytest.raises(SystemExit, match=first):
        delta.unpack(tmp_path / "cand.safetensors", other, tmp_path / "again")
    assert not (tmp_path / "again").exists()
    assert not list(tmp_path.glob(".again*"))
    with pytest.raises(SystemExit, match="hold different tensors"):  # another architecture
        _model(tmp_path / "small", seed=0)
        state = load_file(str(tmp_path / "small" / "model.safetensors"))
        state.pop("lm_head.bias")
        save_file(state, str(tmp_path / "small" / "model.safetensors"), metadata={"format": "pt"})
        delta.pack(tmp_path / "small", base, tmp_path / "small.safetensors")


def test_existing_files_and_folders_are_never_replaced(delta, tmp_path):
    base = tmp_path / "base"
    _model(base, seed=0)
    _model(tmp_path / "cand", seed=0, touch=TRAINED)
    mine = tmp_path / "mine.safetensors"
    mine.write_text("the user's own file", encoding="utf-8")
    with pytest.raises(SystemExit, match="exists"):
        delta.pack(tmp_path / "cand", base, mine)
    assert mine.read_text(encoding="utf-8") == "the user's own file"
    delta.pack(tmp_path / "cand", base, tmp_path / "cand.safetensors")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(SystemExit, match="exists"):
        delta.unpack(tmp_path / "cand.safetensors", base, folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")  # a dangling link is the user's too
    with pytest.raises(SystemExit, match="exists"):
        delta.unpack(tmp_path / "cand.safetensors", base, link)
    with pytest.raises(SystemExit, match="exists"):
        delta.pack(tmp_path / "cand", base, link)
    assert link.is_symlink() and not (tmp_path / "gone").exists()
    with pytest.raises(
        SystemExit, match=re.escape("not a file written by candidate_delta.py pack")
    ):
        delta.unpack(base / "model.safetensors", base, tmp_path / "x")
    with pytest.raises(SystemExit, match=re.escape("no model.safetensors there")):
        delta.pack(tmp_path / "nowhere", base, tmp_path / "n.safetensors")
