"""Argument parsing for the CLI: flags generated from the spec fields, one-line errors, exit 2."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from core.specs import PackSpec, SearchSpec, SpecError, SweepGrid, TrialSpec, flag_of, spec_fields
from tuning.storage import DEFAULT_STORAGE, STORAGE_ENV  # noqa: F401 - STORAGE_ENV re-exported

SOURCE_FIELDS = ("task", "model", "data", "trust_remote_code", "target_modules")
TRAINING_FIELDS = ("steps", "batch_size", "seed", "device", "warmup_steps", "schedule", "eval_every",
                   "max_grad_norm", "lora_dropout", "max_length")
SWEEP_FIELDS = ("ranks", "rules", "alphas", "lrs", "sqrt_law_c")
SEARCH_FIELDS = ("ranks", "rule", "alpha_min", "alpha_max", "trials_per_rank", "sampler", "pruner", "lr")
_SCALARS = {"int": int, "float": float, "str": str}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(message: str) -> NoReturn:
    """Print one error line and exit with status 2 (bad input)."""
    print(f"lorascope: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def list_of(kind: type, name: str, *, none_word: bool = False):
    """An argparse type parsing comma-separated values of ``kind`` (``none`` for empty if allowed)."""

    def parse(text: str) -> tuple:
        if none_word and text.strip() == "none":
            return ()
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be comma-separated {kind.__name__}s, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{name} is empty: give at least one value")
        return values

    return parse


def add_spec_flags(parser: argparse.ArgumentParser, cls: type, names: tuple[str, ...]) -> None:
    """Add one flag per spec field: type, default and help all come from the field itself."""
    specs = spec_fields(cls)
    for name in names:
        spec = specs[name]
        meta, flag = spec.metadata, flag_of(name)
        kind = str(spec.type).replace(" | None", "")
        help_text = meta["help"]
        if meta["task_default"]:
            help_text += " Default: the task's."
        if kind == "bool":
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        if kind.startswith("tuple["):
            parse: Any = list_of(_SCALARS[kind[6:].split(",")[0]], flag, none_word=meta["allow_none_word"])
        else:
            parse = _SCALARS[kind]
        default = None if meta["task_default"] else spec.default
        parser.add_argument(flag, type=parse, default=default, help=help_text)


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """Flags choosing what to train: built-in task, or model folder and data file."""
    add_spec_flags(parser, TrialSpec, SOURCE_FIELDS)


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that trains (steps, batch size and lr default to the task's)."""
    add_spec_flags(parser, TrialSpec, TRAINING_FIELDS)


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
    """The grid of a sweep."""
    add_spec_flags(parser, SweepGrid, SWEEP_FIELDS)


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """What an alpha search explores."""
    add_spec_flags(parser, SearchSpec, SEARCH_FIELDS)


def add_pack_flag(parser: argparse.ArgumentParser) -> None:
    """--pack K: how many claimed trials train together (sweep, search, worker)."""
    add_spec_flags(parser, PackSpec, ("pack",))


def pack_spec(args: argparse.Namespace) -> PackSpec:
    """The validated --pack of a command that trains."""
    return PackSpec(pack=args.pack)


def add_study_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--storage (default: $LORASCOPE_STORAGE, else the local SQLite file) and --study."""
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE,
                        help=f"Optuna storage URL (SQLite file or PostgreSQL). Default: ${STORAGE_ENV} if set, "
                             f"else {DEFAULT_STORAGE}.")
    parser.add_argument("--study", required=required, help="Study name inside the storage.")


def base_spec(args: argparse.Namespace, *, task_defaults) -> TrialSpec:
    """The TrialSpec shared by every trial of a command, from its flags and the task's defaults."""
    given = {name: getattr(args, name) for name in SOURCE_FIELDS + TRAINING_FIELDS}
    for name in ("steps", "batch_size"):
        if given[name] is None:
            given[name] = getattr(task_defaults, name)
    return TrialSpec(lr=task_defaults.lr, **given)


def sweep_grid(args: argparse.Namespace, *, task_defaults) -> SweepGrid:
    """The sweep's grid from its flags (learning rates default to the task's)."""
    return SweepGrid(ranks=args.ranks, rules=args.rules, alphas=args.alphas, lrs=args.lrs or (task_defaults.lr,),
                     seed=args.seed, sqrt_law_c=args.sqrt_law_c)


def search_spec(args: argparse.Namespace, *, task_defaults) -> SearchSpec:
    """The search's spec from its flags (the learning rate defaults to the task's)."""
    given = {name: getattr(args, name) for name in SEARCH_FIELDS}
    if given["lr"] is None:
        given["lr"] = task_defaults.lr
    return SearchSpec(seed=args.seed, **given)


def check_output(path: str | os.PathLike, flag: str, *, folder: bool = False) -> Path:
    """Raise SpecError unless ``path`` can be written, trying it before any work starts.

    ``folder``: the output is a folder (created later); else a file. Nothing is left behind.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise SpecError(f"{path} is a folder: give a file path", field=flag.lstrip("-"))
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpecError(f"{path} lies inside the file {existing}: give another path", field=flag.lstrip("-"))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise SpecError(f"cannot write {path}: {existing} is not writable ({err.strerror or err})",
                        field=flag.lstrip("-")) from None
    return path
