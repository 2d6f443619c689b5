"""Worker processes: one per GPU with the storage URL in the environment only; waiting; stopping."""

import os
import subprocess
import sys
import time

import optuna
import pytest

from core.specs import SpecError, TrialSpec
from tuning.attrs import SETTINGS_ATTR
from tuning.curves import read_curves
from tuning.storage import STORAGE_ENV, open_storage
from tuning.sweep import SweepGrid, prepare_sweep
from tuning.workers import GPU_ENV, serve, spawn_workers, worker_argv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = "postgresql://lorascope:s3cret-pw@db.example:5432/lorascope"


def _cli(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop(STORAGE_ENV, None)
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=kwargs.get("cwd", ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_one_child_per_gpu_with_storage_and_gpu_in_env_not_argv():
    calls = []
    spawn_workers(URL, "big/sweep", [0, 1, 3], wait=True, extra=["--quiet"],
                  popen=lambda argv, env: calls.append((argv, env)))
    assert [env[GPU_ENV] for _, env in calls] == ["0", "1", "3"]
    assert all(env[STORAGE_ENV] == URL and env["PATH"] == os.environ["PATH"] for _, env in calls)
    for argv, _ in calls:
        assert argv == [sys.executable, "-m", "app.cli", "worker", "--study", "big/sweep", "--wait", "--quiet"]
        assert not any("s3cret" in part or "storage" in part for part in argv)
    assert "--wait" not in worker_argv("s", wait=False)


@pytest.mark.parametrize("gpus", [[0, 0], [-1]])
def test_repeated_or_negative_gpus_are_refused(gpus):
    with pytest.raises(SpecError, match="--gpus must be distinct"):
        spawn_workers(URL, "s", gpus, wait=False, popen=lambda argv, env: pytest.fail("started a worker"))


def test_serve_without_wait_runs_until_nothing_is_left_and_says_so():
    said, runs = [], iter([2, 1, 0])
    total = serve(lambda: next(runs), wait=False, stopped=lambda: False, study="s", say=said.append,
                  sleep=lambda s: pytest.fail("slept"))
    assert total == 3 and said == ["worker: study 's' has nothing left to run; exiting"]


def test_serve_with_wait_polls_for_new_work_until_the_stop_flag():
    said, slept, runs = [], [], iter([0, 0, 2, 0, 0])
    total = serve(lambda: next(runs), wait=True, stopped=lambda: len(slept) == 4, study="s", every=7.0,
                  say=said.append, sleep=slept.append)
    assert total == 2 and slept == [7.0] * 4
    assert said == ["worker: waiting for new trials in study 's' (end with `lorascope stop` or Ctrl-C)"] * 2 + [
        "worker: stop requested for study 's'; exiting"]


def test_serve_without_wait_watches_trials_running_elsewhere_until_they_end_or_come_back():
    said, slept, runs, running = [], [], iter([0, 0, 1, 0]), iter([2, 1, 0])
    total = serve(lambda: next(runs), wait=False, stopped=lambda: False, study="s", busy=lambda: next(running),
                  every=1.0, say=said.append, sleep=slept.append)
    assert total == 1 and slept == [1.0, 1.0]  # the second look found a dead worker's trial queued again
    assert said == ["worker: nothing queued in study 's'; watching 2 trial(s) running elsewhere "
                    "(a trial whose worker dies runs again)",
                    "worker: nothing queued in study 's'; watching 1 trial(s) running elsewhere "
                    "(a trial whose worker dies runs again)",
                    "worker: study 's' has nothing left to run; exiting"]


def test_serve_does_not_start_on_a_stopped_study():
    said = []
    assert serve(lambda: pytest.fail("ran"), wait=True, stopped=lambda: True, study="s", say=said.append) == 0
    assert said == ["worker: stop requested for study 's'; exiting"]


@pytest.mark.slow
def test_gpu_children_find_the_storage_from_the_environment_and_exit_0_with_nothing_to_do(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"  # absolute, and not the default: children must get it from env
    study = optuna.create_study(study_name="done", storage=open_storage(url))
    study.set_user_attr(SETTINGS_ATTR, {"kind": "sweep", "base": TrialSpec(task="synthetic-facts").to_dict()})
    proc = _cli("worker", "--storage", url, "--study", "done", "--gpus", "0,1", "--quiet", cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert err.count("worker: study 'done' has nothing left to run; exiting") == 2


def _steps_run(study):
    """Curve points recorded so far over the study's trials."""
    return sum(len(curve) for curve in read_curves(study._storage, study.get_trials()).values())


@pytest.mark.slow
def test_stop_from_another_process_ends_a_worker_mid_trial(pg_url):
    base = TrialSpec(task="synthetic-facts", steps=200_000, batch_size=8, lr=1e-3, device="cpu")
    prepare_sweep(pg_url, "long", base, SweepGrid(ranks=(4,), rules=("rslora",), alphas=(8.0,), lrs=(1e-3,)))
    worker = _cli("worker", "--storage", pg_url, "--study", "long", "--wait", "--quiet")
    try:
        study = optuna.load_study(study_name="long", storage=pg_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _steps_run(study):
            time.sleep(0.2)
        assert _steps_run(study), "the worker never started training"
        stopper = _cli("stop", "--storage", pg_url, "--study", "long")
        assert stopper.wait(timeout=300) == 0
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert "worker: stop requested for study 'long'; exiting" in err and "s3cret" not in err
        (trial,) = optuna.load_study(study_name="long", storage=pg_url).get_trials()
        assert trial.state != optuna.trial.TrialState.COMPLETE and 0 < _steps_run(study) < base.steps
    finally:
        worker.kill()
        worker.wait()
