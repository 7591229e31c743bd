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

import json
import shutil
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
from sklearn.exceptions import NotFittedError

import pet_kit
from pet_kit import PetKitError, PromptClassifier
from pet_kit.persist import META_FILE, TENSOR_FILE, _sha256

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
    "with_number": lambda: [*TOY_X[:-1], 42],
    "dict_of_columns": lambda: {"text": TOY_X},
    "a_set": lambda: set(TOY_X),
    "triples": lambda: [(x, x, x) for x in TOY_X],
}

Y_BUILDERS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "all_positive": lambda: ["positive"] * len(TOY_X),
    "with_nan": lambda: [*TOY_Y[:-1], float("nan")],
    "with_none": lambda: [*TOY_Y[:3], None, *TOY_Y[4:]],
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
    """What an ok case produced: an estimator and the texts to check it on."""

    clf: PromptClassifier
    X: Any
    proba: np.ndarray | None = None


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


def run_fit(case: dict[str, Any], ctx: Ctx) -> Outcome:
    X, y = _x_of(case, TOY_X), _y_of(case, TOY_Y)
    clf = ctx.make(pvp=_pvp_of(case), **case.get("params", {})).fit(X, y)
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


RUNNERS: dict[str, Callable[[dict[str, Any], Ctx], Outcome]] = {
    "pvp": run_fit,
    "fit": run_fit,
    "predict": run_predict,
    "params": run_params,
    "unfitted": run_unfitted,
    "saved": run_saved,
    "model": run_model,
}


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


CHECKS: dict[str, Callable[[Outcome, Ctx], None]] = {
    "zero_shot": _check_zero_shot,
    "classes_0_1": _check_classes_0_1,
    "nul_as_space": _check_nul_as_space,
    "same_predictions": _check_same_predictions,
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
    return getattr(pet_kit, name)


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
        clf = outcome.clf
        proba = outcome.proba if outcome.proba is not None else clf.predict_proba(outcome.X)
        assert proba.shape == (len(outcome.X), len(clf.classes_))
        assert np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        if "check" in case:
            CHECKS[case["check"]](outcome, ctx)
    assert not (ctx.work / MARKER).exists(), f"{case['id']}: a payload was executed"
    assert not (CORPUS / MARKER).exists(), f"{case['id']}: a payload was executed"
