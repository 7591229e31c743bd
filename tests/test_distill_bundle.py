"""scripts/default_backbone/distill_bundle.py: the compressed teacher keeps the teacher's
candidate distribution, a run fed from a bundle trains, and what a device sends back becomes
a run folder that `distill_cloze.py evaluate` reads."""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from pathlib import Path

import pytest
from conftest import backbone_scripts


@pytest.fixture()
def bundle_mod():
    with backbone_scripts("distill_cloze", "distill_bundle") as loaded:
        yield loaded["distill_bundle"]


def test_int8_rows_round_trip_within_half_a_step(bundle_mod):
    import torch

    x = torch.randn(50, 12) * torch.linspace(0.01, 10, 50).unsqueeze(1)
    q, scale = bundle_mod.quantise(x)
    assert q.dtype == torch.int8 and scale.shape == (50, 1)
    err = (bundle_mod.dequantise(q, scale) - x).abs()
    assert bool((err <= scale.float() * 0.51 + 1e-3 * x.abs()).all())


def test_fidelity_is_perfect_for_the_exact_teacher_and_drops_for_a_wrong_one(bundle_mod):
    import torch

    g = torch.Generator().manual_seed(0)
    fill = torch.nn.functional.normalize(torch.randn(3, 40, 8, generator=g), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=-1)
    same = bundle_mod.teacher_fidelity(fill, text, fill, text, tau=0.05, n=30)
    assert same["kl"] == pytest.approx(0.0, abs=1e-5) and same["top10_overlap"] == 1.0
    wrong = bundle_mod.teacher_fidelity(fill, text, fill, -text, tau=0.05, n=30)
    assert wrong["kl"] > 1.0 and wrong["top10_overlap"] < 0.5


def test_the_source_field_leaves_existing_run_keys_unchanged(bundle_mod):
    dc = sys.modules["distill_cloze"]
    assert dc.Config().key() == dc.Config(source="prepared").key()
    assert dc.Config().key() != dc.Config(source="bundle:abc").key()


def _bundle(root: Path, tok, tiny_dir: Path) -> Path:
    import shutil

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForMaskedLM

    b = root / "bundle"
    (b / "student").mkdir(parents=True)
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_dir))
    state = {k: v.half().contiguous() for k, v in model.state_dict().items()
             if k != "cls.predictions.decoder.weight"}  # fmt: skip
    save_file(state, str(b / "student" / "model.safetensors"))
    for f in tiny_dir.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copyfile(f, b / "student" / f.name)
    texts = [f"a great movie and a good film number {i} with bad music" for i in range(12)]
    for name, lines in (("texts.txt.xz", texts), ("mlm_units.txt.xz", texts)):
        (b / name).write_bytes(lzma.compress("\n".join(lines).encode()))
    vocab = tok.get_vocab()
    words = [w for w in ("great", "good", "bad", "terrible", "movie", "film") if w in vocab]
    g = torch.Generator().manual_seed(0)
    q = {}
    for name, shape in (("single", (2, len(words), 4)), ("multi", (2, 1, 4)), ("text", (8, 4))):
        q[f"{name}_q"], q[f"{name}_s"] = sys.modules["distill_bundle"].quantise(
            torch.randn(*shape, generator=g)
        )
    save_file(q, str(b / "teacher.safetensors"))
    patterns = ["{text} It was [MASK].", "[MASK]: {text}"]
    info = {"teacher": "mpnet", "words": words, "multi_words": ["fantastic"], "id": "t0",
            "patterns": patterns, "start": "original"}  # fmt: skip
    (b / "manifest.json").write_text(json.dumps(info), encoding="utf-8")
    return b


def test_a_bundle_run_trains_and_comes_home_as_an_evaluable_run(bundle_mod, tmp_path, tiny_dir):
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer

    dc = sys.modules["distill_cloze"]
    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    b = _bundle(tmp_path, tok, tiny_dir)
    signal = bundle_mod.BundleSignal(b)
    assert len(signal.texts) == 8  # only the texts the teacher embedded
    model, tok = bundle_mod.load_student(b)
    cfg = dc.Config(teacher="mpnet", source="bundle:t0", train_layers=1, max_steps=3,
                    texts_per_step=2, patterns_per_text=2, multi_per_step=2, mlm_per_step=2,
                    mlm_length=16, max_length=32, warmup_steps=1)  # fmt: skip
    args = argparse.Namespace(run=tmp_path / "run", mlm_units=100, device="cpu")
    run = dc.Run(args, cfg, student=(model, tok), signal=signal)
    before = {n: p.detach().clone() for n, p in run.params.items()}
    run.train(None, checkpoint_every=100)
    assert run.step == 3
    assert any(not torch.equal(before[n], p) for n, p in run.params.items())
    # what a device would send back, imported next to a prepared run
    out = tmp_path / "out"
    out.mkdir()
    from safetensors.torch import save_file

    save_file({n: p.detach().half().contiguous() for n, p in run.params.items()},
              str(out / "v-0.safetensors"))  # fmt: skip
    meta = {"name": "v", "step": 3, "seconds": 1.0, "config": dc.asdict(cfg),
            "config_key": cfg.key(), "history": [], "pace_s_per_step": 0.1, "device": "cpu",
            "bundle": {"id": "t0"}}  # fmt: skip
    (out / "v.json").write_text(json.dumps(meta), encoding="utf-8")
    main_run = tmp_path / "main"
    (main_run / "prepared").mkdir(parents=True)
    (main_run / "prepared" / "heldout.txt").write_text("x\n", encoding="utf-8")
    (main_run / "prepared" / "manifest.json").write_text('{"teacher": "mpnet"}', encoding="utf-8")
    bundle_mod.main(["--run", str(main_run), "import", "--src", str(out), "--name", "v",
                     "--dest", str(tmp_path / "gpu")])  # fmt: skip
    ckpt = tmp_path / "gpu" / "v" / dc.CHECKPOINT
    with safe_open(str(ckpt), framework="pt") as fh:
        state = json.loads(fh.metadata()["state"])
        assert state["step"] == 3 and state["config_key"] == cfg.key()
        for n, p in run.params.items():
            torch.testing.assert_close(fh.get_tensor(f"p.{n}"), p.detach().half().float())
    info = json.loads((tmp_path / "gpu" / "v" / "prepared" / "manifest.json").read_text())
    assert info["teacher"] == "mpnet" and info["bundle"] == {"id": "t0"}


def test_correlation_is_pearson_and_ignores_scale_and_shift(bundle_mod):
    import numpy as np
    import torch

    dc = sys.modules["distill_cloze"]
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 30, generator=g), torch.randn(4, 30, generator=g)
    r = dc.correlation(a, b, dim=1)
    expected = [np.corrcoef(a[i].numpy(), b[i].numpy())[0, 1] for i in range(4)]
    np.testing.assert_allclose(r.numpy(), expected, atol=1e-5)
    torch.testing.assert_close(dc.correlation(3 * a + 7, b, dim=1), r)
    torch.testing.assert_close(dc.correlation(a, a, dim=0), torch.ones(30))


def test_the_added_loss_settings_leave_existing_run_keys_unchanged(bundle_mod):
    dc = sys.modules["distill_cloze"]
    base = dc.Config().key()
    assert dc.Config(weight_shape=0.0, weight_across=0.0, shape_top=0).key() == base
    changed = [dc.Config(weight_shape=1.0), dc.Config(weight_across=1.0), dc.Config(shape_top=8)]
    assert len({c.key() for c in changed} | {base}) == 4


def _tiny_run(bundle_mod, tmp_path, tiny_dir, signal=None, **settings):
    from transformers import AutoTokenizer

    dc = sys.modules["distill_cloze"]
    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    b = _bundle(tmp_path, tok, tiny_dir)
    signal = signal(b) if signal else bundle_mod.BundleSignal(b)
    cfg = dc.Config(teacher="mpnet", source="bundle:t0", train_layers=1, max_steps=2,
                    texts_per_step=2, patterns_per_text=2, multi_per_step=2, mlm_per_step=2,
                    mlm_length=16, max_length=32, warmup_steps=1, **settings)  # fmt: skip
    args = argparse.Namespace(run=tmp_path / "run", mlm_units=100, device="cpu")
    return dc.Run(args, cfg, student=bundle_mod.load_student(b), signal=signal), b


def test_shape_and_across_losses_join_the_total_and_train(bundle_mod, tmp_path, tiny_dir):
    import torch

    run, _ = _tiny_run(bundle_mod, tmp_path, tiny_dir, weight_shape=1.0, weight_across=0.5,
                       shape_top=3)  # fmt: skip
    assert run.plausible.shape == (2, 3)  # per pattern, the teacher's likeliest candidates
    parts = run.losses(0)
    assert {"shape", "across"} <= set(parts)
    for k in ("shape", "across"):
        assert 0.0 <= float(parts[k].detach()) <= 2.0  # 1 - a correlation
    no_extra = {k: v for k, v in parts.items() if k not in ("shape", "across")}
    expected = run.total(no_extra) + parts["shape"] + 0.5 * parts["across"]
    torch.testing.assert_close(run.total(parts), expected)
    run.train(None, checkpoint_every=100)
    assert run.step == 2 and all(k in run.history[-1] for k in ("shape", "across"))


def test_extra_texts_join_the_mix_with_their_own_embeddings(bundle_mod, tmp_path, tiny_dir):
    import numpy as np
    import torch

    extra = tmp_path / "extra"
    (extra / "emb").mkdir(parents=True)
    emb = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float16)
    np.save(extra / "emb" / "0000000.npy", emb)
    (extra / "texts.txt").write_text("one fine day\nso bad a film\nquite good\n", encoding="utf-8")
    (extra / "manifest.json").write_text('{"teacher": "mpnet"}', encoding="utf-8")
    run, b = _tiny_run(bundle_mod, tmp_path, tiny_dir, signal=lambda b: bundle_mod.ExtraSignal(
        bundle_mod.BundleSignal(b), extra, 2))  # fmt: skip
    base = bundle_mod.BundleSignal(b)
    assert run.texts == base.texts + ["one fine day", "so bad a film", "quite good"] * 2
    n = len(base.texts)
    got = run.signal.embed([0, n + 1, n + 4], [run.texts[0], run.texts[n + 1], run.texts[n + 4]])
    torch.testing.assert_close(got[0], base.embed([0], [run.texts[0]])[0].float())
    torch.testing.assert_close(got[1], torch.from_numpy(emb[1]).float())
    torch.testing.assert_close(got[2], got[1])  # the second copy of the same text
    assert run.info["extra"]["repeat"] == 2 and run.info["extra"]["encoded"] == 3
    run.train(None, checkpoint_every=100)
    assert run.step == 2


def test_a_later_stage_starts_from_an_earlier_runs_checkpoint(bundle_mod, tmp_path, tiny_dir):
    import torch

    first, b = _tiny_run(bundle_mod, tmp_path, tiny_dir)
    first.train(None, checkpoint_every=100)
    model, _ = bundle_mod.load_student(b)
    info = bundle_mod.continue_from(model, tmp_path / "run")
    assert info["step"] == 2 and info["tensors"] == len(first.params)
    params = dict(model.named_parameters())
    for n, p in first.params.items():
        torch.testing.assert_close(params[n], p.detach())
    from safetensors.torch import save_file

    dc = sys.modules["distill_cloze"]
    other = tmp_path / "other"
    other.mkdir()
    save_file({"p.not.a.tensor": torch.zeros(1)}, str(other / dc.CHECKPOINT),
              metadata={"state": json.dumps({"step": 1, "config": {}})})  # fmt: skip
    with pytest.raises(SystemExit, match=r"not\.a\.tensor is not a tensor of the student"):
        bundle_mod.continue_from(model, other)
