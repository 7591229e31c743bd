"""PromptClassifier: training, frozen backbone, sklearn contract, inputs, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import NEG, POS, SENTIMENT_PVP
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from pet_kit import (
    Batching,
    EarlyStopping,
    InputError,
    NothingTrainedWarning,
    PromptClassifier,
)
from pet_kit.model.backbone import load_backbone


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fit_predict_shapes_and_classes(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    assert list(clf.classes_) == ["negative", "positive"]  # sorted verbalizer labels
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    pred = clf.predict(X)
    assert set(pred) <= set(clf.classes_)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(1)])
    assert clf.n_slots_ == 2
    assert clf.predict([]).shape == (0,)


def test_training_lowers_loss_and_fits_training_data(make_clf, toy_data):
    X, y = toy_data
    untrained = make_clf().fit(None)
    trained = make_clf(epochs=30, learning_rate=0.1).fit(X, y)
    losses = trained.history_["train_loss"]
    assert losses[-1] < 0.75 * losses[0]
    assert trained.score(X, y) > untrained.score(X, y)
    assert trained.score(X, y) >= 0.8


def test_backbone_and_head_bit_identical_after_fit(make_clf, toy_data, tiny_dir):
    X, y = toy_data
    backbone = load_backbone(str(tiny_dir), device="cpu")
    before = _state(backbone.model)
    make_clf(epochs=2, learning_rate=0.5).fit(X, y)
    after = _state(backbone.model)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert any(k.startswith("cls.predictions") for k in before)  # the head is covered
    assert all(p.grad is None for p in backbone.model.parameters())


def test_callers_model_object_is_not_mutated(tiny_model, tiny_tokenizer, toy_data):
    X, y = toy_data
    tiny_model.train()  # the caller's own mode must come back
    tiny_model.bert.encoder.layer[0].requires_grad_(False)  # a mix of grad flags
    flags = {n: p.requires_grad for n, p in tiny_model.named_parameters()}
    modes = {n: m.training for n, m in tiny_model.named_modules()}
    before = _state(tiny_model)
    clf = PromptClassifier(
        pvp=SENTIMENT_PVP,
        model=tiny_model,
        tokenizer=tiny_tokenizer,
        epochs=2,
        learning_rate=0.5,
        verbose=0,
        random_state=0,
    )
    clf.fit(X, y)
    clf.predict(X)
    assert {n: p.requires_grad for n, p in tiny_model.named_parameters()} == flags
    assert {n: m.training for n, m in tiny_model.named_modules()} == modes
    for k, v in _state(tiny_model).items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in tiny_model.parameters())


def test_dropout_is_off_during_training(tiny_model, tiny_tokenizer, toy_data):
    """Same data, same seed: a model left in train mode gives the same result as eval."""
    X, y = toy_data
    kw = dict(pvp=SENTIMENT_PVP, tokenizer=tiny_tokenizer, epochs=2, verbose=0, random_state=3)
    a = PromptClassifier(model=tiny_model.eval(), **kw).fit(X, y).predict_proba(X)
    b = PromptClassifier(model=tiny_model.train(), **kw).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_only_prompt_parameters_are_optimised(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(epochs=1)
    clf.fit(X, y)
    init = make_clf(epochs=0).fit(X, y).prompt_.embedding
    assert not torch.equal(clf.prompt_.embedding, init)  # the prompt moved
    assert sum(p.numel() for p in clf.prompt_.parameters()) == 2 * 32


def test_same_seed_same_probabilities_other_seed_differs(make_clf, toy_data):
    X, y = toy_data
    p1 = make_clf(random_state=7).fit(X, y).predict_proba(X)
    p2 = make_clf(random_state=7).fit(X, y).predict_proba(X)
    p3 = make_clf(random_state=8).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3)


def test_global_torch_rng_untouched(make_clf, toy_data):
    X, y = toy_data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_clf(prompt_encoder="mlp").fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_zero_shot_without_soft_slots(make_clf, toy_data):
    X, y = toy_data
    hard = {"pattern": "{text} It was [MASK].", "verbalizer": SENTIMENT_PVP["verbalizer"]}
    a = make_clf(pvp=hard).fit(None)
    with pytest.warns(NothingTrainedWarning, match="trained nothing"):
        b = make_clf(pvp=hard).fit(X, y)
    assert a.n_slots_ == 0 and a.history_["zero_shot"] and b.history_["zero_shot"]
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_gradient_accumulation_matches_full_batch(make_clf, toy_data):
    X, y = toy_data
    full = make_clf(batch_size=8, epochs=2).fit(X, y).predict_proba(X)
    accum = make_clf(batch_size=8, batching=Batching(gradient_accumulation_steps=4), epochs=2)
    accum.fit(X, y)
    np.testing.assert_allclose(accum.predict_proba(X), full, rtol=1e-4, atol=1e-5)


def test_max_steps_overrides_epochs(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf(max_steps=3, epochs=50).fit(X, y)
    assert clf.history_["steps"] == 3


def test_early_stopping_keeps_best(make_clf, toy_data):
    X, y = toy_data
    early = EarlyStopping(validation_fraction=0.25, n_iter_no_change=2)
    clf = make_clf(early_stopping=early, epochs=20).fit(X, y)
    h = clf.history_
    assert h["val_accuracy"] and h["best_epoch"] is not None
    assert h["best_epoch"] == int(np.argmax(h["val_accuracy"])) + 1


@pytest.mark.parametrize("encoder", ["mlp", "lstm"])
def test_ptuning_encoders_start_at_init_and_train(make_clf, toy_data, encoder):
    X, y = toy_data
    clf = make_clf(prompt_encoder=encoder, epochs=0).fit(X, y)
    with torch.no_grad():
        np.testing.assert_allclose(clf.prompt_(), clf.prompt_.embedding, atol=1e-7)
    trained = make_clf(prompt_encoder=encoder, epochs=5, learning_rate=0.05).fit(X, y)
    assert trained.history_["train_loss"][-1] < trained.history_["train_loss"][0]


@pytest.mark.parametrize("init", ["vocab", "random", "text", "mean"])
def test_init_strategies(make_clf, toy_data, init):
    X, y = toy_data
    clf = make_clf(prompt_init=init, epochs=0).fit(X, y)
    backbone = load_backbone(clf.model, device="cpu")
    emb = backbone.model.get_input_embeddings().weight.detach()
    vecs = clf.prompt_.embedding.detach()
    rows_match = [(emb == v).all(1).any().item() for v in vecs]
    assert all(rows_match) == (init in ("vocab", "text"))
    if init == "mean":  # every free slot at the mean of the non-special embeddings
        keep = torch.ones(len(emb), dtype=torch.bool)
        keep[backbone.tokenizer.all_special_ids] = False
        torch.testing.assert_close(vecs, emb[keep].mean(0).expand_as(vecs))
        other = make_clf(prompt_init=init, epochs=0, random_state=7).fit(X, y)
        assert torch.equal(other.prompt_.embedding.detach(), vecs)  # no randomness


def test_slot_initialised_from_words(make_clf, toy_data, tiny_tokenizer):
    pvp = {"pattern": "{text} [SOFT:it was] [MASK].", "verbalizer": SENTIMENT_PVP["verbalizer"]}
    clf = make_clf(pvp=pvp, epochs=0).fit(*toy_data)
    emb = load_backbone(clf.model, device="cpu").model.get_input_embeddings().weight
    ids = tiny_tokenizer("it was", add_special_tokens=False)["input_ids"]
    assert torch.equal(clf.prompt_.embedding.detach(), emb[ids].detach())


# ------------------------------------------------------------------- inputs
def test_input_types_give_same_predictions(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    ref = clf.predict_proba(X)
    for variant in (
        np.array(X),
        pd.Series(X),
        pd.DataFrame({"text": X}),
        tuple(X),
        [{"text": x} for x in X],
        pd.DataFrame({"review": X}),
    ):
        np.testing.assert_allclose(clf.predict_proba(variant), ref, rtol=1e-5, atol=1e-6)
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": X, "label": y})
    np.testing.assert_allclose(clf.predict_proba(ds), ref, rtol=1e-5, atol=1e-6)
    clf2 = make_clf().fit(pd.Series(X), pd.Series(y))
    np.testing.assert_allclose(clf2.predict_proba(X), ref, rtol=1e-5, atol=1e-6)


def test_pair_inputs_by_column_name(make_clf):
    pvp = {"pattern": "{text_a}? [MASK], {text_b}", "verbalizer": {"yes": ["yes"], "no": ["no"]}}
    df = pd.DataFrame(
        {
            "text_b": ["it was great", "it was bad", "good", "bad"],
            "text_a": ["a great movie", "a great movie", "fun", "fun"],
        }
    )
    y = ["yes", "no", "yes", "no"]
    clf = make_clf(pvp=pvp).fit(df, y)
    swapped = df[["text_a", "text_b"]]
    np.testing.assert_allclose(clf.predict_proba(df), clf.predict_proba(swapped), atol=1e-6)
    tuples = list(zip(df.text_a, df.text_b, strict=True))
    np.testing.assert_allclose(clf.predict_proba(tuples), clf.predict_proba(df), atol=1e-6)
    with pytest.raises(InputError, match="text_b"):
        clf.predict(pd.DataFrame({"text_a": ["x"], "other": ["y"]}))
    with pytest.raises(InputError, match="2 fields"):
        clf.predict(["just one text"])


def test_integer_labels_and_string_forms(make_clf):
    pvp = {
        "pattern": "[SOFT] {text} It was [MASK].",
        "verbalizer": {1: ["terrible"], 2: ["bad"], 4: ["good"], 5: ["great"]},
    }
    X = ["terrible", "bad film", "good film", "great film"] * 2
    y = [1, 2, 4, 5] * 2
    clf = make_clf(pvp=pvp).fit(X, y)
    assert clf.classes_.tolist() == [1, 2, 4, 5]
    assert clf.classes_.dtype.kind == "i"
    clf_s = make_clf(pvp=pvp).fit(X, [str(v) for v in y])  # "1" matches 1
    np.testing.assert_array_equal(clf_s.predict(X), clf.predict(X))
    assert clf.score(X, [str(v) for v in y]) == clf.score(X, y)


def test_bad_inputs_are_clear_errors(make_clf, toy_data):
    X, y = toy_data
    with pytest.raises(InputError, match="does not define"):
        make_clf().fit(X, [*y[:-1], "neutral"])
    with pytest.raises(InputError, match="16 examples but y has 15"):
        make_clf().fit(X, y[:-1])
    with pytest.raises(InputError, match="only one class"):
        make_clf().fit(X[:3], ["positive"] * 3)
    with pytest.raises(InputError, match="missing"):
        make_clf().fit([*X[:-1], None], y)
    with pytest.raises(InputError, match="bytes"):
        make_clf().fit([*X[:-1], b"raw"], y)
    with pytest.raises(InputError, match=r"y\[1\] is missing"):
        make_clf().fit(X[:2], ["positive", None])
    with pytest.raises(TypeError, match="single string"):
        make_clf().fit("a great movie", ["positive"])
    with pytest.raises(InputError, match="no pvp"):
        PromptClassifier(verbose=0).fit(X, y)
    with pytest.raises(InputError, match="learning_rate"):
        make_clf(learning_rate=-1).fit(X, y)
    with pytest.raises(InputError, match="prompt_init"):
        make_clf(prompt_init="zeros").fit(X, y)


def test_empty_and_odd_texts_are_classified(make_clf, toy_data):
    clf = make_clf().fit(*toy_data)
    odd = ["", "   ", "😀 great 👍", "مرحبا great", "好评", "a\x00b", "word " * 20000]
    proba = clf.predict_proba(odd)
    assert proba.shape == (len(odd), 2) and np.isfinite(proba).all()


def test_not_fitted_error(make_clf):
    with pytest.raises(NotFittedError):
        make_clf().predict(["x"])
    with pytest.raises(NotFittedError):
        make_clf().save("/tmp/never")


# ----------------------------------------------------------------- sklearn
def test_sklearn_api_checks(make_clf):
    from sklearn.utils import estimator_checks as ec

    est = make_clf()
    name = type(est).__name__
    ec.check_no_attributes_set_in_init(name, est)
    ec.check_parameters_default_constructible(name, est)
    ec.check_get_params_invariance(name, est)
    ec.check_set_params(name, est)
    ec.check_estimator_repr(name, est)
    ec.check_estimator_cloneable(name, est)
    tags = est.__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.estimator_type == "classifier"


def test_clone_get_set_params(make_clf, toy_data):
    clf = make_clf(learning_rate=0.05)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    twin.set_params(learning_rate=0.2)
    assert clf.learning_rate == 0.05
    fitted = clf.fit(*toy_data)
    assert not hasattr(clone(fitted), "classes_")
    assert "learning_rate=0.05" in repr(clf)


def test_pipeline_gridsearch_cross_val(make_clf, toy_data):
    X, y = toy_data
    pipe = Pipeline(
        [
            ("lower", FunctionTransformer(lambda xs: [x.lower() for x in xs])),
            ("clf", make_clf(epochs=2)),
        ]
    )
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (len(X),)
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    grid = GridSearchCV(
        make_clf(epochs=2), {"learning_rate": [0.01, 0.1]}, cv=cv, error_score="raise"
    )
    grid.fit(X, y)
    assert grid.best_params_["learning_rate"] in (0.01, 0.1)
    scores = cross_val_score(make_clf(epochs=2), X, y, cv=cv, error_score="raise")
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_pickle_roundtrip(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    blob = pickle.dumps(clf)
    assert len(blob) < 200_000  # the backbone is not inside
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_chinese_multi_token_labels(make_clf):
    pvp = {
        "pattern": "[SOFT*2]{text}总之[MASK]。",
        "verbalizer": {"positive": ["好评"], "negative": ["差评"]},
    }
    X = ["这个电影非常好", "我很喜欢这个书", "这个电影很差", "我讨厌这个书"] * 2
    y = ["positive", "positive", "negative", "negative"] * 2
    clf = make_clf(pvp=pvp, epochs=10, learning_rate=0.1).fit(X, y)
    groups = clf.model_.encoder.verbalizer.groups
    assert [g.length for g in groups] == [2]
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]


def test_sample_pos_neg_fixture_is_balanced():
    assert len(POS) == len(NEG)


def test_failed_fit_leaves_a_previous_fit_untouched(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    before = clf.predict_proba(X)
    with pytest.raises(InputError):
        clf.fit(X, [*y[:-1], "neutral"])
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    with pytest.raises(InputError):
        make_clf().fit(X, [*y[:-1], "neutral"]).classes_  # noqa: B018
    fresh = make_clf()
    with pytest.raises(InputError):
        fresh.fit(X, ["positive"] * len(X))
    assert not hasattr(fresh, "classes_")


def test_failed_refit_with_another_pvp_keeps_the_fitted_one(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    before = clf.predict_proba(X)
    other = {"pattern": "{text} [MASK]!", "verbalizer": {"a": ["good"], "b": ["bad"]}}
    with pytest.raises(InputError):
        clf.set_params(pvp=other).fit(X, y)  # labels do not match the new verbalizer
    np.testing.assert_array_equal(clf.predict_proba(X), before)
