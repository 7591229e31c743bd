"""scripts/default_backbone/mpnet_head.py on a tiny random MPNet: the cache resumes to the
same files, training changes the head and nothing of the packaged encoder, and an existing
model folder is refused before any training; a head screened on the cached evaluation states
scores what running the model scores."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from conftest import backbone_scripts

WORDS = ["great", "good", "bad", "terrible", "movie", "film"]
PATTERNS = ["{text} It was [MASK].", "[MASK]: {text}", "This is about [MASK]. {text}"]
# words of the tiny vocabulary only: MPNet reads token id 1 as padding, the tiny [UNK] is 1
EVAL_TEXTS = ["a great movie", "a bad film", "good music and a great film", "a terrible movie"]


@pytest.fixture()
def head_mod():
    with backbone_scripts("distill_cloze", "distill_bundle", "mpnet_head") as loaded:
        yield loaded["mpnet_head"]


@pytest.fixture()
def setting(head_mod, tmp_path, tiny_dir, monkeypatch):
    """A packaged tiny MPNet encoder (sentence-transformers keys, no MLM head) and a
    prepared run with its teacher embeddings, as distill_cloze/distill_bundle write them."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32,
                      max_position_embeddings=160, pad_token_id=tok.pad_token_id)  # fmt: skip
    teacher = tmp_path / "all-mpnet-base-v2"
    MPNetModel(cfg).save_pretrained(teacher)
    tok.save_pretrained(teacher)
    monkeypatch.setattr(sys.modules["distill_cloze"], "teacher_path", lambda name: teacher)

    run = tmp_path / "run"
    prep = run / "prepared"
    prep.mkdir(parents=True)
    n_texts, dim = 24, 8
    texts = [f"a great movie number {i} and a bad film with good music" for i in range(n_texts)]
    (prep / "texts.txt").write_text("\n".join(texts), encoding="utf-8")
    (prep / "mlm_units.txt").write_text("\n".join(texts * 4), encoding="utf-8")
    (prep / "heldout.txt").write_text("\n".join(EVAL_TEXTS * 3), encoding="utf-8")
    info = {"teacher": "mpnet", "words": WORDS, "seed": 0, "patterns": PATTERNS,
            "patterns_sha256": "test"}  # fmt: skip
    (prep / "manifest.json").write_text(json.dumps(info), encoding="utf-8")
    g = torch.Generator().manual_seed(1)
    fills = torch.randn(len(PATTERNS), len(WORDS), dim, generator=g)
    fills = torch.nn.functional.normalize(fills, dim=-1)
    save_file({"single": fills}, str(prep / "fills-mpnet.safetensors"))
    emb = run / "bundle-src" / "text-emb-mpnet"
    emb.mkdir(parents=True)
    np.save(emb / "0000000.npy", np.random.default_rng(2).normal(size=(n_texts, dim)).astype("f4"))
    return {"run": run, "out": tmp_path / "candidate", "teacher": teacher}


def _top_args(setting, models, *train: str) -> list[str]:
    """``mpnet_top.py`` arguments: two epochs of ``train`` on the tiny setting."""
    return ["--run", str(setting["run"]), "--out", str(setting["out"]), "--models",
            str(models), "--threads", "1", "--texts", "24", "--epochs", "2", "train",
            "--mlm-batch", "8", *train]  # fmt: skip


def _args(setting, *command: str) -> list[str]:
    return ["--run", str(setting["run"]), "--out", str(setting["out"]), "--threads", "1",
            "--texts", "24", "--mlm-windows", "6", "--epochs", "2", *command]  # fmt: skip


def test_the_cache_resumes_to_the_same_files(head_mod, setting):
    import torch

    assert head_mod.main(_args(setting, "cache")) == 0
    states = setting["out"] / "states-24"
    first = {p.name: torch.load(p) for p in sorted(states.glob("*.pt"))}
    assert len(first) == 1 and next(iter(first.values())).shape == (48, 16)  # 2 pairs a text
    mlm = sorted((setting["out"] / "mlm").glob("*.pt"))
    assert len(mlm) == 1
    h, y = torch.load(mlm[0])
    assert len(h) == len(y) > 0 and bool((y >= 0).all())
    # an interrupted cache is completed, not redone: remove a file, run again
    (states / "0000000.pt").unlink()
    assert head_mod.main(_args(setting, "cache", "--max-minutes", "1e-9")) == 0  # time box over
    assert not (states / "0000000.pt").exists()
    assert head_mod.main(_args(setting, "cache")) == 0
    again = {p.name: torch.load(p) for p in sorted(states.glob("*.pt"))}
    assert again.keys() == first.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not list(states.glob("*.tmp"))


def test_training_changes_the_head_only_and_refuses_an_existing_model(head_mod, setting):
    import torch
    from safetensors.torch import load_file

    assert head_mod.main(_args(setting, "cache")) == 0
    assert head_mod.main(_args(setting, "train")) == 0
    model = setting["out"] / "model-2"
    prov = json.loads((model / "pet_kit_provenance.json").read_text(encoding="utf-8"))
    assert prov["epochs"] == 2 and len(prov["history"]) == 2
    assert prov["candidates"] == sum(
        1 for w in WORDS if len(_tok(setting)(w, add_special_tokens=False)["input_ids"]) == 1
    )
    packaged = load_file(str(setting["teacher"] / "model.safetensors"))
    trained = load_file(str(model / "model.safetensors"))
    base = load_file(str(setting["out"] / "base" / "model.safetensors"))
    for k, v in packaged.items():
        if not k.startswith("pooler."):
            assert torch.equal(trained[f"mpnet.{k}"], v), k  # the encoder as packaged
    assert not torch.equal(trained["lm_head.dense.weight"], base["lm_head.dense.weight"])
    # a second run with the same epochs would replace the model: refused, nothing trained
    stamp = (model / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(SystemExit, match="exists"):
        head_mod.main(_args(setting, "train"))
    assert (model / "model.safetensors").stat().st_mtime_ns == stamp
    # another variant goes to a folder of its own, on the same cached states
    variant = setting["out"].parent / "variant"
    args = _args(
        setting, "--models", str(variant), "train", "--mlm-batch", "8", "--weight-mlm", ".3"
    )
    assert head_mod.main(args) == 0
    prov = json.loads((variant / "model-2" / "pet_kit_provenance.json").read_text("utf-8"))
    assert prov["mlm_batch"] == 8
    assert "(8 a step, MLM loss × 0.3)" in head_mod.describe(prov)


def _tok(setting):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(setting["teacher"]))


def test_a_run_prepared_for_another_teacher_is_refused(head_mod, setting):
    prep = setting["run"] / "prepared" / "manifest.json"
    info = json.loads(prep.read_text(encoding="utf-8"))
    prep.write_text(json.dumps({**info, "teacher": "minilm"}), encoding="utf-8")
    with pytest.raises(SystemExit, match="minilm, not mpnet"):
        head_mod.main(_args(setting, "cache"))


def test_an_mlm_cache_file_does_not_depend_on_the_sample_size(head_mod, setting):
    """A larger --mlm-windows later extends the cache: the files a smaller one wrote hold
    exactly what the larger one would have written (no short last file left inside it)."""
    import shutil

    import torch

    def mlm_file(windows: str) -> tuple:
        shutil.rmtree(setting["out"] / "mlm", ignore_errors=True)
        args = _args(setting, "cache")
        args[args.index("--mlm-windows") + 1] = windows
        assert head_mod.main(args) == 0
        return torch.load(setting["out"] / "mlm" / "0000000.pt")

    (h2, y2), (h5, y5) = mlm_file("2"), mlm_file("5")
    assert torch.equal(h2, h5) and torch.equal(y2, y5)


EVAL_LABELS = ["positive", "negative", "positive", "negative"]
EVAL_VERBALIZER = {"positive": ["great", "good"], "negative": ["bad", "terrible"]}
EVAL_PVP = {"pattern": "{text} It was [MASK].", "verbalizer": EVAL_VERBALIZER}
EVAL_TASK = "rotten_tomatoes#it_was"


@pytest.fixture()
def small_eval(head_mod, monkeypatch):
    """Evaluation sets, fact probes and report probes of the tiny vocabulary."""
    dc = sys.modules["distill_cloze"]
    sets = [(EVAL_TASK, EVAL_PVP, EVAL_TEXTS, EVAL_LABELS),
            ("dev", EVAL_PVP, EVAL_TEXTS[::-1], EVAL_LABELS)]  # fmt: skip
    monkeypatch.setattr(head_mod, "eval_sets", lambda: sets)
    monkeypatch.setattr(dc, "FACT_PROBES", {"a great [MASK] .": ["movie"]})
    monkeypatch.setattr(dc, "SHOW_PROBES", ("a great [MASK] .", "a [MASK] film ."))


def _ran_like_screened(head_mod, setting, model_dir, screen) -> None:
    """What ``screen`` (a :class:`Screen`) measures of the head in ``model_dir`` — class
    probabilities of the gate set, accuracies, held-out MLM, fill-mask — is what running
    that model gives."""
    from transformers import AutoTokenizer, MPNetForMaskedLM

    from pet_kit import PromptClassifier

    dc = sys.modules["distill_cloze"]
    model = MPNetForMaskedLM.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    parts = head_mod.head_fn(model)
    got = screen.measure(*parts)
    proba = screen.class_scores(EVAL_TASK, *parts).softmax(-1).numpy()
    clf = PromptClassifier(pvp=EVAL_PVP, model=str(model_dir), verbose=0).fit(None)
    assert proba == pytest.approx(clf.predict_proba(EVAL_TEXTS), abs=1e-4)
    assert got["gates"][EVAL_TASK] == round(clf.score(EVAL_TEXTS, EVAL_LABELS), 4)
    assert got["dev"]["dev"] == round(clf.score(EVAL_TEXTS[::-1], EVAL_LABELS), 4)
    heldout = (setting["run"] / "prepared" / "heldout.txt").read_text("utf-8").splitlines()
    ran = dc.heldout_mlm(model, tok, heldout)
    assert got["heldout_mlm"] == {"accuracy": ran["accuracy"], "tokens": ran["tokens"]}
    assert got["fill_mask_top5"] == dc.fill_mask(model, tok, dc.SHOW_PROBES)
    assert len(got["fill_mask_top5"]) == 2


def test_a_screened_head_scores_what_running_the_model_scores(head_mod, setting, small_eval):
    """``cache-eval`` + :class:`Screen` give the numbers of running the model: zero-shot
    accuracy through pet_kit, held-out MLM accuracy and fill-mask top 5 of distill_cloze."""
    from transformers import AutoTokenizer

    assert head_mod.main(_args(setting, "cache")) == 0
    with pytest.raises(SystemExit, match="run `cache-eval` first"):
        head_mod.Screen(setting["out"] / head_mod.EVAL_STATES, None)
    assert head_mod.main(_args(setting, "cache-eval")) == 0
    assert head_mod.main(_args(setting, "train", "--screen-every", "1")) == 0
    model_dir = setting["out"] / "model-2"
    prov = json.loads((model_dir / "pet_kit_provenance.json").read_text(encoding="utf-8"))
    assert set(prov["history"][-1]["dev"]) == {"dev"} and "heldout_mlm" in prov["history"][0]

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    screen = head_mod.Screen(setting["out"] / head_mod.EVAL_STATES, tok)
    _ran_like_screened(head_mod, setting, model_dir, screen)


def test_the_offset_term_sees_a_word_biased_across_texts_only(head_mod):
    """A student equal to the teacher up to each text's scale and shift has no offset error;
    one word raised in every text of one pattern has; per-text noise around the right
    offsets averages out over a pattern's texts."""
    import torch

    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(64, 50, generator=g)
    patterns = torch.arange(64) % 4
    affine = 3.0 * teacher + torch.randn(64, 1, generator=g)
    assert float(head_mod.offset_loss(affine, teacher, patterns)) < 1e-8
    biased = affine.clone()
    biased[patterns == 2, 7] += 6.0  # word 7 up in every text of pattern 2
    assert float(head_mod.offset_loss(biased, teacher, patterns)) > 1e-3
    noisy = teacher + 0.5 * torch.randn(64, 50, generator=g)
    biased_noise = noisy.clone()
    biased_noise[:, 7] += 2.0  # the same size of error, now systematic
    assert head_mod.offset_loss(noisy, teacher, patterns) * 3 < head_mod.offset_loss(
        biased_noise, teacher, patterns
    )


def test_the_running_offset_follows_the_bias_not_one_batchs_texts(head_mod):
    """Its first batch is the plain offset term (value and gradient); over batches of a few
    noisy texts each, its gradient points along the word's bias across texts far more
    closely than the plain term's does; a decay outside (0, 1) is refused."""
    import torch

    g = torch.Generator().manual_seed(0)
    patterns = torch.arange(8) % 2  # four texts a pattern a batch
    bias = torch.zeros(2, 50)
    bias[1, 7] = 1.0  # word 7 up in every text of pattern 1
    running = head_mod.RunningOffset(2, 50, beta=0.9)

    def batch() -> tuple:
        teacher = torch.randn(8, 50, generator=g)
        noise = 1.5 * torch.randn(8, 50, generator=g)
        student = (teacher + noise + bias[patterns]).requires_grad_(True)
        return student, teacher

    student, teacher = batch()
    first = running(student, teacher, patterns)
    (grad_first,) = torch.autograd.grad(first, student)
    plain = head_mod.offset_loss(student, teacher, patterns)
    (grad_plain,) = torch.autograd.grad(plain, student)
    assert float(first.detach()) == pytest.approx(float(plain.detach()), rel=1e-5)
    assert torch.allclose(grad_first, grad_plain, atol=1e-6)

    def along_bias(grad: torch.Tensor) -> float:
        # the gradient summed over the batch's texts of pattern 1: a direction over words
        return float(torch.nn.functional.cosine_similarity(grad[patterns == 1].sum(0),
                                                           bias[1], dim=0))  # fmt: skip

    for _ in range(60):
        student, teacher = batch()
        loss = running(student, teacher, patterns)
    (grad_running,) = torch.autograd.grad(loss, student)
    (grad_plain,) = torch.autograd.grad(head_mod.offset_loss(student, teacher, patterns), student)
    assert along_bias(grad_running) > 0.5 > 2 * along_bias(grad_plain)
    for beta in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            head_mod.RunningOffset(2, 50, beta=beta)


@pytest.fixture()
def top_mod(head_mod):
    with backbone_scripts("mpnet_top") as loaded:
        yield loaded["mpnet_top"]


def test_the_top_layer_at_some_positions_is_the_layer_there(top_mod):
    """:func:`mpnet_top.top_at` (keys and values everywhere, the rest at asked positions)
    equals the encoder's own forward at those positions, padding and position bias included."""
    import torch
    from transformers import MPNetConfig, MPNetForMaskedLM

    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=160)  # fmt: skip
    model = MPNetForMaskedLM(cfg).eval()
    ids = torch.randint(5, 50, (3, 40))
    att = torch.ones_like(ids)
    att[1, 25:] = 0  # a padded row, and a row long enough for the far position buckets
    ids[1, 25:] = cfg.pad_token_id
    with torch.no_grad():
        out = model.mpnet(input_ids=ids, attention_mask=att, output_hidden_states=True)
        rows, pos = torch.tensor([0, 1, 1, 2, 2]), torch.tensor([0, 3, 24, 39, 17])
        got = top_mod.top_at(model, out.hidden_states[-2], att, rows, pos)
    assert got == pytest.approx(out.last_hidden_state[rows, pos], abs=1e-5)


def test_top_training_changes_the_top_layer_and_head_only(head_mod, top_mod, setting):
    import torch
    from safetensors.torch import load_file

    assert head_mod.main(_args(setting, "cache", "--top")) == 0
    top = setting["out"] / "top"
    assert len(list((top / "states-24").glob("*.pt"))) == 1 and list((top / "mlm").glob("*.pt"))
    # top inputs missing beside cached states (a cache made before --top) are completed
    pair_file = top / "states-24" / "0000000.pt"
    first = torch.load(pair_file)
    pair_file.unlink()
    assert head_mod.main(_args(setting, "cache", "--top")) == 0
    assert torch.equal(torch.load(pair_file)["h"], first["h"])
    models = setting["out"].parent / "top-variant"
    args = _top_args(setting, models, "--lr-layer", "0.01", "--weight-offset", "1")
    assert top_mod.main(args) == 0
    model = models / "model-2"
    prov = json.loads((model / "pet_kit_provenance.json").read_text(encoding="utf-8"))
    assert prov["top_layer"] and [h["epoch"] for h in prov["history"]] == [0, 1, 2]
    assert prov["init_top_layer"] is False  # no --init: a new head on the packaged encoder
    assert 0 <= prov["history"][-1]["held_mlm"] <= 1 and prov["mlm_held_windows"] >= 1
    assert prov["history"][-1]["train_hold"] > 0  # the layer moved off the packaged one
    assert prov["losses"]["offset"] == 1 and prov["history"][-1]["val_offset"] > 0
    assert "(top layer and head trained)" in head_mod.describe(prov)
    assert "offset term × 1" in head_mod.describe(prov)
    packaged = load_file(str(setting["teacher"] / "model.safetensors"))
    trained = load_file(str(model / "model.safetensors"))
    top_layer = "encoder.layer.0."  # the tiny encoder has one layer: it is the top one
    for k, v in packaged.items():
        if k.startswith(top_layer):
            assert not torch.equal(trained[f"mpnet.{k}"], v), k
        elif not k.startswith("pooler."):
            assert torch.equal(trained[f"mpnet.{k}"], v), k  # below the top: as packaged
    with pytest.raises(SystemExit, match="exists"):
        top_mod.main(args)
    # the running offset term trains too and is recorded with the losses; the plain one
    # leaves no trace of it, so its provenance is what it was before the option
    assert "offset_ema" not in prov["losses"]
    running = setting["out"].parent / "top-running"
    argv = _top_args(setting, running, "--weight-offset", "1", "--offset-ema", "0.9")
    assert top_mod.main(argv) == 0
    prov = json.loads((running / "model-2" / "pet_kit_provenance.json").read_text("utf-8"))
    assert prov["losses"]["offset_ema"] == 0.9 and prov["history"][-1]["val_offset"] > 0
    assert "offset term × 1 on offsets averaged over batches (decay 0.9)" in head_mod.describe(prov)
    with pytest.raises(SystemExit) as exit_:  # a decay of 1 would never move the average
        top_mod.main(_top_args(setting, running.parent / "never", "--offset-ema", "1"))
    assert exit_.value.code == 2
    # averaging a term that has no weight would be a silent no-op: refused before training
    unweighted = running.parent / "unweighted"
    with pytest.raises(SystemExit, match=r"--offset-ema 0\.9 averages.*--weight-offset 0"):
        top_mod.main(_top_args(setting, unweighted, "--offset-ema", "0.9"))
    assert not unweighted.exists()


def test_a_screened_top_layer_scores_what_running_the_model_scores(
    head_mod, top_mod, setting, small_eval
):
    """With a trained top layer, the states computed from ``cache-eval --top``'s inputs give
    the numbers of running the model; the training history screens the development tasks."""
    import torch
    from transformers import AutoTokenizer, MPNetForMaskedLM

    assert head_mod.main(_args(setting, "cache", "--top")) == 0
    with pytest.raises(SystemExit, match="cache-eval --top"):
        top_mod.load_eval(setting["out"])
    assert head_mod.main(_args(setting, "cache-eval", "--top")) == 0
    models = setting["out"].parent / "top-variant"
    args = _top_args(setting, models, "--lr-layer", "0.05", "--screen-every", "1")
    assert top_mod.main(args) == 0
    model_dir = models / "model-2"
    prov = json.loads((model_dir / "pet_kit_provenance.json").read_text(encoding="utf-8"))
    assert [set(h.get("dev", {})) for h in prov["history"]] == [set(), {"dev"}, {"dev"}]
    model = MPNetForMaskedLM.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    frozen = head_mod.Screen(setting["out"] / head_mod.EVAL_STATES, tok).cached
    cached = top_mod.eval_states(model, *top_mod.load_eval(setting["out"]))
    # the layer moved: the frozen encoder's states are not the trained model's
    assert not torch.allclose(cached["mlm_states"], frozen["mlm_states"].float(), atol=1e-3)
    _ran_like_screened(head_mod, setting, model_dir, head_mod.Screen(cached, tok))


def test_the_legend_names_the_candidates_and_a_continued_top_layer(head_mod, tmp_path):
    prov = {"top_layer": True, "pairs": 10, "candidates": 19688, "mlm_positions": 5,
            "epochs": 2, "train_seconds": 60, "losses": {"mlm": 0.3}}  # fmt: skip
    head = tmp_path / "K" / "model-16"
    head.mkdir(parents=True)
    (head / "pet_kit_provenance.json").write_text(json.dumps({"top_layer": False}), "utf-8")
    top = tmp_path / "U" / "model-2"
    top.mkdir(parents=True)
    (top / "pet_kit_provenance.json").write_text(json.dumps({"top_layer": True}), "utf-8")
    assert "from head K)" in head_mod.describe({**prov, "init": str(head)})
    assert "10 text-pattern pairs over 19,688 candidate words" in head_mod.describe(prov)
    assert "continued from U)" in head_mod.describe({**prov, "init": str(top)})
    gone = tmp_path / "gone" / "model-16"  # a fresh machine lacks the folder: as a head
    assert "from head gone)" in head_mod.describe({**prov, "init": str(gone)})
    # recorded at training, the provenance answers without the init's folder
    recorded = {**prov, "init": str(gone), "init_top_layer": True}
    assert "continued from gone)" in head_mod.describe(recorded)
    assert "from head U)" in head_mod.describe({**recorded, "init": str(top),
                                                "init_top_layer": False})  # fmt: skip


def test_a_runs_text_mix_is_the_weights_that_differ_from_its_corpus(head_mod, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sources = {"chitchat": {"weight": 3.0}, "gcide": {}, "austen": {"weight": 2.0}}
    (corpus / "manifest.json").write_text(json.dumps({"sources": sources}), "utf-8")
    info = {"corpus": {"path": str(corpus)},
            "distill_weights": {"austen": 2.0, "chitchat": 9.0, "gcide": 1.0}}  # fmt: skip
    assert head_mod.text_mix(info) == {"chitchat": 9.0}
    assert head_mod.text_mix({**info, "distill_weights": None}) is None
    assert head_mod.text_mix({"corpus": {"path": str(corpus)}}) is None  # older runs
    (corpus / "manifest.json").unlink()  # the corpus is gone: every weight is kept
    assert head_mod.text_mix(info) == info["distill_weights"]
    prov = {"top_layer": True, "pairs": 10, "candidates": 5000, "mlm_positions": 5,
            "epochs": 2, "train_seconds": 60, "losses": {"mlm": 0.3},
            "text_mix": {"chitchat": 9.0, "austen": 6.0}}  # fmt: skip
    assert (
        "10 text-pattern pairs (distillation texts drawn with source weights austen 6,"
        " chitchat 9) over 5,000 candidate words"
    ) in head_mod.describe(prov)
    assert "source weights" not in head_mod.describe({**prov, "text_mix": None})


def test_a_soup_averages_runs_of_one_recipe_and_refuses_others(head_mod, top_mod, setting):
    """``mpnet_top.py soup``: the members' weights averaged, its provenance names the members
    and seeds; runs of another recipe, one member, or an existing folder are refused."""
    import torch
    from safetensors.torch import load_file

    assert head_mod.main(_args(setting, "cache", "--top")) == 0
    root = setting["out"].parent
    members = []
    for seed in ("0", "1"):
        args = _top_args(setting, root / f"s{seed}", "--seed", seed, "--screen-every", "0")
        assert top_mod.main(args) == 0
        members.append(root / f"s{seed}" / "model-2")
    weights = [load_file(str(m / "model.safetensors")) for m in members]
    layer = "mpnet.encoder.layer.0.attention.attn.q.weight"
    assert not torch.equal(weights[0][layer], weights[1][layer])  # the seeds differ

    def soup(dest: str, *models) -> int:
        return top_mod.main(["--models", str(root / dest), "--epochs", "2", "soup",
                             *map(str, models)])  # fmt: skip

    assert soup("soup", *members) == 0
    souped = load_file(str(root / "soup" / "model-2" / "model.safetensors"))
    for k, v in souped.items():
        assert torch.allclose(v, (weights[0][k] + weights[1][k]) / 2, atol=1e-6), k
    prov = json.loads((root / "soup" / "model-2" / "pet_kit_provenance.json").read_text("utf-8"))
    assert prov["soup_of"] == [str(m) for m in members] and prov["seed"] == [0, 1]
    assert "seeds 0, 1, the 2 runs' weights averaged" in head_mod.describe(prov)
    with pytest.raises(SystemExit, match="exists"):
        soup("soup", *members)
    with pytest.raises(SystemExit, match="at least two"):
        soup("one", members[0])
    with pytest.raises(SystemExit, match="named twice"):
        soup("twice", members[0], members[1], members[0])
    args = _top_args(setting, root / "mlm", "--weight-mlm", "0.5", "--screen-every", "0")
    assert top_mod.main(args) == 0
    with pytest.raises(SystemExit, match="differ in 'losses'"):
        soup("mixed", members[0], root / "mlm" / "model-2")
    with pytest.raises(SystemExit, match="not a trained model"):
        soup("missing", members[0], root / "nowhere")
    # a run on distillation texts drawn with other source weights is another recipe
    other = root / "other-texts" / "model-2"
    shutil.copytree(members[1], other)
    moved = {**json.loads((other / "pet_kit_provenance.json").read_text("utf-8")),
             "text_mix": {"chitchat": 9.0}}  # fmt: skip
    (other / "pet_kit_provenance.json").write_text(json.dumps(moved), "utf-8")
    with pytest.raises(SystemExit, match="differ in 'text_mix'"):
        soup("mixed", members[0], other)
    assert not (root / "mixed").exists() and not (root / "missing").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "x"])
def test_loss_weights_and_learning_rates_refuse_what_would_train_on_nan(
    head_mod, top_mod, setting, value, capsys
):
    for main, argv in ((head_mod.main, _args(setting, "train", "--weight-mlm", value)),
                       (top_mod.main, _top_args(setting, setting["out"].parent / "v",
                                                "--weight-offset", value)),
                       (top_mod.main, _top_args(setting, setting["out"].parent / "v",
                                                "--offset-ema", value))):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and repr(value) in capsys.readouterr().err
    assert head_mod.weight("0.5") == 0.5 and head_mod.weight("0") == 0.0


def test_more_patterns_a_text_extend_the_two_pattern_cache(head_mod, top_mod, setting, monkeypatch):
    """``--patterns-per-text 3``: the two-pattern pairs come first (their whole cache files
    hard-linked, not recomputed), each text's third pattern is another one, and the top
    layer trains on all of them."""
    import torch

    monkeypatch.setattr(head_mod, "CHUNK", 16)  # 48 two-pattern pairs: three whole files
    assert head_mod.main(_args(setting, "cache", "--top")) == 0
    three = ["--patterns-per-text", "3"]
    assert head_mod.main([*three, *_args(setting, "cache", "--top")]) == 0
    for folder in (setting["out"], setting["out"] / "top"):
        two, more = folder / "states-24", folder / "states-24-p3"
        assert len(list(more.glob("*.pt"))) == 72 // 16 + 1  # the last file holds 8 pairs
        for f in sorted(two.glob("*.pt")):
            assert (more / f.name).stat().st_ino == f.stat().st_ino  # linked, not copied
    tok = head_mod.base_model(setting["out"])[1]
    pairs2 = head_mod.Data(setting["run"], 24, tok).pairs
    pairs3 = head_mod.Data(setting["run"], 24, tok, 3).pairs
    assert pairs3[:48] == pairs2 and len(pairs3) == 72
    for t in range(24):
        assert sorted(p for u, p in pairs3 if u == t) == [0, 1, 2]  # three distinct patterns
    # an extra pair's states are those of its own pattern, not a copy of a linked file's
    extra = torch.load(setting["out"] / "states-24-p3" / "0000048.pt")
    assert extra.shape == (16, 16) and not torch.equal(
        extra, torch.load(setting["out"] / "states-24" / "0000000.pt")
    )
    with pytest.raises(SystemExit, match="choose 2 to 3"):
        head_mod.Data(setting["run"], 24, tok, 4)
    models = setting["out"].parent / "three"
    assert top_mod.main([*three, *_top_args(setting, models)]) == 0
    prov = json.loads((models / "model-2" / "pet_kit_provenance.json").read_text("utf-8"))
    assert prov["patterns_per_text"] == 3 and prov["pairs"] == 72
    assert "72 text-pattern pairs (3 patterns a text)" in head_mod.describe(prov)
