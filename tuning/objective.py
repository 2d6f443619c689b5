"""Training one claimed trial for sweeps, searches and workers: one trial = one run_trial."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial

from core.scaling import RULES
from core.specs import ALPHA_RANGE, LR_RANGE, RANK_MAX, SEED_MAX, SpecError, TrialSpec
from tuning.curves import CurveWriter
from tuning.queue import finish_trial, heartbeat, report_lost

# Wide, fixed distributions: every study stores the same ones, so grids can grow and searches
# over alpha share a study's history (Optuna refuses changed categorical choices).
DISTRIBUTIONS = {
    "rank": IntDistribution(1, RANK_MAX, log=True),
    "alpha": FloatDistribution(*ALPHA_RANGE, log=True),
    "rule": CategoricalDistribution(tuple(RULES)),
    "lr": FloatDistribution(*LR_RANGE, log=True),
    "seed": IntDistribution(0, SEED_MAX),
}


Suggest = Callable[[optuna.Trial], dict[str, Any]]
RecordHook = Callable[[optuna.Trial, dict[str, Any]], None]
TrialEndHook = Callable[[optuna.Study, FrozenTrial], None]


def suggest_fixed(trial: optuna.Trial) -> dict[str, Any]:
    """Read a queued trial's params (sweeps enqueue every grid point)."""
    d = DISTRIBUTIONS
    return {
        "rank": trial.suggest_int("rank", d["rank"].low, d["rank"].high, log=True),
        "alpha": trial.suggest_float("alpha", d["alpha"].low, d["alpha"].high, log=True),
        "rule": trial.suggest_categorical("rule", d["rule"].choices),
        "lr": trial.suggest_float("lr", d["lr"].low, d["lr"].high, log=True),
        "seed": trial.suggest_int("seed", d["seed"].low, d["seed"].high),
    }


def train_trial(
    trial: optuna.Trial,
    base: TrialSpec,
    suggest: Suggest = suggest_fixed,
    *,
    prune: bool = False,
    on_record: RecordHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> dict[str, Any] | None:
    """Train ``base`` with a claimed trial's params, writing its curve; return the outcome dict.

    Eval losses are reported as intermediate values; the pruner is asked only when ``prune``.
    Returns None when another process failed the trial meanwhile (its writes are refused).
    """
    from core.trainer import TrialOutcome, run_trial  # torch: only processes that train import it

    lost = False

    def on_step(record: dict[str, Any]) -> None:
        nonlocal pruned, lost
        if lost:
            return
        try:
            writer.add(record)
            if "eval_loss" in record:
                trial.report(record["eval_loss"], record["step"])
                pruned = pruned or (prune and trial.should_prune())
        except UpdateFinishedTrialError:
            lost = True
            return
        if on_record:
            on_record(trial, record)

    def should_stop() -> str | None:
        return "stopped" if stop_requested() or lost else "pruned" if pruned else None

    pruned = False
    writer = CurveWriter.for_trial(trial)
    try:
        params = suggest(trial)
        outcome = run_trial(base.with_params(**params), on_step, should_stop)
    except UpdateFinishedTrialError:
        return None
    except SpecError as err:
        outcome = TrialOutcome(status="failed", error=str(err))
    except Exception as err:  # noqa: BLE001 - a bug in one trial must not end the sweep
        outcome = TrialOutcome(status="failed", error=f"internal error: {type(err).__name__}: {err}",
                               info={"traceback": traceback.format_exc()})
    try:
        writer.flush()
    except UpdateFinishedTrialError:
        lost = True
    return None if lost else outcome.to_dict()


def run_claimed(
    study: optuna.Study,
    trial: optuna.Trial,
    base: TrialSpec,
    suggest: Suggest = suggest_fixed,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> FrozenTrial | None:
    """Train a claimed trial under a heartbeat and finish it; None if another process failed it."""
    prune = not isinstance(study.pruner, optuna.pruners.NopPruner)
    with heartbeat(study, [trial]):
        outcome = train_trial(trial, base, suggest, prune=prune, on_record=on_record,
                              stop_requested=stop_requested)
    if outcome is None:
        report_lost(trial)
        return None
    frozen = finish_trial(study, trial, outcome)
    if frozen is not None and on_trial_end:
        on_trial_end(study, frozen)
    return frozen
