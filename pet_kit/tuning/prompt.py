"""``tuning="prompt"``: the soft slots only (backbone and MLM head frozen)."""

from __future__ import annotations

from .base import TuningMethod

__all__ = ["PROMPT", "PromptTuning"]


class PromptTuning(TuningMethod):
    """Prompt tuning: only the soft slots train; nothing else is saved."""

    name = "prompt"
    summary = "the soft slots only (backbone and MLM head frozen)."
    shares_prompt = True


PROMPT = PromptTuning()
