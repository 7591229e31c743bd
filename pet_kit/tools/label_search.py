"""Automatic label words: propose a verbalizer from a few labelled examples.

For every training example the pattern is filled in and the masked LM's log-probability
of every candidate word at the mask is read (one forward pass per example, the
backbone frozen). Candidates are whole words of the vocabulary that are one token in
context. Per class ``c`` (PETAL / LM-BFF style):

1. keep the ``n_candidates`` words with the highest mean log-probability on the
   examples of ``c`` (words the model finds plausible there), then
2. rank them by the log-likelihood ratio ``mean log p(w | x in c) - mean log p(w | x not
   in c)`` (words that tell ``c`` apart), and take the best ``n_words`` — a word goes to
   one class only.

:func:`write_verbalizer` writes the result as a verbalizer YAML file to edit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config.pattern import parse_pattern
from ..config.pvp import PVP, load_pvp
from ..errors import InputError
from ..estimators.prompt_classifier import PromptClassifier, _sorted_labels
from ..io.atomic import replacing
from ..io.inputs import check_positive_int, to_label_indices
from ..model.backbone import frozen, load_backbone
from ..model.cloze_model import batches

__all__ = ["search_label_words", "write_verbalizer"]

log = logging.getLogger(__name__)

MASK = "[MASK]"


def _pattern_text(pattern: Any) -> str:
    if isinstance(pattern, str) and MASK in pattern and not pattern.endswith(".yaml"):
        return pattern
    if isinstance(pattern, str) and "{" in pattern and not os.path.exists(pattern):
        return parse_pattern(pattern).text  # a pattern, e.g. without [MASK]: its error
    pvp = pattern if isinstance(pattern, PVP) else load_pvp(pattern)
    return pvp.pattern.text


def _candidates(
    tokenizer: Any, space_before_mask: bool, min_chars: int
) -> tuple[list[int], list[str]]:
    """Vocabulary entries that are whole alphabetic words, one token in context."""
    special = set(tokenizer.all_special_ids)
    ids, words = [], []
    for token, idx in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if idx in special or token.startswith("##"):
            continue
        word = tokenizer.convert_tokens_to_string([token]).strip()
        if not word.isalpha() or (len(word) < min_chars and not _is_cjk(word)):
            continue
        text = (" " if space_before_mask else "") + word
        if tokenizer(text, add_special_tokens=False)["input_ids"] != [idx]:
            continue
        ids.append(idx)
        words.append(word)
    return ids, words


def _is_cjk(word: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in word)


def search_label_words(
    pattern: Any,
    X: Any,
    y: Any,
    *,
    model: Any = None,
    tokenizer: Any = None,
    n_words: int = 3,
    n_candidates: int = 100,
    min_chars: int = 3,
    max_length: int = 256,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[Hashable, list[tuple[str, float]]]:
    """Propose ``n_words`` label words per class from labelled examples.

    Parameters
    ----------
    pattern : str or PVP reference
        A pattern with ``[MASK]`` (e.g. ``"{text} It was [MASK]."``), or a PVP / template
        reference whose pattern is used (its verbalizer is ignored). Soft slots keep
        their initial vectors.
    X, y : texts and labels
        A few examples per class (every class at least once).
    model, tokenizer, device : optional
        The backbone (default: the embedded one).
    n_words : int, default=3
        Words per class.
    n_candidates : int, default=100
        Per class, the most probable words kept before ranking by likelihood ratio.
    min_chars : int, default=3
        Shortest candidate word (CJK words: any length).
    max_length, batch_size : int

    Returns
    -------
    dict
        Label -> list of ``(word, log-likelihood ratio)``, best first.
    """
    check_positive_int("n_words", n_words)
    check_positive_int("n_candidates", n_candidates)
    text = _pattern_text(pattern)
    if X is None or y is None or len(X) == 0:
        raise InputError("search_label_words needs labelled examples X, y")
    labels = _sorted_labels(list(dict.fromkeys(y)))
    if len(labels) < 2:
        raise InputError(f"y has one class ({labels}); label words need at least two classes")
    backbone = load_backbone(model, tokenizer, device)
    tok = backbone.tokenizer
    before = text.split(MASK, 1)[0]
    ids, words = _candidates(tok, before.endswith(" "), int(min_chars))
    if len(ids) < len(labels) * n_words:
        raise InputError(f"the vocabulary has only {len(ids)} candidate words")
    # placeholder label words let pet_kit compile the pattern (its truncation, soft
    # slots...); the scores below are over every candidate word
    placeholder = {i: [w] for i, w in enumerate(words[: len(labels)])}
    clf = PromptClassifier(
        pvp={"pattern": text, "verbalizer": placeholder},
        model=model,
        tokenizer=tokenizer,
        device=device,
        max_length=max_length,
        verbose=0,
    ).fit(None)
    model = clf.model_
    scorer = model.scorer
    examples = model.encode(X)
    y_idx = to_label_indices(list(y), labels, len(examples))
    cand = torch.tensor(ids, device=scorer.device)
    out = np.empty((len(examples), len(ids)), dtype=np.float32)
    with torch.inference_mode(), frozen(backbone.model):
        slots = model.slots()
        for idx in batches(range(len(examples)), batch_size):
            lp = scorer.mask_logprobs([examples[i] for i in idx], slots)
            out[idx] = lp[:, cand].float().cpu().numpy()
    chosen: dict[Hashable, list[tuple[str, float]]] = {}
    ranked = []
    for c in range(len(labels)):
        inside, outside = out[y_idx == c], out[y_idx != c]
        mean_in = inside.mean(0)
        pool = np.argsort(-mean_in, kind="stable")[:n_candidates]
        ratio = mean_in[pool] - outside.mean(0)[pool]
        order = pool[np.argsort(-ratio, kind="stable")]
        ranked.append([(int(j), float(mean_in[j] - outside.mean(0)[j])) for j in order])
    used: set[int] = set()
    for c, label in enumerate(labels):
        picks = []
        for j, score in ranked[c]:
            if j in used:  # one class per word
                continue
            picks.append((words[j], score))
            used.add(j)
            if len(picks) == n_words:
                break
        chosen[label] = picks
    log.info("label words: %s", {k: [w for w, _ in v] for k, v in chosen.items()})
    return chosen


def write_verbalizer(
    words: dict[Hashable, list[tuple[str, float]] | list[str]],
    path: str | os.PathLike[str],
    name: str = "auto",
    note: str = "",
) -> Path:
    """Write proposed label words as a verbalizer YAML file (atomically).

    A temporary file is written, then renamed onto ``path``: a symbolic link at ``path``
    is replaced by the new file, never written through.
    """
    target = Path(path).expanduser()
    labels = {
        (k.item() if isinstance(k, np.generic) else k): [
            w if isinstance(w, str) else w[0] for w in v
        ]
        for k, v in words.items()
    }
    header = "# Label words proposed by pet_kit.tools.label_search (edit freely).\n" + "".join(
        f"# {line}\n" for line in note.splitlines()
    )
    body = yaml.safe_dump(
        {"name": name, "aggregate": "mean", "labels": labels}, sort_keys=False, allow_unicode=True
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as tmp:
        tmp.write_text(header + body, encoding="utf-8")
    return target
