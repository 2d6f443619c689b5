"""What the UI reads from the storage for one study: records (queued trials too), curves and settings.

Curves come from :func:`tuning.curves.read_curves` through the per-URL storage of
:func:`tuning.storage.open_storage`: finished trials are read once per process and running ones
from their last chunk seen, so a refresh reads what changed since the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import TrialState

from core.specs import SpecError
from tuning.results import REPORTED_STATES, group_records, load_group

SHOWN_STATES = (*REPORTED_STATES, TrialState.WAITING)


@dataclass
class StudyView:
    """A snapshot of one logical study (a sweep, or a search's per-rank studies)."""

    name: str | None
    records: list[dict[str, Any]] = field(default_factory=list)  # queued (WAITING) trials included
    settings: dict = field(default_factory=dict)

    @property
    def steps(self) -> int | None:
        """Steps per trial, from the study's settings."""
        return self.settings.get("base", {}).get("steps")

    @property
    def waiting(self) -> int:
        """How many trials are queued and not started."""
        return sum(r["state"] == "WAITING" for r in self.records)

    @property
    def started(self) -> list[dict[str, Any]]:
        """The records of trials that have started (running or finished)."""
        return [r for r in self.records if r["state"] != "WAITING"]

    def signature(self) -> tuple:
        """Changes whenever what the tabs show could change: trials, their states and curve lengths."""
        return (self.name, tuple((r.get("study"), r["number"], r["state"], len(r.get("curve") or ()))
                                 for r in self.records))


def read_study(storage_url: str, name: str | None, *, with_curves: bool = True) -> StudyView:
    """Read a study for display; an unknown or empty name gives an empty view."""
    if not name:
        return StudyView(None)
    try:
        studies = load_group(storage_url, name)
    except SpecError:
        return StudyView(name)
    records, settings = group_records(studies, with_curves=with_curves, states=SHOWN_STATES)
    return StudyView(name, records, settings)
