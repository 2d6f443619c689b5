"""Start, watch and stop the worker processes that run studies for the UI.

Training never runs in the UI's process. Each run is a `lorascope sweep|search` child in its own
process group, writing to a log file (never a pipe, which would block the run once nobody reads
it), with its pid kept in a file so a restarted app can still stop it. Stop signals the whole
group, so children of the worker stop too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState

from tuning.attrs import OUTCOME_ATTR
from core.specs import SpecError
from tuning.results import load_group
from tuning.search import split_rank_study_name
from tuning.storage import study_names
from tuning.sweep import fail_dead_local_trials, process_alive

STOP_GRACE_SECONDS = 15.0  # time a worker gets to end its trial cleanly before SIGKILL


@dataclass
class RunInfo:
    """A worker process started for a study."""

    study: str
    pid: int
    log: Path
    argv: list[str]


class Runner:
    """Owns the worker processes of one storage; safe to recreate after an app restart."""

    def __init__(self, storage_url: str, run_dir: str | Path = "runs"):
        self.storage_url = storage_url
        self.log_dir = Path(run_dir) / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def _pid_file(self, study: str) -> Path:
        return self.log_dir / f"{safe_name(study)}.pid.json"

    def log_path(self, study: str) -> Path:
        """The log file of the study's worker."""
        return self.log_dir / f"{safe_name(study)}.log"

    def start(self, argv: list[str], study: str) -> RunInfo:
        """Start ``lorascope ARGV`` as a worker for ``study``; refuses if one is already running."""
        if self.is_running(study):
            raise RuntimeError(f"study {study!r} is already running: stop it first or pick another name")
        log = self.log_path(study)
        command = [sys.executable, "-m", "app.cli", *argv, "--storage", self.storage_url, "--study", study, "--quiet"]
        with log.open("ab") as out:
            out.write(f"\n$ lorascope {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        info = RunInfo(study=study, pid=proc.pid, log=log, argv=argv)
        self._pid_file(study).write_text(json.dumps({"pid": proc.pid, "argv": argv}))
        self._children = getattr(self, "_children", {})
        self._children[proc.pid] = proc  # reaped in is_running, so no zombie lingers
        return info

    def pid(self, study: str) -> int | None:
        """The pid of the study's worker if it is alive."""
        path = self._pid_file(study)
        if not path.exists():
            return None
        pid = json.loads(path.read_text())["pid"]
        child = getattr(self, "_children", {}).get(pid)
        if child is not None and child.poll() is not None:
            return None
        return pid if process_alive(pid) else None

    def is_running(self, study: str) -> bool:
        """True while the study's worker process is alive."""
        return self.pid(study) is not None

    def exit_message(self, study: str) -> str | None:
        """The last line of a worker that exited with an error, else None."""
        path = self._pid_file(study)
        child = None
        if path.exists():
            child = getattr(self, "_children", {}).get(json.loads(path.read_text())["pid"])
        if child is None or child.poll() in (None, 0):
            return None
        lines = [line for line in self.log_path(study).read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else f"worker exited with status {child.returncode}"

    def stop(self, study: str, *, grace: float = STOP_GRACE_SECONDS) -> str:
        """Stop the study's worker and its children; mark its queued trials stopped."""
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


def safe_name(name: str) -> str:
    """A study name made safe as a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def list_runs(storage_url: str) -> list[str]:
    """Logical study names in the storage (a search's per-rank studies count once), newest first."""
    seen: list[str] = []
    for name in reversed(study_names(storage_url)):
        logical = split_rank_study_name(name)[0]
        if logical not in seen:
            seen.append(logical)
    return seen



