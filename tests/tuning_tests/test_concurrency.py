"""Several processes on one study: each queued point runs once, nothing is sampled, the dead are retried."""

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from core.specs import TrialSpec
from tuning.curves import CurveWriter, read_curves
from tuning.queue import (MAX_RETRIES, claim_waiting, fail_dead_local_trials, fail_if_running, fail_stale_trials,
                          point_key, retry)
from tuning.search import SearchSpec, open_search
from tuning.storage import open_storage
from tuning.sweep import SweepGrid, prepare_sweep, run_pending
from tuning.worker import open_study_for_worker

ROOT = Path(__file__).resolve().parents[2]
BASE = TrialSpec(task="synthetic-style", steps=4, batch_size=4, eval_every=2, device="cpu")
GRID12 = SweepGrid(ranks=(1, 2, 4, 8, 16, 32), rules=("standard", "rslora"), alphas=(8.0,), lrs=(3e-3,))
GRID12_FLAGS = ["--task", "synthetic-style", "--ranks", "1,2,4,8,16,32", "--rules", "standard,rslora",
                "--alphas", "8", "--lrs", "3e-3", "--steps", "4", "--batch-size", "4", "--eval-every", "2",
                "--device", "cpu"]


def _grid_point(trial):
    return point_key({name: trial.params[name] for name in ("rank", "alpha", "rule", "lr", "seed")})


def _assert_each_point_once_and_complete(url, name, grid):
    trials = optuna.load_study(study_name=name, storage=url).trials
    assert sorted(_grid_point(t) for t in trials) == sorted(point_key(p) for p in grid.points())
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(grid.points())


def _run_all(commands):
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, err


@pytest.mark.parametrize("rules", [("rslora", "standard"), ("standard", "rslora")])
def test_a_sweep_never_prunes_whatever_the_rule_order(tmp_path, rules):
    url = f"sqlite:///{tmp_path}/s.db"
    base = TrialSpec(task="synthetic-style", steps=24, batch_size=16, eval_every=2, device="cpu")
    grid = SweepGrid(ranks=(1, 4, 16, 64, 200), rules=rules, alphas=(12.0,), lrs=(3e-3,), seed=11)
    run_pending(prepare_sweep(url, "s", base, grid), base)
    _assert_each_point_once_and_complete(url, "s", grid)
    assert isinstance(open_study_for_worker(url, "s").pruner, optuna.pruners.NopPruner)


def test_a_worker_rebuilds_the_search_pruner_stored_with_the_study(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    open_search(url, "a", BASE.with_params(steps=40), SearchSpec(ranks=(4,), pruner="median", sampler="grid"))
    study = open_study_for_worker(url, "a/r4")
    assert isinstance(study.pruner, optuna.pruners.MedianPruner) and study.pruner._n_warmup_steps == 10
    assert isinstance(study.sampler, optuna.samplers.GridSampler)


def test_a_trial_is_claimed_by_one_process_only(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = prepare_sweep(url, "c", BASE, SweepGrid((4,), ("standard",), (8.0,), (3e-3,)))
    other = optuna.load_study(study_name="c", storage=open_storage(url))
    assert len(claim_waiting(study, 5)) == 1
    assert claim_waiting(other, 5) == []  # nothing queued is left, and nothing is sampled instead
    assert len(other.trials) == 1


def test_a_trial_is_failed_and_retried_by_one_process_only(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = prepare_sweep(url, "f", BASE, SweepGrid((4,), ("standard",), (8.0,), (3e-3,)))
    trial = claim_waiting(study)[0]
    assert fail_if_running(study, trial._trial_id, {"status": "killed"})
    assert not fail_if_running(study, trial._trial_id, {"status": "killed"})
    dead = study._storage.get_trial(trial._trial_id)
    assert retry(study, dead) and not retry(study, dead)  # the point is queued again once
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_the_retry_of_a_dead_trial_starts_with_an_empty_curve(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base = BASE.with_params(steps=12)
    study = prepare_sweep(url, "r", base, SweepGrid((4,), ("standard",), (8.0,), (3e-3,)))
    trial = claim_waiting(study)[0]
    writer = CurveWriter.for_trial(trial, flush_seconds=0.0)
    for step in range(5):
        writer.add({"step": step, "loss": 1.0, "grad_norm": 1.0})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial.set_user_attr("pid", dead.pid)  # the process that ran it is gone
    assert fail_dead_local_trials(study) == [trial.number]
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert not [key for key in queued.user_attrs if key.startswith("curve_")]
    assert queued.user_attrs["retry_of"] == {"trial": trial.number, "attempt": 1}
    run_pending(study, base)
    rerun = study._storage.get_trial(queued._trial_id)
    assert rerun.state == TrialState.COMPLETE
    assert [r["step"] for r in read_curves(study._storage, [rerun])[rerun._trial_id]] == list(range(12))


def test_a_stale_trial_is_failed_after_the_grace_period_and_retried_fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_GRACE_SECONDS", "1")
    url = f"sqlite:///{tmp_path}/s.db"
    study = prepare_sweep(url, "h", BASE, SweepGrid((4,), ("standard",), (8.0,), (3e-3,)))
    trial = claim_waiting(study)[0]  # beats once, then its machine goes silent
    trial.set_user_attr("curve_00000", [{"step": 0, "loss": 1.0}])
    time.sleep(2.5)
    assert fail_stale_trials(study) == [trial.number]
    assert fail_stale_trials(study) == []
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert "curve_00000" not in queued.user_attrs and queued.user_attrs["retry_of"]["trial"] == trial.number


def test_a_trial_whose_process_died_before_its_first_beat_is_failed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_GRACE_SECONDS", "1")
    url = f"sqlite:///{tmp_path}/s.db"
    study = prepare_sweep(url, "b", BASE, SweepGrid((4, 8), ("standard",), (8.0,), (3e-3,)))
    beaten = claim_waiting(study)[0]
    (unbeaten,) = study.get_trials(states=(TrialState.WAITING,))
    # claimed (RUNNING) by a process killed before it recorded a heartbeat: Optuna's stale check skips it
    assert study._storage.set_trial_state_values(unbeaten._trial_id, TrialState.RUNNING)
    assert fail_stale_trials(study) == []  # first seen now, silent for less than the grace period
    time.sleep(1.2)
    study._storage.record_heartbeat(beaten._trial_id)  # the other trial's process is alive
    assert fail_stale_trials(study) == [unbeaten.number]
    assert study._storage.get_trial(unbeaten._trial_id).user_attrs["outcome"]["status"] == "killed"
    assert study._storage.get_trial(beaten._trial_id).state == TrialState.RUNNING
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs["retry_of"]["trial"] == unbeaten.number and fail_stale_trials(study) == []


def test_a_killed_trial_whose_retry_was_never_queued_is_queued_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASCOPE_HEARTBEAT_SECONDS", "1")
    url = f"sqlite:///{tmp_path}/s.db"
    study = prepare_sweep(url, "o", BASE, SweepGrid((4, 8), ("standard",), (8.0,), (3e-3,)))
    first, second = claim_waiting(study, 2)
    second.set_user_attr("retry_of", {"trial": -1, "attempt": MAX_RETRIES})  # its point's last allowed attempt
    # the process that declared them dead died before it queued their retries
    for trial in (first, second):
        assert fail_if_running(study, trial._trial_id, {"status": "killed", "error": "no heartbeat"})
    assert fail_stale_trials(study) == []
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["retry_of"] for t in queued] == [{"trial": first.number, "attempt": 1}]
    assert queued[0].system_attrs["fixed_params"] == study._storage.get_trial(first._trial_id).system_attrs["fixed_params"]
    assert fail_stale_trials(study) == [] and len(study.get_trials(states=(TrialState.WAITING,))) == 1
    # the other point had used up its retries: it stays failed
    assert study._storage.get_trial(second._trial_id).state == TrialState.FAIL


def test_a_worker_whose_trial_was_failed_under_it_goes_on(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    grid = SweepGrid((4, 8), ("standard",), (8.0,), (3e-3,))
    study = prepare_sweep(url, "g", BASE, grid)
    taken = []

    def another_process_declares_it_dead(trial, record):
        if not taken and record["step"] == 2:
            taken.append(trial.number)
            assert fail_if_running(study, trial._trial_id, {"status": "killed", "error": "no heartbeat"})
            retry(study, study._storage.get_trial(trial._trial_id))

    run_pending(study, BASE, on_record=another_process_declares_it_dead)
    states = {t.number: t.state for t in study.trials}
    assert states.pop(taken[0]) == TrialState.FAIL and list(states.values()) == [TrialState.COMPLETE] * 2
    assert sorted(_grid_point(t) for t in study.trials if t.state == TrialState.COMPLETE) == \
        sorted(point_key(p) for p in grid.points())
    assert capsys.readouterr().err.count("failed by another process") == 1


@pytest.mark.slow
def test_three_workers_on_a_queued_study_run_each_point_exactly_once(tmp_path):
    for repetition in range(3):
        url = f"sqlite:///{tmp_path}/w{repetition}.db"
        prepare_sweep(url, "q", BASE, GRID12)
        worker = [sys.executable, "-m", "app.cli", "worker", "--storage", url, "--study", "q", "--quiet"]
        _run_all([worker] * 3)
        _assert_each_point_once_and_complete(url, "q", GRID12)


@pytest.mark.slow
def test_two_sweeps_launched_together_queue_each_point_once(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    sweep = [sys.executable, "-m", "app.cli", "sweep", *GRID12_FLAGS, "--storage", url, "--study", "new", "--quiet"]
    _run_all([sweep] * 2)
    _assert_each_point_once_and_complete(url, "new", GRID12)


@pytest.mark.slow
def test_two_workers_on_a_search_rank_create_exactly_trials_per_rank(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    open_search(url, "a", BASE, SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=5))
    worker = [sys.executable, "-m", "app.cli", "worker", "--storage", url, "--study", "a/r4", "--quiet"]
    _run_all([worker] * 2)
    trials = optuna.load_study(study_name="a/r4", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
