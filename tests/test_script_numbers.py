"""The default-backbone scripts refuse a rate, loss weight or time box of nan, inf or out of
range when the command line is parsed (not minutes into a run on a NaN loss)."""

from __future__ import annotations

import pytest
from conftest import backbone_scripts

# (script, the arguments before the number, the option, a value it must take)
CASES = [
    ("train_head", [], "--lr-head", "1e-3"),
    ("train_head", [], "--warmup", "0.1"),
    ("train_head", [], "--max-minutes", "5"),
    ("train_mlm", ["train"], "--learning-rate", "1e-4"),
    ("train_mlm", ["train"], "--max-minutes", "5"),
    ("distill_cloze", ["train"], "--weight-mlm", "0"),
    ("distill_cloze", ["train"], "--tau", "0.05"),
    ("distill_cloze", ["train"], "--max-minutes", "5"),
    ("distill_bundle", ["encode"], "--max-minutes", "5"),
    ("mpnet_head", ["train"], "--weight-kl", "0"),
    ("mpnet_head", ["cache"], "--max-minutes", "5"),
    ("mpnet_top", ["--models", "m", "train"], "--lr-layer", "1e-4"),
]
# what each option refuses besides nan and inf: below zero; zero where it must be positive
REFUSED = {"--max-minutes": ["0", "-1"], "--tau": ["0"], "--warmup": ["-0.1", "1.5"]}
# every script these modules import, loaded first
NEEDS = {
    "distill_bundle": ("distill_cloze", "distill_bundle"),
    "mpnet_head": ("distill_cloze", "distill_bundle", "mpnet_head"),
    "mpnet_top": ("distill_cloze", "distill_bundle", "mpnet_head", "mpnet_top"),
}


@pytest.mark.parametrize(("name", "before", "option", "good"), CASES)
def test_the_number_options_refuse_non_finite_and_out_of_range_values(
    name, before, option, good, capsys
):
    with backbone_scripts(*NEEDS.get(name, (name,))) as loaded:
        parser = loaded[name].build_parser()
        args = parser.parse_args([*before, f"{option}={good}"])
        assert getattr(args, option[2:].replace("-", "_")) == float(good)
        for bad in ["nan", "inf", "-inf", "x", *REFUSED.get(option, ["-1"])]:
            with pytest.raises(SystemExit):
                parser.parse_args([*before, f"{option}={bad}"])
            err = capsys.readouterr().err
            assert option in err and repr(bad) in err, err
