"""Looking inside a trained soft prompt.

* :func:`explain_slots` — per learned slot: the nearest vocabulary words by cosine
  similarity to the input embeddings, its norm (and the typical embedding norm), and how
  far it moved from its initialisation (cosine and L2; NaN for a prompt saved without
  its initial vectors).
* :func:`explain_prediction` — for one text: every label word's score, the class
  probabilities, and the effect of *removing* each slot (its position dropped from the
  input) on the predicted class's probability.
* :func:`save_report` — both as a PNG: the slots, and for one text the text, the class
  probabilities, the label-word scores and the ablation (bars coloured by sign).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..io.atomic import replacing
from ..io.inputs import check_positive_int
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
    check_positive_int("top_k", top_k)
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


#: At most this many characters of the explained text are shown in the PNG's title.
REPORT_TEXT_CHARS = 300
#: Ablation bar colours: the slot supports the prediction / works against it / no effect.
_SUPPORTS, _OPPOSES, _NEUTRAL = "tab:green", "tab:red", "tab:grey"


def _shown_text(text: Any, width: int) -> str:
    """The explained text (or record) for the PNG's title: shortened, wrapped."""
    if isinstance(text, str):
        flat = f"text: {text}"
    else:  # a record, or a one-record sequence, as explain_prediction takes it
        record = text if isinstance(text, dict) else next(iter(text))
        if isinstance(record, dict):
            flat = "; ".join(f"{k}: {v}" for k, v in record.items())
        else:
            flat = f"text: {record}"
    flat = " ".join(flat.split())
    if len(flat) > REPORT_TEXT_CHARS:
        flat = flat[: REPORT_TEXT_CHARS - 3].rstrip() + "..."
    return textwrap.fill(flat, width=width, max_lines=4, placeholder=" ...")


def _plot_slots(ax: Any, table: pd.DataFrame) -> None:
    """Slot norms and drift, with each slot's nearest words as tick labels."""
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


def _plot_prediction(ax_proba: Any, ax_words: Any, info: dict[str, Any]) -> None:
    """The class probabilities (the predicted class outlined) and the label-word scores,
    each class in its own colour, values written beside the bars."""
    import matplotlib

    classes = list(info["probabilities"])
    palette = matplotlib.colormaps["Set2"].colors  # not the other panels' colours
    colour = {c: palette[i % len(palette)] for i, c in enumerate(classes)}
    probs = [info["probabilities"][c] for c in classes]
    y = np.arange(len(classes))
    bars = ax_proba.barh(y, probs, color=[colour[c] for c in classes])
    for bar, c, p in zip(bars, classes, probs, strict=True):
        if c == info["label"]:
            bar.set_edgecolor("black")
            bar.set_linewidth(2)
        ax_proba.text(
            min(p, 1.0) + 0.02,
            bar.get_y() + bar.get_height() / 2,
            f"{p:.3f}",
            va="center",
            fontsize=8,
        )
    ax_proba.set_yticks(y, [str(c) for c in classes], fontsize=8)
    ax_proba.invert_yaxis()
    ax_proba.set_xlim(0, 1.25)  # room for the values
    ax_proba.set_xticks([0, 0.5, 1])
    ax_proba.set_title(f"prediction: {info['label']}", fontsize=9)
    words = info["word_scores"]
    yw = np.arange(len(words))
    scores = [s for _, _, s in words]
    ax_words.barh(yw, scores, color=[colour.get(label, "grey") for label, _, _ in words])
    ax_words.set_yticks(yw, [f"{label}: {w}" for label, w, _ in words], fontsize=7)
    ax_words.invert_yaxis()
    ax_words.axvline(0, c="black", lw=0.6)
    for yi, s in zip(yw, scores, strict=True):
        ax_words.text(
            s, yi, f" {s:+.2f} ", va="center", ha="left" if s >= 0 else "right", fontsize=7
        )
    if scores:  # room for the values written beside the bars
        lo, hi = min(0.0, *scores), max(0.0, *scores)
        pad = 0.25 * (hi - lo or 1.0)
        ax_words.set_xlim(lo - (pad if lo < 0 else 0), hi + (pad if hi > 0 else 0))
    ax_words.set_title("label-word scores at [MASK]", fontsize=9)


def _plot_ablation(ax: Any, info: dict[str, Any]) -> None:
    """The change in the predicted class's probability when each slot is removed, bars
    coloured by its sign (legend outside the axes, as the slots panel's)."""
    from matplotlib.patches import Patch

    changes = [a["change"] for a in info["ablation"]]
    colours = [_SUPPORTS if c < 0 else _OPPOSES if c > 0 else _NEUTRAL for c in changes]
    x = np.arange(len(changes))
    ax.bar(x, changes, color=colours)
    ax.axhline(0, c="black", lw=0.6)
    ax.set_xticks(x, [f"slot {a['slot']}" for a in info["ablation"]])
    label = info["label"]
    ax.set_title(f"removing one slot: change in p({label})", fontsize=9)
    meanings = {
        _SUPPORTS: f"lowers p({label}): the slot supports it",
        _OPPOSES: f"raises p({label}): the slot works against it",
        _NEUTRAL: "no change",
    }
    handles = [Patch(color=c, label=m) for c, m in meanings.items() if c in colours]
    if not changes:
        ax.text(0.5, 0.5, "no soft slots", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(
            handles=handles,
            title="removing the slot",
            fontsize=7,
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )


def save_report(clf: Any, path: str | os.PathLike[str], text: Any = None, top_k: int = 3) -> Path:
    """Save a PNG report of the prompt (and of one prediction).

    The picture shows what ``pet-kit explain`` prints: each slot's norm, drift from its
    initialisation and nearest words; with ``text``, also the text itself (its first
    :data:`REPORT_TEXT_CHARS` characters), the predicted class and every class's
    probability, each label word's score, and the change in the predicted class's
    probability when each slot is removed, its bar coloured by sign (a slot whose
    removal lowers the probability supports the prediction).

    Parameters
    ----------
    clf : PromptClassifier
        A fitted (or loaded) prompt.
    path : str or PathLike
        The PNG file to write (its folder is created; the file is replaced atomically).
    text : str, dict or None
        One text (or record) to explain, as :func:`explain_prediction` takes it.
    top_k : int
        Nearest words shown per slot.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        matplotlib is not installed (``pip install 'pet_kit[plot]'``), or ``text`` is
        not one text.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise InputError("the PNG report needs matplotlib: pip install 'pet_kit[plot]'") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = explain_slots(clf, top_k=top_k)
    info = explain_prediction(clf, text) if text is not None else None
    width = max(6, 0.9 * len(table) + 2) + 1.5  # + the legend, right of the axes
    if info is None:
        fig, ax = plt.subplots(1, 1, figsize=(width, 3.6))
        _plot_slots(ax, table)
        fig.tight_layout()  # makes room for the legend beside the axes
    else:
        width = max(width, 9.0)
        n_rows = max(len(info["word_scores"]), len(info["probabilities"]))
        middle = max(2.4, 0.45 + 0.2 * n_rows)
        title = _shown_text(text, width=int(width * 11))
        title_inches = 0.15 + 0.17 * (title.count("\n") + 1)
        fig = plt.figure(figsize=(width, 3.6 + middle + 3.0 + title_inches))
        grid = fig.add_gridspec(3, 2, height_ratios=[3.6, middle, 3.0])
        _plot_slots(fig.add_subplot(grid[0, :]), table)
        _plot_prediction(fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1]), info)
        _plot_ablation(fig.add_subplot(grid[2, :]), info)
        fig.suptitle(title, fontsize=9, ha="left", x=0.01, y=0.995, va="top")
        fig.tight_layout()  # leaves room for the title and the legends
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(target, suffix=".png") as tmp:  # savefig reads the format there
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return target
