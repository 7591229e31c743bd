"""The ``n_threads`` parameter: torch's thread count inside fit/predict, restored after."""

from __future__ import annotations

import pytest
import torch

from pet_kit import InputError, PromptClassifier
from pet_kit.model.scorer import ClozeScorer
from pet_kit.model.threads import torch_threads


def test_context_manager_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_restored_after_an_exception():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_fit_and_predict_run_with_n_threads(make_clf, toy_data, monkeypatch):
    seen = []
    real = ClozeScorer.class_scores

    def spy(self, batch, slots):
        seen.append(torch.get_num_threads())
        return real(self, batch, slots)

    monkeypatch.setattr(ClozeScorer, "class_scores", spy)
    before = torch.get_num_threads()
    X, y = toy_data
    clf = make_clf(n_threads=2).fit(X, y)
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == before
    seen.clear()
    clf.set_params(n_threads=3).predict_proba(X)
    assert seen and set(seen) == {3}
    assert torch.get_num_threads() == before


def test_same_predictions_whatever_the_thread_count(make_clf, toy_data):
    X, y = toy_data
    clf = make_clf().fit(X, y)
    a = clf.predict_proba(X)
    b = clf.set_params(n_threads=2).predict_proba(X)
    assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_n_threads_is_refused(make_clf, toy_data, bad):
    X, y = toy_data
    with pytest.raises(InputError, match="n_threads"):
        make_clf(n_threads=bad).fit(X, y)
    clf = make_clf().fit(X, y)
    with pytest.raises(InputError, match="n_threads"):
        clf.set_params(n_threads=bad).predict(X)


def test_n_threads_is_not_restored_by_load(make_clf, toy_data, tmp_path):
    X, y = toy_data
    make_clf(n_threads=2).fit(X, y).save(tmp_path / "p")
    assert PromptClassifier.load(tmp_path / "p").n_threads is None
