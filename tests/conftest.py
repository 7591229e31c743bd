"""Shared fixtures: a tiny randomly initialised BERT and a WordPiece tokenizer.

Everything is built here from a vocabulary written in this file: no hub access.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Tiny models run fastest on one thread (and never oversubscribe a shared CI core).
torch.set_num_threads(1)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Under pytest-xdist each worker is a process; the subprocesses tests start (examples,
# README and docs blocks) would each use every core, and torch on oversubscribed cores
# runs several times slower (measured on 2 cores, 2 workers: 3.4x for the examples).
# A worker's subprocesses get its share of the cores unless the caller chose a count.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // _WORKERS)))

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def backbone_scripts(*names: str) -> Iterator[dict]:
    """Import ``scripts/default_backbone/NAME.py`` modules in order (later ones import the
    earlier ones by name), then remove them and their folder from ``sys.path`` again."""
    import importlib.util
    import sys

    folder = REPO / "scripts" / "default_backbone"
    sys.path.insert(0, str(folder))
    loaded = {}
    try:
        for name in names:
            spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            loaded[name] = module
        yield loaded
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.path.remove(str(folder))


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """
the a an it was is this that and or but not very so too of to in on for with at by from
review movie film book story plot acting music really quite just
great good terrible bad awful fine nice excellent poor boring fun dull
yes no maybe true false question answer sentence topic news about
sports business world science technology politics entertainment tech sport
what who where when why how number person place thing abbreviation description
happy sad love hate like liked hated best worst
i you he she we they me my your his her our their
one two three four five stars star rating
ok okay wow hmm well
""".split()
PUNCT = list(".,!?:;'\"()-[]{}#*")
SUBWORDS = ["fan", "##tastic", "super", "##b", "##s", "##ed", "##ly", "##ing"]
CHINESE = list("好差评很不这个电影书非常喜欢讨厌的了是我")
VOCAB = SPECIALS + WORDS + PUNCT + SUBWORDS + CHINESE


def _write_vocab(path: Path) -> Path:
    seen: dict[str, None] = {}
    for tok in VOCAB:
        seen.setdefault(tok)
    path.write_text("\n".join(seen) + "\n", encoding="utf-8")
    return path


def build_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _write_vocab(folder / "vocab.txt")
    tokens = vocab.read_text(encoding="utf-8").split()
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


@contextlib.contextmanager
def transformers_warnings() -> Iterator[list[str]]:
    """Collect the messages that ``transformers`` loggers emit at WARNING and above.

    A handler on the library's root logger, with its level set to WARNING for the block:
    independent of stderr capture (transformers' own stream handler may hold a stream
    replaced since) and of other tests or benchmarks that quieten transformers.
    """
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("transformers")
    handler, level = _Collect(logging.WARNING), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def build_model(vocab_size: int, seed: int = 0, arch: str = "bert"):
    import transformers as tf

    torch.manual_seed(seed)
    # a large init range makes the random model's outputs depend on its inputs enough
    # for prompt training to have a visible effect
    common = dict(vocab_size=vocab_size, max_position_embeddings=128, initializer_range=0.5)
    layers = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    # position ids after the padding id (RoBERTa, MPNet) need two more positions
    offset = {**common, "max_position_embeddings": 130}
    specs = {
        "bert": (tf.BertConfig, tf.BertForMaskedLM, {**layers, **common}),
        "roberta": (
            tf.RobertaConfig,
            tf.RobertaForMaskedLM,
            {**layers, **offset, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
        ),
        "mpnet": (tf.MPNetConfig, tf.MPNetForMaskedLM, {**layers, **offset, "pad_token_id": 0}),
        "distilbert": (
            tf.DistilBertConfig,
            tf.DistilBertForMaskedLM,
            {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, **common},
        ),
        "albert": (
            tf.AlbertConfig,
            tf.AlbertForMaskedLM,
            {"embedding_size": 16, **layers, **common},
        ),
        "electra": (
            tf.ElectraConfig,
            tf.ElectraForMaskedLM,
            {"embedding_size": 16, **layers, **common},
        ),
    }
    if arch not in specs:  # pragma: no cover - test helper misuse
        raise ValueError(arch)
    config_cls, model_cls, kwargs = specs[arch]
    model = model_cls(config_cls(**kwargs))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A saved tiny BERT masked LM + tokenizer, loadable with from_pretrained."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = build_tokenizer(folder / "tok")
    model = build_model(len(tok))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_dir))


@pytest.fixture()
def tiny_model(tiny_dir):
    """A fresh model object (callers may check it is not mutated)."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(str(tiny_dir))


SENTIMENT_PVP = {
    "pattern": "[SOFT*2] {text} It was [MASK].",
    "verbalizer": {"positive": ["great", "good"], "negative": ["terrible", "bad"]},
}

POS = [
    "a great movie",
    "good fun film",
    "i love this book",
    "excellent acting",
    "really nice story",
    "the best film",
    "wow what fun",
    "great music and plot",
]
NEG = [
    "a terrible movie",
    "bad boring film",
    "i hate this book",
    "awful acting",
    "really dull story",
    "the worst film",
    "poor plot",
    "boring music and plot",
]


@pytest.fixture()
def toy_data():
    X = POS + NEG
    y = ["positive"] * len(POS) + ["negative"] * len(NEG)
    return X, y


def tiny_clf(model_dir, **kw):
    """A PromptClassifier on the tiny model with the suite's fast defaults (``kw`` wins).

    ``guard=None``: the tests built on it check what training does, and a random tiny BERT
    generalises too little from a few examples for the default guard to let it train;
    ``tests/estimators/test_guard.py`` tests the guard.
    """
    from pet_kit import PromptClassifier

    params = dict(
        pvp=SENTIMENT_PVP,
        model=str(model_dir),
        epochs=3,
        batch_size=4,
        guard=None,
        random_state=0,
        verbose=0,
        device="cpu",
    )
    params.update(kw)
    return PromptClassifier(**params)


def arch_clf(arch: str, tokenizer, **kw):
    """:func:`tiny_clf` on a fresh tiny model of architecture ``arch`` (an object)."""
    model = build_model(len(tokenizer), arch=arch)
    return tiny_clf(None, model=model, tokenizer=tokenizer, **kw)


@pytest.fixture()
def make_clf(tiny_dir):
    def make(**kw):
        return tiny_clf(tiny_dir, **kw)

    return make
