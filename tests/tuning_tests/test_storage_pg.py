"""Any Optuna storage URL works (PostgreSQL, SQLite, a journal file); bad ones fail in one line, no password."""

import os
import subprocess
import sys

import optuna
import pytest
from optuna.storages import RDBStorage

from core.specs import SpecError, TrialSpec
from tuning.results import study_results
from tuning.storage import load_study, open_storage
from tuning.sweep import SweepGrid, prepare_sweep, run_pending

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT, **env}, timeout=300)


def test_open_storage_on_postgres_round_trips_a_study(pg_url):
    storage = open_storage(pg_url)._backend  # under Optuna's cache of finished trials
    assert isinstance(storage, RDBStorage) and storage.engine.dialect.name == "postgresql"
    study = optuna.create_study(study_name="s", storage=storage)
    study.set_user_attr("k", [1, 2])
    assert optuna.load_study(study_name="s", storage=pg_url).user_attrs == {"k": [1, 2]}


def test_plain_postgresql_url_uses_psycopg(pg_url):
    storage = open_storage(pg_url.replace("postgresql+psycopg://", "postgresql://"))._backend
    assert storage.engine.dialect.driver == "psycopg"


@pytest.mark.parametrize("problem, expected", [
    ("password", "password authentication failed"),
    ("port", "refused"),
    ("database", 'database "nope" does not exist'),
])
def test_unreachable_postgres_is_one_line_without_password(pg_server, pg_url, problem, expected):
    url = {"password": pg_server.url(pg_url.rsplit("/", 1)[1], password="wrong-secret-7"),
           "port": pg_server.url("x", port=_closed_port()),
           "database": pg_server.url("nope")}[problem]
    with pytest.raises(SpecError) as err:
        open_storage(url)
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert "wrong-secret-7" not in message and pg_server.password not in message and "***" in message


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:hunter22@127.0.0.1/db", "not a database URL"),  # Heroku's spelling, unknown to SQLAlchemy
    ("mysql://u:hunter22@127.0.0.1:1/db", "MySQLdb"),  # the driver is not installed here
    ("journal://runs/x.log", "journal:///PATH"),
])
def test_bad_scheme_or_missing_driver_is_one_line_without_password(url, expected):
    with pytest.raises(SpecError) as err:
        open_storage(url)
    assert expected in str(err.value) and "hunter22" not in str(err.value) and "\n" not in str(err.value)


def test_cli_wrong_password_exits_2_with_one_line_and_no_password(pg_server, pg_url, tmp_path):
    url = pg_url.replace(pg_server.password, "wrong-secret-7")
    done = _cli("results", "--study", "s", "--json", str(tmp_path / "r.json"), LORASCOPE_STORAGE=url)
    assert done.returncode == 2
    assert done.stderr.startswith("lorascope: error: cannot open storage") and done.stderr.count("\n") == 1
    assert "password authentication failed" in done.stderr and "wrong-secret-7" not in done.stderr


def test_journal_file_storage_runs_a_sweep(tmp_path):
    url = f"journal:///{tmp_path}/j/study.log"  # four slashes: an absolute path
    base = TrialSpec(task="synthetic-facts", steps=5, batch_size=8, lr=1e-3, device="cpu")
    study = prepare_sweep(url, "j", base, SweepGrid(ranks=(2, 4), rules=("rslora",), alphas=(8.0,), lrs=(1e-3,)))
    run_pending(study, base)
    trials = study_results(load_study(url, "j"))["trials"]
    assert (tmp_path / "j" / "study.log").is_file()
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"] and {t["rank"] for t in trials} == {2, 4}
    assert all(len(t["curve"]) == 5 for t in trials)


@pytest.mark.slow
def test_cli_sweep_on_postgres_loads_in_plain_optuna_and_its_plots(pg_url, tmp_path):
    done = _cli("sweep", "--task", "synthetic-facts", "--ranks", "4,16", "--rules", "standard,rslora",
                "--alphas", "4,16", "--lrs", "1e-3", "--steps", "8", "--batch-size", "8", "--device", "cpu",
                "--study", "pg-sweep", "--quiet", "--storage", pg_url)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="pg-sweep", storage=pg_url)
    trials = study.get_trials()
    assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {(t.params["rank"], t.params["alpha"], t.params["rule"]) for t in trials} == {
        (r, a, rule) for r in (4, 16) for a in (4.0, 16.0) for rule in ("standard", "rslora")}
    history = optuna.visualization.plot_optimization_history(study)
    assert sorted(history.data[0].y) == sorted(t.value for t in trials)
    importances = optuna.importance.get_param_importances(study, params=["rank", "alpha", "rule"])
    assert set(importances) == {"rank", "alpha", "rule"} and sum(importances.values()) == pytest.approx(1.0)
    optuna.visualization.plot_param_importances(study, params=["rank", "alpha", "rule"])
    optuna.visualization.plot_parallel_coordinate(study, params=["rank", "alpha"])


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
