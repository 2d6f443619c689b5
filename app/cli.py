"""The `lorascope` command line: the same jobs as the UI, headless."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys

import optuna
import sqlalchemy.exc

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.cli_args import (STORAGE_ENV, OneLineParser, add_pack_flag, add_search_flags,  # noqa: E402
                          add_source_flags, add_study_flags, add_sweep_flags, add_training_flags, fail, list_of)
from core.specs import SpecError, field_help  # noqa: E402
from tuning.storage import DEFAULT_STORAGE, redact_text, redact_url  # noqa: E402

DATABASE_ERRORS = (sqlite3.Error, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


def build_parser() -> OneLineParser:
    """The full argument parser with one subcommand per job."""
    parser = OneLineParser(prog="lorascope", description="Choose LoRA rank and alpha: alpha/r vs alpha/sqrt(r).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    sub.add_parser("tasks", help="List the built-in tasks.")

    sweep = sub.add_parser("sweep", help="Run a rank x rule x alpha x lr grid as an Optuna study.")
    add_source_flags(sweep)
    add_sweep_flags(sweep)
    add_training_flags(sweep)
    add_pack_flag(sweep)
    add_study_flags(sweep, required=False)
    sweep.add_argument("--json", help="Also write the results JSON to this file.")
    sweep.add_argument("--quiet", action="store_true", help="No progress bar.")

    search = sub.add_parser("search", help="Optuna search over log-alpha at each rank, with pruning.")
    add_source_flags(search)
    add_search_flags(search)
    add_training_flags(search)
    add_pack_flag(search)
    add_study_flags(search, required=False)
    search.add_argument("--json", help="Also write the fit JSON to this file.")
    search.add_argument("--quiet", action="store_true", help="No progress bar.")

    fit = sub.add_parser("fit", help="Fit alpha* = c * r^p with confidence intervals.")
    add_study_flags(fit, required=True)
    fit.add_argument("--rank", type=int, help="Also predict alpha at this rank.")
    fit.add_argument("--json", help="Write the fit as JSON to this file.")

    export = sub.add_parser("export", help="Export the recommended (or a chosen) LoRA config.")
    add_study_flags(export, required=True)
    export.add_argument("--format", required=True, help="peft, python, axolotl or llama-factory.")
    export.add_argument("--out", required=True, help="Folder (peft) or file (other formats) to write.")
    export.add_argument("--rank", type=int, help="Export for this rank, alpha from the fitted law.")
    export.add_argument("--trial", type=int, help="Export this trial number instead of the recommendation.")
    export.add_argument("--force", action="store_true", help="Overwrite an existing file.")

    ui = sub.add_parser("ui", help="Open the Gradio app.")
    ui.add_argument("--host", default="127.0.0.1", help="Address to bind; loopback unless you pass another.")
    ui.add_argument("--port", type=int, default=7860, help="Port to serve on.")
    ui.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE,
                    help=f"Optuna storage URL. Default: ${STORAGE_ENV} if set, else {DEFAULT_STORAGE}.")
    ui.add_argument("--auth", help="USER:PASS to require a login.")
    ui.add_argument("--share", action="store_true", help="Also open a public Gradio share link (needs network).")
    ui.add_argument("--no-standby", dest="standby", action="store_false",
                    help="Keep no pre-warmed worker ready (saves its memory; each Start then waits for "
                         "torch to import before the first step).")

    bench = sub.add_parser("bench", help="Benchmark trainer throughput and pruning savings; writes JSON.")
    bench.add_argument("--device", default="auto", help=field_help("device"))
    bench.add_argument("--json", required=True, help="File to write the benchmark results to.")
    bench.add_argument("--sections", default="throughput,pruning,packed,scale,ui",
                       help="Comma-separated sections to run.")
    bench.add_argument("--packed-model-size", help="Model of the packed text cases: tiny, 7M, 26M or 110M "
                       "(random-init Llama, no download); default: per case.")

    results = sub.add_parser("results", help="Write a study's trials and curves as JSON.")
    add_study_flags(results, required=True)
    results.add_argument("--json", help="File to write; without it a table is printed.")

    worker = sub.add_parser("worker", help="Join a study and run its queued trials.")
    add_study_flags(worker, required=True)
    worker.add_argument("--device", help="Override the study's device on this machine.")
    worker.add_argument("--quiet", action="store_true", help="No progress bar.")
    add_pack_flag(worker)
    worker.add_argument("--gpus", type=list_of(int, "--gpus"),
                        help="Start one worker process per GPU: comma-separated CUDA device numbers.")
    worker.add_argument("--wait", action="store_true", help="Keep polling for new trials when none is left.")

    stop = sub.add_parser("stop", help="Ask every worker of a study, on any machine, to stop.")
    add_study_flags(stop, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lorascope` console script."""
    args = build_parser().parse_args(argv)
    from app import commands

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return handler(args)
    except SpecError as err:
        fail(str(err))
    except DATABASE_ERRORS as err:  # a read-only or corrupt database file, a server gone away
        storage = getattr(args, "storage", "") or ""
        fail(f"storage {redact_url(storage)}: {redact_text(_first_line(err), storage)}")
    except KeyboardInterrupt:
        print("lorascope: interrupted", file=sys.stderr)
        return 130


def _first_line(err: BaseException) -> str:
    while err.__cause__ is not None:  # Optuna wraps SQLAlchemy, which wraps the driver: show the driver's words
        err = err.__cause__
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def install_stop_handlers(stop: list[bool]) -> None:
    """First SIGINT/SIGTERM asks the running trial to stop cleanly; a second SIGINT aborts."""

    def handle(signum, frame):  # noqa: ARG001
        if stop[0] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop[0] = True
        print("\nlorascope: stopping after the current step (Ctrl-C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


if __name__ == "__main__":
    sys.exit(main())
