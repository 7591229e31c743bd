"""Trainable soft-slot vectors, optionally reparameterised (P-tuning).

With ``encoder="mlp"`` or ``"lstm"`` the vectors are ``e + f(e)`` where ``e`` is the
trainable table and ``f`` a small network whose last layer starts at zero, so the
initialisation (e.g. from words) is exactly preserved at step 0 and training moves
all slots jointly (P-tuning, Liu et al. 2021). After training only the resulting
vectors are needed for prediction, so saved prompts store just those.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config.settings import INIT_STRATEGIES, PROMPT_ENCODERS

__all__ = ["INIT_STRATEGIES", "PROMPT_ENCODERS", "SoftPrompt", "initial_vectors"]


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


class _Rank1(nn.Module):
    """Multiplicative rank-1 adaptation (multi-task prompt tuning's task-specific part):
    the slots become ``e * (u v^T)`` with ``e`` frozen; ``u`` (one number per slot) and
    ``v`` (one per dimension) start at 1, so step 0 is ``e`` exactly."""

    def __init__(self, n_slots: int, dim: int) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.ones(n_slots, 1))
        self.v = nn.Parameter(torch.ones(1, dim))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return e * (self.u * self.v - 1.0)


class _LSTM(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden // 2, num_layers=2, bidirectional=True, batch_first=True)
        self.mlp = _MLP(hidden, hidden)
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(e.unsqueeze(0))
        h = h.squeeze(0)
        return self.out(h + self.mlp(h))


class SoftPrompt(nn.Module):
    """The soft slots of one PVP.

    Parameters
    ----------
    init : torch.Tensor
        Initial vectors, shape ``(n_slots, dim)``.
    encoder : {None, "mlp", "lstm"}
        Optional P-tuning reparameterisation.
    hidden : int, optional
        Hidden size of the encoder (default: ``dim``).
    """

    def __init__(
        self, init: torch.Tensor, encoder: str | None = None, hidden: int | None = None
    ) -> None:
        super().__init__()
        self.embedding = nn.Parameter(init.detach().clone())
        self.encoder_kind = encoder
        dim = init.shape[1] if init.ndim == 2 else 0
        self.encoder: nn.Module | None = None
        if encoder == "mlp":
            self.encoder = _MLP(dim, hidden or dim)
        elif encoder == "lstm":
            self.encoder = _LSTM(dim, 2 * ((hidden or dim) // 2))
        elif encoder == "rank1":
            self.encoder = _Rank1(int(init.shape[0]), dim)
            self.embedding.requires_grad_(False)  # only u and v train
        elif encoder is not None:
            raise ValueError(f"prompt_encoder must be one of {PROMPT_ENCODERS}, got {encoder!r}")

    @property
    def n_slots(self) -> int:
        """Number of slots."""
        return int(self.embedding.shape[0])

    def forward(self) -> torch.Tensor:
        """Return the slot vectors, shape ``(n_slots, dim)``."""
        e = self.embedding
        if self.encoder is None or e.shape[0] == 0:
            return e
        return e + self.encoder(e)


def _ordinary(vocab_size: int, excluded: set[int]) -> torch.Tensor:
    """A mask over the vocabulary: every token but the ``excluded`` (special) ones."""
    mask = torch.ones(vocab_size, dtype=torch.bool)
    ids = sorted(i for i in excluded if 0 <= i < vocab_size)
    if ids:
        mask[torch.tensor(ids, dtype=torch.long)] = False
    return mask


def initial_vectors(
    word_embeddings: torch.Tensor,
    slot_init_ids: Sequence[int | None],
    strategy: str,
    generator: torch.Generator,
    exclude_ids: Sequence[int] = (),
    text_ids: Sequence[int] = (),
) -> torch.Tensor:
    """Initial slot vectors.

    Parameters
    ----------
    word_embeddings : torch.Tensor
        The backbone's input embedding matrix ``(vocab, dim)``.
    slot_init_ids : sequence of int or None
        Per slot, a token to copy (from ``[SOFT:words]``) or None.
    strategy : {"vocab", "random", "text", "mean"}
        For slots without init words: ``vocab`` copies embeddings of random vocabulary
        tokens (never special tokens); ``random`` draws from a normal distribution
        with the embeddings' mean and std; ``mean`` starts every such slot at the mean
        embedding of the vocabulary (special tokens left out): no word in particular, the
        same vectors whatever the generator; ``text`` copies the embeddings of
        ``text_ids`` (the task's own words, see
        :meth:`~pet_kit.model.cloze_model.ClozeModel.new_prompt`) in order, cycling when
        there are more such slots than tokens (``vocab`` when ``text_ids`` is empty).
        Slots with init words always start from their words.
    generator : torch.Generator
        Source of randomness (makes runs reproducible); ``text`` and ``mean`` draw nothing
        from it.
    exclude_ids : sequence of int
        Token ids never sampled or copied (special tokens).
    text_ids : sequence of int
        The tokens ``text`` copies; ids in ``exclude_ids`` or out of the vocabulary are
        skipped.

    Returns
    -------
    torch.Tensor
        Shape ``(len(slot_init_ids), dim)``, float32 on the CPU.
    """
    if strategy not in INIT_STRATEGIES:
        raise ValueError(f"prompt_init must be one of {INIT_STRATEGIES}, got {strategy!r}")
    emb = word_embeddings.detach().to("cpu", torch.float32)
    n, dim = len(slot_init_ids), emb.shape[1]
    out = torch.empty(n, dim)
    if n == 0:
        return out
    excluded = {int(i) for i in exclude_ids}
    words = [int(t) for t in text_ids if int(t) not in excluded and 0 <= int(t) < emb.shape[0]]
    if strategy == "text" and words:
        free = [i for i, tid in enumerate(slot_init_ids) if tid is None]
        draws = torch.empty(n, dim)
        for k, i in enumerate(free):
            draws[i] = emb[words[k % len(words)]]
    elif strategy == "random":
        mean, std = emb.mean().item(), emb.std().item()
        draws = torch.randn(n, dim, generator=generator) * std + mean
    elif strategy == "mean":
        draws = emb[_ordinary(emb.shape[0], excluded)].mean(0).expand(n, dim)
    else:
        pool = _ordinary(emb.shape[0], excluded).nonzero().squeeze(1)
        # skip the lowest ids (often [unused*]/control tokens in WordPiece vocabularies)
        if len(pool) > 2000:
            pool = pool[1000:]
        picks = pool[torch.randint(len(pool), (n,), generator=generator)]
        draws = emb[picks]
    for i, tid in enumerate(slot_init_ids):
        out[i] = emb[tid] if tid is not None else draws[i]
    return out
