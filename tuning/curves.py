"""Per-step curves in the Optuna storage: written while a trial runs, read back for plots.

On an RDB storage the records go into lorascope's own table beside Optuna's, in the same database:
``lorascope_curve_chunks`` holds one row per flush (trial id, sequence number, the chunk's steps as
compressed float64 columns), so a reader fetches only the chunks it has not seen, NaN and inf
survive bit for bit, and nothing parses JSON. Finished curves are read once per process and
cached; running ones are read from the last chunk seen. Other storages (Optuna's journal file)
keep the older format, numbered chunks of JSON records in trial user attrs (``curve_00000``, ...),
which is also still read for studies written that way.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from tuning.storage import rdb_engine

Record = dict[str, Any]

CHUNK_PREFIX = "curve_"
FLUSH_SECONDS = 1.0
FLUSH_RECORDS = 200
TABLE = "lorascope_curve_chunks"
_OR_BATCH = 200  # SQLite caps an expression's depth at 1000

_metadata = sa.MetaData()
_chunks = sa.Table(
    TABLE, _metadata,
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),  # Optuna's trials.trial_id
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),  # flush number within the trial
    sa.Column("first_step", sa.Integer, nullable=False),
    sa.Column("last_step", sa.Integer, nullable=False),
    sa.Column("columns", sa.String(1000), nullable=False),  # JSON: ["step:i", "loss:f", ...]
    sa.Column("data", sa.LargeBinary, nullable=False),  # zlib(float64 values (n, k) + uint8 present (n, k))
)
_created: set[int] = set()
_lock = threading.Lock()


class Curve(Sequence):
    """A trial's per-step records held as columns; indexes and iterates as a list of dicts."""

    __slots__ = ("_values", "_present", "_ints", "_n", "memo")

    def __init__(self, values: dict[str, np.ndarray], present: dict[str, np.ndarray], ints: Iterable[str] = ()):
        self._values, self._present, self._ints = values, present, frozenset(ints)
        self._n = len(next(iter(values.values()))) if values else 0
        self.memo: dict = {}  # what readers derive from this (immutable) curve, e.g. decimated plot series

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> Curve:
        """Columns of ``records``; numeric strings such as ``"nan"`` (the old attrs format) become floats."""
        keys = list(dict.fromkeys(k for r in records for k in r))
        values = {k: np.full(len(records), np.nan) for k in keys}
        present = {k: np.zeros(len(records), dtype=bool) for k in keys}
        ints = set(keys)
        for i, record in enumerate(records):
            for key, raw in record.items():
                value = _as_number(raw)
                if value is None:
                    continue
                values[key][i], present[key][i] = value, True
                if not isinstance(value, int):
                    ints.discard(key)
        return cls(values, present, ints)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        return {k: (int(v[index]) if k in self._ints else float(v[index]))
                for k, v in self._values.items() if self._present[k][index]}

    def __iter__(self) -> Iterator[Record]:
        columns = [(k, (np.where(p, v, 0).astype(np.int64) if k in self._ints else v).tolist(), p.tolist())
                   for k, v, p in ((k, v, self._present[k]) for k, v in self._values.items())]
        for i in range(self._n):
            yield {k: values[i] for k, values, present in columns if present[i]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def column(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values of ``key`` as float arrays, NaN where the record lacks it."""
        steps = self._values.get("step", np.arange(self._n, dtype=float))
        if key not in self._values:
            return steps, np.full(self._n, np.nan)
        return steps, np.where(self._present[key], self._values[key], np.nan)

    def last_step(self) -> int | None:
        """The step of the last record, None when empty."""
        return int(self._values["step"][-1]) if self._n and "step" in self._values else None

    def records(self) -> list[Record]:
        """The records as plain dicts."""
        return list(self)

    @classmethod
    def concat(cls, parts: Sequence[Curve]) -> Curve:
        """One curve of ``parts`` in order (a column missing from a part is missing from its records)."""
        parts = [c for c in parts if c._n]
        if len(parts) <= 1:
            return parts[0] if parts else EMPTY
        keys = list(dict.fromkeys(k for c in parts for k in c._values))
        values = {k: np.concatenate([c._values.get(k, np.full(c._n, np.nan)) for c in parts]) for k in keys}
        present = {k: np.concatenate([c._present.get(k, np.zeros(c._n, dtype=bool)) for c in parts]) for k in keys}
        ints = {k for k in keys if all(k in c._ints or k not in c._values for c in parts)}
        return cls(values, present, ints)

    __hash__ = None


EMPTY = Curve({}, {})


class CurveWriter:
    """Buffer metric records and hand them to ``write`` every ``flush_seconds`` or FLUSH_RECORDS records."""

    def __init__(self, write: Callable[[list[Record]], None], *, flush_seconds: float = FLUSH_SECONDS):
        self._write = write
        self._flush_seconds = flush_seconds
        self._buffer: list[Record] = []
        self._last_flush = time.monotonic()
        self._written = False  # the first record is written at once: the UI draws a point right after Start

    @classmethod
    def for_trial(cls, trial: Any, *, flush_seconds: float = FLUSH_SECONDS) -> CurveWriter:
        """A writer into ``trial``'s storage: the chunk table on an RDB, trial user attrs otherwise."""
        engine = rdb_engine(trial.study._storage)
        if engine is None:
            return cls(_AttrChunks(trial.set_user_attr), flush_seconds=flush_seconds)
        return cls(_TableChunks(engine, trial._trial_id), flush_seconds=flush_seconds)

    def add(self, record: Record) -> None:
        """Queue one record; write the buffer when it is old or large enough (the very first record at once)."""
        self._buffer.append(dict(record))
        if (len(self._buffer) >= FLUSH_RECORDS or not self._written
                or time.monotonic() - self._last_flush >= self._flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Write buffered records now."""
        if self._buffer:
            self._write(self._buffer)
            self._buffer = []
            self._written = True
        self._last_flush = time.monotonic()


class _TableChunks:
    """Writes each flush as one row of the chunk table."""

    def __init__(self, engine: sa.Engine, trial_id: int):
        self._engine, self._trial_id, self._seq = engine, trial_id, 0
        _ensure_table(engine)

    def __call__(self, records: list[Record]) -> None:
        columns, data = _encode(Curve.from_records(records))
        steps = [r.get("step", 0) for r in records]
        with self._engine.begin() as conn:
            if self._seq == 0:  # a reused trial id (SQLite after a deleted study) must not inherit rows
                conn.execute(_chunks.delete().where(_chunks.c.trial_id == self._trial_id))
            conn.execute(_chunks.insert().values(trial_id=self._trial_id, seq=self._seq, first_step=int(steps[0]),
                                                 last_step=int(steps[-1]), columns=columns, data=data))
        self._seq += 1


class _AttrChunks:
    """Writes each flush as a numbered trial user attr of JSON records (non-RDB storages)."""

    def __init__(self, set_attr: Callable[[str, Any], None]):
        self._set_attr, self._chunk = set_attr, 0

    def __call__(self, records: list[Record]) -> None:
        self._set_attr(f"{CHUNK_PREFIX}{self._chunk:05d}", curve_json(records))
        self._chunk += 1


class _Seen:
    """What this process has read of one trial's curve."""

    __slots__ = ("curve", "seq", "finished")

    def __init__(self, curve: Curve, seq: int, finished: bool):
        self.curve, self.seq, self.finished = curve, seq, finished


_seen: dict[tuple[str, int], _Seen] = {}


def read_curves(storage: BaseStorage, trials: Sequence[FrozenTrial]) -> dict[int, Curve]:
    """Curves of ``trials`` by trial id: finished ones read once per process, running ones from the last chunk seen."""
    engine = rdb_engine(storage)
    if engine is None:
        return {t._trial_id: read_curve(t) for t in trials}
    url = str(engine.url)
    with _lock:
        _ensure_table(engine)
        fresh, live = [], []
        for t in trials:
            seen = _seen.get((url, t._trial_id))
            if seen is None:
                fresh.append(t._trial_id)
            elif not seen.finished:
                live.append((t._trial_id, seen.seq))
        rows = _fetch(engine, fresh, live)
        new: dict[int, list] = {}
        for row in rows:
            new.setdefault(row.trial_id, []).append(row)
        out = {}
        for t in trials:
            key = (url, t._trial_id)
            seen = _seen.get(key)
            if seen is None:
                seen = _seen[key] = _Seen(EMPTY, 0, False)
            chunks = sorted(new.get(t._trial_id, []), key=lambda r: r.seq)
            if chunks:
                seen.curve = Curve.concat([seen.curve, *[_decode(row.columns, row.data) for row in chunks]])
                seen.seq = chunks[-1].seq + 1
            elif seen.seq == 0 and any(k.startswith(CHUNK_PREFIX) for k in t.user_attrs):
                seen.curve = read_curve(t)  # written in user attrs, as before the chunk table existed
            # the objective flushes before the trial's state is set, so a finished trial has all its rows
            seen.finished = t.state.is_finished()
            out[t._trial_id] = seen.curve
        return out


def read_curve(trial: FrozenTrial) -> Curve:
    """A trial's curve from its user attrs (the format of non-RDB storages and of older studies)."""
    keys = sorted(k for k in trial.user_attrs if k.startswith(CHUNK_PREFIX))
    return Curve.from_records([record for key in keys for record in trial.user_attrs[key]])


def curve_json(curve: Sequence[Record]) -> list[Record]:
    """A curve as JSON-safe records: NaN and inf become the strings ``"nan"``, ``"inf"``."""
    return [{k: _json_number(v) for k, v in record.items()} for record in curve]


def forget_cache() -> None:
    """Drop every curve read so far (tests, and a storage replaced under the same URL)."""
    with _lock:
        _seen.clear()


def _fetch(engine: sa.Engine, fresh: list[int], live: list[tuple[int, int]]) -> list:
    c = _chunks.c
    columns = (c.trial_id, c.seq, c.columns, c.data)
    rows = []
    with engine.connect() as conn:
        for i in range(0, len(fresh), 500):  # an expanding IN compiles once, whatever the ids
            rows += conn.execute(sa.select(*columns).where(c.trial_id.in_(sa.bindparam("ids", expanding=True))),
                                 {"ids": fresh[i:i + 500]}).all()
        for i in range(0, len(live), _OR_BATCH):
            condition = sa.or_(*[(c.trial_id == tid) & (c.seq >= seq) for tid, seq in live[i:i + _OR_BATCH]])
            rows += conn.execute(sa.select(*columns).where(condition)).all()
    return rows


def _ensure_table(engine: sa.Engine) -> None:
    if id(engine) not in _created:
        try:
            _metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another process created it between the check and the CREATE
            if not sa.inspect(engine).has_table(TABLE):
                raise
        _created.add(id(engine))


def _encode(curve: Curve) -> tuple[str, bytes]:
    keys = list(curve._values)
    values = np.stack([curve._values[k] for k in keys], axis=1).astype("<f8")
    present = np.stack([curve._present[k] for k in keys], axis=1).astype(np.uint8)
    names = [f"{k}:{'i' if k in curve._ints else 'f'}" for k in keys]
    return json.dumps(names), zlib.compress(values.tobytes() + present.tobytes(), 1)


def _decode(columns: str, data: bytes) -> Curve:
    keys, ints = _columns(columns)
    raw = zlib.decompress(data)
    k = len(keys)
    n = len(raw) // (9 * k)
    values = np.frombuffer(raw, dtype="<f8", count=n * k).reshape(n, k).T  # (k, n): one row per column
    present = np.frombuffer(raw, dtype=np.uint8, offset=8 * n * k).reshape(n, k).T.astype(bool)
    return Curve(dict(zip(keys, values)), dict(zip(keys, present)), ints)


@functools.lru_cache(maxsize=256)
def _columns(columns: str) -> tuple[list[str], frozenset[str]]:
    names = json.loads(columns)
    return [name.rsplit(":", 1)[0] for name in names], frozenset(n.rsplit(":", 1)[0] for n in names if n.endswith(":i"))


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _json_number(value: Any) -> Any:
    # JSON has no NaN/Inf: keep them readable as strings rather than failing the write
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
