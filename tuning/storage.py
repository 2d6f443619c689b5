"""Open the Optuna storage (the single source of truth) and the studies in it."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage

from core.specs import SpecError
from tuning.attrs import SETTINGS_ATTR  # noqa: F401 - re-exported
from tuning.queue import heartbeat_grace_seconds, heartbeat_seconds, retry_stale

STORAGE_ENV = "LORASCOPE_STORAGE"  # a storage URL kept off command lines (it may hold a password)
DEFAULT_STORAGE = "sqlite:///runs/lorascope.db"  # unless $LORASCOPE_STORAGE names another (app.cli_args)
SCHEMA_RACE_MARKS = ("already exists", "DuplicateTable", "UNIQUE constraint failed", "duplicate key", "Duplicate entry")
JOURNAL_PREFIX = "journal:///"  # journal:///PATH, relative like sqlite:///PATH; journal:////abs/PATH

# Failed trials are reported by lorascope itself, without Optuna's traceback.
optuna.logging.set_verbosity(optuna.logging.ERROR)
# Heartbeats have been "experimental" since Optuna 2.9; the warning adds nothing for users.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print, log or show."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: hide whatever follows "user:"
        head, at, tail = url.rpartition("@")
        if not at:
            return url
        scheme, sep, userinfo = head.partition("://")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{tail}" if ":" in userinfo else url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def redact_text(text: str, url: str) -> str:
    """``text`` (say, a driver's error message) with ``url``'s password blanked out."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001
        password = None
    return text.replace(password, "***") if password else text


_opened: dict[tuple[str, int], BaseStorage] = {}
_opening = threading.Lock()


def open_storage(url: str = DEFAULT_STORAGE) -> BaseStorage:
    """The storage at ``url``, opened once per process: one engine, and Optuna's cache of finished trials, reused."""
    key = (url, os.getpid())  # a forked child opens its own connections
    with _opening:
        if key not in _opened:
            _opened[key] = open_journal(url) if url.startswith("journal:") else _CachedStorage(_open_rdb(url))
        return _opened[key]


def _open_rdb(url: str) -> RDBStorage:
    """Open (creating if needed) the RDB storage at ``url``, with heartbeats and stale-trial retry."""
    if not url.startswith(("sqlite:///", "postgresql", "mysql")):
        raise SpecError(f"storage {redact_url(url)!r} is not a database URL: use sqlite:///PATH or postgresql://...")
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///").partition("?")[0]
        if path in ("", ":memory:"):
            raise SpecError(f"storage {url!r} is in memory and would lose every result: "
                            f"give a file, e.g. sqlite:///runs/lorascope.db")
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SpecError(f"cannot create the folder for storage {redact_url(url)}: {err.strerror}") from None
        engine_kwargs = {"connect_args": {"timeout": 60}}
    def connect() -> RDBStorage:
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds(),
                          grace_period=heartbeat_grace_seconds(), heartbeat_stale_trial_callback=retry_stale)

    try:
        try:
            return connect()
        except Exception as err:  # noqa: BLE001
            # Several processes creating Optuna's tables in one new database at once: one wins, the
            # others fail on a table or Alembic's version row that now exists, and find them on a retry.
            if not any(mark in f"{type(err).__name__} {err}" for mark in SCHEMA_RACE_MARKS):
                raise
            time.sleep(0.5)
            return connect()
    except ImportError as err:  # Optuna's message does not say which driver is missing
        raise SpecError(f"cannot open storage {redact_url(url)}: database driver missing ({err.__cause__ or err}): "
                        f"pip install 'lorascope[postgres]' for postgresql://, mysqlclient for mysql://") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy/driver errors vary by backend
        raise SpecError(f"cannot open storage {redact_url(url)}: "
                        f"{redact_text(str(err).splitlines()[0], url)}") from None


def rdb_engine(storage: BaseStorage):
    """The SQLAlchemy engine behind ``storage`` (Optuna wraps RDBStorage in a cache); None for a journal file."""
    backend = getattr(storage, "_backend", storage)
    return backend.engine if isinstance(backend, RDBStorage) else None


def open_journal(url: str) -> BaseStorage:
    """Open (creating if needed) the Optuna journal file at ``journal:///PATH`` (no database server)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = url.removeprefix(JOURNAL_PREFIX)
    if not url.startswith(JOURNAL_PREFIX) or not path:
        raise SpecError(f"storage {url!r} is not a journal URL: use journal:///PATH (journal:////PATH if absolute)")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    except OSError as err:
        raise SpecError(f"cannot open journal storage {path}: {err.strerror}") from None


def study_names(url: str) -> list[str]:
    """Names of the studies in the storage at ``url``, oldest first."""
    return [s.study_name for s in open_storage(url).get_all_studies()]  # summaries would read every trial


def load_study(url: str, name: str) -> optuna.Study:
    """Load study ``name``; raise SpecError naming the studies that do exist otherwise."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = study_names(url)
        hint = f"studies there: {', '.join(known)}" if known else "the storage has no studies yet"
        raise SpecError(f"no study {name!r} in {redact_url(url)} ({hint})") from None


def study_settings(study: optuna.Study) -> dict:
    """The lorascope settings saved with a study (empty for studies made by other tools)."""
    return study.user_attrs.get(SETTINGS_ATTR, {})
