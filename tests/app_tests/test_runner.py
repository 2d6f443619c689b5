"""Worker processes for the UI: logs to files, stop reaches the whole process group."""

import json
import os
import subprocess
import time
from pathlib import Path

import optuna
import psutil
import pytest

import app.runner

from app.runner import Runner, list_runs
from tuning.attrs import STOP_ATTR
from tuning.curves import read_curves
from tuning.storage import open_storage


def _wait(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


SWEEP = ["sweep", "--task", "synthetic-style", "--ranks", "4,8", "--rules", "standard", "--alphas", "16",
         "--steps", "20000", "--batch-size", "8", "--device", "cpu"]


def test_worker_writes_to_a_log_and_stop_ends_it_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(url, tmp_path / "runs")
    info = runner.start(SWEEP, "long")
    assert _wait(lambda: any(t.state.name == "RUNNING" and len(read_curves(open_storage(url), [t])[t._trial_id])
                             for t in _trials(url, "long")))
    with pytest.raises(RuntimeError, match="already running"):
        runner.start(SWEEP, "long")
    message = runner.stop("long")
    assert "stopped" in message and not runner.is_running("long")
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)
    outcomes = {t.user_attrs.get("outcome", {}).get("status") for t in _trials(url, "long")}
    assert outcomes == {"stopped"}  # the running trial ended cleanly, the queued one never started
    assert all(t.state.name == "FAIL" for t in _trials(url, "long"))
    assert info.log.read_text().startswith("\n$ lorascope sweep")


def test_runner_reattaches_after_an_app_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    Runner(url, tmp_path / "runs").start(SWEEP, "again")
    restarted = Runner(url, tmp_path / "runs")  # a new app process knows the worker by its pid file
    assert _wait(lambda: restarted.is_running("again"))
    restarted.stop("again")
    assert not restarted.is_running("again")


@pytest.mark.parametrize("standby", [False, True], ids=["fresh-process", "standby"])
def test_bad_arguments_surface_as_the_workers_last_line(tmp_path, standby):
    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(url, tmp_path / "runs", standby=standby)
    try:
        runner.start(["sweep", "--task", "nope"], "bad")
        assert _wait(lambda: not runner.is_running("bad"))
        assert "unknown task 'nope'" in runner.exit_message("bad")
        assert "Traceback" not in runner.log_path("bad").read_text()
    finally:
        runner.close_standby()


def test_list_runs_groups_search_studies_under_their_name(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    for name in ("sweep-a", "srch/r4", "srch/r16"):
        optuna.create_study(storage=url, study_name=name)
    assert list_runs(url) == ["srch", "sweep-a"]


def _trials(url, name):
    try:
        return optuna.load_study(study_name=name, storage=url).trials
    except KeyError:
        return []


def test_storage_password_never_reaches_argv_log_or_errors(tmp_path):
    url = "postgresql://lora:s3cr3t-pw@127.0.0.1:1/studies"  # nothing listens: the worker fails to connect
    runner = Runner(url, tmp_path / "runs")
    info = runner.start(["sweep", "--task", "synthetic-style", "--ranks", "4", "--device", "cpu"], "secret")
    cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().decode()  # readable by anyone on the machine
    assert "app.cli" in cmdline and "s3cr3t-pw" not in cmdline and "postgresql" not in cmdline
    assert _wait(lambda: not runner.is_running("secret"))
    log = info.log.read_text()
    assert "s3cr3t-pw" not in log and "lora:***@127.0.0.1" in log  # the worker got the URL, from its environment
    message = runner.exit_message("secret")
    assert message and "s3cr3t-pw" not in message and "storage" in message


def test_names_that_sanitise_alike_get_their_own_files(tmp_path):
    runner = Runner(f"sqlite:///{tmp_path}/s.db", tmp_path / "runs")
    assert len({runner.log_path(name) for name in ("col x", "col_x", "col/x", "col?x")}) == 4


def test_stop_on_a_lookalike_name_leaves_the_other_worker_running(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(url, tmp_path / "runs")
    runner.start(SWEEP, "col x")
    assert _wait(lambda: runner.is_running("col x"))
    assert not runner.is_running("col_x")
    runner.stop("col_x", grace=1.0)
    assert runner.is_running("col x")
    runner.stop("col x")
    assert not runner.is_running("col x")


def test_stop_never_signals_a_process_it_did_not_start(tmp_path):
    runner = Runner(f"sqlite:///{tmp_path}/s.db", tmp_path / "runs")
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record = {"study": "fake", "pid": bystander.pid, "argv": [], "token": "forged",
                  "create_time": psutil.Process(bystander.pid).create_time()}
        runner._pid_file("fake").write_text(json.dumps(record))  # a stale or forged run file
        assert not runner.is_running("fake")
        runner.stop("fake", grace=1.0)
        assert bystander.poll() is None, "Stop sent a signal to a process lorascope did not start"
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_sets_the_storage_flag_that_workers_on_other_machines_poll(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    for name in ("srch/r4", "srch/r16", "other"):
        optuna.create_study(study_name=name, storage=open_storage(url))
    Runner(url, tmp_path / "runs").stop("srch")  # no local worker: only the remote ones are left to reach
    flags = {s.study_name: s.user_attrs.get(STOP_ATTR) for s in optuna.get_all_study_summaries(open_storage(url))}
    assert flags == {"srch/r4": True, "srch/r16": True, "other": None}
    assert "stopped" in Runner(url, tmp_path / "runs").stop("never-started")  # no study: nothing to flag


def test_start_hands_the_command_to_the_warm_standby_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(app.runner, "STANDBY_RESPAWN_SECONDS", 0.1)
    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(url, tmp_path / "runs", standby=True)
    try:
        standby = runner._standby[0]
        cmdline = Path(f"/proc/{standby.pid}/cmdline").read_bytes().decode()
        assert "app.standby" in cmdline and "sqlite" not in cmdline  # the URL travels in the environment only
        info = runner.start(SWEEP, "warm")
        assert info.pid == standby.pid and runner.is_running("warm")
        assert _wait(lambda: any(t.state.name == "RUNNING" and len(read_curves(open_storage(url), [t])[t._trial_id])
                                 for t in _trials(url, "warm")))
        log = info.log.read_text()
        assert log.startswith("\n$ lorascope sweep") and "Traceback" not in log
        assert _wait(lambda: runner._standby is not None)  # the next one warms up for the next Start
        assert runner._standby[0].pid != standby.pid
        assert "stopped" in runner.stop("warm") and not runner.is_running("warm")
        assert _wait(lambda: standby.poll() is not None, 10)
        assert {t.user_attrs.get("outcome", {}).get("status") for t in _trials(url, "warm")} == {"stopped"}
    finally:
        runner.close_standby()


def test_a_standby_without_a_command_ends_and_runs_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(url, tmp_path / "runs", standby=True)
    proc = runner._standby[0]
    runner.close_standby()  # as when the app exits: its end of the pipe closes
    assert proc.returncode == 0 and runner._standby is None
    assert not (tmp_path / "s.db").exists() and list_runs(f"sqlite:///{tmp_path}/other.db") == []


def test_a_dead_standby_leaves_start_to_a_fresh_worker(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(url, tmp_path / "runs", standby=True)
    standby = runner._standby[0]
    standby.kill()
    standby.wait()
    info = runner.start(SWEEP, "cold")
    try:
        assert info.pid != standby.pid and runner.is_running("cold")
        assert "app.cli" in Path(f"/proc/{info.pid}/cmdline").read_bytes().decode()
    finally:
        runner.stop("cold")
        runner.close_standby()
