"""What the UI reads from the storage for one study: records, queue size and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState

from core.specs import SpecError
from tuning.results import collect_records
from tuning.search import search_study_names
from tuning.storage import load_study, study_names


@dataclass
class StudyView:
    """A snapshot of one logical study (a sweep, or a search's per-rank studies)."""

    name: str | None
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    waiting: int = 0

    @property
    def steps(self) -> int | None:
        """Steps per trial, from the study's settings."""
        return self.settings.get("base", {}).get("steps")


def read_study(storage_url: str, name: str | None) -> StudyView:
    """Read a study for display; an unknown or empty name gives an empty view."""
    if not name:
        return StudyView(None)
    try:
        records, settings = collect_records(storage_url, name, with_curves=True)
    except SpecError:
        return StudyView(name)
    waiting = 0
    names = ([name] if name in study_names(storage_url) else []) + search_study_names(storage_url, name)
    for study_name in names:
        study = load_study(storage_url, study_name)
        waiting += len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    return StudyView(name, records, settings, waiting)
