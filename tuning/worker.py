"""Join a study from any process: rebuild its stored sampler and pruner, then run what is left."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from core.specs import SpecError, TrialSpec
from tuning.objective import RecordHook, TrialEndHook
from tuning.search import finished_count, run_rank_search
from tuning.settings import build_pruner, build_sampler
from tuning.storage import load_study, study_settings
from tuning.sweep import count_waiting, run_pending


def open_study_for_worker(storage_url: str, name: str) -> optuna.Study:
    """Load a lorascope study (a sweep or one rank of a search) with its stored sampler and pruner."""
    loaded = load_study(storage_url, name)
    settings = study_settings(loaded)
    if "base" not in settings:
        raise SpecError(f"study {name!r} was not made by lorascope: it has no trial settings")
    return optuna.Study(study_name=name, storage=loaded._storage,
                        sampler=build_sampler(settings.get("sampler")), pruner=build_pruner(settings.get("pruner")))


def pending_count(study: optuna.Study) -> int:
    """Trials the study still wants: queued ones, or a search rank's missing trials."""
    settings = study_settings(study)
    if settings.get("kind") == "search":
        return max(count_waiting(study), settings["search"]["trials_per_rank"] - finished_count(study))
    return count_waiting(study)


def run_study(
    study: optuna.Study,
    base: TrialSpec,
    *,
    on_record: RecordHook | None = None,
    on_trial_end: TrialEndHook | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> None:
    """Run a sweep's queued trials, or continue a search rank to its trials_per_rank."""
    run = run_rank_search if study_settings(study).get("kind") == "search" else run_pending
    run(study, base, on_record=on_record, on_trial_end=on_trial_end, stop_requested=stop_requested)
