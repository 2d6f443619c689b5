"""Grid sweeps (rank x rule x alpha x lr) as Optuna studies: queued, resumable, shareable.

Every grid point is enqueued once as a WAITING trial; any process that runs
:func:`run_pending` on the study (this CLI, the UI's workers, remote workers) claims the next
one (see tuning/queue.py). Rerunning a sweep keeps finished trials, retries trials whose process
died, and runs the rest. A sweep never prunes: every grid point runs to its last step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from core.scaling import AlphaLaw, check_alpha, check_rank, get_rule
from core.specs import SpecError, TrialSpec
from tuning.objective import RecordHook, TrialEndHook, run_claimed
from tuning.queue import claim_waiting, enqueue_missing, fail_dead_local_trials, fail_stale_trials, study_lock
from tuning.queue import process_alive  # noqa: F401 - re-exported for app.runner
from tuning.settings import GRID_PARAMS, build_pruner, save_or_check_settings
from tuning.storage import open_storage


@dataclass(frozen=True)
class SweepGrid:
    """The axes of a sweep; every combination is one trial."""

    ranks: tuple[int, ...]
    rules: tuple[str, ...]
    alphas: tuple[float, ...]
    lrs: tuple[float, ...]
    seed: int = 0
    sqrt_law_c: float | None = None  # also run alpha = c * sqrt(r) under standard at every rank and lr

    def __post_init__(self) -> None:
        for name in ("ranks", "rules", "alphas", "lrs"):
            if not getattr(self, name):
                raise SpecError(f"--{name} is empty: give at least one value")
        try:
            for rank in self.ranks:
                check_rank(rank)
            for alpha in self.alphas:
                check_alpha(alpha)
            for rule in self.rules:
                get_rule(rule)
        except ValueError as err:
            raise SpecError(str(err)) from None
        for lr in self.lrs:
            if not lr > 0:
                raise SpecError(f"learning rate must be a positive number, got {lr}")
        if self.sqrt_law_c is not None:
            try:
                AlphaLaw(c=self.sqrt_law_c)
            except ValueError as err:
                raise SpecError(f"--sqrt-law-c: {err}") from None

    def points(self) -> list[dict[str, Any]]:
        """Every grid point as trial params, in rule, rank, alpha, lr order."""
        points = [
            {"rank": r, "alpha": float(a), "rule": rule, "lr": float(lr), "seed": self.seed}
            for rule, r, a, lr in itertools.product(self.rules, self.ranks, self.alphas, self.lrs)
        ]
        if self.sqrt_law_c is not None:
            law = AlphaLaw(c=self.sqrt_law_c, p=0.5)
            points += [{"rank": r, "alpha": law.alpha(r), "rule": "standard", "lr": float(lr), "seed": self.seed}
                       for r, lr in itertools.product(self.ranks, self.lrs)]
        unique = {_key(p): p for p in points}  # the law can coincide with a grid point
        return list(unique.values())


def prepare_sweep(storage_url: str, study_name: str, base: TrialSpec, grid: SweepGrid) -> optuna.Study:
    """Create or reopen the sweep's study and enqueue every grid point that still has to run.

    The study never prunes, and several processes may prepare it at once: each point is queued once.
    """
    pruner = {"name": "none"}
    study = optuna.create_study(study_name=study_name, storage=open_storage(storage_url), direction="minimize",
                                load_if_exists=True, pruner=build_pruner(pruner))
    settings = {"kind": "sweep", "base": base.to_dict(), "grid": asdict(grid), "pruner": pruner}
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
) -> None:
    """Claim and run queued trials one after another until none is left or a stop is requested."""
    while not stop_requested():
        fail_stale_trials(study)
        claimed = claim_waiting(study, 1)
        if not claimed:
            return
        run_claimed(study, claimed[0], base, on_record=on_record, on_trial_end=on_trial_end,
                    stop_requested=stop_requested)


def count_waiting(study: optuna.Study) -> int:
    """Number of queued trials not yet taken by any process."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _key(params: dict[str, Any]) -> tuple:
    return tuple((name, params.get(name)) for name in GRID_PARAMS)
