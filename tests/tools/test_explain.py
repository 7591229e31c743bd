"""Looking inside a soft prompt: nearest words, drift, label-word scores, slot ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pet_kit import PromptClassifier
from pet_kit.tools.explain import explain_prediction, explain_slots, save_report


def test_an_untrained_slot_initialised_from_a_word_is_nearest_to_it(make_clf):
    pvp = {
        "pattern": "[SOFT:great] {text} It was [MASK].",
        "verbalizer": {"a": ["good"], "b": ["bad"]},
    }
    clf = make_clf(pvp=pvp).fit(None)
    table = explain_slots(clf, top_k=3)
    assert len(table) == 1
    word, cos = table["nearest"][0][0]
    assert word == "great" and cos == pytest.approx(1.0, abs=1e-5)
    assert table["l2_to_init"][0] == pytest.approx(0.0) and table["cos_to_init"][
        0
    ] == pytest.approx(1.0)


def test_drift_after_training_and_after_save_load(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(epochs=5).fit(X, y)
    table = explain_slots(clf)
    moved = (clf.prompt_().detach() - clf.prompt_init_).norm(dim=1).numpy()
    np.testing.assert_allclose(table["l2_to_init"], moved, rtol=1e-5)
    assert (table["l2_to_init"] > 0).all()
    np.testing.assert_allclose(table["norm"], clf.prompt_().detach().norm(dim=1).numpy(), rtol=1e-5)
    clf.save(tmp_path / "p")
    loaded = PromptClassifier.load(tmp_path / "p")
    np.testing.assert_allclose(explain_slots(loaded)["l2_to_init"], table["l2_to_init"], rtol=1e-5)


def test_prediction_word_scores_and_ablation(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(epochs=5).fit(X, y)
    info = explain_prediction(clf, X[0])
    expected = clf.predict_proba([X[0]])[0]
    assert info["label"] == clf.predict([X[0]])[0]
    np.testing.assert_allclose(list(info["probabilities"].values()), expected, atol=1e-5)
    assert {(label, w) for label, w, _ in info["word_scores"]} == {
        ("positive", "great"),
        ("positive", "good"),
        ("negative", "terrible"),
        ("negative", "bad"),
    }
    assert [a["slot"] for a in info["ablation"]] == [0, 1]
    # removing a slot = the same pattern without it: compare with a zero-slot prompt
    p0 = info["probabilities"][info["label"]]
    for a in info["ablation"]:
        assert a["change"] == pytest.approx(a["probability"] - p0)
    assert any(abs(a["change"]) > 1e-6 for a in info["ablation"])


def test_removing_the_only_slot_equals_the_pattern_without_it(make_clf, toy_data):
    X, y = toy_data
    words = {"positive": ["great"], "negative": ["bad"]}
    clf = make_clf(pvp={"pattern": "[SOFT] {text} It was [MASK].", "verbalizer": words}).fit(X, y)
    plain = make_clf(pvp={"pattern": "{text} It was [MASK].", "verbalizer": words}).fit(None)
    info = explain_prediction(clf, X[3])
    expected = plain.predict_proba([X[3]])[0][list(plain.classes_).index(info["label"])]
    assert info["ablation"][0]["probability"] == pytest.approx(expected, abs=1e-5)


def test_png_report_and_cli(make_clf, toy_data, tmp_path, capsys):
    from pet_kit.cli import main

    X, y = toy_data
    make_clf(epochs=2).fit(X, y).save(tmp_path / "p")
    png = save_report(PromptClassifier.load(tmp_path / "p"), tmp_path / "r.png", text=X[0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = main(["explain", str(tmp_path / "p"), "--text", X[0], "--png", str(tmp_path / "c.png")])
    out = capsys.readouterr().out
    assert code == 0 and "without slot 1" in out and "prediction:" in out
    assert (tmp_path / "c.png").is_file()
    assert torch.is_tensor(PromptClassifier.load(tmp_path / "p").prompt_init_)


def test_png_report_without_matplotlib_says_how_to_install(make_clf, monkeypatch, tmp_path):
    import builtins

    from pet_kit import InputError

    real = builtins.__import__

    def no_mpl(name, *args, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real(name, *args, **kw)

    clf = make_clf().fit(None)
    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(InputError, match=r"pet_kit\[plot\]"):
        save_report(clf, tmp_path / "r.png")
