"""Opening the storage: in-memory SQLite refused, heartbeat timing that survives a busy machine."""

import pytest

import app.cli
from core.specs import SpecError
from tuning.storage import open_storage


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(url):
    with pytest.raises(SpecError, match="in memory"):
        open_storage(url)


def test_cli_refuses_in_memory_storage_with_exit_2_and_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.cli.main(["sweep", "--task", "synthetic-style", "--ranks", "4", "--steps", "2", "--storage", "sqlite:///"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.splitlines()) == 1 and "in memory" in err


def test_heartbeat_grace_outlasts_a_busy_machine(tmp_path, monkeypatch):
    monkeypatch.delenv("LORASCOPE_HEARTBEAT_SECONDS", raising=False)
    monkeypatch.delenv("LORASCOPE_HEARTBEAT_GRACE_SECONDS", raising=False)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")._backend
    # Optuna's default grace (2 x interval) failed live trials on a loaded machine
    assert storage.heartbeat_interval == 10 and storage.grace_period == 120


def test_heartbeat_timing_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_GRACE_SECONDS", "3")
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")._backend  # Optuna's cache wraps the RDBStorage
    assert storage.heartbeat_interval == 1 and storage.grace_period == 3
