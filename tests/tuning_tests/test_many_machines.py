"""Many machines on one PostgreSQL study: `lorascope worker` processes, SIGKILL, Stop, uploads, plain Optuna.

Each worker is a separate process with the storage URL in its environment, as on another machine;
a worker started in another folder with another cache stands in for a machine that cannot read
the UI's files.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from app.forms import CUSTOM, sweep_form
from app.runner import Runner
from core.specs import SearchSpec, SweepGrid, TrialSpec
from tuning.attrs import OUTCOME_ATTR, RETRY_ATTR, SETTINGS_ATTR
from tuning.datasets import DATASET_SETTING
from tuning.curves import read_curves
from tuning.queue import point_key, point_of
from tuning.search import open_search
from tuning.storage import STORAGE_ENV
from tuning.sweep import prepare_sweep

ROOT = Path(__file__).resolve().parents[2]
BASE = TrialSpec(task="synthetic-style", steps=4, batch_size=4, eval_every=2, device="cpu")
GRID12 = SweepGrid(ranks=(1, 2, 4, 8, 16, 32), rules=("standard", "rslora"), alphas=(8.0,), lrs=(3e-3,))
# a silent worker counts as dead after 3 s (default 120 s), so a lost trial comes back within seconds
FAST_HEARTBEAT = {"LORASCOPE_HEARTBEAT_SECONDS": "1", "LORASCOPE_HEARTBEAT_GRACE_SECONDS": "3"}


def _worker(url, study, *extra, cwd=ROOT, env=None):
    """`lorascope worker` in its own process; the storage URL (with its password) only in the environment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), STORAGE_ENV: url, **FAST_HEARTBEAT, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--study", study, "--quiet", *extra],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs, timeout=600):
    """Wait for every worker; each must exit 0 without a traceback. Returns their stderr."""
    errs = []
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0 and "Traceback" not in err, err
        errs.append(err)
    return errs


def _point(trial):
    return point_key({name: trial.params[name] for name in ("rank", "alpha", "rule", "lr", "seed")})


def _running_with_steps(url, name):
    """RUNNING trials of study ``name`` that have written curve points."""
    study = optuna.load_study(study_name=name, storage=url)
    running = study.get_trials(states=(TrialState.RUNNING,))
    curves = read_curves(study._storage, running)
    return [t for t in running if len(curves[t._trial_id])]


def _wait_for(check, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the workers")


def _assert_plain_optuna_reads(url, name, params):
    """optuna-dashboard's path: plain optuna.load_study on the URL, and optuna.visualization figures."""
    study = optuna.load_study(study_name=name, storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    history = optuna.visualization.plot_optimization_history(study)
    assert sorted(history.data[0].y) == sorted(t.value for t in complete)
    optuna.visualization.plot_slice(study, params=params)
    optuna.visualization.plot_parallel_coordinate(study, params=params)
    intermediate = optuna.visualization.plot_intermediate_values(study)
    assert len(intermediate.data) == len(complete)  # one line per trial: the eval losses reported on the way


@pytest.mark.slow
def test_three_workers_run_each_grid_point_exactly_once(pg_url):
    prepare_sweep(pg_url, "grid", BASE, GRID12)
    errs = _finish([_worker(pg_url, "grid") for _ in range(3)])
    assert all("worker: study 'grid' has nothing left to run; exiting" in err for err in errs)
    trials = optuna.load_study(study_name="grid", storage=pg_url).trials
    assert sorted(_point(t) for t in trials) == sorted(point_key(p) for p in GRID12.points())  # none lost, none extra
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    _assert_plain_optuna_reads(pg_url, "grid", ["rank", "rule"])


@pytest.mark.slow
def test_three_workers_join_a_search_by_its_name_and_fill_every_rank(pg_url):
    search = SearchSpec(ranks=(2, 4, 8), alpha_min=1.0, alpha_max=64.0, trials_per_rank=4, seed=3)
    open_search(pg_url, "alpha", BASE, search)
    errs = _finish([_worker(pg_url, "alpha") for _ in range(3)])
    assert all("worker: study 'alpha' has nothing left to run; exiting" in err for err in errs)
    for rank in search.ranks:
        trials = optuna.load_study(study_name=f"alpha/r{rank}", storage=pg_url).trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, rank  # exactly trials-per-rank, no extra
        assert {point_of(t)["rank"] for t in trials} == {rank}
        assert all(1.0 <= t.params["alpha"] <= 64.0 for t in trials)
    _assert_plain_optuna_reads(pg_url, "alpha/r4", ["alpha"])


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_one_trial_which_another_worker_reruns(pg_url):
    base = BASE.with_params(steps=400, eval_every=100)
    grid = SweepGrid(ranks=(2, 4, 8), rules=("standard",), alphas=(8.0,), lrs=(3e-3,))
    prepare_sweep(pg_url, "kill", base, grid)
    workers = [_worker(pg_url, "kill", "--pack", "1") for _ in range(3)]  # a killed pack loses all its trials
    try:
        victim = _wait_for(lambda: _running_with_steps(pg_url, "kill"))[0]
        os.kill(victim.user_attrs["pid"], signal.SIGKILL)  # no goodbye: only its heartbeats stop
        killed = next(proc for proc in workers if proc.pid == victim.user_attrs["pid"])
        assert killed.wait(timeout=60) == -signal.SIGKILL
        _finish([proc for proc in workers if proc is not killed])
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()
    trials = {t.number: t for t in optuna.load_study(study_name="kill", storage=pg_url).trials}
    dead = trials.pop(victim.number)
    assert dead.state == TrialState.FAIL and dead.user_attrs[OUTCOME_ATTR]["status"] == "killed"
    assert "no heartbeat" in dead.user_attrs[OUTCOME_ATTR]["error"]
    (rerun,) = [t for t in trials.values() if t.user_attrs.get(RETRY_ATTR, {}).get("trial") == victim.number]
    assert _point(rerun) == _point(dead) and rerun.user_attrs["pid"] != dead.user_attrs["pid"]
    assert [t.state for t in trials.values()] == [TrialState.COMPLETE] * 3
    assert sorted(_point(t) for t in trials.values()) == sorted(point_key(p) for p in grid.points())


@pytest.mark.slow
def test_lorascope_stop_ends_every_worker_of_a_search_within_seconds(pg_url):
    base = BASE.with_params(steps=100_000, eval_every=1000)
    open_search(pg_url, "endless", base, SearchSpec(ranks=(2, 4, 8), alpha_max=64.0, trials_per_rank=1))
    workers = [_worker(pg_url, "endless", "--wait") for _ in range(3)]
    try:
        _wait_for(lambda: sum(len(_running_with_steps(pg_url, f"endless/r{r}")) for r in (2, 4, 8)) == 3)
        stop = subprocess.run([sys.executable, "-m", "app.cli", "stop", "--study", "endless"], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT), STORAGE_ENV: pg_url},
                              capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stderr
        for proc in workers:  # the stop flag is polled every 2 s, between training steps
            assert proc.wait(timeout=10) == 0
        errs = [proc.stderr.read() for proc in workers]
        assert all("worker: stop requested for study 'endless'; exiting" in err for err in errs), errs
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()
    for rank in (2, 4, 8):
        (trial,) = optuna.load_study(study_name=f"endless/r{rank}", storage=pg_url).trials
        assert trial.state == TrialState.FAIL and trial.user_attrs[OUTCOME_ATTR]["status"] == "stopped"


@pytest.mark.slow
def test_a_study_made_in_the_ui_with_an_upload_is_finished_by_a_worker_elsewhere(pg_url, tmp_path, monkeypatch):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)  # the UI's worker inherits them
    upload = tmp_path / "ui-machine" / "facts.jsonl"
    upload.parent.mkdir()
    upload.write_text("".join(json.dumps({"prompt": f"Where is town {i}?", "completion": f" In Velmora {i}."}) + "\n"
                              for i in range(24)))
    content = upload.read_bytes()
    from app.tabs.run_tab import stable_upload

    runner = Runner(pg_url, run_dir=tmp_path / "ui-machine" / "runs")
    data = stable_upload(str(upload), runner.log_dir.parent)  # what the Run tab's Start does with an upload
    form = sweep_form(CUSTOM, "", data, "2,4", ["standard"], 16.0, "8", 1e-3, 3, 2, "cpu")
    assert form.ok, form.errors
    runner.start(form.argv, "ui-upload")

    def created():
        try:
            study = optuna.load_study(study_name="ui-upload", storage=pg_url)
        except KeyError:
            return False
        return len(study.trials) == 2 and DATASET_SETTING in study.user_attrs.get(SETTINGS_ATTR, {})

    _wait_for(created)
    os.killpg(runner.pid("ui-upload"), signal.SIGKILL)  # the UI's machine goes away
    for path in (upload, Path(data)):
        path.unlink()  # and nothing of it can be read from the worker's machine
    elsewhere = tmp_path / "worker-machine"
    elsewhere.mkdir()
    (err,) = _finish([_worker(pg_url, "ui-upload", cwd=elsewhere, env={"XDG_CACHE_HOME": str(elsewhere / "cache")})])
    assert "nothing left to run" in err
    study = optuna.load_study(study_name="ui-upload", storage=pg_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.params["rank"] for t in complete) == [2, 4]
    (cached,) = (elsewhere / "cache" / "lorascope" / "datasets").glob("*/facts.jsonl")
    assert cached.read_bytes() == content


@pytest.mark.parametrize("command", ["worker", "stop"])
@pytest.mark.parametrize("problem", ["password", "port"])
def test_a_wrong_or_unreachable_storage_is_one_line_exit_2_without_password(pg_server, pg_url, command, problem):
    database = pg_url.rsplit("/", 1)[1]
    url = {"password": pg_server.url(database, password="wrong-secret-7"),
           "port": pg_server.url(database, port=_closed_port())}[problem]
    done = subprocess.run([sys.executable, "-m", "app.cli", command, "--storage", url, "--study", "s"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("lorascope: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "wrong-secret-7" not in done.stderr and pg_server.password not in done.stderr
    assert "***" in done.stderr and ("password authentication failed" if problem == "password" else "refused") in \
        done.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
