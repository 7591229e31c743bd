"""What a tuning method is: its own settings, what it trains, how it saves its part.

A method is one object of a :class:`TuningMethod` subclass, in a module of its own
(:mod:`~pet_kit.tuning.prompt`, :mod:`~pet_kit.tuning.head`, :mod:`~pet_kit.tuning.lora`,
:mod:`~pet_kit.tuning.full`), and one row of :data:`pet_kit.tuning.METHODS`. Everything
else asks the method: the settings check its :class:`Field` s, the model and the trainer
call its hooks. This package imports neither torch nor the rest of pet_kit: the hooks
work on the objects they are given (a torch module, a tensor dict, the model through the
:class:`Tuned` protocol).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Field", "Tuned", "TuningMethod"]


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting of a tuning method: a field of the public ``Tuning`` group.

    ``Tuning(mode, ...)`` has the fields of every method, in table order (a field that
    two methods read, such as ``learning_rate``, once); its docstring and its checks are
    made from these.

    Attributes
    ----------
    name : str
    default : object
    annotation : str
        Its type, as a dataclass annotation (``"int"``, ``"float | None"``).
    spec : str
        The numpydoc type line after ``name :`` (``"int, default=8"``).
    doc : str
        The description, in lines of at most 80 characters.
    minimum : int, optional
        An integer >= ``minimum`` (booleans are not integers).
    ok : callable, optional
        Otherwise a finite number for which ``ok(value)`` holds...
    what : str
        ... described as ``what`` in messages (``"> 0"``).
    optional : bool
        ``None`` is valid too.
    """

    name: str
    default: Any
    annotation: str
    spec: str
    doc: str
    minimum: int | None = None
    ok: Callable[[float], bool] | None = None
    what: str = ""
    optional: bool = False

    @property
    def default_text(self) -> str:
        """The default as :attr:`spec` writes it (``1e-4``), else its ``repr``."""
        _, found, text = self.spec.partition("default=")
        return text if found else repr(self.default)


class Tuned(Protocol):
    """What a method's hooks use of the model they tune (a
    :class:`~pet_kit.model.cloze_model.ClozeModel`)."""

    @property
    def label_head(self) -> nn.Module | None: ...

    def add_label_head(self, state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
        """Give the model a fresh soft verbalizer (optionally loaded with ``state``)."""
        ...

    def use_backbone_copy(
        self, delta: dict[str, torch.Tensor] | None = None, where: str = ""
    ) -> None:
        """Run the model on a private copy of its backbone (loaded with ``delta``)."""
        ...

    def backbone_delta(self) -> dict[str, torch.Tensor] | None:
        """The current weights of the private backbone copy that the method trains."""
        ...


class TuningMethod:
    """A tuning method: the defaults describe one that trains the soft slots only.

    Attributes
    ----------
    name : str
        Its ``tuning=`` name (``Tuning.mode``).
    summary : str
        What it trains, for the ``Tuning`` docstring (lines of at most 70 characters).
    fields : tuple of Field
        Its own settings.
    trains_slots : bool
        The soft slots train (``False``: they keep their initial vectors).
    shares_prompt : bool
        It trains nothing but the slots, so a prompt shared by several tasks
        (:func:`~pet_kit.train.trainer.fit`) can use it.
    copies_backbone : bool
        It trains weights of a private copy of the backbone (so an inference mode, which
        works on the shared backbone, does not apply).
    learning_rate : float, optional
        The default learning rate of those weights (``Tuning.learning_rate=None``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    trains_slots: ClassVar[bool] = True
    shares_prompt: ClassVar[bool] = False
    copies_backbone: ClassVar[bool] = False
    learning_rate: ClassVar[float | None] = None

    def __repr__(self) -> str:
        return f"<tuning method {self.name!r}>"

    # ------------------------------------------------------------- training
    def prepare(self, model: Tuned, fitted: Tuned | None) -> None:
        """Give ``model`` what the method trains beyond the slots (continued from
        ``fitted`` on a warm start)."""

    def adapt(self, network: nn.Module, settings: Mapping[str, Any]) -> nn.Module:
        """The private backbone copy as the method trains it (``settings``: its fields'
        values); called on a fresh copy, before its weights are frozen."""
        return network

    def trainable(self, network: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """The backbone copy's weights the method trains, by name."""
        return []

    def aux_loss_weight(self, settings: Mapping[str, Any]) -> float:
        """The weight of PET's auxiliary MLM loss (0: none)."""
        return 0.0

    # ----------------------------------------------------------- save / load
    def saved(self, model: Tuned) -> dict[str, torch.Tensor]:
        """Its part of a saved prompt's tensor file."""
        return {}

    def load(self, model: Tuned, tensors: Mapping[str, torch.Tensor], tensor_file: str) -> None:
        """Restore its part from a saved prompt's ``tensors`` into a built ``model``.

        Raises
        ------
        SavedPromptError
            The part is missing or damaged.
        """
