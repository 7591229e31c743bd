"""Contextual calibration: estimate the class prior, divide it out, save it."""

from __future__ import annotations

import numpy as np
import pytest

from pet_kit import Calibration, InputError, PromptClassifier, SavedPromptError


def _raw(clf, texts):
    return clf.set_params(calibration=None).fit(None).predict_proba(texts)


def test_content_free_prior_is_the_mean_probability_of_the_content_free_inputs(make_clf):
    clf = make_clf(calibration=Calibration("content_free", texts=["N/A", "", "nothing"]))
    clf.fit(None)
    raw = _raw(make_clf(), ["N/A", "", "nothing"])
    np.testing.assert_allclose(clf.calibration_prior_, raw.mean(0), atol=1e-6)


def test_calibrated_probabilities_divide_out_the_prior(make_clf, toy_data):
    X, _ = toy_data
    clf = make_clf(calibration="content_free").fit(None)
    raw = _raw(make_clf(), X)
    expected = raw / clf.calibration_prior_
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
    assert (clf.predict(X) == clf.classes_[expected.argmax(1)]).all()


def test_default_content_free_texts_include_the_real_mask_token(make_clf, tiny_tokenizer):
    from pet_kit.model.encoding import OwnText

    clf = make_clf(calibration="content_free").fit(None)
    encoder = clf.model_.encoder
    mask, mask_id = tiny_tokenizer.mask_token, tiny_tokenizer.mask_token_id
    assert encoder.encode([{"text": OwnText(mask)}])[0].fields == ((mask_id,),)
    assert mask_id not in encoder.encode([{"text": mask}])[0].fields[0]  # user text: plain
    raw = _raw(make_clf(), ["N/A", "", OwnText(mask)])
    np.testing.assert_allclose(clf.calibration_prior_, raw.mean(0), atol=1e-6)
    plain = _raw(make_clf(), ["N/A", "", mask])
    assert not np.allclose(clf.calibration_prior_, plain.mean(0), atol=1e-6)


def test_unlabeled_calibration_of_a_constant_input_gives_uniform_probabilities(make_clf):
    clf = make_clf(calibration="unlabeled").fit(None, X_unlabeled=["a film"] * 3)
    np.testing.assert_allclose(clf.predict_proba(["a film"]), [[0.5, 0.5]], atol=1e-6)
    assert not np.allclose(clf.calibration_prior_, 0.5)  # the raw prompt is biased


def test_unlabeled_defaults_to_the_training_texts_and_works_after_training(make_clf, toy_data):
    X, y = toy_data
    a = make_clf(calibration="unlabeled").fit(X, y)
    b = make_clf(calibration="unlabeled").fit(X, y, X_unlabeled=X)
    np.testing.assert_allclose(a.calibration_prior_, b.calibration_prior_, atol=1e-7)
    trained_raw = make_clf().fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a.calibration_prior_, trained_raw.mean(0), atol=1e-5)


def test_unlabeled_without_texts_is_a_clear_error(make_clf):
    with pytest.raises(InputError, match="X_unlabeled"):
        make_clf(calibration="unlabeled").fit(None)


BAD_TEXTS = r"^calibration\.texts must be None or a non-empty list of strings, got "


@pytest.mark.parametrize(
    ("calibration", "match"),
    [
        ("contextual", r"^calibration must be one of"),
        (Calibration("contextual"), r"^calibration\.mode must be one of"),
        (Calibration("content_free", texts="N/A"), BAD_TEXTS),
        (Calibration("content_free", texts=[]), BAD_TEXTS),
        (Calibration("content_free", texts=["ok", 3]), BAD_TEXTS),
    ],
)
def test_bad_calibration_params(make_clf, calibration, match):
    with pytest.raises(InputError, match=match):
        make_clf(calibration=calibration).fit(None)


def test_no_calibration_means_no_prior(make_clf, toy_data):
    clf = make_clf().fit(*toy_data)
    assert clf.calibration_prior_ is None


def test_prior_is_saved_and_loaded(make_clf, toy_data, tmp_path):
    X, y = toy_data
    clf = make_clf(calibration=Calibration("content_free", texts=["N/A", "?"])).fit(X, y)
    clf.save(tmp_path / "p")
    loaded = PromptClassifier.load(tmp_path / "p")
    np.testing.assert_allclose(loaded.calibration_prior_, clf.calibration_prior_)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert loaded.calibration == Calibration("content_free", texts=["N/A", "?"])
    assert make_clf(calibration="content_free").fit(None).save(tmp_path / "q")
    assert PromptClassifier.load(tmp_path / "q").calibration == "content_free"  # as given


def test_edited_prior_is_refused(make_clf, tmp_path):
    """A prior edited consistently (checksum updated too) is still refused."""
    import json

    from safetensors.torch import load_file, save_file

    from pet_kit.io.prompt_folder import TENSOR_FILE, _sha256

    make_clf(calibration="content_free").fit(None).save(tmp_path / "p")
    tensors = load_file(tmp_path / "p" / "prompt.safetensors")
    tensors["calibration_prior"] = tensors["calibration_prior"] * -1
    save_file(tensors, tmp_path / "p" / "prompt.safetensors")
    meta_path = tmp_path / "p" / "prompt.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][TENSOR_FILE] = _sha256(tmp_path / "p" / TENSOR_FILE)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SavedPromptError, match="calibration_prior"):
        PromptClassifier.load(tmp_path / "p")


def test_calibrate_after_fit_equals_calibration_during_fit(make_clf, toy_data):
    X, y = toy_data
    during = make_clf(calibration="unlabeled").fit(X, y, X_unlabeled=X[:5])
    after = make_clf().fit(X, y)
    raw = after.predict_proba(X)
    after.calibrate(X[:5])
    np.testing.assert_allclose(after.calibration_prior_, during.calibration_prior_, atol=1e-7)
    np.testing.assert_allclose(after.predict_proba(X), during.predict_proba(X), atol=1e-6)
    # calibrating again starts from the raw probabilities, not the calibrated ones
    after.calibrate(X[:5])
    np.testing.assert_allclose(after.calibration_prior_, during.calibration_prior_, atol=1e-7)
    assert not np.allclose(after.predict_proba(X), raw)
    cf = make_clf(calibration="content_free").fit(None)
    np.testing.assert_allclose(
        make_clf().fit(None).calibrate().calibration_prior_, cf.calibration_prior_, atol=1e-7
    )
    with pytest.raises(InputError, match="X_unlabeled"):
        make_clf().fit(None).calibrate(method="unlabeled")


def test_x_unlabeled_is_checked_even_where_nothing_reads_it(make_clf, toy_data):
    X, y = toy_data
    with pytest.raises(InputError, match=r"^X_unlabeled must be a list of texts"):
        make_clf().fit(X, y, X_unlabeled=5)
    with pytest.raises(InputError, match=r"^X_unlabeled\[1\] is missing"):
        make_clf(calibration="unlabeled").fit(X, y, X_unlabeled=["a film", None])


def test_x_unlabeled_that_nothing_reads_warns_and_changes_nothing(make_clf, toy_data):
    X, y = toy_data
    with pytest.warns(UserWarning, match=r"X_unlabeled \(2 texts\) is not used"):
        ignored = make_clf().fit(X, y, X_unlabeled=["a film", "another film"])
    np.testing.assert_allclose(
        ignored.predict_proba(X), make_clf().fit(X, y).predict_proba(X), atol=1e-7
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read by calibration="unlabeled": no warning
        make_clf(calibration="unlabeled").fit(X, y, X_unlabeled=["a film", "another film"])
