"""Grid sweeps (rank x rule x alpha x lr) as Optuna studies: queued, resumable, shareable.

Every grid point is enqueued once as a WAITING trial; any process that runs
:func:`run_pending` on the study (this CLI, the UI's workers, remote workers) claims the next
ones, up to a pack, and trains them together (see tuning/queue.py, core/trainer.py). Rerunning a
sweep keeps finished trials, retries trials whose process died, and runs the rest. A sweep never
prunes: every grid point runs to its last step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
from optuna.trial import TrialState

from core.specs import PackSpec, SweepGrid, TrialSpec  # noqa: F401 - SweepGrid re-exported
from tuning.datasets import DATASET_SETTING, dataset_record
from tuning.objective import RecordHook, TrialEndHook, run_packs
from tuning.queue import claim_waiting, enqueue_missing, fail_dead_local_trials, fail_stale_trials, study_lock
from tuning.queue import process_alive  # noqa: F401 - re-exported for app.runner
from tuning.settings import GRID_PARAMS, build_pruner, save_or_check_settings
from tuning.storage import open_storage


def prepare_sweep(storage_url: str, study_name: str, base: TrialSpec, grid: SweepGrid) -> optuna.Study:
    """Create or reopen the sweep's study and enqueue every grid point that still has to run.

    The study never prunes, and several processes may prepare it at once: each point is queued once.
    """
    pruner = {"name": "none"}
    study = optuna.create_study(study_name=study_name, storage=open_storage(storage_url), direction="minimize",
                                load_if_exists=True, pruner=build_pruner(pruner))
    settings = {"kind": "sweep", "base": base.to_dict(), "grid": asdict(grid), "pruner": pruner}
    if base.data:  # workers on other machines train on the stored content, not on this path
        settings[DATASET_SETTING] = dataset_record(storage_url, base.data)
    with study_lock(study):
        save_or_check_settings(study, settings, study_name)
    fail_dead_local_trials(study)
    fail_stale_trials(study)
    enqueue_missing(study, grid.points())
    return study


def run_pending(
    study: optuna.Study,
    base: TrialSpec,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    pack: PackSpec = PackSpec(),
) -> None:
    """Claim up to ``pack.limit`` queued trials at a time and train them as packs, until none is left or a stop."""
    run_packs(study, base, lambda k: claim_waiting(study, k), on_record=on_record, on_trial_end=on_trial_end,
              stop_requested=stop_requested, pack=pack)


def count_waiting(study: optuna.Study) -> int:
    """Number of queued trials not yet taken by any process."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _key(params: dict[str, Any]) -> tuple:
    return tuple((name, params.get(name)) for name in GRID_PARAMS)
