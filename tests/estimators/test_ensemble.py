"""PVP ensembles (mean / PET's wmean), soft-label training and distillation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SENTIMENT_PVP, tiny_clf
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from pet_kit import (
    InputError,
    LinearStudent,
    PromptClassifier,
    PromptEnsemble,
    SavedPromptError,
)

WORDS = SENTIMENT_PVP["verbalizer"]
PVPS = [
    SENTIMENT_PVP,
    {"pattern": "[SOFT] Just [MASK]! {text}", "verbalizer": WORDS},
    {"pattern": "{text} [SOFT*3] [MASK].", "verbalizer": WORDS},
]
UNLABELED = ["a fine film", "what a bad day", "i love it", "so dull and bad", "great fun"]


@pytest.fixture()
def ensemble(tiny_dir):
    def make(**kw):
        base = tiny_clf(tiny_dir, epochs=2)
        return PromptEnsemble(**{"pvps": PVPS, "estimator": base, "random_state": 0, **kw})

    return make


# ----------------------------------------------------------------- soft labels
def test_one_hot_soft_labels_train_exactly_like_hard_labels(make_clf, toy_data):
    X, y = toy_data
    hard = make_clf().fit(X, y)
    onehot = np.eye(2)[[list(hard.classes_).index(v) for v in y]]
    soft = make_clf().fit(X, onehot)
    np.testing.assert_allclose(soft.prompt_().detach(), hard.prompt_().detach(), atol=1e-6)


def test_soft_labels_pull_predictions_towards_the_targets(make_clf, toy_data):
    X, _ = toy_data
    target = np.tile([0.8, 0.2], (len(X), 1))  # classes_ = [negative, positive]
    clf = make_clf(epochs=30, temperature=1.0).fit(X, target)
    before = make_clf().fit(None).predict_proba(X)[:, 0].mean()
    after = clf.predict_proba(X)[:, 0].mean()
    assert abs(after - 0.8) < abs(before - 0.8)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda n: np.full((n, 3), 1 / 3), "shape"),
        (lambda n: np.full((n - 1, 2), 0.5), "shape"),
        (lambda n: np.full((n, 2), 0.7), "probabilities"),
        (lambda n: np.array([[1.5, -0.5]] * n), "probabilities"),
        (lambda n: np.array([[np.nan, 1.0]] * n), "probabilities"),
    ],
)
def test_bad_soft_labels(make_clf, toy_data, bad, match):
    X, _ = toy_data
    with pytest.raises(InputError, match=match):
        make_clf().fit(X, bad(len(X)))


def test_bad_temperature(make_clf, toy_data):
    with pytest.raises(InputError, match="temperature"):
        make_clf(temperature=0).fit(*toy_data)


# ------------------------------------------------------------------- ensemble
def test_mean_ensemble_averages_member_probabilities(ensemble, toy_data):
    X, y = toy_data
    ens = ensemble().fit(X, y)
    assert len(ens.estimators_) == 3
    np.testing.assert_allclose(ens.weights_, [1 / 3] * 3)
    members = np.stack([m.predict_proba(X) for m in ens.estimators_])
    np.testing.assert_allclose(ens.predict_proba(X), members.mean(0), atol=1e-7)
    assert list(ens.classes_) == ["negative", "positive"]
    assert set(ens.predict(X)) <= set(ens.classes_)
    # members are seeded differently, and each has its own pattern
    assert len({m.pvp_.pattern.text for m in ens.estimators_}) == 3
    assert len({m.random_state for m in ens.estimators_}) == 3


def test_wmean_weights_are_accuracies_before_training(ensemble, toy_data):
    X, y = toy_data
    ens = ensemble(weighting="wmean").fit(X, y)
    accs = np.array([clone(m).fit(None).score(X, y) for m in ens.estimators_])
    np.testing.assert_allclose(ens.weights_, accs / accs.sum())
    members = np.stack([m.predict_proba(X) for m in ens.estimators_])
    np.testing.assert_allclose(
        ens.predict_proba(X), np.tensordot(ens.weights_, members, axes=1), atol=1e-7
    )


def test_template_file_gives_every_pattern(tmp_path, tiny_dir, toy_data):
    f = tmp_path / "t.yaml"
    f.write_text(
        "verbalizer: {positive: [great], negative: [terrible]}\n"
        "patterns:\n"
        "  - {name: a, pattern: '[SOFT] {text} It was [MASK].'}\n"
        "  - {name: b, pattern: 'Just [MASK]! {text}'}\n"
    )
    ens = PromptEnsemble(pvps=str(f), estimator=tiny_clf(tiny_dir, epochs=1)).fit(*toy_data)
    assert [m.pvp_.name.split("#")[1] for m in ens.estimators_] == ["a", "b"]
    with pytest.raises(InputError, match="names one pattern"):
        PromptEnsemble(pvps=f"{f}#a").fit(*toy_data)


def test_same_seed_same_ensemble(ensemble, toy_data):
    X, y = toy_data
    a = ensemble().fit(X, y).predict_proba(X)
    b = ensemble().fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_sklearn_clone_and_nested_params(ensemble, toy_data):
    X, y = toy_data
    ens = ensemble()
    assert ens.get_params()["estimator__epochs"] == 2
    grid = GridSearchCV(ens, {"estimator__learning_rate": [1e-2, 3e-2]}, cv=2).fit(X, y)
    assert grid.best_estimator_.estimators_[0].learning_rate in (1e-2, 3e-2)
    assert clone(ens).get_params()["weighting"] == "mean"


def test_mismatched_labels_are_refused(tiny_dir, toy_data):
    other = {"pattern": "{text} [MASK].", "verbalizer": {"pos": ["great"], "neg": ["bad"]}}
    pvps = [SENTIMENT_PVP, other]
    with pytest.raises(InputError, match="same labels"):
        PromptEnsemble(pvps=pvps, estimator=tiny_clf(tiny_dir, epochs=1)).fit(*toy_data)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"weighting": "median"}, "weighting"),
        ({"distill": "svm"}, "distill"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("inf")}, "temperature must be a finite number"),
        ({"ipet_scale": float("inf")}, "ipet_scale must be a finite number"),
        ({"pvps": None}, "needs pvps"),
        ({"estimator": "PromptClassifier"}, "estimator"),
    ],
)
def test_bad_params(ensemble, toy_data, params, match):
    with pytest.raises(InputError, match=match):
        ensemble(**params).fit(*toy_data)


# ---------------------------------------------------------------- distillation
def test_distillation_trains_one_student_on_the_ensembles_soft_labels(
    ensemble, toy_data, monkeypatch
):
    X, y = toy_data
    seen = {}
    real_fit = PromptClassifier.fit

    def spy(self, X_, y_=None, X_unlabeled=None):
        if np.ndim(y_) == 2:
            seen["texts"], seen["targets"], seen["t"] = list(X_), np.asarray(y_), self.temperature
        return real_fit(self, X_, y_, X_unlabeled)

    monkeypatch.setattr(PromptClassifier, "fit", spy)
    ens = ensemble(distill="prompt", temperature=2.0).fit(X, y, X_unlabeled=UNLABELED)
    assert isinstance(ens.student_, PromptClassifier)
    assert seen["texts"] == list(X) + UNLABELED and seen["t"] == 2.0
    teacher = ens.ensemble_proba(UNLABELED)
    scaled = teacher**0.5 / (teacher**0.5).sum(1, keepdims=True)
    np.testing.assert_allclose(seen["targets"][len(X) :], scaled, atol=1e-6)
    assert set(np.unique(seen["targets"][: len(X)])) == {0.0, 1.0}
    # predictions come from the student alone
    np.testing.assert_allclose(ens.predict_proba(X), ens.student_.predict_proba(X))


def test_distillation_needs_unlabeled_texts(ensemble, toy_data):
    with pytest.raises(InputError, match="X_unlabeled"):
        ensemble(distill="prompt").fit(*toy_data)


def test_distilled_ensemble_saves_one_small_prompt(ensemble, toy_data, tmp_path):
    X, y = toy_data
    ens = ensemble(distill="prompt").fit(X, y, X_unlabeled=UNLABELED)
    path = ens.save(tmp_path / "student")
    loaded = PromptClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(X), ens.predict_proba(X), atol=1e-6)
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 16_000
    with pytest.raises(SavedPromptError, match=r"PromptClassifier\.load"):
        PromptEnsemble.load(path)


def test_ensemble_save_load_roundtrip(ensemble, toy_data, tmp_path):
    X, y = toy_data
    ens = ensemble(weighting="wmean").fit(X, y)
    path = ens.save(tmp_path / "ens")
    loaded = PromptEnsemble.load(path)
    np.testing.assert_allclose(loaded.weights_, ens.weights_)
    np.testing.assert_allclose(loaded.predict_proba(X), ens.predict_proba(X), atol=1e-6)
    with pytest.raises(SavedPromptError, match="already holds a pet_kit ensemble"):
        ens.save(path)  # the rule of every folder pet_kit writes: no silent replacement
    ens.save(path, overwrite=True)  # replacing an ensemble folder on request is fine
    np.testing.assert_allclose(PromptEnsemble.load(path).weights_, ens.weights_)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SavedPromptError, match="refusing"):
        ens.save(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------ iPET
def test_ipet_retrains_each_member_on_the_others_confident_labels(ensemble, toy_data, monkeypatch):
    X, y = toy_data
    unlabeled = UNLABELED * 4  # 20 texts
    calls = []
    real_fit = PromptClassifier.fit

    def spy(self, X_, y_=None, X_unlabeled=None):
        if X_ is not None:
            calls.append((self.pvp, list(X_), list(y_)))
        return real_fit(self, X_, y_, X_unlabeled)

    ens = ensemble(ipet_generations=1, ipet_scale=1.5)
    monkeypatch.setattr(PromptClassifier, "fit", spy)
    ens.fit(X, y, X_unlabeled=unlabeled)
    gen0 = ens.generations_[0]
    assert gen0 == [len(X)] * 3
    # generation 1: labelled + round(8 * 1.5) = 12 per class at most
    assert all(len(X) < n <= len(X) + 24 for n in ens.generations_[1])
    retrain = calls[3:6]
    assert [c[0] for c in retrain] == [c[0] for c in calls[:3]]  # same PVPs, in order
    for _pvp, texts, labels in retrain:
        assert texts[: len(X)] == list(X) and labels[: len(X)] == list(y)
        assert set(texts[len(X) :]) <= set(unlabeled)
        assert set(labels[len(X) :]) <= {"positive", "negative"}
    assert len(ens.estimators_) == 3


def test_ipet_needs_unlabeled_texts(ensemble, toy_data):
    with pytest.raises(InputError, match="ipet_generations"):
        ensemble(ipet_generations=1).fit(*toy_data)
    with pytest.raises(InputError, match="ipet_scale"):
        ensemble(ipet_generations=1, ipet_scale=0.5).fit(*toy_data, X_unlabeled=UNLABELED)


# ------------------------------------------------------------ linear student
def test_linear_student_fits_the_ensembles_soft_labels(ensemble, toy_data, tmp_path):
    X, y = toy_data
    ens = ensemble(distill="linear", temperature=1.0).fit(X, y, X_unlabeled=UNLABELED)
    student = ens.student_
    assert isinstance(student, LinearStudent)
    assert student.coef_.shape == (2, 32) and list(student.classes_) == list(ens.classes_)
    np.testing.assert_allclose(ens.predict_proba(X), student.predict_proba(X))
    # it learned the labelled data (the texts it saw with one-hot targets)
    assert student.score(X, y) >= 0.9
    path = ens.save(tmp_path / "lin")
    loaded = LinearStudent.load(path)
    np.testing.assert_allclose(loaded.predict_proba(X), student.predict_proba(X), atol=1e-6)
    assert sum(f.stat().st_size for f in path.iterdir()) < 4_000
    with pytest.raises(SavedPromptError, match=r"LinearStudent\.load"):
        PromptClassifier.load(path)
    with pytest.raises(SavedPromptError, match=r"LinearStudent\.load"):
        PromptEnsemble.load(path)


def test_linear_student_soft_targets_are_matched(tiny_dir, toy_data):
    """Fitted on constant soft labels (and no L2) it predicts those probabilities."""
    X, _ = toy_data
    target = np.tile([0.3, 0.7], (len(X), 1))
    student = LinearStudent(model=str(tiny_dir), classes=["a", "b"], l2=0.0).fit(X, target)
    np.testing.assert_allclose(student.predict_proba(X), target, atol=5e-3)
    with pytest.raises(InputError, match="classes"):
        LinearStudent(model=str(tiny_dir)).fit(X, target)


@pytest.mark.parametrize(
    ("X", "params", "match"),
    [
        ([], {}, "X is empty"),
        (["good", "bad"], {"temperature": 0}, "temperature must be a number > 0"),
        (["good", "bad"], {"l2": -1.0}, "l2"),
    ],
)
def test_linear_student_refuses_bad_input(tiny_dir, X, params, match):
    with pytest.raises(InputError, match=match):
        LinearStudent(model=str(tiny_dir), **params).fit(X, ["a", "b"][: len(X)])


def test_linear_student_records_its_backbone(tiny_dir, toy_data):
    from pet_kit.model.backbone import load_backbone

    X, y = toy_data
    student = LinearStudent(model=str(tiny_dir)).fit(X, y)
    backbone = load_backbone(str(tiny_dir), None, None)
    assert student.backbone_fingerprint_ == backbone.fingerprint
    assert student.backbone_name_ == backbone.name


def test_distil_again_with_another_student_reuses_the_members(ensemble, toy_data, monkeypatch):
    X, y = toy_data
    ens = ensemble(distill="prompt", student_params={"max_steps": 3}).fit(
        X, y, X_unlabeled=UNLABELED
    )
    assert ens.student_.history_["steps"] == 3
    members = list(ens.estimators_)
    calls = []
    monkeypatch.setattr(
        PromptClassifier, "fit", lambda self, *a, **k: calls.append(1) or self
    )  # no member may be retrained
    ens.set_params(distill="linear").distil(X, y, UNLABELED)
    assert isinstance(ens.student_, LinearStudent) and ens.estimators_ == members and not calls
    ens.set_params(distill=None).distil(X, y, UNLABELED)
    assert ens.student_ is None


@pytest.mark.parametrize("seed", [2**70, "x"])
def test_a_random_state_numpy_cannot_use_is_refused(tiny_dir, toy_data, seed):
    ens = PromptEnsemble([SENTIMENT_PVP], tiny_clf(tiny_dir, epochs=1), random_state=seed)
    with pytest.raises(InputError, match="random_state must be None, an integer"):
        ens.fit(*toy_data)


def test_every_save_refuses_a_result_folder_without_overwrite(ensemble, toy_data, tmp_path):
    """A distilled ensemble (its student) and a linear student follow the same rule."""
    X, y = toy_data
    student = ensemble(distill="linear").fit(X, y, X_unlabeled=X)
    path = student.save(tmp_path / "lin")
    with pytest.raises(SavedPromptError, match="overwrite=True"):
        student.save(path)
    student.save(path, overwrite=True)
