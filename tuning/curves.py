"""Per-step curves in the Optuna storage: written while a trial runs, read back for plots.

Records are buffered and written as numbered chunks (trial user attrs ``curve_00000``, ...), so
another process sees a running trial's curve within about a second, and a long trial does not
cost one database write per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from optuna.trial import FrozenTrial

CHUNK_PREFIX = "curve_"
FLUSH_SECONDS = 1.0
FLUSH_RECORDS = 200


class CurveWriter:
    """Buffer metric records and write them as chunks through ``set_attr(key, value)``."""

    def __init__(self, set_attr: Callable[[str, Any], None], *, flush_seconds: float = FLUSH_SECONDS):
        self._set_attr = set_attr
        self._flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._chunk = 0
        self._last_flush = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record; write the buffer when it is old or large enough."""
        self._buffer.append({k: _json_number(v) for k, v in record.items()})
        if len(self._buffer) >= FLUSH_RECORDS or time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write buffered records now."""
        if self._buffer:
            self._set_attr(f"{CHUNK_PREFIX}{self._chunk:05d}", self._buffer)
            self._chunk += 1
            self._buffer = []
        self._last_flush = time.monotonic()


def read_curve(trial: FrozenTrial) -> list[dict[str, Any]]:
    """Return a trial's per-step records in step order."""
    keys = sorted(k for k in trial.user_attrs if k.startswith(CHUNK_PREFIX))
    return [record for key in keys for record in trial.user_attrs[key]]


def _json_number(value: Any) -> Any:
    # JSON has no NaN/Inf: keep them readable as strings rather than failing the write
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
