"""Why a candidate misses the Rotten Tomatoes gate: ranking vs bias, and how much sentiment
the distillation text carries. Writes ``benchmarks/results/default_backbone_diagnosis.{json,md}``.

* For today's default and each run's latest model: zero-shot ``rotten_tomatoes#it_was`` on
  the gate's 1,000 test texts — accuracy, ROC AUC of P(positive), the share predicted
  positive and the accuracy of the best label-free threshold (the median of P(positive)).
* For the teacher of the prepared run: the spread (std) over texts of its great − terrible
  logit gap at ``{text} It was [MASK].`` on the distillation texts (the first teacher
  embeddings of ``distill_bundle.py encode``) vs Rotten Tomatoes *train* texts (labels
  unused), and its mean (the teacher's bias).
* Student vs teacher at that mask, on the same two text sets: how well each model's
  great − terrible gap follows the teacher's (correlation over texts, the gap's mean), and
  how well its logits over *all* candidate words follow the teacher's (per-text correlation
  of the centred logits) — what a zero-shot verbalizer of unlikely words reads.

    python scripts/default_backbone/diagnose.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import distill_cloze as dc  # noqa: E402

log = logging.getLogger("diagnose")
PVP = "rotten_tomatoes#it_was"
PATTERN = "{text} It was [MASK]."
SPREAD_TEXTS = 300


def ranking_and_bias(model_ref: str | None, texts: list[str], labels: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    from pet_kit import PromptClassifier

    clf = PromptClassifier(pvp=PVP, model=model_ref, verbose=0).fit(None)
    proba = clf.predict_proba(texts)
    pos = list(clf.classes_).index("positive")
    truth = (labels == "positive").astype(int)
    p = proba[:, pos]
    return {
        "accuracy": round(float((clf.classes_[proba.argmax(1)] == labels).mean()), 4),
        "roc_auc": round(float(roc_auc_score(truth, p)), 4),
        "predicted_positive": round(float((proba.argmax(1) == pos).mean()), 4),
        "accuracy_at_median": round(float(((p > np.median(p)).astype(int) == truth).mean()), 4),
    }


def teacher_spread(run: Path, reviews: Any) -> dict[str, Any]:
    """``reviews``: the teacher's embeddings of the Rotten Tomatoes train texts."""
    import torch
    from safetensors.torch import load_file

    info = json.loads((run / "prepared" / "manifest.json").read_text(encoding="utf-8"))
    fills = load_file(str(run / "prepared" / f"fills-{info['teacher']}.safetensors"))["single"]
    p = info["patterns"].index(PATTERN)
    g, t = info["words"].index("great"), info["words"].index("terrible")
    gap = (fills[p, g] - fills[p, t]).float()
    src = sorted((run / "bundle-src" / f"text-emb-{info['teacher']}").glob("*.npy"))
    if not src:
        raise SystemExit(
            f"no teacher embeddings under {run}/bundle-src: run distill_bundle.py encode"
        )
    corpus = torch.from_numpy(np.concatenate([np.load(f) for f in src[:4]])).float()
    out = {"teacher": info["teacher"], "tau": dc.Config.tau}
    for name, emb in (("distillation_texts", corpus), ("rotten_tomatoes_train", reviews)):
        d = emb @ gap / dc.Config.tau
        out[name] = {"texts": len(emb), "mean": round(float(d.mean()), 3),
                     "std": round(float(d.std()), 3)}  # fmt: skip
    return out


AGREE_TEXTS = 1024


class Texts:
    """The two text sets of the agreement check, with the teacher's logits at the mask."""

    def __init__(self, run: Path) -> None:
        import distill_bundle as db
        import torch
        from safetensors.torch import load_file

        from pet_kit.io.datasets import load_task

        info = json.loads((run / "prepared" / "manifest.json").read_text(encoding="utf-8"))
        fills = load_file(str(run / "prepared" / f"fills-{info['teacher']}.safetensors"))
        self.words = info["words"]
        self.fill = fills["single"][info["patterns"].index(PATTERN)].float()  # (W, D)
        every = (run / "prepared" / "texts.txt").read_text(encoding="utf-8").splitlines()
        ids = db.subset_ids(AGREE_TEXTS, len(every), info["seed"])
        src = sorted((run / "bundle-src" / f"text-emb-{info['teacher']}").glob("*.npy"))
        emb = np.concatenate([np.load(f) for f in src[: -(-AGREE_TEXTS // db.ENCODE_CHUNK)]])
        rt = load_task("rotten_tomatoes", "train", max_size=SPREAD_TEXTS)["text"].tolist()
        self.sets = {
            "distillation_texts": (
                [" ".join(every[i].split()[: dc.Config.max_text_words]) for i in ids],
                torch.from_numpy(emb[:AGREE_TEXTS]).float(),
            ),
            "rotten_tomatoes_train": (rt, dc.Teacher(info["teacher"]).encode(rt)),
        }

    def teacher(self, name: str) -> Any:
        return self.sets[name][1] @ self.fill.T / dc.Config.tau


def student_logits(model_ref: str | None, words: list[str], texts: list[str]) -> Any:
    """The model's logits of ``words`` at the mask of ``PATTERN`` for each text."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from pet_kit.model.default_backbone import default_model_path

    path = model_ref or str(default_model_path())
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    bank = dc.PatternBank([PATTERN], tok, dc.Config.max_length)
    ids = torch.tensor([tok.get_vocab()[w] for w in words])
    head, emb = model.cls.predictions, model.bert.embeddings.word_embeddings.weight
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            b = bank.batch([(0, t) for t in texts[i : i + 64]], 1)
            hidden = model.bert(
                input_ids=b["input_ids"], attention_mask=b["attention_mask"]
            ).last_hidden_state
            h = head.transform(hidden[torch.arange(len(hidden)), b["mask_pos"]])
            out.append(h @ emb[ids].T + head.bias[ids])
    return torch.cat(out)


def agreement(model_ref: str | None, texts: Texts) -> dict[str, Any]:
    g, t = texts.words.index("great"), texts.words.index("terrible")
    out = {}
    for name, (tx, _) in texts.sets.items():
        T, S = texts.teacher(name), student_logits(model_ref, texts.words, tx)
        gt, gs = (T[:, g] - T[:, t]).numpy(), (S[:, g] - S[:, t]).numpy()
        out[name] = {
            "gap_correlation": round(float(np.corrcoef(gt, gs)[0, 1]), 3),
            "teacher_gap_mean": round(float(gt.mean()), 2),
            "student_gap_mean": round(float(gs.mean()), 2),
            "student_gap_std": round(float(gs.std()), 2),
            "all_words_correlation": round(float(dc.correlation(S, T, dim=1).mean()), 3),
        }
    return out


def table(report: dict[str, Any]) -> str:
    lines = [
        "<!-- generated by scripts/default_backbone/diagnose.py; do not edit -->",
        f"Zero-shot `{PVP}` on the gate's {dc.GATE_TEST_SIZE} test texts:",
        "",
        "| model | accuracy | ROC AUC | predicted positive | accuracy at the median |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in report["models"].items():
        share = f"{r['predicted_positive']:.0%}"
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['roc_auc']:.3f} | {share} |"
                     f" {r['accuracy_at_median']:.3f} |")  # fmt: skip
    s = report["teacher_spread"]
    lines += [
        "",
        f"Teacher ({s['teacher']}) great − terrible logit gap at `{{text}} It was [MASK].`"
        f" (τ {s['tau']}):",
        "",
        "| texts | n | mean | std |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("distillation_texts", "rotten_tomatoes_train"):
        r = s[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {r['texts']} | {r['mean']:+.2f} | {r['std']:.2f} |"
        )
    lines += [
        "",
        "Each model vs the teacher at that mask: correlation over texts of the great − terrible"
        " gap, the gap's mean (teacher's in parentheses) and the mean per-text correlation of"
        " the centred logits of all candidate words:",
        "",
        "| model | texts | gap correlation | gap mean (teacher) | all-words correlation |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in report.get("agreement", {}).items():
        for texts, a in r.items():
            lines.append(
                f"| {name} | {texts.replace('_', ' ')} | {a['gap_correlation']:.2f} |"
                f" {a['student_gap_mean']:+.2f} ({a['teacher_gap_mean']:+.2f}) |"
                f" {a['all_words_correlation']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders (their latest evaluation)")
    p.add_argument("--prepared-run", type=Path, default=dc.DEFAULT_RUN)
    args = p.parse_args(argv)
    from pet_kit.io.datasets import load_task

    test = load_task("rotten_tomatoes", "test", max_size=dc.GATE_TEST_SIZE)
    texts, labels = test["text"].tolist(), np.asarray(test["label"].tolist())
    sets = Texts(args.prepared_run)
    models = {"today's default": ranking_and_bias(None, texts, labels)}
    agree = {"today's default": agreement(None, sets)}
    for run in args.runs:
        ev = dc.latest_evaluation(run)
        name = f"{run.name} step {ev['step']} ({dc.describe(ev).split(', step')[0]})"
        models[name] = ranking_and_bias(ev["model"], texts, labels)
        agree[name] = agreement(ev["model"], sets)
        log.info("%s: %s %s", name, models[name], agree[name])
    spread = teacher_spread(args.prepared_run, sets.sets["rotten_tomatoes_train"][1])
    report = {"pvp": PVP, "models": models, "teacher_spread": spread, "agreement": agree}
    out = dc.REPO / "benchmarks" / "results" / "default_backbone_diagnosis"
    dc.atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    dc.atomic_write_text(out.with_suffix(".md"), table(report))
    log.info("wrote %s.{json,md}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
