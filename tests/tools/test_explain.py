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


def _report_figure(clf, path, text, monkeypatch):
    """The figure save_report draws (kept open), and the file it writes."""
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    written = save_report(clf, path, text=text)
    return figures[0], written


def test_png_report_shows_the_text_probabilities_and_word_scores(
    make_clf, toy_data, tmp_path, monkeypatch
):
    pytest.importorskip("matplotlib")
    X, y = toy_data
    clf = make_clf(epochs=2).fit(X, y)
    text = "a great movie, " * 40  # longer than the title shows
    info = explain_prediction(clf, text)
    fig, png = _report_figure(clf, tmp_path / "r.png", text, monkeypatch)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    title = fig._suptitle.get_text()
    assert title.startswith("text: a great movie, a great movie") and title.endswith("...")
    shown = [t.get_text() for ax in fig.axes for t in ax.texts]
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    titles = [ax.get_title() for ax in fig.axes]
    assert f"prediction: {info['label']}" in titles
    for label, p in info["probabilities"].items():
        assert str(label) in ticks and f"{p:.3f}" in shown
    for label, word, score in info["word_scores"]:
        assert f"{label}: {word}" in ticks and f" {score:+.2f} " in shown


def test_png_report_colours_ablation_bars_by_sign(make_clf, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgba

    import pet_kit.tools.explain as explain

    clf = make_clf().fit(None)
    fake = {
        "label": "positive",
        "probabilities": {"negative": 0.3, "positive": 0.7},
        "word_scores": [("negative", "bad", -1.0), ("positive", "good", 2.0)],
        "ablation": [
            {"slot": 0, "probability": 0.5, "change": -0.2},
            {"slot": 1, "probability": 0.8, "change": 0.1},
        ],
    }
    monkeypatch.setattr(explain, "explain_prediction", lambda clf, text: fake)
    fig, _ = _report_figure(clf, tmp_path / "r.png", "a film", monkeypatch)
    ax = next(a for a in fig.axes if a.get_title().startswith("removing one slot"))
    supports, opposes = (bar.get_facecolor() for bar in ax.patches[:2])
    assert supports == to_rgba(explain._SUPPORTS) and opposes == to_rgba(explain._OPPOSES)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "lowers p(positive): the slot supports it",
        "raises p(positive): the slot works against it",
    ]
