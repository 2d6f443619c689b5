"""Grid sweeps (rank x rule x alpha x lr) as Optuna studies: queued, resumable, shareable.

Every grid point is enqueued once as a WAITING trial; any process that runs
:func:`run_pending` on the study (this CLI, the UI's workers, remote workers) takes the next
one. Rerunning a sweep keeps finished trials, retries trials whose process died, and runs the
rest.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
import psutil
from optuna.trial import TrialState

from core.specs import SpecError, SweepGrid, TrialSpec  # noqa: F401 - SweepGrid re-exported
from tuning.objective import OUTCOME_ATTR, RecordHook, TrialFailed, make_objective
from tuning.storage import SETTINGS_ATTR, open_storage, study_settings

GRID_PARAMS = ("rank", "alpha", "rule", "lr", "seed")
FINAL_OUTCOMES = {"completed", "pruned", "diverged", "oom", "failed"}  # rerunning would not help
# Base-spec fields that may differ between runs of one study (they do not change results).
RUN_ONLY_FIELDS = {"device"}


def prepare_sweep(storage_url: str, study_name: str, base: TrialSpec, grid: SweepGrid) -> optuna.Study:
    """Create or reopen the sweep's study and enqueue every grid point that still has to run."""
    storage = open_storage(storage_url)
    study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                load_if_exists=True)
    settings = {"kind": "sweep", "base": base.to_dict(), "grid": asdict(grid)}
    _check_same_base(study, settings, study_name)
    if not study_settings(study):
        study.set_user_attr(SETTINGS_ATTR, settings)
    fail_dead_local_trials(study)
    settled = {_key(t.params) for t in study.get_trials(deepcopy=False) if _settled(t)}
    waiting = {_key(t.system_attrs.get("fixed_params", {}))
               for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    for params in grid.points():
        if _key(params) not in settled | waiting:
            study.enqueue_trial(params)
    return study


def run_pending(
    study: optuna.Study,
    base: TrialSpec,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> None:
    """Run queued trials one after another until none is left or a stop is requested."""
    objective = make_objective(base, on_record=on_record, stop_requested=stop_requested)
    callbacks = [on_trial_end] if on_trial_end else []
    while not stop_requested() and count_waiting(study):
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=callbacks)


def count_waiting(study: optuna.Study) -> int:
    """Number of queued trials not yet taken by any process."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose process on this host is gone, and queue them again.

    Heartbeats catch dead workers anywhere after a grace period; this catches a sweep on this
    machine that was killed a moment ago and is being rerun at once.
    """
    host, failed = socket.gethostname(), []
    storage = study._storage
    retry = storage.get_heartbeat_stale_trial_callback() if hasattr(storage, "get_heartbeat_stale_trial_callback") else None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int) or process_alive(pid):
            continue
        storage.set_trial_user_attr(trial._trial_id, OUTCOME_ATTR,
                                    {"status": "killed", "error": f"worker process {pid} on {host} died"})
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            failed.append(trial.number)
            if retry is not None:
                retry(study, storage.get_trial(trial._trial_id))
    return failed


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs on this host; an exited child not yet reaped counts as gone."""
    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _settled(trial: optuna.trial.FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    status = trial.user_attrs.get(OUTCOME_ATTR, {}).get("status")
    return trial.state == TrialState.FAIL and status in FINAL_OUTCOMES


def _key(params: dict[str, Any]) -> tuple:
    return tuple((name, params.get(name)) for name in GRID_PARAMS)


def _check_same_base(study: optuna.Study, settings: dict, name: str) -> None:
    old = study_settings(study)
    if not old:
        return
    if old.get("kind") != settings["kind"]:
        raise SpecError(f"study {name!r} holds a {old.get('kind')}, not a sweep: use another --study name")
    changed = [k for k, v in settings["base"].items()
               if k not in RUN_ONLY_FIELDS and old["base"].get(k) != v and k not in GRID_PARAMS]
    if changed:
        first = changed[0]
        raise SpecError(f"study {name!r} was run with {first}={old['base'].get(first)!r}, not "
                        f"{settings['base'][first]!r}: use the same settings or another --study name")
