"""Start, watch and stop the worker processes that run studies for the UI.

Training never runs in the UI's process. Each run is a `lorascope sweep|search` child in its own
process group, writing to a log file (never a pipe, which would block the run once nobody reads
it). The storage URL reaches the child through its environment, never its command line (which
anyone on the machine can read). A run file records the child's pid, its start time and a random
token also put in the child's environment, so a restarted app can still stop it and Stop never
signals a process that is not that very worker (a recycled pid, an edited file). Stop signals the
whole group, so children of the worker stop too, and sets the study's stop flag in the storage,
which `lorascope worker` processes on other machines poll. The app keeps one pre-warmed worker
(app.standby) ready, so a Start's first step does not wait for torch to import.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from optuna.trial import TrialState

from app.cli_args import STORAGE_ENV
from core.specs import SpecError
from tuning.attrs import OUTCOME_ATTR
from tuning.results import load_group
from tuning.search import split_rank_study_name
from tuning.stop import request_stop
from tuning.storage import study_names
from tuning.sweep import fail_dead_local_trials

STOP_GRACE_SECONDS = 15.0  # time a worker gets to end its trial cleanly before SIGKILL
TOKEN_ENV = "LORASCOPE_RUN_TOKEN"  # proves a process is the worker this runner started
STANDBY_RESPAWN_SECONDS = 20.0  # after a Start, the next standby worker warms up this much later


@dataclass
class RunInfo:
    """A worker process started for a study."""

    study: str
    pid: int
    log: Path
    argv: list[str]


class Runner:
    """Owns the worker processes of one storage; safe to recreate after an app restart."""

    def __init__(self, storage_url: str, run_dir: str | Path = "runs", *, standby: bool = False):
        self.storage_url = storage_url
        self.log_dir = Path(run_dir) / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._children: dict[int, subprocess.Popen] = {}
        self._standby: tuple[subprocess.Popen, str] | None = None
        self._standby_lock = threading.Lock()
        self._respawn: threading.Timer | None = None  # the next standby's delayed start
        if standby:
            self.spawn_standby()

    def _pid_file(self, study: str) -> Path:
        return self.log_dir / f"{safe_name(study)}.pid.json"

    def log_path(self, study: str) -> Path:
        """The log file of the study's worker."""
        return self.log_dir / f"{safe_name(study)}.log"

    def start(self, argv: list[str], study: str) -> RunInfo:
        """Start ``lorascope ARGV`` as a worker for ``study``; refuses if one is already running.

        A ready standby process (see app.standby) takes the command when there is one, else a fresh
        process starts.
        """
        if self.is_running(study):
            raise RuntimeError(f"study {study!r} is already running: stop it first or pick another name")
        log = self.log_path(study)
        full_argv = [*argv, "--study", study, "--quiet"]
        with log.open("ab") as out:
            out.write(f"\n$ lorascope {' '.join(argv)}\n".encode())
        proc, token = self._take_standby(full_argv, log)
        if proc is None:
            token = secrets.token_hex(16)
            with log.open("ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "app.cli", *full_argv], stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, env=self._worker_env(token))
        info = RunInfo(study=study, pid=proc.pid, log=log, argv=argv)
        record = {"study": study, "pid": proc.pid, "token": token, "argv": argv,
                  "create_time": psutil.Process(proc.pid).create_time()}
        deadline = time.monotonic() + 5.0  # for a moment after fork the child shows no environment yet
        while not is_our_worker(record) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        path = self._pid_file(study)
        path.write_text(json.dumps(record))
        path.chmod(0o600)  # the token is what lets Stop signal the worker
        self._children[proc.pid] = proc  # reaped in is_running, so no zombie lingers
        return info

    def _worker_env(self, token: str) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", STORAGE_ENV: self.storage_url, TOKEN_ENV: token}

    def spawn_standby(self) -> None:
        """Start a pre-warmed worker that the next Start hands its command to (one at a time)."""
        with self._standby_lock:
            if self._standby is not None and self._standby[0].poll() is None:
                return
            token = secrets.token_hex(16)
            proc = subprocess.Popen([sys.executable, "-m", "app.standby"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, env=self._worker_env(token))
            self._standby = (proc, token)

    def _take_standby(self, argv: list[str], log: Path) -> tuple[subprocess.Popen | None, str | None]:
        """Hand ``argv`` to the standby worker if one is alive; schedule its replacement."""
        with self._standby_lock:
            standby, self._standby = self._standby, None
        if standby is None:
            return None, None
        proc, token = standby
        try:
            if proc.poll() is not None:
                raise OSError("standby worker exited")
            proc.stdin.write((json.dumps({"argv": argv, "log": str(log)}) + "\n").encode())
            proc.stdin.close()
        except OSError:
            proc.poll()
            return None, None
        # the replacement warms up later, so it does not take CPU from this run's first steps
        self._respawn = threading.Timer(STANDBY_RESPAWN_SECONDS, self.spawn_standby)
        self._respawn.daemon = True
        self._respawn.start()
        return proc, token

    def close_standby(self) -> None:
        """End the standby worker, if any, and spawn no other (it also ends by itself when the app exits)."""
        with self._standby_lock:
            if self._respawn is not None:
                self._respawn.cancel()
            standby, self._standby = self._standby, None
        if standby is not None:
            standby[0].stdin.close()
            standby[0].wait(timeout=30)

    def _record(self, study: str) -> dict | None:
        path = self._pid_file(study)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("study") == study else None

    def pid(self, study: str) -> int | None:
        """The pid of the study's worker if it is alive and provably the one started for ``study``."""
        record = self._record(study)
        if record is None:
            return None
        pid = record.get("pid")
        child = self._children.get(pid)
        if child is not None:  # our own child: alive until reaped (its environment vanishes while it exits)
            return pid if child.poll() is None else None
        return pid if is_our_worker(record) else None

    def is_running(self, study: str) -> bool:
        """True while the study's worker process is alive."""
        return self.pid(study) is not None

    def exit_message(self, study: str) -> str | None:
        """The last line of a worker that exited with an error, else None."""
        record = self._record(study)
        child = self._children.get(record["pid"]) if record else None
        if child is None or child.poll() in (None, 0):
            return None
        lines = [line for line in self.log_path(study).read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else f"worker exited with status {child.returncode}"

    def stop(self, study: str, *, grace: float = STOP_GRACE_SECONDS) -> str:
        """Stop the study's workers: the flag for every machine, signals for our own; mark queued trials stopped."""
        try:
            request_stop(self.storage_url, study)
        except SpecError:
            pass  # no study yet: the local worker stopped before creating it
        pid = self.pid(study)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.is_running(study):
                time.sleep(0.2)
            if self.is_running(study):
                _signal_group(pid, signal.SIGKILL)
                time.sleep(0.2)
        stopped = mark_queued_stopped(self.storage_url, study)
        return f"stopped {study!r}" + (f"; {stopped} queued trial(s) marked stopped" if stopped else "")


def mark_queued_stopped(storage_url: str, name: str) -> int:
    """Mark WAITING trials (and RUNNING ones whose local process is gone) as stopped failures."""
    try:
        studies = load_group(storage_url, name)
    except SpecError:
        return 0  # the worker stopped before it created any study
    count = 0
    for study in studies:
        fail_dead_local_trials(study)
        storage = study._storage
        for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            storage.set_trial_user_attr(trial._trial_id, OUTCOME_ATTR,
                                        {"status": "stopped", "error": "stopped before it started"})
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                count += 1
    return count


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        pass


def is_our_worker(record: dict) -> bool:
    """True when the process in ``record`` runs, started when recorded, and carries its token."""
    try:
        process = psutil.Process(record["pid"])
        if process.status() == psutil.STATUS_ZOMBIE or abs(process.create_time() - record["create_time"]) > 0.01:
            return False
        return process.environ().get(TOKEN_ENV) == record["token"]
    except (psutil.Error, KeyError, TypeError):
        return False


def safe_name(name: str) -> str:
    """A file name for study ``name``: readable, and unique because it ends in a hash of the exact name."""
    readable = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def list_runs(storage_url: str) -> list[str]:
    """Logical study names in the storage (a search's per-rank studies count once), newest first."""
    seen: list[str] = []
    for name in reversed(study_names(storage_url)):
        logical = split_rank_study_name(name)[0]
        if logical not in seen:
            seen.append(logical)
    return seen
