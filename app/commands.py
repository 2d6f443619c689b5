"""Implementations of the CLI subcommands (parsing lives in app.cli)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from app.cli import install_stop_handlers
from app.cli_args import base_spec
from app.progress import SweepProgress, format_fit, trial_summary
from core.devices import pick_device
from core.specs import SpecError, TrialSpec
from core.tasks import TASKS, check_sources, task_defaults
from tuning.export import FORMATS, write_export
from tuning.fit import fit_report
from tuning.recommend import choose
from tuning.results import REPORTED_STATES, check_writable, collect_records, study_results, write_json
from tuning.search import SearchSpec, open_search, pending_trials, run_search
from tuning.storage import load_study, open_storage, study_settings
from tuning.sweep import SweepGrid, count_waiting, prepare_sweep, run_pending

DEFAULT_SWEEP_STUDY = "sweep"
DEFAULT_SEARCH_STUDY = "search"


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
                     lrs=args.lrs or (defaults.lr,), seed=args.seed, sqrt_law_c=args.sqrt_law_c)
    for note in check_sources(base):
        print(f"note: {note}", file=sys.stderr)
    pick_device(base.device)
    if args.json:
        check_writable(args.json)
    study = prepare_sweep(args.storage, args.study or DEFAULT_SWEEP_STUDY, base, grid)
    _run_study(study, base, quiet=args.quiet)
    if args.json:
        write_json(study_results(study), args.json)
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Run (or continue) an alpha search per rank, then print the fit."""
    defaults = task_defaults(args.task)
    base = base_spec(args, task_defaults=defaults)
    search = SearchSpec(ranks=args.ranks, rule=args.rule, alpha_min=args.alpha_min, alpha_max=args.alpha_max,
                        trials_per_rank=args.trials_per_rank, sampler=args.sampler, pruner=args.pruner,
                        lr=args.lr if args.lr is not None else defaults.lr, seed=args.seed)
    for note in check_sources(base):
        print(f"note: {note}", file=sys.stderr)
    pick_device(base.device)
    if args.json:
        check_writable(args.json)
    name = args.study or DEFAULT_SEARCH_STUDY
    studies = open_search(args.storage, name, base, search)
    pending = pending_trials(studies, search)
    print(f"search {name!r}: {pending} trial(s) to run over alpha in "
          f"[{search.alpha_min:g}, {search.alpha_high:g}]", file=sys.stderr)
    with _progress(pending * base.steps, quiet=args.quiet) as (progress, stop):
        run_search(args.storage, name, base, search, studies=studies, on_record=progress.on_record,
                   on_trial_end=progress.on_trial_end, stop_requested=lambda: stop[0])
    return _print_fit(args.storage, name, target_rank=None, json_path=args.json)


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit the alpha law to a study's trials and print (or write) it."""
    if args.rank is not None and args.rank < 1:
        raise SpecError(f"--rank must be a positive integer, got {args.rank}")
    return _print_fit(args.storage, args.study, target_rank=args.rank, json_path=args.json)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the chosen config in one format."""
    if args.format not in FORMATS:
        raise SpecError(f"unknown format {args.format!r}: use one of {', '.join(FORMATS)}")
    if args.rank is not None and args.rank < 1:
        raise SpecError(f"--rank must be a positive integer, got {args.rank}")
    records, settings = collect_records(args.storage, args.study)
    choice = choose(records, settings, trial=args.trial, rank=args.rank)
    path, written = write_export(choice, args.format, args.out, force=args.force)
    for note in written.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {path}: r={written.rank} lora_alpha={int(written.alpha)} rule={written.rule} "
          f"gamma={written.gamma:.6g}")
    return 0


def _print_fit(storage: str, name: str, *, target_rank: int | None, json_path: str | None) -> int:
    if json_path:
        check_writable(json_path)
    records, _ = collect_records(storage, name)
    try:
        report = fit_report(records, target_rank=target_rank)
    except ValueError as err:
        raise SpecError(f"study {name!r}: {err}") from None
    print(format_fit(report))
    if json_path:
        write_json(report, json_path)
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


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the Gradio app until interrupted."""
    from app.ui import launch

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise SpecError("--auth must be USER:PASS with both parts non-empty")
        auth = (user, password)
    if not 0 < args.port < 65536:
        raise SpecError(f"--port must be between 1 and 65535, got {args.port}")
    open_storage(args.storage)
    launch(host=args.host, port=args.port, storage_url=args.storage, auth=auth, share=args.share)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark and write its JSON."""
    from app.bench import run_bench

    pick_device(args.device)
    result = run_bench(args.device, tuple(filter(None, args.sections.split(","))), args.packed_model_size)
    write_json(result, args.json)
    for row in result.get("throughput", []):
        print(f"{row['task']:<16} r={row['rank']:<4} {row['rule']:<8} {row['steps_per_s']:>8.1f} steps/s "
              f"{row['tokens_per_s']:>10.0f} tokens/s")
    if "packed" in result:
        from app.bench_packed import summary_lines

        print("\n".join(summary_lines(result["packed"])))
    if "pruning" not in result:
        return 0
    pruning = result["pruning"]
    print(f"median pruning: alpha* {pruning['median']['alpha_star']:.4g} vs {pruning['none']['alpha_star']:.4g} "
          f"unpruned (within one grid step: {pruning['alpha_star_within_one_grid_step']}); "
          f"steps {pruning['median']['steps_run']} vs {pruning['none']['steps_run']}: "
          f"{pruning['steps_saved']} saved ({100 * pruning['steps_saved_fraction']:.0f}%)")
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
    with _progress(pending * base.steps, quiet=quiet) as (progress, stop):
        run_pending(study, base, on_record=progress.on_record, on_trial_end=progress.on_trial_end,
                    stop_requested=lambda: stop[0])


@contextlib.contextmanager
def _progress(total_steps: int, *, quiet: bool):
    stop = [False]
    install_stop_handlers(stop)
    progress = SweepProgress(total_steps, enabled=not quiet)
    try:
        yield progress, stop
    finally:
        progress.close()
