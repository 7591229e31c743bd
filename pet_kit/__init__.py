"""pet_kit: few-shot text classification by cloze prompts on a frozen masked LM.

>>> from pet_kit import PromptClassifier
>>> clf = PromptClassifier(pvp="sentiment_en")                 # doctest: +SKIP
>>> clf.fit(texts, labels).predict(new_texts)                  # doctest: +SKIP

``import pet_kit`` is cheap: the public names below are imported on first use
(PEP 562), so torch, transformers, scikit-learn and pandas load only when a name
that needs them (e.g. :class:`PromptClassifier`) is first touched.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # static type checkers and IDEs see the real objects
    from .config.pattern import Pattern, parse_pattern
    from .config.pvp import PVP, load_pvp, load_pvps, load_verbalizer
    from .config.settings import (
        Batching,
        Calibration,
        Checkpoints,
        DeepPrompt,
        Demonstrations,
        EarlyStopping,
        Tuning,
    )
    from .config.verbalizer import Verbalizer
    from .datasets import load_task
    from .errors import (
        BackboneError,
        BackboneMismatchError,
        ConfigError,
        InputError,
        NothingTrainedWarning,
        PatternError,
        PetKitError,
        SavedPromptError,
        TrainingDivergedError,
        VerbalizerError,
    )
    from .estimators.ensemble import PromptEnsemble
    from .estimators.multitask import train_shared_prompt
    from .estimators.prompt_classifier import PromptClassifier
    from .estimators.prompt_classifier_cv import PromptClassifierCV
    from .estimators.student import LinearStudent
    from .model.cloze_model import ClozeModel
    from .train.adapt import adapt

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: Public name -> ``"module:attribute"`` it is imported from on first access.
_LAZY: dict[str, str] = {
    # errors (light)
    "BackboneError": "pet_kit.errors:BackboneError",
    "BackboneMismatchError": "pet_kit.errors:BackboneMismatchError",
    "ConfigError": "pet_kit.errors:ConfigError",
    "InputError": "pet_kit.errors:InputError",
    "NothingTrainedWarning": "pet_kit.errors:NothingTrainedWarning",
    "PatternError": "pet_kit.errors:PatternError",
    "PetKitError": "pet_kit.errors:PetKitError",
    "SavedPromptError": "pet_kit.errors:SavedPromptError",
    "TrainingDivergedError": "pet_kit.errors:TrainingDivergedError",
    "VerbalizerError": "pet_kit.errors:VerbalizerError",
    # specifications (light: yaml + pydantic)
    "PVP": "pet_kit.config.pvp:PVP",
    "Pattern": "pet_kit.config.pattern:Pattern",
    "Verbalizer": "pet_kit.config.verbalizer:Verbalizer",
    "load_pvp": "pet_kit.config.pvp:load_pvp",
    "load_pvps": "pet_kit.config.pvp:load_pvps",
    "load_verbalizer": "pet_kit.config.pvp:load_verbalizer",
    "parse_pattern": "pet_kit.config.pattern:parse_pattern",
    # grouped settings
    "Batching": "pet_kit.config.settings:Batching",
    "Calibration": "pet_kit.config.settings:Calibration",
    "Checkpoints": "pet_kit.config.settings:Checkpoints",
    "DeepPrompt": "pet_kit.config.settings:DeepPrompt",
    "Demonstrations": "pet_kit.config.settings:Demonstrations",
    "EarlyStopping": "pet_kit.config.settings:EarlyStopping",
    "Tuning": "pet_kit.config.settings:Tuning",
    # estimators and models (heavy: torch, transformers, scikit-learn)
    "ClozeModel": "pet_kit.model.cloze_model:ClozeModel",
    "LinearStudent": "pet_kit.estimators.student:LinearStudent",
    "PromptClassifier": "pet_kit.estimators.prompt_classifier:PromptClassifier",
    "PromptClassifierCV": "pet_kit.estimators.prompt_classifier_cv:PromptClassifierCV",
    "PromptEnsemble": "pet_kit.estimators.ensemble:PromptEnsemble",
    # functions
    "adapt": "pet_kit.train.adapt:adapt",
    "load_task": "pet_kit.datasets:load_task",
    "train_shared_prompt": "pet_kit.estimators.multitask:train_shared_prompt",
}

__all__ = [
    "PVP",
    "BackboneError",
    "BackboneMismatchError",
    "Batching",
    "Calibration",
    "Checkpoints",
    "ClozeModel",
    "ConfigError",
    "DeepPrompt",
    "Demonstrations",
    "EarlyStopping",
    "InputError",
    "LinearStudent",
    "NothingTrainedWarning",
    "Pattern",
    "PatternError",
    "PetKitError",
    "PromptClassifier",
    "PromptClassifierCV",
    "PromptEnsemble",
    "SavedPromptError",
    "TrainingDivergedError",
    "Tuning",
    "Verbalizer",
    "VerbalizerError",
    "__version__",
    "adapt",
    "load_pvp",
    "load_pvps",
    "load_task",
    "load_verbalizer",
    "parse_pattern",
    "train_shared_prompt",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first access and cache it in the module (PEP 562)."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
