"""Open the Optuna storage (the single source of truth) and the studies in it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

from core.specs import SpecError
from tuning.attrs import SETTINGS_ATTR  # noqa: F401 - re-exported

STORAGE_ENV = "LORASCOPE_STORAGE"  # a storage URL kept off command lines (it may hold a password)
DEFAULT_STORAGE = os.environ.get(STORAGE_ENV) or "sqlite:///runs/lorascope.db"
JOURNAL_PREFIX = "journal:///"  # journal:///PATH, relative like sqlite:///PATH; journal:////abs/PATH
HEARTBEAT_SECONDS = 2  # a killed worker's trial is failed and retried after 2 missed beats
MAX_RETRIES = 3

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


def open_storage(url: str = DEFAULT_STORAGE) -> BaseStorage:
    """Open (creating if needed) the RDB storage at ``url``, with heartbeats and stale-trial retry."""
    if url.startswith("journal:"):
        return open_journal(url)
    if not url.startswith(("sqlite:///", "postgresql", "mysql")):
        raise SpecError(f"storage {redact_url(url)!r} is not a database URL: use sqlite:///PATH or postgresql://...")
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise SpecError(f"cannot create the folder for storage {redact_url(url)}: {err.strerror}") from None
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
        )
    except ImportError as err:  # Optuna's message does not say which driver is missing
        raise SpecError(f"cannot open storage {redact_url(url)}: database driver missing ({err.__cause__ or err}): "
                        f"pip install 'lorascope[postgres]' for postgresql://, mysqlclient for mysql://") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy/driver errors vary by backend
        raise SpecError(f"cannot open storage {redact_url(url)}: "
                        f"{redact_text(str(err).splitlines()[0], url)}") from None


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
    return [s.study_name for s in optuna.get_all_study_summaries(open_storage(url), include_best_trial=False)]


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
