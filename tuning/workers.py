"""Worker processes: one per GPU, and a loop that waits for new work until a stop.

A child worker gets the storage URL in ``LORASCOPE_STORAGE`` (it may hold a password, and a
command line is visible to every user of the machine) and its GPU in ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from core.specs import SpecError
from tuning.storage import STORAGE_ENV

GPU_ENV = "CUDA_VISIBLE_DEVICES"
WAIT_SECONDS = 10.0  # how often a --wait worker looks for new trials


def worker_argv(study: str, *, wait: bool, extra: Sequence[str] = ()) -> list[str]:
    """The command line of one child worker: no storage URL on it."""
    return [sys.executable, "-m", "app.cli", "worker", "--study", study, *(["--wait"] if wait else []), *extra]


def worker_env(storage_url: str, gpu: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the child worker on ``gpu``: ``base`` (default: ours) plus storage and GPU."""
    return {**(os.environ if base is None else base), STORAGE_ENV: storage_url, GPU_ENV: str(gpu)}


def spawn_workers(storage_url: str, study: str, gpus: Sequence[int], *, wait: bool, extra: Sequence[str] = (),
                  popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> list[subprocess.Popen]:
    """Start one worker process per GPU on study ``study``; they share our stdout and stderr."""
    if any(gpu < 0 for gpu in gpus) or len(set(gpus)) != len(gpus):
        raise SpecError(f"--gpus must be distinct GPU numbers (0, 1, ...), got {','.join(map(str, gpus))}")
    return [popen(worker_argv(study, wait=wait, extra=extra), env=worker_env(storage_url, gpu)) for gpu in gpus]


def supervise(procs: Sequence[subprocess.Popen]) -> int:
    """Wait for every worker, passing SIGTERM on to them; the first failing exit status, else 0."""

    def forward(signum, frame):  # noqa: ARG001
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        codes = []
        for proc in procs:
            while True:
                try:
                    codes.append(proc.wait())
                    break
                except KeyboardInterrupt:  # Ctrl-C reached the children too; wait for them to stop
                    continue
        return next((code for code in codes if code), 0)
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(run_once: Callable[[], int], *, wait: bool, stopped: Callable[[], bool], study: str,
          busy: Callable[[], int] = lambda: 0, every: float = WAIT_SECONDS,
          sleep: Callable[[float], None] = time.sleep,
          say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Call ``run_once`` (runs what is queued, returns how many trials) until nothing is left; return the total.

    While ``busy()`` trials run elsewhere, look again every ``every`` seconds: one whose machine dies
    comes back to the queue. With ``wait``, keep looking for new work until ``stopped()`` (the stop flag).
    """
    total, said = 0, None
    while not stopped():
        ran = run_once()
        total += ran
        if ran:
            said = None
            continue
        running = 0 if wait else busy()
        if not wait and not running:
            say(f"worker: study {study!r} has nothing left to run; exiting")
            return total
        line = (f"worker: waiting for new trials in study {study!r} (end with `lorascope stop` or Ctrl-C)" if wait
                else f"worker: nothing queued in study {study!r}; watching {running} trial(s) running elsewhere "
                     f"(a trial whose worker dies runs again)")
        if said != line:
            say(line)
            said = line
        sleep(every)
    say(f"worker: stop requested for study {study!r}; exiting")
    return total
