"""Tests for the estimator's parameter table and grouped settings (pet_kit.config.settings)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pet_kit.config.settings import (
    DEFAULTS,
    GROUPS,
    OBJECT_PARAMS,
    PARAMETERS,
    Batching,
    Calibration,
    Checkpoints,
    DeepPrompt,
    Demonstrations,
    EarlyStopping,
    Settings,
    Tuning,
    check_device,
    from_json,
    resolve,
    to_json,
)
from pet_kit.errors import InputError

PACKAGE = Path(__file__).resolve().parents[2] / "pet_kit"

# The estimator's new signature, in order, with today's defaults.
SIGNATURE = {
    "pvp": None,
    "model": None,
    "tokenizer": None,
    "max_length": 256,
    "learning_rate": 3e-2,
    "epochs": 20,
    "max_steps": None,
    "batch_size": 8,
    "weight_decay": 0.0,
    "prompt_init": "vocab",
    "prompt_encoder": None,
    "tuning": "prompt",
    "deep_prompt": 0,
    "early_stopping": False,
    "guard": "2fold",
    "calibration": None,
    "demonstrations": None,
    "checkpoint": None,
    "batching": None,
    "warm_start": False,
    "temperature": 1.0,
    "random_state": None,
    "device": None,
    "n_threads": None,
    "verbose": 1,
}


def _message(params: dict[str, Any]) -> str:
    with pytest.raises(InputError) as info:
        resolve(params)
    assert isinstance(info.value, ValueError)
    return str(info.value)


# ------------------------------------------------------------------ the table
def test_defaults_are_the_signature_in_order():
    assert list(DEFAULTS) == list(SIGNATURE)
    assert dict(DEFAULTS) == SIGNATURE
    assert len(PARAMETERS) == len(SIGNATURE)


def test_every_parameter_but_the_objects_is_checked_and_in_settings():
    fields = [f.name for f in dataclasses.fields(Settings)]
    assert fields == [name for name in PARAMETERS if name not in OBJECT_PARAMS]
    for name, param in PARAMETERS.items():
        assert param.constraint, name
        assert (param.check is None) == (name in OBJECT_PARAMS), name
    assert set(GROUPS) <= set(PARAMETERS)


def test_tables_are_read_only():
    with pytest.raises(TypeError):
        DEFAULTS["epochs"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        PARAMETERS["epochs"] = PARAMETERS["max_length"]  # type: ignore[index]


def test_constants_are_those_of_the_torch_modules():
    from pet_kit import tuning
    from pet_kit.config import settings
    from pet_kit.model import deep, demonstrations, soft_prompt

    assert settings.INIT_STRATEGIES == soft_prompt.INIT_STRATEGIES
    assert settings.PROMPT_ENCODERS == soft_prompt.PROMPT_ENCODERS
    assert settings.DEEP_ENCODERS == deep.DEEP_ENCODERS
    assert settings.DEMO_MODES == demonstrations.MODES
    assert settings.TUNINGS == tuple(tuning.METHODS)


# ------------------------------------------------------------------ the groups
def test_group_defaults():
    assert Tuning() == Tuning(
        mode="prompt", rank=8, alpha=16.0, learning_rate=None, mlm_loss_weight=1e-4
    )
    assert DeepPrompt(3) == DeepPrompt(length=3, encoder=None)
    assert EarlyStopping() == EarlyStopping(validation_fraction=0.2, n_iter_no_change=5)
    assert Calibration() == Calibration(mode="content_free", texts=None)
    assert Demonstrations() == Demonstrations(mode="random", max_tokens=None)
    assert Checkpoints("ck") == Checkpoints(dir="ck", every=None)
    assert Batching() == Batching(
        eval_batch_size=32, gradient_accumulation_steps=1, group_by_length="auto"
    )
    with pytest.raises(TypeError):
        DeepPrompt()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Checkpoints()  # type: ignore[call-arg]


def test_groups_have_a_readable_repr_and_equality():
    assert repr(Tuning("lora", rank=4)) == (
        "Tuning(mode='lora', rank=4, alpha=16.0, learning_rate=None, mlm_loss_weight=0.0001)"
    )
    assert Tuning("lora") != Tuning("full")
    assert DeepPrompt(2) != DeepPrompt(3)


@pytest.mark.parametrize("group", list(GROUPS.values()), ids=lambda g: g.__name__)
def test_group_docstrings_describe_every_field(group):
    doc = group.__doc__ or ""
    assert "Parameters\n    ----------" in doc
    for f in dataclasses.fields(group):
        assert f"\n    {f.name} :" in doc, f.name


@pytest.mark.parametrize(
    ("tuning", "expected"),
    [
        (Tuning("lora"), 5e-4),
        (Tuning("full"), 3e-5),
        (Tuning("prompt"), 1e-4),
        (Tuning("prompt+head"), 1e-4),
        (Tuning("lora", learning_rate=2e-3), 2e-3),
        (Tuning("full", learning_rate=np.float32(0.5)), 0.5),
    ],
)
def test_backbone_learning_rate(tuning, expected):
    assert tuning.backbone_learning_rate == expected
    assert type(tuning.backbone_learning_rate) is float


def test_get_params_and_set_params():
    t = Tuning("lora")
    assert t.get_params() == t.get_params(deep=False) == dataclasses.asdict(t)
    assert t.set_params(rank=4, alpha=8.0) is t
    assert t == Tuning("lora", rank=4, alpha=8.0)


def test_set_params_refuses_unknown_names_and_sets_nothing():
    t = Tuning("lora")
    with pytest.raises(InputError) as info:
        t.set_params(rank=2, rnk=4)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        "Tuning has no parameter 'rnk'; valid parameters: mode, rank, alpha, learning_rate,"
        " mlm_loss_weight"
    )
    assert t == Tuning("lora")  # rank=2 was not set either


# ------------------------------------------------------------------ resolve
def test_resolve_defaults():
    s = resolve({})
    assert s == resolve(dict(DEFAULTS))
    assert s.tuning == Tuning()
    assert s.batching == Batching()
    assert s.deep_prompt is s.early_stopping is s.calibration is None
    assert s.demonstrations is s.checkpoint is None
    scalars = {k: v for k, v in DEFAULTS.items() if k not in GROUPS and k not in OBJECT_PARAMS}
    assert {k: getattr(s, k) for k in scalars} == scalars


def test_resolve_ignores_unknown_and_object_parameters():
    assert resolve({"lora_rank": 0, "bogus": object(), "pvp": 3, "model": []}) == resolve({})


def test_settings_is_frozen():
    s = resolve({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.epochs = 3  # type: ignore[misc]


CK = Path("ck")

SHORTHANDS = [
    ("tuning", "prompt", Tuning()),
    ("tuning", "prompt+head", Tuning("prompt+head")),
    ("tuning", "lora", Tuning("lora")),
    ("tuning", "full", Tuning("full")),
    ("tuning", np.str_("lora"), Tuning("lora")),
    ("tuning", Tuning("lora", rank=np.int64(4), alpha=8), Tuning("lora", rank=4, alpha=8.0)),
    ("deep_prompt", 0, None),
    ("deep_prompt", None, None),
    ("deep_prompt", 4, DeepPrompt(4)),
    ("deep_prompt", np.int64(2), DeepPrompt(2)),
    ("deep_prompt", DeepPrompt(3, "mlp"), DeepPrompt(3, "mlp")),
    ("early_stopping", True, EarlyStopping()),
    ("early_stopping", np.True_, EarlyStopping()),
    ("early_stopping", False, None),
    ("early_stopping", np.False_, None),
    ("early_stopping", None, None),
    ("early_stopping", EarlyStopping(0.5, 2), EarlyStopping(0.5, 2)),
    ("calibration", None, None),
    ("calibration", "content_free", Calibration()),
    ("calibration", "unlabeled", Calibration("unlabeled")),
    ("calibration", Calibration(texts=("N/A", "")), Calibration(texts=["N/A", ""])),
    ("demonstrations", None, None),
    ("demonstrations", "random", Demonstrations()),
    ("demonstrations", "similar", Demonstrations("similar")),
    ("demonstrations", Demonstrations(max_tokens=np.int32(9)), Demonstrations(max_tokens=9)),
    ("checkpoint", None, None),
    ("checkpoint", "ck", Checkpoints("ck")),
    ("checkpoint", CK, Checkpoints(CK)),
    ("checkpoint", Checkpoints("ck", every=10), Checkpoints("ck", every=10)),
    ("batching", None, Batching()),
    ("batching", Batching(eval_batch_size=64), Batching(eval_batch_size=64)),
    ("batching", Batching(group_by_length=np.True_), Batching(group_by_length=True)),
    ("batching", Batching(group_by_length=False), Batching(group_by_length=False)),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"), SHORTHANDS, ids=[f"{n}={v!r}" for n, v, _ in SHORTHANDS]
)
def test_shorthands_normalise(name, value, expected):
    got = getattr(resolve({name: value}), name)
    assert got == expected
    assert type(got) is type(expected)
    if expected is not None:
        for f in dataclasses.fields(expected):  # numpy scalars became Python ones
            assert type(getattr(got, f.name)) is type(getattr(expected, f.name)), f.name


def test_scalars_become_python_values():
    s = resolve(
        {
            "max_length": np.int64(64),
            "learning_rate": 1,
            "epochs": np.int32(3),
            "max_steps": np.int64(0),
            "weight_decay": np.float32(0.5),
            "warm_start": np.True_,
            "temperature": np.float64(2.0),
            "random_state": np.int64(7),
            "n_threads": np.int8(2),
            "verbose": True,
        }
    )
    expected = {
        "max_length": 64,
        "learning_rate": 1.0,
        "epochs": 3,
        "max_steps": 0,
        "weight_decay": 0.5,
        "warm_start": True,
        "temperature": 2.0,
        "random_state": 7,
        "n_threads": 2,
        "verbose": 1,
    }
    for name, value in expected.items():
        got = getattr(s, name)
        assert got == value and type(got) is type(value), name


def test_random_state_objects_pass_unchanged():
    rs = np.random.RandomState(0)
    assert resolve({"random_state": rs}).random_state is rs
    assert resolve({"random_state": np.random}).random_state is np.random


def test_resolved_groups_are_copies():
    tuning = Tuning("lora", rank=4)
    texts = ["N/A"]
    params = {"tuning": tuning, "calibration": Calibration(texts=texts)}
    s = resolve(params)
    assert s.tuning is not tuning and s.calibration.texts is not texts
    tuning.rank = 0
    texts.append("x")
    assert s.tuning.rank == 4 and s.calibration.texts == ["N/A"]
    assert params["tuning"] is tuning  # the input is not changed


def test_the_first_bad_parameter_is_reported():
    assert _message({"verbose": "x", "max_length": 0}).startswith("max_length")


BAD = [
    # unchanged parameters: today's messages, word for word
    ({"max_length": 0}, "max_length must be a positive integer, got 0"),
    ({"max_length": True}, "max_length must be a positive integer, got True"),
    ({"max_length": 2.5}, "max_length must be a positive integer, got 2.5"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"epochs": -1}, "epochs must be an integer >= 0, got -1"),
    ({"epochs": 1.5}, "epochs must be an integer >= 0, got 1.5"),
    ({"epochs": True}, "epochs must be an integer >= 0, got True"),
    ({"max_steps": -1}, "max_steps must be None or an integer >= 0, got -1"),
    ({"max_steps": 2.0}, "max_steps must be None or an integer >= 0, got 2.0"),
    ({"learning_rate": 0}, "learning_rate must be a number > 0, got 0"),
    ({"learning_rate": -1.0}, "learning_rate must be a number > 0, got -1.0"),
    ({"learning_rate": True}, "learning_rate must be a number > 0, got True"),
    ({"learning_rate": None}, "learning_rate must be a number > 0, got None"),
    (
        {"learning_rate": "1e-3"},
        "learning_rate must be a number > 0, got '1e-3' (text, not a number: YAML reads 1e-3"
        " as text; write 1.0e-3 or 0.001)",
    ),
    ({"learning_rate": "fast"}, "learning_rate must be a number > 0, got 'fast'"),
    (
        {"learning_rate": math.inf},
        "learning_rate=inf is not a finite number; learning_rate must be a finite number > 0"
        " (the default is 0.03)",
    ),
    (
        {"learning_rate": 10**400},
        "learning_rate=inf is not a finite number; learning_rate must be a finite number > 0"
        " (the default is 0.03)",
    ),
    (
        {"weight_decay": math.nan},
        "weight_decay=nan is not a finite number; weight_decay must be a finite number >= 0"
        " (the default is 0.0)",
    ),
    ({"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
    ({"temperature": 0}, "temperature must be a number > 0, got 0"),
    (
        {"temperature": -math.inf},
        "temperature=-inf is not a finite number; temperature must be a finite number > 0"
        " (the default is 1.0)",
    ),
    (
        {"prompt_init": 3},
        "prompt_init must be one of ('vocab', 'random', 'text', 'mean') or the path of a saved"
        " prompt folder to start from, got 3",
    ),
    ({"prompt_init": None}, "prompt_init must be one of ('vocab', 'random', 'text', 'mean') or"),
    ({"prompt_init": ""}, "prompt_init must be one of ('vocab', 'random', 'text', 'mean') or"),
    (
        {"prompt_encoder": "gru"},
        "prompt_encoder must be one of (None, 'mlp', 'lstm', 'rank1'), got 'gru'",
    ),
    (
        {"prompt_encoder": ["mlp"]},
        "prompt_encoder must be one of (None, 'mlp', 'lstm', 'rank1'), got ['mlp']",
    ),
    ({"warm_start": 1}, "warm_start must be True or False, got 1"),
    ({"warm_start": "no"}, "warm_start must be True or False, got 'no'"),
    (
        {"random_state": -1},
        "random_state must be None, an integer or a numpy RandomState, got -1",
    ),
    ({"random_state": 2**32}, "random_state must be None, an integer or a numpy RandomState"),
    ({"random_state": 1.5}, "random_state must be None, an integer or a numpy RandomState"),
    ({"random_state": "seed"}, "random_state must be None, an integer or a numpy RandomState"),
    ({"random_state": np.True_}, "random_state must be None, an integer or a numpy RandomState"),
    ({"n_threads": 0}, "n_threads must be None or a positive integer, got 0"),
    ({"n_threads": 1.5}, "n_threads must be None or a positive integer, got 1.5"),
    ({"n_threads": 10**6}, "n_threads=1000000 is more threads than torch can start safely"),
    ({"verbose": "loud"}, "verbose must be an integer, got 'loud'"),
    ({"verbose": 1.0}, "verbose must be an integer, got 1.0"),
    (
        {"device": "nope"},
        "device 'nope' is not a torch device; use None (automatic), 'cpu' or 'cuda'",
    ),
    # tuning
    (
        {"tuning": 3},
        "tuning must be one of ('prompt', 'prompt+head', 'head', 'lora', 'full') or a Tuning(mode,"
        " rank=8, alpha=16.0, learning_rate=None, mlm_loss_weight=1e-4), got 3",
    ),
    (
        {"tuning": "LoRA"},
        "tuning must be one of ('prompt', 'prompt+head', 'head', 'lora', 'full') or",
    ),
    ({"tuning": None}, "tuning must be one of"),
    (
        {"tuning": Tuning("adapter")},
        "tuning.mode must be one of ('prompt', 'prompt+head', 'head', 'lora', 'full'),"
        " got 'adapter'",
    ),
    ({"tuning": Tuning(rank=0)}, "tuning.rank must be a positive integer, got 0"),
    ({"tuning": Tuning(rank=True)}, "tuning.rank must be a positive integer, got True"),
    ({"tuning": Tuning(rank=4.0)}, "tuning.rank must be a positive integer, got 4.0"),
    ({"tuning": Tuning(alpha=0)}, "tuning.alpha must be a number > 0, got 0"),
    (
        {"tuning": Tuning(alpha=math.inf)},
        "tuning.alpha=inf is not a finite number; tuning.alpha must be a finite number > 0"
        " (the default is 16.0)",
    ),
    (
        {"tuning": Tuning(learning_rate=0.0)},
        "tuning.learning_rate must be a number > 0 (or None), got 0.0",
    ),
    (
        {"tuning": Tuning(learning_rate=math.nan)},
        "tuning.learning_rate=nan is not a finite number; tuning.learning_rate must be a finite"
        " number > 0 (or None) (the default is None)",
    ),
    (
        {"tuning": Tuning(learning_rate="3e-5")},
        "tuning.learning_rate must be a number > 0 (or None), got '3e-5' (text, not a number:",
    ),
    (
        {"tuning": Tuning(mlm_loss_weight=1)},
        "tuning.mlm_loss_weight must be a number in [0, 1), got 1",
    ),
    (
        {"tuning": Tuning(mlm_loss_weight=-0.1)},
        "tuning.mlm_loss_weight must be a number in [0, 1), got -0.1",
    ),
    # deep_prompt
    (
        {"deep_prompt": -1},
        "deep_prompt must be an integer >= 0 (slots; 0: none), None or a DeepPrompt(length,"
        " encoder=None), got -1",
    ),
    ({"deep_prompt": True}, "deep_prompt must be an integer >= 0 (slots; 0: none)"),
    ({"deep_prompt": 2.0}, "deep_prompt must be an integer >= 0 (slots; 0: none)"),
    ({"deep_prompt": "4"}, "deep_prompt must be an integer >= 0 (slots; 0: none)"),
    (
        {"deep_prompt": DeepPrompt(0)},
        "deep_prompt.length must be an integer >= 1 (slots), got 0; for no deep prompt use"
        " deep_prompt=None (or 0)",
    ),
    ({"deep_prompt": DeepPrompt(True)}, "deep_prompt.length must be an integer >= 1 (slots)"),
    (
        {"deep_prompt": DeepPrompt(2, "lstm")},
        "deep_prompt.encoder must be one of (None, 'mlp'), got 'lstm'",
    ),
    # guard
    (
        {"guard": "sometimes"},
        "guard must be one of (None, 'holdout', '2fold', '4fold'), got 'sometimes'",
    ),
    ({"guard": True}, "guard must be one of (None, 'holdout', '2fold', '4fold'), got True"),
    # early_stopping
    (
        {"early_stopping": "yes"},
        "early_stopping must be True, False, None or an EarlyStopping(validation_fraction=0.2,"
        " n_iter_no_change=5), got 'yes'",
    ),
    ({"early_stopping": 1}, "early_stopping must be True, False, None or an EarlyStopping("),
    (
        {"early_stopping": EarlyStopping(validation_fraction=0)},
        "early_stopping.validation_fraction must be a number in (0, 1), got 0",
    ),
    (
        {"early_stopping": EarlyStopping(validation_fraction=1)},
        "early_stopping.validation_fraction must be a number in (0, 1), got 1",
    ),
    (
        {"early_stopping": EarlyStopping(validation_fraction=math.inf)},
        "early_stopping.validation_fraction=inf is not a finite number;"
        " early_stopping.validation_fraction must be a finite number in (0, 1) (the default is"
        " 0.2)",
    ),
    (
        {"early_stopping": EarlyStopping(n_iter_no_change=0)},
        "early_stopping.n_iter_no_change must be a positive integer, got 0",
    ),
    # calibration
    (
        {"calibration": "both"},
        "calibration must be one of (None, 'content_free', 'unlabeled') or a Calibration(mode,"
        " texts=None), got 'both'",
    ),
    ({"calibration": True}, "calibration must be one of (None, 'content_free', 'unlabeled')"),
    (
        {"calibration": Calibration("x")},
        "calibration.mode must be one of ('content_free', 'unlabeled'), got 'x'; for no"
        " calibration use calibration=None",
    ),
    ({"calibration": Calibration(None)}, "calibration.mode must be one of"),  # type: ignore[arg-type]
    (
        {"calibration": Calibration(texts=[])},
        "calibration.texts must be None or a non-empty list of strings, got []",
    ),
    (
        {"calibration": Calibration(texts="N/A")},  # type: ignore[arg-type]
        "calibration.texts must be None or a non-empty list of strings, got 'N/A'",
    ),
    (
        {"calibration": Calibration(texts=["a", 1])},  # type: ignore[list-item]
        "calibration.texts must be None or a non-empty list of strings, got ['a', 1]",
    ),
    # demonstrations
    (
        {"demonstrations": "nearest"},
        "demonstrations must be one of (None, 'random', 'similar') or a Demonstrations(mode,"
        " max_tokens=None), got 'nearest'",
    ),
    ({"demonstrations": True}, "demonstrations must be one of (None, 'random', 'similar')"),
    (
        {"demonstrations": Demonstrations("x")},
        "demonstrations.mode must be one of ('random', 'similar'), got 'x'; for none use"
        " demonstrations=None",
    ),
    (
        {"demonstrations": Demonstrations(max_tokens=0)},
        "demonstrations.max_tokens must be None or a positive integer, got 0",
    ),
    (
        {"demonstrations": Demonstrations(max_tokens=2.5)},  # type: ignore[arg-type]
        "demonstrations.max_tokens must be None or a positive integer, got 2.5",
    ),
    # checkpoint
    (
        {"checkpoint": 3},
        "checkpoint must be None, a folder path (str or PathLike) or a Checkpoints(dir,"
        " every=None, overwrite=False), got 3",
    ),
    ({"checkpoint": b"ck"}, "checkpoint must be None, a folder path (str or PathLike)"),
    (
        {"checkpoint": Checkpoints(None)},  # type: ignore[arg-type]
        "checkpoint.dir must be a folder path (str or PathLike), got None; for no checkpoints"
        " use checkpoint=None",
    ),
    ({"checkpoint": Checkpoints(3)}, "checkpoint.dir must be a folder path"),  # type: ignore[arg-type]
    (
        {"checkpoint": Checkpoints("ck", every=0)},
        "checkpoint.every must be None or a positive integer, got 0",
    ),
    (
        {"checkpoint": Checkpoints("ck", overwrite="yes")},  # type: ignore[arg-type]
        "checkpoint.overwrite must be True or False, got 'yes'",
    ),
    # batching
    (
        {"batching": {"eval_size": 64}},
        "batching has no field(s) ['eval_size']; its fields: eval_batch_size,"
        " gradient_accumulation_steps, group_by_length",
    ),
    ({"batching": {"eval_batch_size": 0}}, "batching.eval_batch_size must be a positive"),
    ({"deep_prompt": {"encoder": "mlp"}}, "deep_prompt must be an integer >= 0 (slots; 0: none)"),
    ({"batching": 1}, "batching must be None or a Batching("),
    (
        {"batching": Batching(eval_batch_size=0)},
        "batching.eval_batch_size must be a positive integer, got 0",
    ),
    (
        {"batching": Batching(gradient_accumulation_steps=0)},
        "batching.gradient_accumulation_steps must be a positive integer, got 0",
    ),
    (
        {"batching": Batching(group_by_length="yes")},
        "batching.group_by_length must be True, False or 'auto', got 'yes'",
    ),
    (
        {"batching": Batching(group_by_length=None)},  # type: ignore[arg-type]
        "batching.group_by_length must be True, False or 'auto', got None",
    ),
    (
        {"batch_size": 2, "batching": Batching(gradient_accumulation_steps=4)},
        "batching.gradient_accumulation_steps cannot exceed batch_size (4 > 2)",
    ),
]


@pytest.mark.parametrize(("params", "expected"), BAD, ids=[repr(p) for p, _ in BAD])
def test_every_constraint_raises_naming_the_parameter(params, expected):
    message = _message(params)
    assert message.startswith(expected)
    name = next(n for n in params if n in GROUPS) if len(params) > 1 else next(iter(params))
    assert re.match(rf"{re.escape(name)}[ .=]", message)


def test_every_checked_parameter_and_group_field_has_a_bad_value_in_the_table():
    tested = {name for params, _ in BAD for name in params}
    assert tested == {name for name, p in PARAMETERS.items() if p.check is not None}
    fields_in_messages = {m.group(0) for _, message in BAD if (m := re.match(r"\w+\.\w+", message))}
    group_fields = {
        f"{n}.{f.name}" for n, group in GROUPS.items() for f in dataclasses.fields(group)
    }
    assert fields_in_messages == group_fields


@pytest.mark.parametrize("name", list(GROUPS))
def test_a_wrong_type_for_a_group_lists_the_accepted_forms(name):
    message = _message({name: object})
    assert message.startswith(f"{name} must be ")
    assert f"{GROUPS[name].__name__}(" in message
    assert message.endswith(f"got {object!r}")


def test_device_checks():
    import torch

    for ok in (None, "auto", "cpu", torch.device("cpu")):
        check_device(ok)
        assert resolve({"device": ok}).device == ok
    if not torch.cuda.is_available():
        assert _message({"device": "cuda"}) == (
            "device='cuda' but CUDA is not available on this machine; use device='cpu' or None"
            " (automatic)"
        )


# ------------------------------------------------- nested scikit-learn parameters
def _dummy_classes() -> tuple[type, type]:
    from sklearn.base import BaseEstimator

    class Dummy(BaseEstimator):
        """An estimator with grouped settings, fitted through :func:`resolve`."""

        def __init__(self, tuning="prompt", batching=None, batch_size=8):
            self.tuning = tuning
            self.batching = batching
            self.batch_size = batch_size

        def fit(self, X, y=None):
            self.settings_ = resolve(self.get_params(deep=False))
            return self

        def score(self, X, y=None):
            return float(self.settings_.tuning.rank)

    class Holder(BaseEstimator):
        """An estimator holding one group."""

        def __init__(self, group=None):
            self.group = group

    return Dummy, Holder


GROUP_OBJECTS = [
    Tuning("lora", rank=4, learning_rate=1e-3),
    DeepPrompt(3, "mlp"),
    EarlyStopping(0.3, 2),
    Calibration(texts=["N/A", ""]),
    Demonstrations("similar", max_tokens=12),
    Checkpoints(Path("ck"), every=5),
    Batching(16, 2, False),
]


@pytest.mark.parametrize("obj", GROUP_OBJECTS, ids=lambda g: type(g).__name__)
def test_clone_copies_every_group(obj):
    from sklearn.base import clone

    _, Holder = _dummy_classes()
    est = Holder(group=obj)
    copy = clone(est)
    assert copy.group == obj and copy.group is not obj
    assert type(copy.group) is type(obj)
    deep = est.get_params(deep=True)
    for f in dataclasses.fields(obj):
        assert deep[f"group__{f.name}"] == getattr(obj, f.name)


def test_estimator_set_params_routes_to_the_group():
    Dummy, _ = _dummy_classes()
    est = Dummy(tuning=Tuning("lora"))
    est.set_params(tuning__rank=4, tuning__alpha=8.0)
    assert est.tuning == Tuning("lora", rank=4, alpha=8.0)
    with pytest.raises(ValueError, match="Tuning has no parameter 'rnk'; valid parameters:"):
        est.set_params(tuning__rnk=4)


def test_grid_search_tunes_a_group_field():
    from sklearn.model_selection import GridSearchCV

    Dummy, _ = _dummy_classes()
    base = Dummy(tuning=Tuning("lora", rank=2))
    X = np.zeros((8, 1))
    search = GridSearchCV(base, {"tuning__rank": [4, 8]}, cv=2).fit(X)
    assert search.best_params_ == {"tuning__rank": 8}
    assert list(search.cv_results_["mean_test_score"]) == [4.0, 8.0]
    assert search.best_estimator_.tuning == Tuning("lora", rank=8)
    assert search.best_estimator_.settings_.tuning == Tuning("lora", rank=8)
    assert base.tuning == Tuning("lora", rank=2)  # the searched estimator was cloned


def test_grid_search_reports_a_bad_group_field_through_resolve():
    from sklearn.model_selection import GridSearchCV

    Dummy, _ = _dummy_classes()
    search = GridSearchCV(
        Dummy(tuning=Tuning("lora"), batching=Batching()),
        {"batching__gradient_accumulation_steps": [16]},
        cv=2,
        error_score="raise",
    )
    with pytest.raises(InputError, match=r"batching\.gradient_accumulation_steps cannot exceed"):
        search.fit(np.zeros((8, 1)))


# ------------------------------------------------------------------ JSON
def _json_trip(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, allow_nan=False))


FULL_PARAMS = {
    "max_length": 128,
    "learning_rate": 0.01,
    "epochs": 3,
    "max_steps": 50,
    "batch_size": 4,
    "weight_decay": 0.1,
    "prompt_init": "text",
    "prompt_encoder": "lstm",
    "tuning": Tuning("lora", rank=4, alpha=8.0, learning_rate=1e-3, mlm_loss_weight=0.0),
    "deep_prompt": DeepPrompt(3, "mlp"),
    "early_stopping": EarlyStopping(0.25, 3),
    "calibration": Calibration("content_free", texts=["N/A", ""]),
    "demonstrations": Demonstrations("similar", max_tokens=20),
    "checkpoint": Checkpoints("ck", every=5),
    "batching": Batching(16, 2, False),
    "warm_start": True,
    "temperature": 2.0,
    "random_state": 7,
    "device": "cpu",
    "n_threads": 2,
    "verbose": 0,
}


def test_json_format():
    data = to_json(FULL_PARAMS)
    assert list(data) == list(FULL_PARAMS)
    assert data["tuning"] == {
        "mode": "lora",
        "rank": 4,
        "alpha": 8.0,
        "learning_rate": 1e-3,
        "mlm_loss_weight": 0.0,
    }
    assert data["checkpoint"] == {"dir": "ck", "every": 5, "overwrite": False}
    assert data["calibration"] == {"mode": "content_free", "texts": ["N/A", ""]}
    assert _json_trip(data) == data


def test_json_round_trip_of_parameters():
    assert from_json(_json_trip(to_json(FULL_PARAMS))) == FULL_PARAMS


def test_json_round_trip_keeps_shorthands():
    params = {
        "tuning": "lora",
        "deep_prompt": 4,
        "early_stopping": True,
        "calibration": "unlabeled",
        "demonstrations": "random",
        "checkpoint": "ck",
        "batching": None,
    }
    assert from_json(_json_trip(to_json(params))) == params


@pytest.mark.parametrize(
    "params",
    [{}, FULL_PARAMS, {"tuning": "full", "deep_prompt": 2, "checkpoint": "ck"}],
    ids=["defaults", "full", "shorthands"],
)
def test_json_round_trip_of_settings(params):
    settings = resolve(params)
    assert resolve(from_json(_json_trip(to_json(settings)))) == settings


def test_json_writes_paths_as_text():
    settings = resolve({"checkpoint": Path("ck") / "run"})
    back = resolve(from_json(_json_trip(to_json(settings))))
    assert back.checkpoint == Checkpoints(str(Path("ck") / "run"))


def test_to_json_converts_values():
    data = to_json(
        {
            "pvp": {"pattern": "x"},
            "model": object(),
            "bogus": 1,
            "max_length": np.int64(64),
            "learning_rate": np.float32(0.5),
            "warm_start": np.True_,
            "random_state": np.random.RandomState(0),
            "checkpoint": Checkpoints(Path("a") / "b", every=np.int64(3)),
            "calibration": Calibration(texts=("N/A",)),
            "tuning": Tuning(rank=np.int32(2)),
        }
    )
    assert data == {
        "max_length": 64,
        "learning_rate": 0.5,
        "warm_start": True,
        "checkpoint": {"dir": str(Path("a") / "b"), "every": 3, "overwrite": False},
        "calibration": {"mode": "content_free", "texts": ["N/A"]},
        "tuning": {
            "mode": "prompt",
            "rank": 2,
            "alpha": 16.0,
            "learning_rate": None,
            "mlm_loss_weight": 1e-4,
        },
    }
    assert type(data["max_length"]) is int and type(data["warm_start"]) is bool
    assert type(data["tuning"]["rank"]) is int


def test_from_json_ignores_unknown_keys_and_leaves_bad_values_to_resolve():
    params = from_json(
        {
            "bogus": 1,
            "pvp": "x.yaml",
            "tuning": {"mode": "lora", "rank": 0, "future_field": 1},
            "deep_prompt": {"encoder": "mlp"},  # no length: passed on as the dict
            "epochs": "many",
        }
    )
    assert params["tuning"] == Tuning("lora", rank=0)
    assert params["deep_prompt"] == {"encoder": "mlp"}
    assert set(params) == {"tuning", "deep_prompt", "epochs"}
    with pytest.raises(InputError, match=r"^epochs must be an integer >= 0, got 'many'"):
        resolve(params)
    with pytest.raises(InputError, match=r"^tuning\.rank must be a positive integer, got 0"):
        resolve({**params, "epochs": 1})
    with pytest.raises(InputError, match=r"^deep_prompt must be .* got \{'encoder': 'mlp'\}"):
        resolve({**params, "epochs": 1, "tuning": "lora"})


def test_from_json_refuses_a_non_object():
    with pytest.raises(InputError, match="must be a JSON object"):
        from_json([1, 2])  # type: ignore[arg-type]


def test_the_flat_parameter_names_of_before_the_groups_are_unknown_names():
    """Grouped settings came before 0.1.0: a flat name (``lora_rank``) is an unknown
    name, left out like any other, so the group keeps its default."""
    params = from_json({"tuning": "lora", "lora_rank": 4, "checkpoint_dir": "ck"})
    assert params == {"tuning": "lora"}
    assert resolve(params).tuning == Tuning("lora")


# ------------------------------------------------------------------ no heavy imports
def test_importing_the_module_loads_no_torch_sklearn_or_transformers():
    """Import ``pet_kit.config.settings`` in a fresh interpreter under a stand-in ``pet_kit``
    package (an empty module whose ``__path__`` is the real folder), so that the package's
    ``__init__`` (which imports the estimators, hence torch) does not run, but the module's
    own imports (relative ones included) do, and check what they loaded."""
    code = textwrap.dedent(
        f"""
        import importlib, sys, types
        pkg = types.ModuleType("pet_kit")
        pkg.__path__ = [{str(PACKAGE)!r}]
        sys.modules["pet_kit"] = pkg
        module = importlib.import_module("pet_kit.config.settings")
        module.resolve({{"tuning": "lora", "checkpoint": "ck", "device": "auto"}})
        module.from_json(module.to_json({{"tuning": module.Tuning("lora")}}))
        assert module.__file__.startswith({str(PACKAGE)!r}), module.__file__
        heavy = sorted(
            name for name in sys.modules
            if name.split(".")[0] in ("torch", "sklearn", "transformers", "scipy")
        )
        print(heavy)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("tuning", {"mode": "lora", "rank": 4}, Tuning("lora", rank=4)),
        ("deep_prompt", {"length": 2, "encoder": "mlp"}, DeepPrompt(2, encoder="mlp")),
        ("early_stopping", {"n_iter_no_change": 2}, EarlyStopping(n_iter_no_change=2)),
        ("calibration", {"mode": "unlabeled"}, Calibration("unlabeled")),
        ("demonstrations", {"mode": "similar", "max_tokens": 9}, Demonstrations("similar", 9)),
        ("checkpoint", {"dir": "ck", "every": 5}, Checkpoints("ck", every=5)),
        ("batching", {"eval_batch_size": 64}, Batching(eval_batch_size=64)),
    ],
)
def test_a_dict_of_fields_is_its_group(name, data, expected):
    """YAML configs (``pet-kit train``'s ``params:``) give groups as mappings."""
    assert getattr(resolve({name: data}), name) == expected
