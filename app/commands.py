"""Implementations of the CLI subcommands (parsing lives in app.cli)."""

from __future__ import annotations

import argparse
import sys

from app.cli import install_stop_handlers
from app.cli_args import base_spec
from app.progress import SweepProgress, trial_summary
from core.devices import pick_device
from core.specs import SpecError, TrialSpec
from core.tasks import TASKS, check_sources, task_defaults
from tuning.results import REPORTED_STATES, study_results, write_json
from tuning.storage import load_study, study_settings
from tuning.sweep import SweepGrid, count_waiting, prepare_sweep, run_pending

DEFAULT_SWEEP_STUDY = "sweep"


def cmd_tasks(args: argparse.Namespace) -> int:
    """Print the built-in tasks."""
    for task in TASKS.values():
        print(f"{task.name:<16} {task.kind:<9} {task.description}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or resume) a grid sweep and print one line per trial."""
    defaults = task_defaults(args.task)
    base = base_spec(args, task_defaults=defaults)
    grid = SweepGrid(ranks=args.ranks, rules=args.rules, alphas=args.alphas,
                     lrs=args.lrs or (defaults.lr,), seed=args.seed)
    check_sources(base)
    pick_device(base.device)
    study = prepare_sweep(args.storage, args.study or DEFAULT_SWEEP_STUDY, base, grid)
    _run_study(study, base, quiet=args.quiet)
    if args.json:
        write_json(study_results(study), args.json)
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Join a study in the storage and run its queued trials."""
    study = load_study(args.storage, args.study)
    settings = study_settings(study)
    if "base" not in settings:
        raise SpecError(f"study {args.study!r} was not made by lorascope: it has no trial settings")
    base = TrialSpec.from_dict(settings["base"])
    if args.device:
        base = base.with_params(device=args.device)
    pick_device(base.device)
    _run_study(study, base, quiet=args.quiet)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """Write a study's results JSON, or print a table of its trials."""
    study = load_study(args.storage, args.study)
    if args.json:
        write_json(study_results(study), args.json)
        return 0
    for trial in sorted(study.get_trials(deepcopy=False, states=REPORTED_STATES), key=lambda t: t.number):
        print(trial_summary(trial))
    return 0


def _run_study(study, base: TrialSpec, *, quiet: bool) -> None:
    pending = count_waiting(study)
    if not pending:
        print(f"study {study.study_name!r}: every trial has already run", file=sys.stderr)
        return
    print(f"study {study.study_name!r}: {pending} trial(s) to run", file=sys.stderr)
    stop = [False]
    install_stop_handlers(stop)
    progress = SweepProgress(pending * base.steps, enabled=not quiet)
    try:
        run_pending(study, base, on_record=progress.on_record, on_trial_end=progress.on_trial_end,
                    stop_requested=lambda: stop[0])
    finally:
        progress.close()
