"""What every tab shares: the storage, the runner and the selected study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.runner import Runner


@dataclass
class UiContext:
    """Shared state of one app instance (not of one browser session)."""

    storage_url: str
    runner: Runner
    study: Any = None  # the gr.Dropdown naming the study every tab shows
    source: dict[str, Any] | None = None  # model/data/device inputs of the Run tab, reused by Search
