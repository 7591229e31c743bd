"""The bad-input corpus (tests/bad_inputs/manifest.yaml): every case is a clear error or
documented behaviour, never a raw traceback from deep inside a dependency, never a silent
wrong answer, and never code execution.

The manifest says, for each case, what it feeds pet_kit, how (``run``), and the expected
outcome: ``error: ClassName`` plus a message substring naming the file/key/value at fault,
or ``ok: <documented behaviour>``. Whatever the expectation, the only exceptions allowed to
escape are pet_kit errors, ``ValueError`` and ``TypeError`` raised by pet_kit itself
(``NotFittedError`` by scikit-learn's ``check_is_fitted``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import NEG, POS, SENTIMENT_PVP, build_model, build_tokenizer, tiny_clf
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import pet_kit
from pet_kit import Calibration, PetKitError, PromptClassifier
from pet_kit.io.prompt_folder import META_FILE, TENSOR_FILE, _sha256

CORPUS = Path(__file__).parent / "bad_inputs"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text("utf-8"))["cases"]
MARKER = "pet_kit_pwned_marker"  # what the code-execution payloads would create
PET_KIT_DIR = Path(pet_kit.__file__).resolve().parent
TOY_X = POS + NEG
TOY_Y = ["positive"] * len(POS) + ["negative"] * len(NEG)


# ------------------------------------------------------------------ data builders
class _Payload:
    """Unpickling this opens (creates) the marker file."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (MARKER, "w"))


X_BUILDERS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "frame_text_a_only": lambda: pd.DataFrame({"text_a": TOY_X}),
    "dicts_text_a_only": lambda: [{"text_a": x} for x in TOY_X],
    "empty_strings": lambda: [""] * len(TOY_X),
    "whitespace": lambda: [" ", "\t", "\n", "\u00a0", "  \t\n ", "\u3000", "\r\n", "   "] * 2,
    "huge_texts": lambda: [("great film " if i < 8 else "awful plot ") * 9091 for i in range(16)],
    "with_bytes": lambda: [*TOY_X[:-1], b"raw bytes"],
    "bytes_only": lambda: [b"a great film"],
    "with_none": lambda: [*TOY_X[:-1], None],
    "series_with_nan": lambda: pd.Series([np.nan, *TOY_X[1:]], dtype=object),
    "string_series_with_na": lambda: pd.Series([*TOY_X[:-1], pd.NA], dtype="string"),
    "with_number": lambda: [*TOY_X[:-1], 42],
    "dict_of_columns": lambda: {"text": TOY_X},
    "a_set": lambda: set(TOY_X),
    "triples": lambda: [(x, x, x) for x in TOY_X],
    "surrogate": lambda: ["a great film", "abc\udc80 (os.fsdecode of non-UTF-8 bytes)"],
    "surrogate_toy": lambda: [*TOY_X[:-1], "\udcff" + TOY_X[-1]],
    "frame_two_text_columns": lambda: pd.DataFrame(
        [[x, "unrelated"] for x in TOY_X], columns=["text", "text"]
    ),
    "special_tokens_toy": lambda: [
        f"[MASK] {x} [SEP]" if i % 3 == 0 else x for i, x in enumerate(TOY_X)
    ],
}

Y_BUILDERS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "all_positive": lambda: ["positive"] * len(TOY_X),
    "with_nan": lambda: [*TOY_Y[:-1], float("nan")],
    "with_none": lambda: [*TOY_Y[:3], None, *TOY_Y[4:]],
    "string_series_with_na": lambda: pd.Series([*TOY_Y[:-1], pd.NA], dtype="string"),
    "with_nat": lambda: [*TOY_Y[:-1], pd.NaT],
    "with_neutral": lambda: [*TOY_Y[:-1], "neutral"],
    "mixed_str_int": lambda: ["positive"] * 8 + [0] * 8,
    "mixed_forms_of_0_1": lambda: [1, "1", 1.0, np.int64(1)] * 2 + [0, "0", 0.0, np.int64(0)] * 2,
    "booleans": lambda: [True] * 8 + [False] * 8,
    "column": lambda: [[label] for label in TOY_Y],
    "one_short": lambda: TOY_Y[:-1],
}


def _model_encoder_only(tiny_dir: Path, out: Path) -> None:
    from transformers import BertConfig, BertModel

    tok = build_tokenizer(out / "tok")
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def _model_truncated_weights(tiny_dir: Path, out: Path) -> None:
    shutil.copytree(tiny_dir, out, dirs_exist_ok=True)
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _model_pickled_code(tiny_dir: Path, out: Path) -> None:
    shutil.copytree(tiny_dir, out, dirs_exist_ok=True)
    (out / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": _Payload()}, out / "pytorch_model.bin")


def _model_no_tokenizer(tiny_dir: Path, out: Path) -> None:
    out.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_dir / name, out / name)


def _model_small_vocab(tiny_dir: Path, out: Path) -> None:
    tok = build_tokenizer(out / "tok")
    build_model(len(tok) - 20).save_pretrained(out)
    tok.save_pretrained(out)


MODEL_BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "encoder_only": _model_encoder_only,
    "truncated_weights": _model_truncated_weights,
    "pickled_code": _model_pickled_code,
    "no_tokenizer": _model_no_tokenizer,
    "small_vocab": _model_small_vocab,
}


# ----------------------------------------------------------------------- runners
@dataclass
class Ctx:
    tiny_dir: Path
    fitted: PromptClassifier
    pristine: Path
    work: Path

    def make(self, **kw: Any) -> PromptClassifier:
        return tiny_clf(self.tiny_dir, **{"epochs": 1, **kw})


@dataclass
class Outcome:
    """What an ok case produced: an estimator and the texts to check it on (or, for a
    server request, the HTTP status and the response's text)."""

    clf: PromptClassifier | None
    X: Any
    proba: np.ndarray | None = None
    http: tuple[int, str] | None = None


def _pvp_of(case: dict[str, Any]) -> Any:
    if "file" in case:
        return str(CORPUS / case["file"])
    return case.get("pvp", SENTIMENT_PVP)


def _x_of(case: dict[str, Any], default: Any) -> Any:
    if "X" in case:
        return case["X"]
    if "X_file" in case:
        return (CORPUS / case["X_file"]).read_text(encoding="utf-8").splitlines()
    if "X_builder" in case:
        return X_BUILDERS[case["X_builder"]]()
    return default


def _y_of(case: dict[str, Any], default: Any) -> Any:
    if "y" in case:
        return case["y"]
    if "y_builder" in case:
        return Y_BUILDERS[case["y_builder"]]()
    return default


def _huge_yaml(work: Path) -> str:
    path = work / "huge.yaml"
    spec = yaml.safe_dump(SENTIMENT_PVP)
    path.write_text(spec + "# padding\n" * 150_000, encoding="utf-8")  # 1.5 MB
    return str(path)


#: ``pvp_builder``: a PVP made in the case's folder (too large to keep in the corpus).
PVP_BUILDERS: dict[str, Callable[[Path], Any]] = {
    "huge_yaml": _huge_yaml,
    "long_pattern": lambda work: {
        "pattern": "[SOFT] {text} It was [MASK]." + " so" * 5_000,
        "verbalizer": SENTIMENT_PVP["verbalizer"],
    },
    "surrogate_pattern": lambda work: {
        "pattern": "[SOFT] {text} It w\udc80s [MASK].",
        "verbalizer": SENTIMENT_PVP["verbalizer"],
    },
    "surrogate_label_word": lambda work: {
        "pattern": SENTIMENT_PVP["pattern"],
        "verbalizer": {"positive": ["gr\udc80eat"], "negative": ["terrible"]},
    },
    "surrogate_label": lambda work: {
        "pattern": SENTIMENT_PVP["pattern"],
        "verbalizer": {"positive": ["great"], "neg\udc80": ["terrible"]},
    },
    "name_300_chars": lambda work: "p" * 300,
    "yaml_name_300_chars": lambda work: "p" * 300 + ".yaml",
}


def run_fit(case: dict[str, Any], ctx: Ctx) -> Outcome:
    X, y = _x_of(case, TOY_X), _y_of(case, TOY_Y)
    pvp = PVP_BUILDERS[case["pvp_builder"]](ctx.work) if "pvp_builder" in case else _pvp_of(case)
    clf = ctx.make(pvp=pvp, **case.get("params", {})).fit(X, y)
    return Outcome(clf, X if X else TOY_X)


def run_predict(case: dict[str, Any], ctx: Ctx) -> Outcome:
    X = _x_of(case, TOY_X)
    return Outcome(ctx.fitted, X, ctx.fitted.predict_proba(X))


def run_params(case: dict[str, Any], ctx: Ctx) -> Outcome:
    return Outcome(ctx.make(**case["params"]).fit(TOY_X, TOY_Y), TOY_X)


def run_unfitted(case: dict[str, Any], ctx: Ctx) -> Outcome:
    method = case["method"]
    if method == "fit":
        PromptClassifier(verbose=0).fit(TOY_X, TOY_Y)
    elif method == "save":
        ctx.make().save(ctx.work / "never")
    elif method == "score":
        ctx.make().score(TOY_X, TOY_Y)
    else:
        getattr(ctx.make(), method)(TOY_X)
    raise AssertionError(f"{method} on an unfitted estimator did not raise")


def _damage_tensor(path: Path, how: str) -> None:
    from safetensors.torch import load_file, save_file

    if how == "truncate":
        path.write_bytes(path.read_bytes()[:40])
    elif how == "bitflip":
        raw = bytearray(path.read_bytes())
        raw[-3] ^= 0x10
        path.write_bytes(bytes(raw))
    elif how == "bitflip_header":
        raw = bytearray(path.read_bytes())
        raw[10] ^= 0x40
        path.write_bytes(bytes(raw))
    elif how in ("nan", "int", "rename"):
        slots = load_file(str(path))["slots"]
        if how == "nan":
            slots[0, 0] = float("nan")
            save_file({"slots": slots}, str(path))
        elif how == "int":
            save_file({"slots": slots.long()}, str(path))
        else:
            save_file({"other": slots}, str(path))
    elif how == "pickle":
        torch.save({"slots": _Payload()}, path)
    else:  # pragma: no cover - manifest typo
        raise KeyError(how)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def run_saved(case: dict[str, Any], ctx: Ctx) -> Outcome:
    folder = ctx.work / "prompt"
    shutil.copytree(ctx.pristine, folder)
    meta_path, tensor_path = folder / META_FILE, folder / TENSOR_FILE
    if "delete" in case:
        (folder / case["delete"]).unlink()
    if "tensor" in case:
        _damage_tensor(tensor_path, case["tensor"])
    if "json_text" in case:
        meta_path.write_text(case["json_text"], encoding="utf-8")
    if any(k in case for k in ("json_patch", "json_delete", "fix_checksum")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        _merge(meta, case.get("json_patch", {}))
        for key in case.get("json_delete", []):
            del meta[key]
        if case.get("fix_checksum"):
            meta["files"][TENSOR_FILE] = _sha256(tensor_path)
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    target = folder / case["path"] if "path" in case else folder
    loaded = PromptClassifier.load(target, device="cpu")
    return Outcome(loaded, TOY_X)


def run_model(case: dict[str, Any], ctx: Ctx) -> Outcome:
    if "model_dir" in case:
        model: Any = str(CORPUS / case["model_dir"])
    elif "model_builder" in case:
        model = ctx.work / "model"
        MODEL_BUILDERS[case["model_builder"]](ctx.tiny_dir, model)
        model = str(model)
    else:
        model = case["model"]
    clf = PromptClassifier(pvp=SENTIMENT_PVP, model=model, device="cpu", verbose=0).fit(None)
    return Outcome(clf, TOY_X)


BODY_BUILDERS: dict[str, Callable[[], bytes]] = {
    "nested_lists": lambda: b"[" * 20_000 + b"]" * 20_000,
    "nested_objects": lambda: b'{"a": ' * 5_000 + b"1" + b"}" * 5_000,
    "huge_integer": lambda: (
        b'{"task": "sentiment", "texts": ["a"], "probabilities": ' + b"9" * 5_000 + b"}"
    ),
}
_APPS: dict[Path, Any] = {}


def run_server(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """``pet-kit serve``'s app over the pristine prompt (task ``sentiment``): send the
    case's ``body`` (raw text, or ``body_builder``) to ``path`` (default POST /predict),
    with the case's ``headers`` added."""
    from fastapi.testclient import TestClient

    from pet_kit.serving.bank import PromptBank
    from pet_kit.serving.server import create_app

    if ctx.pristine not in _APPS:
        bank = PromptBank(str(ctx.tiny_dir), device="cpu")
        bank.add("sentiment", ctx.pristine)
        _APPS[ctx.pristine] = create_app(bank, max_body_bytes=100_000)
    client = TestClient(_APPS[ctx.pristine])  # an exception escaping the app fails the case
    path = case.get("path", "/predict")
    if case.get("method", "POST") == "GET":
        resp = client.get(path)
    else:
        body = BODY_BUILDERS[case["body_builder"]]() if "body_builder" in case else None
        body = body if body is not None else case["body"].encode("utf-8")
        headers = {"content-type": "application/json", **case.get("headers", {})}
        resp = client.post(path, content=body, headers=headers)
    assert resp.headers["content-type"] == "application/json", resp.text[:300]
    return Outcome(None, None, http=(resp.status_code, resp.text))


def run_cli_train(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """``pet-kit train`` on the toy data (``y_builder`` for other labels) with the case's
    ``params`` and ``output``; errors propagate as the CLI's ``main`` would print them."""
    from pet_kit.cli import build_parser

    labels = _y_of(case, TOY_Y)
    pd.DataFrame({"text": TOY_X, "label": labels}).to_csv(ctx.work / "train.csv", index=False)
    for name in case.get("make_files", []):
        (ctx.work / name).write_text("not a folder", encoding="utf-8")
    for name, builder in case.get("make_folders", {}).items():
        TARGET_BUILDERS[builder](ctx.work / name, ctx)
    config = {
        "pvp": SENTIMENT_PVP,
        "model": str(ctx.tiny_dir),
        "data": {"train": "train.csv"},
        "params": {"epochs": 1, "batch_size": 4, "random_state": 0, "verbose": 0, "device": "cpu"}
        | case.get("params", {}),
        "output": case.get("output", "out/prompt"),
    }
    (ctx.work / "train.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    args = build_parser().parse_args(["train", str(ctx.work / "train.yaml")])
    assert args.func(args) == 0
    return Outcome(PromptClassifier.load(ctx.work / config["output"], device="cpu"), TOY_X)


def run_table(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """Read the corpus data ``file`` as the CLI does (``read_table``; with ``stream: true``
    the chunked reader of ``pet-kit predict``, 2 rows a chunk) and predict it with the
    toy-fitted estimator."""
    from pet_kit.batch import predict_to_stream
    from pet_kit.io.tables import read_table

    path = CORPUS / case["file"]
    if case.get("stream"):
        predict_to_stream(ctx.fitted, path, io.StringIO(), chunk_size=2)
    df = read_table(path)
    return Outcome(ctx.fitted, df, ctx.fitted.predict_proba(df))


def _links_to_precious(work: Path) -> None:
    target = work / "precious.txt"
    target.write_text("keep me\n", encoding="utf-8")
    for name in ("out.csv", "res.json"):
        (work / name).symlink_to(target)


def _user_files(work: Path, pristine: Path) -> None:
    """The user's labelled data ``in.csv`` (and a hard link ``hl.csv`` to it), their
    ``mine.json`` and ``mine.yaml``, and a copy ``p`` of the toy prompt folder."""
    pd.DataFrame({"text": TOY_X, "label": TOY_Y}).to_csv(work / "in.csv", index=False)
    os.link(work / "in.csv", work / "hl.csv")
    (work / "mine.json").write_text('{"mine": true}\n', encoding="utf-8")
    (work / "mine.yaml").write_text("labels: {}\n", encoding="utf-8")
    shutil.copytree(pristine, work / "p")


#: ``setup``: what the case's folder holds before a ``cli`` case runs (given the folder
#: and the toy prompt folder).
SETUPS: dict[str, Callable[[Path, Path], None]] = {
    "output_folder": lambda work, pristine: (work / "out.csv").mkdir(),
    "output_links": lambda work, pristine: _links_to_precious(work),
    "user_files": _user_files,
}


def run_cli(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """``pet-kit ARGV`` as ``main`` runs it, but errors propagate instead of being printed.
    In ``argv``, ``{prompt}`` is the toy prompt folder, ``{file}`` the case's corpus file,
    ``{model}`` the tiny model's folder and ``{work}`` the case's folder (prepared by
    ``setup``). The command must exit 0; a refused command must leave every file of the
    case's folder unchanged."""
    from pet_kit.cli import build_parser

    if "setup" in case:
        SETUPS[case["setup"]](ctx.work, ctx.pristine)
    where = {
        "prompt": ctx.pristine,
        "file": CORPUS / case.get("file", ""),
        "work": ctx.work,
        "model": ctx.tiny_dir,
    }
    args = build_parser().parse_args([a.format(**where) for a in case["argv"]])
    before = _snapshot(ctx.work)
    try:
        assert args.func(args) == 0
    except (PetKitError, ValueError, TypeError):
        assert _snapshot(ctx.work) == before, f"{case['id']}: a refused command changed files"
        raise
    return Outcome(ctx.fitted, TOY_X)


# ------------------------------------------------------------------------ adapt
ADAPT_FAST = {"max_steps": 2, "batch_size": 4, "max_length": 16, "verbose": 0, "seed": 0}


def _adapt_fifo(work: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(work / "texts.fifo")
    return work / "texts.fifo"


#: ``texts_builder``: the texts an adapt case reads (a path made in the case's folder).
ADAPT_TEXTS: dict[str, Callable[[Path], Any]] = {
    "all_unk": lambda work: ["ζζζ ωωω", "ξξξ ψψψ", "φφφ χχχ"] * 4,
    "surrogate": lambda work: [*TOY_X[:-1], "bad \udc80 text"],
    "long_text": lambda work: [" ".join(["great", "film"] * 125_000), *TOY_X],
    "folder": lambda work: (work / "texts").mkdir() or work / "texts",
    "fifo": _adapt_fifo,
}


def _user_work(ctx: Ctx) -> None:
    (ctx.work / "c.txt").write_text("\n".join(TOY_X), encoding="utf-8")
    (ctx.work / "notes.txt").write_text("mine", encoding="utf-8")


def _edited_checkpoint(case: dict[str, Any], ctx: Ctx) -> None:
    """An unfinished run of the case (time-boxed at step 0), its JSON then edited."""
    from pet_kit.train.adapt import adapt

    adapt(TOY_X, ctx.work / "out", model=str(ctx.tiny_dir), max_minutes=1e-9, **ADAPT_FAST)
    path = ctx.work / ".out.adapt-checkpoint" / "adapt_state.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    _merge(meta, case.get("json_patch", {}))
    for key in case.get("json_delete", []):
        del meta[key]
    path.write_text(case.get("json_text") or json.dumps(meta), encoding="utf-8")


#: ``adapt_setup``: what the case's folder holds before an ``adapt`` case runs.
ADAPT_SETUPS: dict[str, Callable[[dict[str, Any], Ctx], None]] = {
    "user_work": lambda case, ctx: _user_work(ctx),
    "a_file": lambda case, ctx: (ctx.work / "file.txt").write_text("a file", encoding="utf-8"),
    "output_link": lambda case, ctx: (
        (ctx.work / "empty").mkdir(),
        (ctx.work / "link").symlink_to(ctx.work / "empty"),
    ),
    "edited_checkpoint": _edited_checkpoint,
}


def run_adapt(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """``adapt`` (pet_kit.train.adapt) on the toy texts (or ``texts_builder``'s) into
    ``output`` (default ``out`` in the case's folder, also the working folder) with the
    case's ``params`` (``{model}`` in a value: the tiny model's folder), after
    ``adapt_setup`` prepared the folder. A refused call must leave every file of the
    case's folder and the model's unchanged; an ok case's model must serve a prompt."""
    from pet_kit.train.adapt import adapt

    if "adapt_setup" in case:
        ADAPT_SETUPS[case["adapt_setup"]](case, ctx)
    texts = ADAPT_TEXTS[case["texts_builder"]](ctx.work) if "texts_builder" in case else TOY_X
    params = {**ADAPT_FAST, **case.get("params", {})}
    params = {
        k: v.format(model=ctx.tiny_dir) if isinstance(v, str) else v for k, v in params.items()
    }
    before = _snapshot(ctx.work), _snapshot(ctx.tiny_dir)
    try:
        res = adapt(texts, ctx.work / case.get("output", "out"), model=str(ctx.tiny_dir), **params)
    except BaseException:
        assert (_snapshot(ctx.work), _snapshot(ctx.tiny_dir)) == before, case["id"]
        raise
    clf = PromptClassifier(pvp=SENTIMENT_PVP, model=str(res.path), device="cpu", verbose=0)
    return Outcome(clf.fit(None), TOY_X)


# ------------------------------------------------------ saving: never lose a file
USER_FILES = {"notes.txt": b"my notes\n", "runs/log.csv": b"step,loss\n"}
PET_KIT_FILES = (META_FILE, TENSOR_FILE)


def _user_files(folder: Path) -> None:
    for name, data in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _target_with(name: str, data: bytes) -> Callable[[Path, Ctx], None]:
    """A builder: a folder holding the user's files and ``name`` (not pet_kit's)."""

    def build(target: Path, ctx: Ctx) -> None:
        _user_files(target)
        (target / name).write_bytes(data)

    return build


def _other_task_prompt(target: Path, ctx: Ctx) -> None:
    """A pet_kit prompt folder of another task (its PVP's pattern differs)."""
    shutil.copytree(ctx.pristine, target)
    meta = json.loads((target / META_FILE).read_text(encoding="utf-8"))
    meta["pvp"]["pattern"] = "{text} Topic: [MASK]."
    (target / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def _target_symlinked_prompt_json(target: Path, ctx: Ctx) -> None:
    shutil.copytree(ctx.pristine, target)
    _user_files(target)
    (ctx.work / "store").mkdir()
    (target / META_FILE).rename(ctx.work / "store" / META_FILE)
    (target / META_FILE).symlink_to(ctx.work / "store" / META_FILE)


TARGET_BUILDERS: dict[str, Callable[[Path, Ctx], None]] = {
    "prompt_with_user_files": lambda t, c: (shutil.copytree(c.pristine, t), _user_files(t)),
    "user_files": lambda t, c: _user_files(t),
    "foreign_prompt_json": _target_with(META_FILE, b'{"name": "my prompt notes"}'),
    "prompt_json_not_json": _target_with(META_FILE, b"my prompt notes"),
    "deep_prompt_json": _target_with(META_FILE, b"[" * 200_000 + b"]" * 200_000),
    "foreign_tensor_file": _target_with(TENSOR_FILE, b"my tensors"),
    "symlinked_prompt_json": _target_symlinked_prompt_json,
    "other_task_prompt": _other_task_prompt,
    "a_file": lambda t, c: (c.work / "file.txt").write_bytes(b"a file"),
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def run_save(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """Save the fitted prompt to ``path`` (default ``target``, under the case's folder)
    after the ``target`` builder prepared it (``tensor: nan``: a prompt with a NaN slot;
    ``checkpoint: true``: fit with ``checkpoint=path`` instead). Every file there
    must be unchanged afterwards, except, on success, pet_kit's own two files."""
    TARGET_BUILDERS[case.get("target", "a_file")](ctx.work / "target", ctx)
    before = _snapshot(ctx.work)
    path = ctx.work / case.get("path", "target")
    try:
        if case.get("checkpoint"):
            ctx.make(checkpoint=path).fit(TOY_X, TOY_Y)
        clf = ctx.fitted
        if case.get("tensor") == "nan":
            clf = PromptClassifier.load(ctx.pristine, device="cpu")
            with torch.no_grad():
                next(clf.prompt_.parameters())[0, 0] = float("nan")
        clf.save(path, overwrite=bool(case.get("overwrite")))
    except BaseException:
        assert _snapshot(ctx.work) == before, f"{case['id']}: a refused save changed files"
        raise
    ours = {f"target/{n}" for n in PET_KIT_FILES}
    after = {k: v for k, v in _snapshot(ctx.work).items() if k not in ours}
    assert after == {k: v for k, v in before.items() if k not in ours}, case["id"]
    return Outcome(PromptClassifier.load(path, device="cpu"), TOY_X)


def _sparse(path: Path, size: int = 20 * 2**30) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)


def _drop_recorded_size(folder: Path) -> None:
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    meta["files"] = {TENSOR_FILE: meta["files"][TENSOR_FILE]}  # as pet_kit 0.1.0 wrote it
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def _nan_slots_init(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / TENSOR_FILE))
    tensors["slots_init"][0, 0] = float("nan")
    save_file(tensors, str(folder / TENSOR_FILE))
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    meta["files"][TENSOR_FILE] = _sha256(folder / TENSOR_FILE)
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def _interrupted_save(folder: Path) -> None:
    """As a save killed between its two replacements leaves it: ``prompt.json`` does not
    describe the tensor file, a complete temporary ``prompt.json`` does."""
    shutil.copy(folder / META_FILE, folder / ".prompt.json.tmp-0123abcd")
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    meta["files"] = {TENSOR_FILE: "0" * 64}
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


DAMAGE_BUILDERS: dict[str, Callable[[Path], None]] = {
    "sparse_tensor_20gb": lambda f: _sparse(f / TENSOR_FILE),
    "sparse_tensor_20gb_no_size": lambda f: (_drop_recorded_size(f), _sparse(f / TENSOR_FILE)),
    "sparse_json_20gb": lambda f: _sparse(f / META_FILE),
    "deep_json": lambda f: (f / META_FILE).write_bytes(b"[" * 200_000 + b"]" * 200_000),
    "nan_slots_init": _nan_slots_init,
    "interrupted_save": _interrupted_save,
}


def run_damaged(case: dict[str, Any], ctx: Ctx) -> Outcome:
    """Copy the saved prompt, apply the ``damage`` builder, ``PromptClassifier.load``;
    the load must return or fail within ``within_s`` seconds (default 30)."""
    folder = ctx.work / "prompt"
    shutil.copytree(ctx.pristine, folder)
    DAMAGE_BUILDERS[case["damage"]](folder)
    start = time.perf_counter()
    try:
        return Outcome(PromptClassifier.load(folder, device="cpu"), TOY_X)
    finally:
        elapsed = time.perf_counter() - start
        assert elapsed < case.get("within_s", 30), f"{case['id']}: took {elapsed:.1f} s"


RUNNERS: dict[str, Callable[[dict[str, Any], Ctx], Outcome]] = {
    "pvp": run_fit,
    "fit": run_fit,
    "predict": run_predict,
    "params": run_params,
    "unfitted": run_unfitted,
    "saved": run_saved,
    "model": run_model,
    "save": run_save,
    "damaged": run_damaged,
    "table": run_table,
    "cli": run_cli,
    "server": run_server,
    "cli_train": run_cli_train,
    "adapt": run_adapt,
}
#: What a runner needs installed (the case is skipped without it).
NEEDS = {"server": "fastapi"}


# ------------------------------------------------------------------ ok-case checks
def _check_zero_shot(out: Outcome, ctx: Ctx) -> None:
    assert out.clf.history_["zero_shot"] is True


def _check_classes_0_1(out: Outcome, ctx: Ctx) -> None:
    assert out.clf.classes_.tolist() == [0, 1] and out.clf.classes_.dtype.kind == "i"
    assert set(out.clf.predict(TOY_X).tolist()) <= {0, 1}


def _check_nul_as_space(out: Outcome, ctx: Ctx) -> None:
    spaced = [x.replace("\0", " ") for x in out.X]
    np.testing.assert_array_equal(out.proba, ctx.fitted.predict_proba(spaced))


def _check_same_predictions(out: Outcome, ctx: Ctx) -> None:
    np.testing.assert_array_equal(out.clf.predict_proba(TOY_X), ctx.fitted.predict_proba(TOY_X))


def _spaced(text: str) -> str:
    """``[MASK]`` -> `` [ MASK ] ``: the ordinary pieces, as a BERT tokenizer splits them."""
    return re.sub(r"\[(\w+)\]", r" [ \1 ] ", text)


def _check_plain_special_tokens(out: Outcome, ctx: Ctx) -> None:
    texts = out.X["text"].tolist() if hasattr(out.X, "columns") else list(out.X)
    np.testing.assert_allclose(
        out.clf.predict_proba(texts), out.clf.predict_proba([_spaced(t) for t in texts]), atol=1e-6
    )


def _check_fields_plain(out: Outcome, ctx: Ctx) -> None:
    tok = out.clf.model_.backbone.tokenizer
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    for e in out.clf.model_.encode(out.X):
        assert not special & {i for field in e.fields for i in field}


def _check_calibration_plain(out: Outcome, ctx: Ctx) -> None:
    calibration = out.clf.settings().calibration  # the case gives it as a mapping
    texts = [_spaced(t) for t in calibration.texts]
    spaced = clone(out.clf).set_params(calibration=Calibration(calibration.mode, texts=texts))
    spaced.fit(TOY_X, TOY_Y)
    np.testing.assert_allclose(out.clf.calibration_prior_, spaced.calibration_prior_, atol=1e-6)


def _check_link_target_unchanged(out: Outcome, ctx: Ctx) -> None:
    assert (ctx.work / "precious.txt").read_text(encoding="utf-8") == "keep me\n"
    assert any(
        (ctx.work / n).exists() and not (ctx.work / n).is_symlink() for n in ("out.csv", "res.json")
    ), "the output link was not replaced by a file"


def _check_rows_as_wc_l(out: Outcome, ctx: Ctx) -> None:
    """One row per line as ``wc -l`` counts lines (the file's last line ends with \\n and
    none is blank)."""
    lines = (CORPUS / "data" / "line_separators.txt").read_bytes().count(b"\n")
    assert len(out.X) == lines, (len(out.X), lines)


CHECKS: dict[str, Callable[[Outcome, Ctx], None]] = {
    "zero_shot": _check_zero_shot,
    "classes_0_1": _check_classes_0_1,
    "nul_as_space": _check_nul_as_space,
    "same_predictions": _check_same_predictions,
    "plain_special_tokens": _check_plain_special_tokens,
    "fields_plain": _check_fields_plain,
    "calibration_plain": _check_calibration_plain,
    "link_target_unchanged": _check_link_target_unchanged,
    "rows_as_wc_l": _check_rows_as_wc_l,
}


# ------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def ctx_base(tiny_dir, tmp_path_factory):
    fitted = tiny_clf(tiny_dir, epochs=2).fit(TOY_X, TOY_Y)
    pristine = fitted.save(tmp_path_factory.mktemp("pristine") / "prompt")
    return tiny_dir, fitted, pristine


@pytest.fixture()
def ctx(ctx_base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a payload that ran would create its marker here
    tiny_dir, fitted, pristine = ctx_base
    return Ctx(tiny_dir=tiny_dir, fitted=fitted, pristine=pristine, work=tmp_path)


def _exception_class(name: str) -> type[BaseException]:
    if name == "NotFittedError":
        return NotFittedError
    if name in ("ValueError", "TypeError"):
        return {"ValueError": ValueError, "TypeError": TypeError}[name]
    return getattr(pet_kit, name, None) or getattr(pet_kit.errors, name)


def _check_http(case: dict[str, Any], out: Outcome, ctx: Ctx) -> None:
    """A server case: the status, and an error is ``{"detail": "<message>"}`` holding the
    case's ``detail``; nothing in the response gives away the server's folders."""
    assert out.http is not None
    status, text = out.http
    assert status == case["status"], f"{case['id']}: HTTP {status}: {text[:300]}"
    body = json.loads(text)
    if status >= 400:
        assert list(body) == ["detail"] and isinstance(body["detail"], str), text[:300]
        assert case["detail"] in body["detail"], f"{case['id']}: detail was {body['detail']!r}"
    assert str(ctx.pristine) not in text and str(ctx.work) not in text


def _raised_by(exc: BaseException) -> Path:
    return Path(traceback.extract_tb(exc.__traceback__)[-1].filename).resolve()


def test_manifest_is_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for case in CASES:
        assert {"id", "feeds", "run", "expect"} <= set(case), case
        assert case["run"] in RUNNERS, case
        kind, _, what = case["expect"].partition(":")
        assert kind in ("error", "ok") and what.strip(), case
        if kind == "error":
            _exception_class(what.strip())
            assert case.get("match"), f"{case['id']}: an error case needs a message substring"
        for key in ("file", "X_file", "model_dir"):
            if key in case:
                assert (CORPUS / case[key].partition("#")[0]).exists(), case
    # the corpus files are all used
    used = {c[k].partition("#")[0] for c in CASES for k in ("file", "X_file") if k in c}
    used |= {c["model_dir"] for c in CASES if "model_dir" in c}
    files = {str(p.relative_to(CORPUS)) for p in (CORPUS / "pvp").iterdir()}
    files |= {str(p.relative_to(CORPUS)) for p in (CORPUS / "data").iterdir()}
    files |= {str(p.relative_to(CORPUS)) for p in (CORPUS / "models").iterdir()}
    assert files <= used, f"unused corpus files: {sorted(files - used)}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_case(case, ctx):
    if case.get("skip_if_cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    kind, _, expected = case["expect"].partition(":")
    expected = expected.strip()
    if case["run"] in NEEDS:
        pytest.importorskip(NEEDS[case["run"]])
    try:
        outcome = RUNNERS[case["run"]](case, ctx)
    except BaseException as exc:
        detail = "".join(traceback.format_exception(exc))[-3000:]
        assert isinstance(exc, (PetKitError, ValueError, TypeError)), (
            f"{case['id']}: {type(exc).__name__} escaped:\n{detail}"
        )
        where = _raised_by(exc)
        from_pet_kit = PET_KIT_DIR in where.parents
        from_sklearn_check = isinstance(exc, NotFittedError) and "sklearn" in where.parts
        assert from_pet_kit or from_sklearn_check, (
            f"{case['id']}: raw error from inside a dependency ({where}):\n{detail}"
        )
        assert kind == "error", f"{case['id']}: expected {case['expect']!r}, got:\n{detail}"
        assert type(exc).__name__ == expected, f"{case['id']}: got {type(exc).__name__}: {exc}"
        assert isinstance(exc, _exception_class(expected))
        assert case["match"] in str(exc), f"{case['id']}: message was: {exc}"
    else:
        assert kind == "ok", f"{case['id']}: expected {case['expect']!r}, but nothing was raised"
        if outcome.http is not None:
            _check_http(case, outcome, ctx)
        else:
            clf = outcome.clf
            proba = outcome.proba if outcome.proba is not None else clf.predict_proba(outcome.X)
            assert proba.shape == (len(outcome.X), len(clf.classes_))
            assert np.isfinite(proba).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        if "check" in case:
            CHECKS[case["check"]](outcome, ctx)
    assert not (ctx.work / MARKER).exists(), f"{case['id']}: a payload was executed"
    assert not (CORPUS / MARKER).exists(), f"{case['id']}: a payload was executed"
