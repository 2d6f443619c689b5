"""Many processes, one study: claim queued trials atomically, beat, finish, fail and retry the dead.

Optuna's own queue pop (``set_trial_state_values(RUNNING)``) reads the state and writes it in
two statements; on SQLite two processes can both read WAITING and both run the trial. Here a
claim is one conditional ``UPDATE ... WHERE state = 'WAITING'`` whose row count says who won,
and the trial then runs ask/tell style (``optuna.Trial(study, trial_id)`` and ``study.tell``), so
no trial is ever created by sampling a queued study. Failing a stale trial is the same kind of
conditional update, so exactly one process retries it. Enqueueing (new grid points, retries, new
search trials) happens under :func:`study_lock`, so two processes never queue one point twice.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import optuna
import psutil
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from tuning.attrs import FIXED_ATTR, OUTCOME_ATTR, RETRY_ATTR

MAX_RETRIES = 3  # a point whose process died this many times in a row is left failed
FINAL_OUTCOMES = {"completed", "pruned", "diverged", "oom", "failed"}  # rerunning would not help

def rdb_backend(study: optuna.Study) -> RDBStorage | None:
    """The study's RDBStorage under Optuna's cache wrapper, or None for other storages."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage if isinstance(storage, RDBStorage) else None


def claim_waiting(study: optuna.Study, k: int = 1) -> list[optuna.Trial]:
    """Atomically take up to ``k`` queued trials of ``study`` for this process, oldest first."""
    claimed: list[optuna.Trial] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if len(claimed) == k:
            break
        if _claim(study, trial._trial_id):
            claimed.append(_mine(study, trial._trial_id))
    return claimed


def create_trials_below(study: optuna.Study, target: int, k: int = 1) -> list[optuna.Trial]:
    """Create up to ``k`` new RUNNING trials for the sampler, while fewer than ``target`` hold a point.

    Finished, running and queued trials count (killed and stopped ones do not), so any number
    of processes together create exactly ``target``.
    """
    with study_lock(study):
        held = sum(settled(t) for t in study.get_trials(deepcopy=False))
        return [_mine(study, study._storage.create_new_trial(study._study_id))
                for _ in range(max(0, min(k, target - held)))]


def _mine(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """Mark a trial this process now runs: a first beat, so a death now is noticed, and who runs it."""
    if getattr(study._storage, "get_heartbeat_interval", lambda: None)():
        study._storage.record_heartbeat(trial_id)
    trial = optuna.Trial(study, trial_id)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    return trial


def _claim(study: optuna.Study, trial_id: int) -> bool:
    rdb = rdb_backend(study)
    if rdb is None:  # other storages (journal) serialise their own state changes
        try:
            return study._storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except UpdateFinishedTrialError:
            return False
    return _conditional_state(rdb, trial_id, TrialState.WAITING, TrialState.RUNNING)


def _conditional_state(rdb: RDBStorage, trial_id: int, old: TrialState, new: TrialState) -> bool:
    """Move a trial from ``old`` to ``new`` in one statement; True only for the process that did."""
    from optuna.storages._rdb.models import TrialModel
    from sqlalchemy import update

    table = TrialModel.__table__
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # Optuna stores naive UTC
    stamp = {"datetime_start": now} if new == TrialState.RUNNING else {"datetime_complete": now}
    with rdb.engine.begin() as conn:
        result = conn.execute(update(table).where(table.c.trial_id == trial_id, table.c.state == old)
                              .values(state=new, **stamp))
    return result.rowcount == 1


def fail_if_running(study: optuna.Study, trial_id: int, outcome: dict[str, Any]) -> bool:
    """Fail a RUNNING trial with ``outcome``; True only for the one process that failed it."""
    # Optuna refuses attrs on finished trials, so the outcome goes first; rival failers write the same.
    try:
        study._storage.set_trial_user_attr(trial_id, OUTCOME_ATTR, outcome)
        rdb = rdb_backend(study)
        if rdb is None:
            return study._storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return _conditional_state(rdb, trial_id, TrialState.RUNNING, TrialState.FAIL)


def finish_trial(study: optuna.Study, trial: optuna.Trial, outcome: dict[str, Any]) -> FrozenTrial | None:
    """Store ``outcome`` and tell Optuna how the trial ended; None if another process failed it first."""
    status = outcome.get("status")
    try:
        trial.set_user_attr(OUTCOME_ATTR, outcome)
        if status == "completed":
            return study.tell(trial, outcome["eval_loss"])
        return study.tell(trial, state=TrialState.PRUNED if status == "pruned" else TrialState.FAIL)
    except (UpdateFinishedTrialError, ValueError, RuntimeError):
        if not _taken_from_us(study, trial._trial_id):
            raise
        report_lost(trial)
        return None


def _taken_from_us(study: optuna.Study, trial_id: int) -> bool:
    return study._storage.get_trial(trial_id).state != TrialState.RUNNING


def report_lost(trial: optuna.Trial) -> None:
    """Say (one line) that a trial was failed under this process, which goes on with the next."""
    print(f"lorascope: trial {trial.number} was failed by another process (no heartbeat within "
          f"{heartbeat_grace_seconds()} s); its result is dropped and the point runs again",
          file=sys.stderr)


def heartbeat_seconds() -> int:
    """How often a running trial beats (LORASCOPE_HEARTBEAT_SECONDS, default 10)."""
    return int(os.environ.get("LORASCOPE_HEARTBEAT_SECONDS", "10"))


def heartbeat_grace_seconds() -> int:
    """Silence after which a trial counts as dead (LORASCOPE_HEARTBEAT_GRACE_SECONDS, default 120).

    Optuna's default grace is twice the interval: a machine busy for 20 s would fail live trials.
    """
    return int(os.environ.get("LORASCOPE_HEARTBEAT_GRACE_SECONDS", "120"))


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trials: Sequence[optuna.Trial]) -> Iterator[None]:
    """Record a heartbeat for every trial in ``trials`` from a background thread while inside."""
    storage = study._storage
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while True:
            for trial in trials:
                try:
                    storage.record_heartbeat(trial._trial_id)
                except Exception:  # noqa: BLE001 - a busy database: beat again next time
                    pass
            if done.wait(interval):
                return

    thread = threading.Thread(target=beat, name="lorascope-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def point_of(trial: FrozenTrial) -> dict[str, Any]:
    """The params a trial runs with: its own, else the queued ones, plus a search's fixed params."""
    queued = trial.system_attrs.get("fixed_params", {})
    return {**trial.user_attrs.get(FIXED_ATTR, {}), **queued, **trial.params}


def point_key(params: dict[str, Any]) -> tuple:
    """A hashable, order-free key of a point's params."""
    return tuple(sorted((name, value) for name, value in params.items()))


def settled(trial: FrozenTrial) -> bool:
    """True when a trial holds or will hold its point's result (so the point needs no new trial)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get(OUTCOME_ATTR, {}).get("status") in FINAL_OUTCOMES


def enqueue_missing(study: optuna.Study, points: Sequence[dict[str, Any]],
                    user_attrs: dict[str, Any] | None = None) -> int:
    """Queue each point that no trial holds yet; safe when several processes do it at once."""
    with study_lock(study):
        held = {point_key(point_of(t)) for t in study.get_trials(deepcopy=False) if settled(t)}
        added = 0
        for params in points:
            if point_key(params) not in held:
                study.enqueue_trial(params, user_attrs=user_attrs)
                held.add(point_key(params))
                added += 1
    return added


def retry(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Queue the failed ``trial``'s point again with an empty curve; False past MAX_RETRIES."""
    attempt = trial.user_attrs.get(RETRY_ATTR, {}).get("attempt", 0) + 1
    if attempt > MAX_RETRIES:
        return False
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    attrs = {RETRY_ATTR: {"trial": trial.number, "attempt": attempt}}
    if FIXED_ATTR in trial.user_attrs:
        attrs[FIXED_ATTR] = trial.user_attrs[FIXED_ATTR]
    with study_lock(study):
        held = {point_key(point_of(t)) for t in study.get_trials(deepcopy=False) if settled(t)}
        if point_key(point_of(trial)) in held:
            return False
        study.enqueue_trial(params, user_attrs=attrs)
    return True


def retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna heartbeat callback: retry a stale trial (its curve stays with the dead trial)."""
    retry(study, trial)


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials with no heartbeat within the grace period, and queue them again."""
    rdb = rdb_backend(study)
    if rdb is None or not rdb.get_heartbeat_interval():
        return []
    outcome = {"status": "killed", "error": f"no heartbeat for {heartbeat_grace_seconds()} s: its process died"}
    stale = rdb._get_stale_trial_ids(study._study_id) + _never_beaten(rdb, study._study_id)
    failed = [n for n in (_fail_and_retry(study, tid, outcome) for tid in stale) if n is not None]
    requeue_orphaned_kills(study)
    return failed


def requeue_orphaned_kills(study: optuna.Study) -> int:
    """Queue again killed trials that no retry names (the process that failed them died before queuing it).

    :func:`retry` still skips points that a queued, running or finished trial holds, and counts
    attempts from the killed trial, so MAX_RETRIES holds.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_ATTR].get("trial") for t in trials if RETRY_ATTR in t.user_attrs}
    orphans = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried
               and t.user_attrs.get(OUTCOME_ATTR, {}).get("status") == "killed"]
    return sum(retry(study, trial) for trial in orphans)


# (study id, trial id) -> when this process first saw the trial RUNNING without any heartbeat
_unbeaten_since: dict[tuple[int, int], float] = {}


def _never_beaten(rdb: RDBStorage, study_id: int) -> list[int]:
    """RUNNING trials that have had no heartbeat for the grace period since this process first saw them.

    A process killed between claiming a trial and its first beat leaves a RUNNING trial with no
    heartbeat row, which Optuna's stale check never fails. The clock is this process's own, so
    clocks and time zones of other machines do not matter.
    """
    from optuna.storages._rdb.models import TrialHeartbeatModel, TrialModel
    from sqlalchemy import orm, select

    query = (select(TrialModel.trial_id)
             .outerjoin(TrialHeartbeatModel, TrialHeartbeatModel.trial_id == TrialModel.trial_id)
             .where(TrialModel.study_id == study_id, TrialModel.state == TrialState.RUNNING,
                    TrialHeartbeatModel.trial_id.is_(None)))
    with orm.Session(rdb.engine) as session:
        unbeaten = {(study_id, trial_id) for trial_id in session.scalars(query)}
    now = time.monotonic()
    for key in [key for key in _unbeaten_since if key[0] == study_id and key not in unbeaten]:
        del _unbeaten_since[key]
    for key in unbeaten:
        _unbeaten_since.setdefault(key, now)
    grace = heartbeat_grace_seconds()
    return sorted(trial_id for key in unbeaten if now - _unbeaten_since[key] >= grace for _, trial_id in [key])


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose process on this host is gone, and queue them again.

    Heartbeats catch dead workers anywhere after the grace period; this catches a process on
    this machine that was killed a moment ago.
    """
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int) or process_alive(pid):
            continue
        number = _fail_and_retry(study, trial._trial_id,
                                 {"status": "killed", "error": f"worker process {pid} on {host} died"})
        if number is not None:
            failed.append(number)
    return failed


def _fail_and_retry(study: optuna.Study, trial_id: int, outcome: dict[str, Any]) -> int | None:
    if not fail_if_running(study, trial_id, outcome):
        return None
    trial = study._storage.get_trial(trial_id)
    retry(study, trial)
    return trial.number


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs on this host; an exited child not yet reaped counts as gone."""
    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def study_lock(study: optuna.Study) -> Iterator[None]:
    """Hold a lock on ``study`` across processes (and machines, for server databases).

    SQLite: an flock on a file beside the database; PostgreSQL: an advisory lock; MySQL:
    GET_LOCK. All are released by the operating system or the server if the process dies.
    """
    rdb = rdb_backend(study)
    if rdb is None:
        yield
        return
    url = rdb.engine.url
    name = f"lorascope:{study.study_name}"
    if url.get_backend_name() == "sqlite":
        import fcntl

        with open(f"{url.database}.lorascope-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    lock, unlock = {
        "postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
        "mysql": ("SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)"),
    }.get(url.get_backend_name(), (None, None))
    if lock is None:
        yield
        return
    with rdb.engine.connect() as conn:
        conn.execute(text(lock), {"key": key, "name": name[:64]})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text(unlock), {"key": key, "name": name[:64]})
            conn.commit()
