"""Opt-in faster inference: bf16 autocast and int8 dynamic quantization, same backbone."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import NEG, POS, tiny_clf

from pet_kit import InputError, PromptClassifier

X = POS[:4] + NEG[:4]
Y = ["positive"] * 4 + ["negative"] * 4


@pytest.fixture()
def fitted(tiny_dir):
    return tiny_clf(tiny_dir, epochs=3).fit(X, Y)


@pytest.mark.parametrize(("mode", "tolerance"), [("bf16", 0.1), ("int8", 0.3)])
def test_a_fast_path_scores_close_to_float32(fitted, mode, tolerance):
    """Close, not equal (the tiny random test model is far more sensitive to int8 than a
    trained one; real agreement figures are in benchmarks/speed.py)."""
    exact = fitted.predict_proba(POS + NEG)
    fast = fitted.optimize(mode).predict_proba(POS + NEG)
    assert fast.shape == exact.shape and np.isfinite(fast).all()
    assert np.abs(fast - exact).max() < tolerance
    assert not np.array_equal(fast, exact)  # it did run another computation
    assert np.array_equal(fitted.optimize(None).predict_proba(POS + NEG), exact)


def test_int8_is_one_quantized_copy_shared_by_prompts(tiny_dir, fitted):
    other = tiny_clf(tiny_dir, epochs=1, random_state=1).fit(X, Y)
    float_model = fitted.model_.backbone.model
    fitted.optimize("int8")
    other.optimize("int8")
    assert fitted.model_.backbone.model is other.model_.backbone.model  # one copy
    assert fitted.model_.backbone.model is not float_model  # the float one is untouched
    assert fitted.model_.backbone.fingerprint == other.model_.backbone.fingerprint


def test_bf16_keeps_the_backbone_itself(fitted):
    model = fitted.model_.backbone.model
    assert fitted.optimize("bf16").model_.backbone.model is model


def test_the_mode_survives_pickling_and_not_saving(fitted, tmp_path):
    fitted.optimize("int8")
    back = pickle.loads(pickle.dumps(fitted))
    assert back.model_.options.inference == "int8"
    assert np.allclose(back.predict_proba(X), fitted.predict_proba(X))
    loaded = PromptClassifier.load(fitted.save(tmp_path / "p"))
    assert loaded.model_.options.inference is None  # a runtime choice, not the prompt's


def test_unknown_modes_and_backbone_copies_are_refused(tiny_dir, fitted):
    with pytest.raises(InputError, match=r"inference must be one of \(None, 'bf16', 'int8'\)"):
        fitted.optimize("fp8")
    pytest.importorskip("peft")
    lora = tiny_clf(tiny_dir, epochs=1, tuning="lora").fit(X, Y)
    with pytest.raises(InputError, match="own lora copy"):
        lora.optimize("int8")


def test_cli_predict_and_a_bank_take_the_mode(fitted, tmp_path, capsys):
    from pet_kit.batch import job as streaming
    from pet_kit.cli import main
    from pet_kit.serving.bank import PromptBank

    folder = fitted.save(tmp_path / "p")
    (tmp_path / "in.txt").write_text("\n".join(X) + "\n")
    assert main(["predict", str(folder), str(tmp_path / "in.txt"), "--inference", "bf16"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(X) + 1
    bank = PromptBank(inference="int8")
    bank.add("a", folder)
    assert bank._task("a").clf.model_.options.inference == "int8"
    plain = streaming._prompt_identity(PromptClassifier.load(folder))
    assert streaming._prompt_identity(bank._task("a").clf) != plain  # a resumed job notices
    with pytest.raises(InputError, match="inference must be one of"):
        PromptBank(inference="fp4")


def test_int8_results_do_not_depend_on_the_batch(fitted):
    """Per-token activation scales: a text gets the same probabilities alone as in a
    batch with longer and shorter texts (per-tensor dynamic quantization: up to 0.06
    apart on this model)."""
    texts = [*X, "a much longer text about a great film with good music and a dull plot" * 3]
    fitted.optimize("int8")
    together = fitted.predict_proba(texts)
    alone = np.vstack([fitted.predict_proba([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5
    fitted.set_params(batching={"eval_batch_size": 3})
    assert np.abs(fitted.predict_proba(texts) - together).max() < 1e-5


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_calibrating_under_a_fast_mode_stores_the_float_prior(fitted, mode, tmp_path):
    exact = pickle.loads(pickle.dumps(fitted)).calibrate().calibration_prior_
    fast = fitted.optimize(mode).calibrate().calibration_prior_
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-7)
    assert fitted.model_.options.inference == mode  # the mode stays on for predictions
    loaded = PromptClassifier.load(fitted.save(tmp_path / "p"))
    np.testing.assert_allclose(loaded.calibration_prior_, exact, rtol=0, atol=1e-7)
