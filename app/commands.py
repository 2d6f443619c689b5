"""Implementations of the CLI subcommands (parsing lives in app.cli).

Torch is imported only by the commands that train (sweep, search, worker, bench): `tasks`,
`results`, `fit` and `export` stay light.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from app.cli import install_stop_handlers
from app.cli_args import base_spec, check_output, pack_spec, search_spec, sweep_grid
from app.progress import SweepProgress, format_fit, trial_summary
from core.specs import DEVICES, PackSpec, SpecError, TrialSpec
from core.tasks import TASKS, check_sources, task_defaults
from tuning.export import FORMATS, write_export
from tuning.fit import fit_report
from tuning.recommend import choose
from tuning.results import REPORTED_STATES, collect_records, group_records, load_group, study_results, write_json
from tuning.search import open_search, pending_trials, run_rank_search, run_search
from tuning.stop import clear_stop, request_stop, stop_poller
from tuning.storage import load_study, open_storage, study_settings
from tuning.sweep import prepare_sweep, run_pending
from tuning.queue import heartbeat_seconds
from tuning.worker import claimable, open_studies_for_worker, pending_count, running_elsewhere, worker_spec
from tuning.workers import WAIT_SECONDS, serve, spawn_workers, supervise

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
    grid = sweep_grid(args, task_defaults=defaults)
    pack = pack_spec(args)
    _check_before_training(base, args.json)
    study = prepare_sweep(args.storage, args.study or DEFAULT_SWEEP_STUDY, base, grid)
    clear_stop(args.storage, study.study_name)  # starting a run again undoes an earlier `lorascope stop`
    _run_study(study, base, quiet=args.quiet, pack=pack)
    if args.json:
        write_json(study_results(study), args.json)
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Run (or continue) an alpha search per rank, then print the fit."""
    defaults = task_defaults(args.task)
    base = base_spec(args, task_defaults=defaults)
    search = search_spec(args, task_defaults=defaults)
    pack = pack_spec(args)
    _check_before_training(base, args.json)
    name = args.study or DEFAULT_SEARCH_STUDY
    studies = open_search(args.storage, name, base, search)
    clear_stop(args.storage, name)
    pending = pending_trials(studies, search)
    print(f"search {name!r}: {pending} trial(s) to run over alpha in "
          f"[{search.alpha_min:g}, {search.alpha_high:g}]", file=sys.stderr)
    flagged = stop_poller(studies[0])  # `lorascope stop` flags every rank's study
    with _progress(pending * base.steps, quiet=args.quiet) as (progress, stop):
        run_search(args.storage, name, base, search, studies=studies, on_record=progress.on_record,
                   on_trial_end=progress.on_trial_end, stop_requested=lambda: stop[0] or flagged(), pack=pack)
    try:  # failed trials are recorded results, not bad input: the search itself succeeded
        return _print_fit(args.storage, name, target_rank=None, json_path=args.json)
    except SpecError as err:
        print(f"lorascope: no fit yet: {err}", file=sys.stderr)
        return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit the alpha law to a study's trials and print (or write) it."""
    if args.rank is not None and args.rank < 1:
        raise SpecError(f"must be a positive integer, got {args.rank}", field="rank")
    return _print_fit(args.storage, args.study, target_rank=args.rank, json_path=args.json)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the chosen config in one format."""
    if args.format not in FORMATS:
        raise SpecError(f"unknown format {args.format!r}: use one of {', '.join(FORMATS)}", field="format")
    if args.rank is not None and args.rank < 1:
        raise SpecError(f"must be a positive integer, got {args.rank}", field="rank")
    check_output(args.out, "--out", folder=args.format == "peft")
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
        check_output(json_path, "--json")
    studies = load_group(storage, name)
    records, _ = group_records(studies)
    try:
        report = fit_report(records, target_rank=target_rank,
                            settings={study.study_name: study_settings(study) for study in studies})
    except ValueError as err:
        raise SpecError(f"study {name!r}: {err}") from None
    print(format_fit(report))
    if json_path:
        write_json(report, json_path)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Join a sweep or a search (every rank) in the storage and run what is left (--gpus: one process per GPU)."""
    pack = pack_spec(args)
    if args.gpus:
        extra = [*(["--device", args.device] if args.device else []), *(["--quiet"] if args.quiet else []),
                 *(["--pack", str(pack.pack)] if pack.pack else [])]
        return supervise(spawn_workers(args.storage, args.study, args.gpus, wait=args.wait, extra=extra))
    studies = open_studies_for_worker(args.storage, args.study)
    bases = [worker_spec(args.storage, study, device=args.device) for study in studies]
    _pick_device(bases[0].device)
    stop, flagged = [False], stop_poller(studies[0])  # Ctrl-C here, or `lorascope stop` from any machine
    stopped = lambda: stop[0] or flagged()  # noqa: E731

    def run_once() -> int:
        return sum(_run_study(study, base, quiet=args.quiet, stop=stop, pack=pack)
                   for study, base in zip(studies, bases) if not stopped() and claimable(study))

    serve(run_once, wait=args.wait, stopped=stopped, study=args.study, busy=lambda: running_elsewhere(studies),
          every=min(WAIT_SECONDS, heartbeat_seconds()))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Set the stop flag of a study (every rank of a search); workers anywhere stop within seconds."""
    names = request_stop(args.storage, args.study)
    print(f"stop requested for {', '.join(names)}: workers stop after their current step")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the Gradio app until interrupted."""
    from app.ui import check_bind, launch

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise SpecError("--auth must be USER:PASS with both parts non-empty")
        auth = (user, password)
    check_bind(args.host, args.port)
    open_storage(args.storage)
    launch(host=args.host, port=args.port, storage_url=args.storage, auth=auth, share=args.share,
           standby=args.standby)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark and write its JSON."""
    if args.device not in DEVICES:
        raise SpecError(f"unknown device {args.device!r}: use one of {', '.join(DEVICES)}", field="device")
    check_output(args.json, "--json")
    _pick_device(args.device)
    from app.bench import run_bench

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
        check_output(args.json, "--json")
        write_json(study_results(study), args.json)
        return 0
    for trial in sorted(study.get_trials(deepcopy=False, states=REPORTED_STATES), key=lambda t: t.number):
        print(trial_summary(trial))
    return 0


def _check_before_training(base: TrialSpec, json_path: str | None) -> None:
    """Sources, device and output file, all checked before a study is created or a trial runs."""
    for note in check_sources(base):
        print(f"note: {note}", file=sys.stderr)
    _pick_device(base.device)
    if json_path:
        check_output(json_path, "--json")


def _pick_device(name: str) -> None:
    from core.devices import pick_device  # torch: only the commands that train pay for it

    pick_device(name)


def _run_study(study, base: TrialSpec, *, quiet: bool, pack: PackSpec, stop: list[bool] | None = None) -> int:
    pending = pending_count(study)
    if not pending:
        print(f"study {study.study_name!r}: every trial has already run", file=sys.stderr)
        return 0
    print(f"study {study.study_name!r}: {pending} trial(s) to run", file=sys.stderr)
    run = run_rank_search if study_settings(study).get("kind") == "search" else run_pending
    flagged = stop_poller(study)
    with _progress(pending * base.steps, quiet=quiet, stop=stop) as (progress, stop):
        run(study, base, on_record=progress.on_record, on_trial_end=progress.on_trial_end,
            stop_requested=lambda: stop[0] or flagged(), pack=pack)
    return pending


@contextlib.contextmanager
def _progress(total_steps: int, *, quiet: bool, stop: list[bool] | None = None):
    stop = [False] if stop is None else stop
    install_stop_handlers(stop)
    progress = SweepProgress(total_steps, enabled=not quiet)
    try:
        yield progress, stop
    finally:
        progress.close()
