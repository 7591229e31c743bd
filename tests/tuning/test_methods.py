"""The tuning-method table: one row per ``tuning=`` mode, each method's own fields."""

from __future__ import annotations

import dataclasses

import pytest

from pet_kit import InputError, Tuning
from pet_kit.config.settings import TUNINGS, resolve
from pet_kit.tuning import FIELDS, METHODS, TuningMethod, method


def test_every_mode_is_a_row_of_the_table():
    assert TUNINGS == tuple(METHODS)
    assert TUNINGS[:5] == ("prompt", "prompt+head", "head", "lora", "full")  # public names
    for name, row in METHODS.items():
        assert isinstance(row, TuningMethod)
        assert row.name == name and method(name) is row


def test_tunings_fields_are_the_methods_own_in_table_order():
    names = [f.name for f in dataclasses.fields(Tuning)]
    assert names == ["mode", *(f.name for f in FIELDS)]
    assert [f.name for f in METHODS["lora"].fields] == ["rank", "alpha", "learning_rate"]
    assert [f.name for f in METHODS["full"].fields] == ["learning_rate", "mlm_loss_weight"]
    assert METHODS["prompt"].fields == METHODS["head"].fields == ()
    doc = Tuning.__doc__ or ""
    for f in FIELDS:
        assert f"\n    {f.name} : {f.spec}\n" in doc


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("prompt", (True, True, False)),
        ("prompt+head", (True, False, False)),
        ("head", (False, False, False)),
        ("lora", (True, False, True)),
        ("full", (True, False, True)),
    ],
)
def test_what_each_method_trains(name, flags):
    row = METHODS[name]
    assert (row.trains_slots, row.shares_prompt, row.copies_backbone) == flags
    assert (row.learning_rate is not None) == row.copies_backbone


def test_a_methods_fields_are_checked_by_their_declaration():
    with pytest.raises(InputError, match=r"tuning\.rank must be a positive integer"):
        resolve({"tuning": Tuning("lora", rank=0)})
    with pytest.raises(InputError, match=r"tuning\.mlm_loss_weight must be a number in \[0, 1\)"):
        resolve({"tuning": Tuning("full", mlm_loss_weight=1.5)})
    assert resolve({"tuning": Tuning("full", learning_rate=None)}).tuning.learning_rate is None
    assert METHODS["full"].aux_loss_weight(Tuning("full").get_params()) == 1e-4
    assert METHODS["lora"].aux_loss_weight(Tuning("lora").get_params()) == 0.0
