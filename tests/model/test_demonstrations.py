"""LM-BFF demonstrations: rendering, selection, truncation, determinism, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import NEG, POS

from pet_kit import Demonstrations, InputError, PromptClassifier, SavedPromptError, load_pvp
from pet_kit.model.demonstrations import DEMO_FIELD, _cut, render_demo, with_demo_field
from pet_kit.model.encoding import ClozeEncoder


def _records_seen(monkeypatch):
    seen = []
    real = ClozeEncoder.encode

    def spy(self, records):
        seen.extend(records)
        return real(self, records)

    monkeypatch.setattr(ClozeEncoder, "encode", spy)
    return seen


def test_render_fills_the_pattern_with_the_label_word_and_drops_soft_slots(tiny_tokenizer):
    words = {"a": ["x"], "b": ["y"]}
    pvp = load_pvp({"pattern": "[SOFT*2] {text} It was [MASK].", "verbalizer": words})
    assert render_demo(pvp, {"text": "a fine film"}, "great", tiny_tokenizer, 50) == (
        "a fine film It was great."
    )


def test_cut_keeps_the_first_tokens_of_the_original_text(tiny_tokenizer):
    text = "a great movie and a good fun film"
    assert _cut(text, tiny_tokenizer, 3) == "a great movie"
    assert _cut(text, tiny_tokenizer, 100) == text


def test_cut_raises_no_false_tokenizer_warning(tmp_path):
    from conftest import build_tokenizer, transformers_warnings

    tok = build_tokenizer(tmp_path)  # fresh: the tokenizer warns once per instance
    tok.model_max_length = 4
    with transformers_warnings() as seen:
        assert _cut("a great movie and a good fun film", tok, 3) == "a great movie"
    assert not [m for m in seen if "longer than the specified maximum" in m]
    with transformers_warnings() as seen:
        tok("a great movie and a good fun film")  # the check can fail: the tokenizer warns
    assert [m for m in seen if "longer than the specified maximum" in m]


def test_a_pattern_that_has_the_field_already_is_refused():
    pvp = load_pvp({"pattern": "{demonstrations} [MASK].", "verbalizer": {"a": ["x"], "b": ["y"]}})
    with pytest.raises(InputError, match="rename that field"):
        with_demo_field(pvp)


def test_training_inputs_get_one_demonstration_per_class_never_themselves(
    make_clf, toy_data, monkeypatch
):
    X, y = toy_data
    seen = _records_seen(monkeypatch)
    make_clf(demonstrations="random", epochs=1).fit(X, y)
    train = [r for r in seen if r["text"] in X][: len(X)]
    assert len(train) == len(X)
    for rec in train:
        demos = rec[DEMO_FIELD]
        assert demos.count("It was great.") + demos.count("It was good.") == 1
        assert demos.count("It was terrible.") + demos.count("It was bad.") == 1
        assert f"{rec['text']} It was" not in demos  # not its own demonstration


def test_demonstrations_depend_on_the_text_only(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(demonstrations="random").fit(X, y)
    together = clf.predict_proba(["a fine film", "so bad"])
    np.testing.assert_allclose(clf.predict_proba(["a fine film"]), together[:1], atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(["so bad"]), together[1:], atol=1e-6)


def test_similar_picks_the_closest_example_of_each_class(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    clf = make_clf(demonstrations="similar", epochs=1).fit(X, y)
    seen = _records_seen(monkeypatch)
    clf.predict([POS[0], NEG[0]])
    assert f"{POS[0]} It was great." in seen[0][DEMO_FIELD]
    assert f"{NEG[0]} It was terrible." in seen[1][DEMO_FIELD]


def test_truncation_cuts_the_input_never_a_demonstration(make_clf, toy_data, monkeypatch):
    X, y = toy_data
    clf = make_clf(demonstrations=Demonstrations("random", max_tokens=6), max_length=40).fit(X, y)
    encoder = clf.model_.encoder
    long_text = "a very long review " * 50
    (example,) = clf.model_.encode([long_text])
    ids, _, mask_at = encoder.assemble(example, 1)
    assert len(ids) <= 40
    tok = encoder.tokenizer
    decoded = tok.decode(ids)
    assert "it was great" in decoded and "it was terrible" in decoded  # demos intact
    assert decoded.count("a very long review") < 50  # the input was cut
    assert ids[mask_at] == tok.mask_token_id


def test_zero_shot_with_demonstrations_is_a_clear_error(make_clf):
    with pytest.raises(InputError, match="needs labelled examples"):
        make_clf(demonstrations="random").fit(None)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"demonstrations": "knn"}, "demonstrations"),
        ({"demonstrations": Demonstrations("random", max_tokens=0)}, r"demonstrations\.max_tokens"),
    ],
)
def test_bad_params(make_clf, toy_data, params, match):
    with pytest.raises(InputError, match=match):
        make_clf(**params).fit(*toy_data)


def test_calibration_with_demonstrations(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(demonstrations="random", calibration="content_free").fit(X, y)
    assert np.isclose(clf.calibration_prior_.sum(), 1.0)
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_pool_is_saved_and_loaded(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(demonstrations="similar").fit(X, y)
    clf.save(tmp_path / "p")
    loaded = PromptClassifier.load(tmp_path / "p")
    assert loaded.demo_pool_.records == clf.demo_pool_.records
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    meta_path = tmp_path / "p" / "prompt.json"
    meta = json.loads(meta_path.read_text())
    del meta["demonstrations"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SavedPromptError, match="demonstrations"):
        PromptClassifier.load(tmp_path / "p")
