"""Looking inside a trained soft prompt.

* :func:`explain_slots` — per learned slot: the nearest vocabulary words by cosine
  similarity to the input embeddings, its norm (and the typical embedding norm), and how
  far it moved from its initialisation (cosine and L2; NaN for a prompt saved without
  its initial vectors).
* :func:`explain_prediction` — for one text: every label word's score, the class
  probabilities, and the effect of *removing* each slot (its position dropped from the
  input) on the predicted class's probability.
* :func:`save_report` — both as a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..model.backbone import frozen

__all__ = ["explain_prediction", "explain_slots", "save_report"]


def _word(tokenizer: Any, idx: int) -> str:
    return tokenizer.convert_ids_to_tokens(int(idx))


def explain_slots(clf: Any, top_k: int = 5) -> pd.DataFrame:
    """One row per soft slot: nearest words, norm, drift from initialisation.

    Columns: ``slot``, ``nearest`` (list of ``(token, cosine)``), ``norm``,
    ``embedding_norm`` (median norm of the vocabulary's embeddings, for scale),
    ``cos_to_init`` and ``l2_to_init`` (NaN when the initial vectors are unknown).
    """
    check_is_fitted(clf, "model_")
    model = clf.model_
    backbone = model.backbone
    emb = backbone.model.get_input_embeddings().weight.detach().float().cpu()
    special = torch.tensor(sorted(set(backbone.tokenizer.all_special_ids)), dtype=torch.long)
    slots = model.slots().float().cpu()
    init = getattr(clf, "prompt_init_", None)
    unit = torch.nn.functional.normalize(emb, dim=1)
    sims = torch.nn.functional.normalize(slots, dim=1) @ unit.T if len(slots) else unit[:0]
    if len(special):
        sims[:, special] = -2.0
    typical = float(emb.norm(dim=1).median())
    rows = []
    for j in range(slots.shape[0]):
        best = torch.topk(sims[j], k=min(top_k, sims.shape[1]))
        nearest = [
            (_word(backbone.tokenizer, i), round(float(v), 4))
            for v, i in zip(best.values, best.indices, strict=True)
        ]
        cos0 = l20 = float("nan")
        if init is not None:
            a = init[j].float()
            cos0 = float(torch.nn.functional.cosine_similarity(slots[j], a, dim=0))
            l20 = float((slots[j] - a).norm())
        rows.append(
            {
                "slot": j,
                "nearest": nearest,
                "norm": float(slots[j].norm()),
                "embedding_norm": typical,
                "cos_to_init": cos0,
                "l2_to_init": l20,
            }
        )
    return pd.DataFrame(rows)


def _scores(model: Any, example: Any, drop: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Word and class scores of one encoded example, optionally with slot ``drop`` removed."""
    scorer = model.scorer
    words = scorer.word_scores([example], model.slots(), drop_slot=drop)
    return words[0], scorer.aggregate_words(words)[0]


def explain_prediction(clf: Any, text: Any) -> dict[str, Any]:
    """Label-word scores, class probabilities and per-slot ablation for one input.

    Returns
    -------
    dict
        ``label`` (predicted), ``probabilities`` {class: p}, ``word_scores`` list of
        ``(label, word, score)``, ``ablation`` list of ``{"slot", "probability",
        "change"}``: the predicted class's probability without that slot.
    """
    check_is_fitted(clf, "model_")
    model = clf.model_
    if model.options.demonstrations:
        raise InputError("explain_prediction does not support prompts with demonstrations")
    records = [text] if isinstance(text, (str, dict)) else list(text)
    if len(records) != 1:
        raise InputError("explain_prediction takes one text (or one record)")
    example = model.encode(records)[0]
    classes = clf.classes_.tolist()

    def proba(scores: torch.Tensor) -> np.ndarray:
        return model.probabilities(model.calibrated(scores.float().cpu().numpy()[None, :]))[0]

    with torch.inference_mode(), frozen(model.backbone.model):
        words, scores = _scores(model, example, None)
        p = proba(scores)
        pred = int(p.argmax())
        ablation = []
        for j in range(int(clf.n_slots_)):
            q = proba(_scores(model, example, j)[1])
            ablation.append(
                {"slot": j, "probability": float(q[pred]), "change": float(q[pred] - p[pred])}
            )
    # words are in group order: consume the scores group by group
    word_list: list[tuple[Any, str, float]] = []
    offset = 0
    for g in model.encoder.verbalizer.groups:
        chunk = words[offset : offset + len(g.words)].tolist()
        word_list += [
            (classes[int(li)], w, float(s))
            for li, w, s in zip(g.label_index, g.words, chunk, strict=True)
        ]
        offset += len(g.words)
    return {
        "label": classes[pred],
        "probabilities": dict(zip(classes, map(float, p), strict=True)),
        "word_scores": word_list,
        "ablation": ablation,
    }


def save_report(clf: Any, path: str | os.PathLike[str], text: Any = None, top_k: int = 3) -> Path:
    """A PNG: slot norms and drift (with nearest words); with ``text``, the ablation.

    Needs matplotlib (``pip install 'pet_kit[plot]'``).
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise InputError("the PNG report needs matplotlib: pip install 'pet_kit[plot]'") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = explain_slots(clf, top_k=top_k)
    panels = 2 if text is not None else 1
    width = max(6, 0.9 * len(table) + 2) + 1.5  # + the legend, right of the axes
    fig, axes = plt.subplots(panels, 1, figsize=(width, 3.6 * panels))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["norm"], width=0.4, label="slot norm")
    ax.bar(x + 0.2, table["l2_to_init"].fillna(0), width=0.4, label="L2 moved from init")
    ax.axhline(
        table["embedding_norm"].iloc[0] if len(table) else 0,
        ls="--",
        c="grey",
        label="median word-embedding norm",
    )
    ax.set_xticks(x, ["\n".join(w for w, _ in row) for row in table["nearest"]], fontsize=7)
    ax.set_title("soft slots: norm, drift, nearest words")
    # outside the axes, to the right: inside, it would hide bars whatever its corner
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if text is not None:
        info = explain_prediction(clf, text)
        changes = [a["change"] for a in info["ablation"]]
        axes[1].bar(np.arange(len(changes)), changes, color="tab:red")
        axes[1].set_xticks(np.arange(len(changes)), [f"slot {a['slot']}" for a in info["ablation"]])
        axes[1].set_title(f"removing one slot: change in p({info['label']})", fontsize=9)
    fig.tight_layout()  # makes room for the legend beside the axes
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, target)
    return target
