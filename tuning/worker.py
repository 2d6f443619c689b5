"""Join a study from any machine: rebuild its sampler and pruner, its data and model, count what is left."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna
from optuna.trial import TrialState

from core.specs import SpecError, TrialSpec
from tuning.datasets import DATASET_SETTING, file_sha256, materialize_dataset
from tuning.queue import fail_stale_trials, rdb_backend, settled
from tuning.search import group_study_names
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


def open_studies_for_worker(storage_url: str, name: str) -> list[optuna.Study]:
    """The studies ``name`` stands for: a sweep, one search rank (``NAME/rR``), or every rank of search NAME."""
    names = group_study_names(storage_url, name)
    if not names:
        load_study(storage_url, name)  # raises the SpecError naming the studies that exist
    return [open_study_for_worker(storage_url, study_name) for study_name in names]


def worker_spec(storage_url: str, study: optuna.Study, *, device: str | None = None,
                cache_dir: str | Path | None = None) -> TrialSpec:
    """The study's base spec as this machine runs it: its dataset from the storage, its model folder checked."""
    settings = study_settings(study)
    base = TrialSpec.from_dict(settings["base"])
    if device:
        base = base.with_params(device=device)
    dataset = settings.get(DATASET_SETTING)
    if base.data and dataset and file_sha256(base.data) != dataset["sha256"]:
        # the path is on the machine that made the study (or holds other content here)
        path = materialize_dataset(storage_url, dataset["sha256"], cache_dir or dataset_cache_dir())
        base = base.with_params(data=str(path))
    _check_model_here(base.model, study.study_name)
    return base


def dataset_cache_dir() -> Path:
    """Where workers keep datasets written out from the storage ($XDG_CACHE_HOME/lorascope/datasets)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "lorascope" / "datasets"


def _check_model_here(model: str | None, study_name: str) -> None:
    from core.models import resolve_model_path

    try:
        resolve_model_path(model)
    except SpecError as err:
        raise SpecError(f"study {study_name!r} cannot run on {socket.gethostname()}: {err}") from None


def pending_count(study: optuna.Study) -> int:
    """Trials a process can take now: queued ones, plus a search rank's trials not yet created."""
    waiting = count_waiting(study)
    settings = study_settings(study)
    if settings.get("kind") == "search":
        held = sum(settled(t) for t in study.get_trials(deepcopy=False))
        return waiting + max(0, settings["search"]["trials_per_rank"] - held)
    return waiting


def claimable(study: optuna.Study) -> int:
    """Fail (and queue again) trials whose machine went silent, then count what can be taken now."""
    fail_stale_trials(study)
    return pending_count(study)


def running_elsewhere(studies: list[optuna.Study]) -> int:
    """RUNNING trials that heartbeats watch: each ends, or goes stale and comes back to the queue."""
    watched = [s for s in studies if (rdb := rdb_backend(s)) is not None and rdb.get_heartbeat_interval()]
    return sum(len(s.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) for s in watched)
