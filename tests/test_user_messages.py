"""Messages that help: did-you-mean for a misspelt label and tuning mode, an unknown
model name without hub access fails at once, and adapt says when its held-out set is too
small to compare."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO

from pet_kit import BackboneError, InputError, PromptClassifier, Tuning


# ------------------------------------------------------------------ did you mean
def test_a_misspelt_label_gets_a_suggestion(make_clf, toy_data):
    X, y = toy_data
    y = ["positve" if v == "positive" else v for v in y]
    with pytest.raises(InputError, match=r"'positve' that .*; did you mean 'positive'\?"):
        make_clf().fit(X, y)


def test_several_misspelt_labels_get_one_suggestion_each(make_clf, toy_data):
    X, _ = toy_data
    y = ["positve"] * 8 + ["negatve"] * 7 + ["neutral"]
    with pytest.raises(InputError) as err:
        make_clf().fit(X, y)
    message = str(err.value)
    assert "'positve': did you mean 'positive'?" in message
    assert "'negatve': did you mean 'negative'?" in message
    assert "'neutral':" not in message and "add them to the verbalizer's 'labels'" in message


@pytest.mark.parametrize("tuning", ["lroa", Tuning("lroa")])
def test_a_misspelt_tuning_mode_gets_a_suggestion(tuning):
    with pytest.raises(InputError, match=r"got 'lroa'; did you mean 'lora'\?"):
        PromptClassifier(pvp="sentiment_en", tuning=tuning).settings()


# --------------------------------------------------------- unknown model offline
def test_an_unknown_model_offline_fails_at_once(monkeypatch):
    import transformers

    def no_hub(*args, **kwargs):  # pragma: no cover - the failure this test catches
        raise AssertionError("from_pretrained was called: the hub would have been retried")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(transformers.AutoModelForMaskedLM, "from_pretrained", no_hub)
    with pytest.raises(BackboneError) as err:
        PromptClassifier(pvp="sentiment_en", model="bert-base-uncasd", device="cpu").fit(None)
    message = str(err.value)
    assert "'bert-base-uncasd' is not a local folder nor in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message and "offline mode" in message
    assert "omit `model`" in message


def test_an_unknown_model_with_the_hub_unreachable_fails_at_once(monkeypatch):
    import huggingface_hub.utils
    import transformers
    from huggingface_hub import constants

    class Unreachable:
        def head(self, url, timeout):
            raise ConnectionError("Name or service not known")

    def no_hub(*args, **kwargs):  # pragma: no cover - the failure this test catches
        raise AssertionError("from_pretrained was called: the hub would have been retried")

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.utils, "get_session", Unreachable)
    monkeypatch.setattr(transformers.AutoModelForMaskedLM, "from_pretrained", no_hub)
    start = time.monotonic()
    with pytest.raises(BackboneError, match="the hub cannot be reached") as err:
        PromptClassifier(pvp="sentiment_en", model="bert-base-uncasd", device="cpu").fit(None)
    assert time.monotonic() - start < 10
    assert "no answer from" in str(err.value) and "ConnectionError" in str(err.value)


def test_a_cached_hub_model_still_loads_offline_and_org_names_are_hub_ids(tiny_dir, tmp_path):
    """An ``org/name`` model in the Hugging Face cache loads with the hub offline (a
    fresh process: the cache folder is read when huggingface_hub is imported)."""
    snapshot = tmp_path / "hub" / "models--pk-test--tiny" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for f in tiny_dir.iterdir():
        if f.is_file():
            (snapshot / f.name).write_bytes(f.read_bytes())
    (tmp_path / "hub" / "models--pk-test--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--pk-test--tiny" / "refs" / "main").write_text("0123abcd")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = str(REPO)
    code = (
        "from pet_kit.model.backbone import load_backbone\n"
        "b = load_backbone('pk-test/tiny', device='cpu')\n"
        "print(type(b.model).__name__)\n"
        "try:\n"
        "    load_backbone('pk-test/tinny', device='cpu')\n"
        "except Exception as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "BertForMaskedLM"
    assert "'pk-test/tinny' is not a local folder nor in the Hugging Face cache" in lines[1]
    assert "did you mean 'pk-test/tiny'?" in lines[1]


def test_a_missing_relative_path_is_still_named_as_a_path():
    with pytest.raises(BackboneError, match="model path 'no/such/model' does not exist"):
        PromptClassifier(pvp="sentiment_en", model="no/such/model", device="cpu").fit(None)


# --------------------------------------------------------------------------- adapt
def test_adapt_says_when_the_held_out_set_is_too_small(tiny_dir, tmp_path, capsys, monkeypatch):
    import pet_kit.train.adapt as adapt_module
    from pet_kit.cli import main

    real = adapt_module.adapt
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"a great movie number {i}" for i in range(40)) + "\n")
    out = tmp_path / "adapted"

    def small(*args, **kwargs):  # the CLI's call, cheap: one step of short windows
        return real(*args, **{**kwargs, "max_steps": 1, "batch_size": 4, "max_length": 16})

    monkeypatch.setattr(adapt_module, "adapt", small)
    argv = ["adapt", str(texts), "--output", str(out), "--model", str(tiny_dir), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "held-out MLM accuracy" in printed
    assert "the held-out set is too small to mean anything" in printed
    assert "masked token(s), under 200" in printed


def test_the_held_out_caveat_is_empty_for_enough_tokens():
    from pet_kit.train.adapt import MIN_HELDOUT_TOKENS, heldout_caveat

    assert heldout_caveat({"masked_tokens": MIN_HELDOUT_TOKENS}) == ""
    assert "2 masked token(s)" in heldout_caveat({"masked_tokens": 2})
