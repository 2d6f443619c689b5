"""Argument parsing for the CLI: one-line errors with exit status 2, list and spec flags."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from core.specs import TrialSpec, field_help
from tuning.storage import DEFAULT_STORAGE


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(message: str) -> NoReturn:
    """Print one error line and exit with status 2 (bad input)."""
    print(f"lorascope: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def list_of(kind: type, name: str):
    """An argparse type parsing comma-separated values of ``kind``."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be comma-separated {kind.__name__}s, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{name} is empty: give at least one value")
        return values

    return parse


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """Flags choosing what to train: built-in task, or model folder and data file."""
    parser.add_argument("--task", help=field_help("task"))
    parser.add_argument("--model", help=field_help("model"))
    parser.add_argument("--data", help=field_help("data"))
    parser.add_argument("--trust-remote-code", action="store_true", help=field_help("trust_remote_code"))
    parser.add_argument("--target-modules", type=list_of(str, "--target-modules"),
                        help=field_help("target_modules") + " Comma-separated.")


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that trains (defaults come from the task)."""
    parser.add_argument("--steps", type=int, help=field_help("steps") + " Default: the task's.")
    parser.add_argument("--batch-size", type=int, help=field_help("batch_size") + " Default: the task's.")
    parser.add_argument("--seed", type=int, default=0, help=field_help("seed"))
    parser.add_argument("--device", default="auto", help=field_help("device"))
    parser.add_argument("--warmup-steps", type=int, default=0, help=field_help("warmup_steps"))
    parser.add_argument("--schedule", default="constant", help=field_help("schedule"))
    parser.add_argument("--eval-every", type=int, default=50, help=field_help("eval_every"))
    parser.add_argument("--max-grad-norm", type=float, help=field_help("max_grad_norm"))
    parser.add_argument("--lora-dropout", type=float, default=0.0, help=field_help("lora_dropout"))
    parser.add_argument("--max-length", type=int, default=128, help=field_help("max_length"))


def add_study_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--storage and --study."""
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL (SQLite file or PostgreSQL).")
    parser.add_argument("--study", required=required, help="Study name inside the storage.")


def base_spec(args: argparse.Namespace, *, task_defaults) -> TrialSpec:
    """The TrialSpec shared by every trial of a command, from its flags and the task's defaults."""
    return TrialSpec(
        task=args.task, model=args.model, data=args.data,
        steps=args.steps if args.steps is not None else task_defaults.steps,
        batch_size=args.batch_size if args.batch_size is not None else task_defaults.batch_size,
        lr=task_defaults.lr, seed=args.seed, device=args.device, warmup_steps=args.warmup_steps,
        schedule=args.schedule, eval_every=args.eval_every, max_grad_norm=args.max_grad_norm,
        lora_dropout=args.lora_dropout, max_length=args.max_length,
        target_modules=args.target_modules, trust_remote_code=args.trust_remote_code,
    )
