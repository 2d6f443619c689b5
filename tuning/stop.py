"""Stop as a flag in the storage: set by the UI or `lorascope stop`, polled by every worker on any machine.

A study user attr (``STOP_ATTR``), so it works on every storage, shows in optuna-dashboard, and
reaches workers that no signal from the UI's machine can. Starting a study's workers again
clears it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna

from tuning.attrs import STOP_ATTR
from tuning.storage import load_study, open_storage

POLL_SECONDS = 2.0  # a stop reaches a worker within this plus one training step


def request_stop(storage_url: str, study_name: str) -> list[str]:
    """Ask every worker of ``study_name`` (a sweep, or every rank of a search) to stop; return the studies flagged."""
    return _set_flag(storage_url, study_name, True)


def clear_stop(storage_url: str, study_name: str) -> list[str]:
    """Let workers run ``study_name`` again after a stop; return the studies cleared."""
    return _set_flag(storage_url, study_name, False)


def stop_poller(study: optuna.Study, every: float = POLL_SECONDS,
                clock: Callable[[], float] = time.monotonic) -> Callable[[], bool]:
    """A check for the training loop: reads ``study``'s stop flag at most every ``every`` seconds; true stays true."""
    state = {"stopped": False, "next": clock()}

    def stopped() -> bool:
        if not state["stopped"] and clock() >= state["next"]:
            state["stopped"] = bool(study.user_attrs.get(STOP_ATTR))
            state["next"] = clock() + every
        return state["stopped"]

    return stopped


def _set_flag(storage_url: str, study_name: str, value: bool) -> list[str]:
    from tuning.search import group_study_names  # imports the trainer; `lorascope stop` is rare

    names = group_study_names(storage_url, study_name)
    if not names:
        load_study(storage_url, study_name)  # raises the SpecError naming the studies that exist
    storage = open_storage(storage_url)
    for name in names:
        storage.set_study_user_attr(storage.get_study_id_from_name(name), STOP_ATTR, value)
    return names
