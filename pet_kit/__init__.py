"""pet_kit: few-shot text classification by cloze prompts on a frozen masked LM.

>>> from pet_kit import PromptClassifier
>>> clf = PromptClassifier(pvp="templates/sentiment_en.yaml")  # doctest: +SKIP
>>> clf.fit(texts, labels).predict(new_texts)                  # doctest: +SKIP
"""

from __future__ import annotations

import logging

from ._version import __version__
from .errors import (
    BackboneError,
    BackboneMismatchError,
    ConfigError,
    InputError,
    PatternError,
    PetKitError,
    SavedPromptError,
    TrainingDivergedError,
    VerbalizerError,
)
from .estimators.ensemble import PromptEnsemble
from .estimators.prompt_classifier import PromptClassifier
from .estimators.student import LinearStudent
from .spec.pattern import Pattern, parse_pattern
from .spec.pvp import PVP, load_pvp, load_pvps, load_verbalizer
from .spec.verbalizer import Verbalizer

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "PVP",
    "BackboneError",
    "BackboneMismatchError",
    "ConfigError",
    "InputError",
    "LinearStudent",
    "Pattern",
    "PatternError",
    "PetKitError",
    "PromptClassifier",
    "PromptEnsemble",
    "SavedPromptError",
    "TrainingDivergedError",
    "Verbalizer",
    "VerbalizerError",
    "__version__",
    "load_pvp",
    "load_pvps",
    "load_verbalizer",
    "parse_pattern",
]
