"""What the UI reads from the storage for one study: records, queue size and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState

from core.specs import SpecError
from tuning.results import group_records, load_group


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
        studies = load_group(storage_url, name)
    except SpecError:
        return StudyView(name)
    records, settings = group_records(studies, with_curves=True)
    waiting = sum(len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) for study in studies)
    return StudyView(name, records, settings, waiting)
