"""Join a study from any process: rebuild its stored sampler and pruner, count what is left."""

from __future__ import annotations

import optuna

from core.specs import SpecError, TrialSpec
from tuning.search import finished_count
from tuning.settings import build_pruner, build_sampler
from tuning.storage import load_study, study_settings
from tuning.sweep import count_waiting


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
