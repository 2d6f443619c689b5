"""Trials as the results JSON of ARCHITECTURE.md: one record per trial, with its curve."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from core.scaling import get_rule
from tuning.curves import curve_json, read_curve, read_curves
from tuning.attrs import OUTCOME_ATTR

REPORTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def trial_record(trial: FrozenTrial, *, with_curve: bool = True, curve: Sequence | None = None) -> dict[str, Any]:
    """Return one trial as a results record (the contract's keys, plus status and steps_done).

    ``curve`` is the trial's curve as :func:`tuning.curves.read_curves` gives it; without one, the
    curve is read from the trial's user attrs (the format of non-RDB storages).
    """
    # sweeps make every grid axis a param; searches hold all but alpha fixed in a user attr
    params = {**trial.user_attrs.get("fixed_params", {}), **trial.system_attrs.get("fixed_params", {}),
              **trial.params}
    outcome = trial.user_attrs.get(OUTCOME_ATTR, {})
    rank, alpha, rule = params.get("rank"), params.get("alpha"), params.get("rule")
    gamma = outcome.get("gamma")
    if gamma is None and rank and alpha and rule:
        gamma = get_rule(rule).gamma(alpha, rank)
    record = {
        "number": trial.number,
        "state": trial.state.name,
        "status": outcome.get("status", trial.state.name.lower()),
        "rank": rank,
        "alpha": alpha,
        "rule": rule,
        "gamma": gamma,
        "lr": params.get("lr"),
        "seed": params.get("seed"),
        "final_loss": _number(outcome.get("final_loss")),
        "eval_loss": _number(outcome.get("eval_loss")),
        "svd_floor": _number(outcome.get("svd_floor")),
        "seconds": _number(outcome.get("seconds")),
        "tokens_per_s": _number(outcome.get("tokens_per_s")),
        "steps_done": outcome.get("steps_done"),
        "error": outcome.get("error"),
        "target_modules": outcome.get("info", {}).get("target_modules"),
    }
    if with_curve:
        record["curve"] = curve if curve is not None else read_curve(trial)
    return record


def study_records(study: optuna.Study, *, with_curves: bool = False,
                  states: tuple[TrialState, ...] = REPORTED_STATES) -> list[dict[str, Any]]:
    """Records of the study's trials in ``states`` by number; curves (if asked) as column-backed sequences."""
    trials = sorted(study.get_trials(deepcopy=False, states=states), key=lambda t: t.number)
    curves = read_curves(study._storage, trials) if with_curves else {}
    return [trial_record(t, with_curve=with_curves, curve=curves.get(t._trial_id)) for t in trials]


def study_results(study: optuna.Study, *, with_curves: bool = True) -> dict[str, Any]:
    """Return the whole study as results JSON (waiting trials are left out; NaN/inf as strings)."""
    records = study_records(study, with_curves=with_curves)
    for record in records:
        if with_curves:
            record["curve"] = curve_json(record["curve"])
    return {"study": study.study_name, "trials": records}


def write_json(data: dict[str, Any], path: str | Path) -> None:
    """Write ``data`` as indented JSON, creating the parent folder."""
    path = check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def check_writable(path: str | Path) -> Path:
    """Raise SpecError unless ``path`` can be written as a file (not a folder, not inside a file)."""
    from core.specs import SpecError

    path = Path(path)
    if path.is_dir():
        raise SpecError(f"--json {path} is a folder: give a file path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise SpecError(f"--json {path} lies inside the file {parent}: give a file path")
    return path


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def load_group(storage_url: str, name: str) -> list[optuna.Study]:
    """The studies ``name`` stands for (a sweep, or a search's per-rank studies); SpecError if none."""
    from tuning.search import group_study_names
    from tuning.storage import load_study

    names = group_study_names(storage_url, name)
    if not names:
        load_study(storage_url, name)  # raises with the list of studies that do exist
    return [load_study(storage_url, study_name) for study_name in names]


def group_records(studies: list[optuna.Study], *, with_curves: bool = False,
                  states: tuple[TrialState, ...] = REPORTED_STATES) -> tuple[list[dict[str, Any]], dict]:
    """Records of several studies, each naming its ``study``, with the first study's settings."""
    from tuning.storage import study_settings

    records, settings = [], {}
    for study in studies:
        settings = settings or study_settings(study)
        for record in study_records(study, with_curves=with_curves, states=states):
            records.append({**record, "study": study.study_name})
    return records, settings


def collect_records(storage_url: str, name: str, *, with_curves: bool = False) -> tuple[list[dict[str, Any]], dict]:
    """Records of study ``name`` and of its per-rank search studies, with the first one's settings.

    Each record also names its ``study``; raises SpecError when nothing by that name exists.
    """
    return group_records(load_group(storage_url, name), with_curves=with_curves)
