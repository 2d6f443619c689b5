"""The Optuna objective shared by sweeps, searches and workers: one trial = one run_trial."""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from core.scaling import RULES
from core.specs import SpecError, TrialSpec
from core.trainer import TrialOutcome, run_trial
from tuning.curves import CurveWriter

from tuning.attrs import OUTCOME_ATTR  # noqa: F401 - re-exported

# Wide, fixed distributions: every study stores the same ones, so grids can grow and searches
# over alpha share a study's history (Optuna refuses changed categorical choices).
DISTRIBUTIONS = {
    "rank": IntDistribution(1, 1 << 16, log=True),
    "alpha": FloatDistribution(1e-4, 1e6, log=True),
    "rule": CategoricalDistribution(tuple(RULES)),
    "lr": FloatDistribution(1e-8, 10.0, log=True),
    "seed": IntDistribution(0, 2**31 - 1),
}


class TrialFailed(Exception):
    """A trial ended without a result (diverged, out of memory, stopped, bad input)."""


Suggest = Callable[[optuna.Trial], dict[str, Any]]
RecordHook = Callable[[optuna.Trial, dict[str, Any]], None]


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


def make_objective(
    base: TrialSpec,
    suggest: Suggest = suggest_fixed,
    *,
    on_record: RecordHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> Callable[[optuna.Trial], float]:
    """Return an objective that trains ``base`` with the trial's params and returns eval loss.

    Curves go into the storage as the trial runs; eval losses are reported as intermediate
    values, so Optuna pruners can stop the trial.
    """

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        params = suggest(trial)
        pruned = False

        def on_step(record: dict[str, Any]) -> None:
            nonlocal pruned
            writer.add(record)
            if "eval_loss" in record:
                trial.report(record["eval_loss"], record["step"])
                pruned = pruned or trial.should_prune()
            if on_record:
                on_record(trial, record)

        def should_stop() -> str | None:
            return "stopped" if stop_requested() else "pruned" if pruned else None

        writer = CurveWriter.for_trial(trial)
        try:
            spec = base.with_params(**params)
            outcome = run_trial(spec, on_step, should_stop)
        except SpecError as err:
            outcome = TrialOutcome(status="failed", error=str(err))
        except Exception as err:  # noqa: BLE001 - a bug in one trial must not end the sweep
            outcome = TrialOutcome(status="failed", error=f"internal error: {type(err).__name__}: {err}",
                                   info={"traceback": traceback.format_exc()})
        writer.flush()
        trial.set_user_attr(OUTCOME_ATTR, outcome.to_dict())
        if outcome.status == "completed":
            return outcome.eval_loss
        if outcome.status == "pruned":
            raise optuna.TrialPruned(f"pruned at step {outcome.steps_done}")
        raise TrialFailed(outcome.error or outcome.status)

    return objective
