"""Diverged training: non-finite float parameters are refused, and a loss or trained
value that becomes NaN / inf stops training with TrainingDivergedError, the trained
tensors reset to their last finite state, nothing non-finite kept or written."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from conftest import SENTIMENT_PVP, tiny_clf
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.model_selection import GridSearchCV

import pet_kit.train.loop as training
from pet_kit import (
    Batching,
    Checkpoints,
    EarlyStopping,
    InputError,
    LinearStudent,
    PromptClassifier,
    PromptEnsemble,
    Tuning,
)
from pet_kit.errors import TrainingDivergedError
from pet_kit.model.backbone import frozen
from pet_kit.model.cloze_model import BuildOptions, ClozeModel
from pet_kit.train.loop import TrainConfig, train_prompt


def corrupt_update(monkeypatch, k: int) -> None:
    """Make the k-th optimizer step (and every later one) write inf into the values it
    updates: a diverging update, at a known step."""
    real = torch.optim.AdamW.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= k:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(math.inf)
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)


def slots(clf: PromptClassifier) -> torch.Tensor:
    with torch.no_grad():
        return clf.prompt_().detach().clone()


# ----------------------------------------------------------- parameters, up front
#: A float parameter (a group's field in dotted form) -> the estimator parameters setting it.
FLOAT_PARAMS = {
    "learning_rate": lambda v: {"learning_rate": v},
    "temperature": lambda v: {"temperature": v},
    "weight_decay": lambda v: {"weight_decay": v},
    "tuning.learning_rate": lambda v: {"tuning": Tuning("lora", learning_rate=v)},
    "tuning.alpha": lambda v: {"tuning": Tuning("lora", alpha=v)},
    "tuning.mlm_loss_weight": lambda v: {"tuning": Tuning("full", mlm_loss_weight=v)},
    "early_stopping.validation_fraction": lambda v: {
        "early_stopping": EarlyStopping(validation_fraction=v)
    },
}


@pytest.mark.parametrize("name", list(FLOAT_PARAMS))
@pytest.mark.parametrize(
    "value",
    [math.inf, -math.inf, math.nan, float("1e999999"), 10**400],
    ids=["inf", "-inf", "nan", "1e999999", "10**400"],
)
def test_non_finite_float_parameters_are_refused_before_anything_loads(
    name, value, toy_data, monkeypatch
):
    import pet_kit.model.cloze_model as cloze_module

    def no_loading(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the parameters were checked")

    monkeypatch.setattr(cloze_module, "load_backbone", no_loading)
    clf = PromptClassifier(pvp=SENTIMENT_PVP, model="unused", **FLOAT_PARAMS[name](value))
    pattern = rf"^{re.escape(name)}=(inf|-inf|nan) is not a finite number; "
    with pytest.raises(InputError, match=pattern):
        clf.fit(*toy_data)


def test_non_finite_message_names_the_fix(make_clf, toy_data):
    with pytest.raises(InputError) as info:
        make_clf(learning_rate=math.inf).fit(*toy_data)
    assert str(info.value) == (
        "learning_rate=inf is not a finite number; learning_rate must be a finite number > 0"
        " (the default is 0.03)"
    )


# ------------------------------------------------------------------ the estimator
def test_huge_learning_rate_raises_at_once_and_leaves_nothing_fitted(make_clf, toy_data):
    clf = make_clf(learning_rate=1e30, epochs=50)
    with pytest.raises(TrainingDivergedError) as info:
        clf.fit(*toy_data)
    exc = info.value
    assert exc.step == 1 and not math.isfinite(exc.loss)  # stopped at once, not 50 epochs
    assert exc.learning_rates == {"learning_rate": 1e30}
    assert exc.result.steps == 0
    message = str(exc)
    assert message.startswith("training diverged at optimizer step 1 (learning_rate=1e+30): ")
    assert "the training loss is nan after that step" in message
    assert "Lower learning_rate (e.g. 10x, to 1e+29)" in message
    assert isinstance(exc, ValueError)  # scikit-learn's error_score handles it
    with pytest.raises(NotFittedError):  # no silent first-class-for-everything prompt
        clf.predict(toy_data[0])


def test_a_diverged_warm_start_keeps_the_previous_fit(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    before, proba = slots(clf), clf.predict_proba(X)
    clf.set_params(warm_start=True, learning_rate=1e30)
    with pytest.raises(TrainingDivergedError):
        clf.fit(X, y)
    torch.testing.assert_close(slots(clf), before, rtol=0, atol=0)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    clf.set_params(learning_rate=1e-2).fit(X, y)  # and it can go on at a lower rate
    assert np.isfinite(clf.predict_proba(X)).all()


@pytest.mark.parametrize(
    "params",
    [
        {"tuning": "prompt+head"},
        {"deep_prompt": 2},
        {"prompt_encoder": "mlp"},
        {"early_stopping": EarlyStopping(n_iter_no_change=100)},
        {"batching": Batching(gradient_accumulation_steps=2)},
    ],
    ids=["label-head", "deep-prompt", "ptuning-mlp", "early-stopping", "accumulation"],
)
def test_every_trained_tensor_is_checked(make_clf, toy_data, monkeypatch, params):
    corrupt_update(monkeypatch, 3)
    with pytest.raises(TrainingDivergedError, match="at optimizer step 3 ") as info:
        make_clf(epochs=5, **params).fit(*toy_data)
    assert "holds NaN or inf after that step" in str(info.value)
    assert info.value.result.steps == 2


def test_lora_learning_rate_is_named_by_its_setting(make_clf, toy_data):
    pytest.importorskip("peft")
    with pytest.raises(TrainingDivergedError) as info:
        make_clf(tuning=Tuning("lora", learning_rate=1e30)).fit(*toy_data)
    assert "tuning.learning_rate=1e+30" in str(info.value)
    assert "tuning.learning_rate (e.g. 10x, to 1e+29)" in str(info.value)


def test_full_tuning_goes_back_to_the_last_checked_epoch(make_clf, toy_data, monkeypatch):
    monkeypatch.setattr(training, "STEP_SNAPSHOT_LIMIT", 0)  # the tiny model counts as large
    corrupt_update(monkeypatch, 7)  # 16 examples, batch 4: 4 steps per epoch
    with pytest.raises(TrainingDivergedError, match="at optimizer step 7 ") as info:
        make_clf(tuning="full", epochs=3).fit(*toy_data)
    assert "reset to their last finite state (after step 4)" in str(info.value)


def test_checkpoints_never_hold_a_non_finite_prompt(make_clf, toy_data, tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    corrupt_update(monkeypatch, 4)
    clf = make_clf(epochs=5, checkpoint=Checkpoints(folder, every=1))
    with pytest.raises(TrainingDivergedError, match="at optimizer step 4 "):
        clf.fit(*toy_data)
    monkeypatch.undo()
    saved = PromptClassifier.load(folder, device="cpu")  # the last checked state: step 3
    assert saved.history_["steps"] == 3
    assert torch.isfinite(slots(saved)).all()
    assert np.isfinite(saved.predict_proba(toy_data[0])).all()


def test_grid_search_scores_a_diverging_point_with_error_score(tiny_dir, toy_data):
    X, y = toy_data
    search = GridSearchCV(
        tiny_clf(tiny_dir, epochs=1),
        {"learning_rate": [1e30, 3e-2]},
        cv=2,
        error_score=np.nan,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(X, y)
    assert any(issubclass(w.category, FitFailedWarning) for w in caught)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[0]) and np.isfinite(scores[1])
    assert search.best_params_ == {"learning_rate": 3e-2}
    assert np.isfinite(search.predict_proba(X)).all()


# ------------------------------------------------------------- the training loop
def _loop_parts(clf: PromptClassifier, X: list[str], y: list[str]):
    """What the estimator gives :func:`train_prompt`: backbone, scorer, prompt, data."""
    options = BuildOptions.from_settings(clf.settings(), clf.model)
    model = ClozeModel.build(clf.resolved_pvp(), options)
    examples = model.encode(X)
    labels = np.array([model.labels.index(v) for v in y])
    prompt = model.new_prompt("vocab", None, torch.Generator().manual_seed(0))
    return model.backbone, model.scorer, prompt, examples, labels


def test_train_prompt_resets_the_prompt_to_the_state_before_the_diverging_step(
    make_clf, toy_data, monkeypatch
):
    backbone, scorer, prompt, examples, labels = _loop_parts(make_clf(), *toy_data)
    after_step: dict[int, torch.Tensor] = {}

    def record(step: int) -> None:
        after_step[step] = prompt.embedding.detach().clone()

    corrupt_update(monkeypatch, 5)
    config = TrainConfig(learning_rate=1e-2, epochs=3, batch_size=4, verbose=0)
    with pytest.raises(TrainingDivergedError) as info, frozen(backbone.model):
        train_prompt(scorer, prompt, examples, labels, config, torch.Generator(), on_step=record)
    assert info.value.step == 5 and not torch.isfinite(after_step[5]).all()
    torch.testing.assert_close(prompt.embedding.detach(), after_step[4], rtol=0, atol=0)
    assert not prompt.training


def test_one_check_per_optimizer_step_and_no_read_per_micro_batch(make_clf, toy_data, monkeypatch):
    backbone, scorer, prompt, examples, labels = _loop_parts(make_clf(), *toy_data)
    checks = {"n": 0}
    real = training._LastFinite.finite

    def finite(self):
        checks["n"] += 1
        return real(self)

    monkeypatch.setattr(training._LastFinite, "finite", finite)
    real_item = torch.Tensor.item

    def item(self):  # reading a loss (it has a grad_fn) per micro-batch would sync each time
        assert self.grad_fn is None, "a loss read with .item() in the training loop"
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    config = TrainConfig(epochs=2, batch_size=8, gradient_accumulation_steps=4, verbose=0)
    with frozen(backbone.model):
        result = train_prompt(scorer, prompt, examples, labels, config, torch.Generator())
    assert result.steps == 4 and checks["n"] == 4 + 1  # + the last step's, at the end


# ------------------------------------------------------- ensembles and students
def test_ensembles_and_students_pass_the_error_on(tiny_dir, toy_data):
    X, y = toy_data
    diverging = tiny_clf(tiny_dir, epochs=1, learning_rate=1e30)
    ens = PromptEnsemble(pvps=[SENTIMENT_PVP, SENTIMENT_PVP], estimator=diverging)
    with pytest.raises(TrainingDivergedError, match=r"^ensemble member 1 of 2: training"):
        ens.fit(X, y)
    student = PromptEnsemble(
        pvps=[SENTIMENT_PVP],
        estimator=tiny_clf(tiny_dir, epochs=1),
        distill="prompt",
        student_params={"learning_rate": 1e30},
    )
    with pytest.raises(TrainingDivergedError, match=r"^the distilled student prompt: "):
        student.fit(X, y, X_unlabeled=["a fine film", "so dull"])


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"l2": 1e38}, TrainingDivergedError, "LinearStudent training diverged"),
        ({"temperature": 1e30}, TrainingDivergedError, "LinearStudent training diverged"),
        ({"temperature": math.inf}, InputError, "temperature=inf is not finite"),
    ],
)
def test_linear_student_never_keeps_non_finite_weights(tiny_dir, toy_data, params, error, match):
    student = LinearStudent(model=str(tiny_dir), device="cpu", **params)
    with pytest.raises(error, match=match):
        student.fit(*toy_data)
    assert not hasattr(student, "coef_")


def test_the_error_pickles_with_its_fields():
    # GridSearchCV(n_jobs=...) sends a failing fit's error between processes
    import pickle

    from pet_kit import TrainingDivergedError

    err = TrainingDivergedError("boom", step=3, loss=float("inf"), learning_rates={"lr": 1e30})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TrainingDivergedError and str(back) == "boom"
    assert (back.step, back.loss, back.learning_rates) == (3, float("inf"), {"lr": 1e30})
