"""Sweeps as Optuna studies: results, live curves, resume after a kill, recorded failures."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from core.specs import SpecError, TrialSpec
from tuning.curves import read_curves
from tuning.results import study_results
from tuning.storage import load_study
from tuning.sweep import SweepGrid, prepare_sweep, run_pending


def _base(**kw):
    kw = {"task": "synthetic-facts", "steps": 20, "batch_size": 16, "lr": 1e-3, "device": "cpu", **kw}
    return TrialSpec(**kw)


def test_sweep_stores_one_complete_trial_per_grid_point(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base, grid = _base(), SweepGrid(ranks=(4, 16), rules=("standard", "rslora"), alphas=(16.0,), lrs=(1e-3,))
    study = prepare_sweep(url, "g", base, grid)
    run_pending(study, base)
    results = study_results(load_study(url, "g"))
    trials = results["trials"]
    assert results["study"] == "g" and len(trials) == 4
    assert {(t["rank"], t["rule"]) for t in trials} == {(4, "standard"), (16, "standard"), (4, "rslora"), (16, "rslora")}
    for t in trials:
        assert t["state"] == "COMPLETE" and t["error"] is None
        assert t["gamma"] == pytest.approx(16.0 / (t["rank"] if t["rule"] == "standard" else t["rank"] ** 0.5))
        assert [p["step"] for p in t["curve"]] == list(range(20))
        assert t["final_loss"] > 0 and t["eval_loss"] >= t["svd_floor"] - 1e-6
        assert t["tokens_per_s"] > 0 and t["seconds"] > 0
    json.dumps(results)  # serialisable as is


def test_curve_is_readable_from_another_connection_while_trial_runs(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base = _base(steps=300, task="synthetic-style")
    study = prepare_sweep(url, "live", base, SweepGrid(ranks=(4,), rules=("rslora",), alphas=(16.0,), lrs=(1e-3,)))
    seen = {}

    def on_record(trial, record):
        if record["step"] == 250:
            other = optuna.load_study(study_name="live", storage=url)
            running = other.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            seen["steps"] = [r["step"] for r in study_results(other)["trials"][0]["curve"]]
            seen["running"] = len(running)

    run_pending(study, base, on_record=on_record)
    assert seen["running"] == 1
    # at most FLUSH_RECORDS (200) records wait in the buffer, so over 50 of 251 must be visible
    assert len(seen["steps"]) > 50 and seen["steps"] == list(range(len(seen["steps"])))


def test_rerunning_a_finished_sweep_runs_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base, grid = _base(steps=5), SweepGrid(ranks=(4,), rules=("standard",), alphas=(16.0,), lrs=(1e-3,))
    run_pending(prepare_sweep(url, "again", base, grid), base)
    study = prepare_sweep(url, "again", base, grid)
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 0
    assert len(study.trials) == 1


def test_growing_the_grid_runs_only_new_points(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base = _base(steps=5)
    run_pending(prepare_sweep(url, "grow", base, SweepGrid((4,), ("standard",), (16.0,), (1e-3,))), base)
    study = prepare_sweep(url, "grow", base, SweepGrid((4, 8), ("standard",), (16.0,), (1e-3,)))
    run_pending(study, base)
    assert sorted(t.params["rank"] for t in study.trials) == [4, 8]


def test_changed_settings_on_an_existing_study_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    grid = SweepGrid((4,), ("standard",), (16.0,), (1e-3,))
    prepare_sweep(url, "fixed", _base(steps=5), grid)
    with pytest.raises(SpecError, match="steps=5"):
        prepare_sweep(url, "fixed", _base(steps=7), grid)


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base = _base(steps=5)
    study = prepare_sweep(url, "fails", base, SweepGrid((512, 4), ("standard",), (16.0,), (1e-3,)))
    run_pending(study, base)
    by_rank = {t["rank"]: t for t in study_results(study)["trials"]}
    assert by_rank[512]["state"] == "FAIL" and "exceeds" in by_rank[512]["error"]
    assert by_rank[4]["state"] == "COMPLETE"


def _sweep_cmd(url):
    return [sys.executable, "-m", "app.cli", "sweep", "--task", "synthetic-facts", "--ranks", "4,8,16",
            "--rules", "standard", "--steps", "1500", "--batch-size", "8", "--storage", url,
            "--study", "killed", "--quiet", "--pack", "1"]  # one at a time: some finish while one runs


def test_killed_sweep_resumes_keeping_finished_trials(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_sweep_cmd(url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    complete = []
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            running_study = optuna.load_study(study_name="killed", storage=url)
            trials = running_study.trials
        except (KeyError, Exception):  # noqa: BLE001 - the study may not exist yet
            continue
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        running = [t for t in trials if t.state.name == "RUNNING"
                   and len(read_curves(running_study._storage, [t])[t._trial_id])]
        if complete and running:
            break
    assert complete, "the first trial never finished"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {t.number: t.value for t in complete}

    rerun = subprocess.run(_sweep_cmd(url), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="killed", storage=url)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 3
    assert sorted(t.params["rank"] for t in study.trials if t.state.name == "COMPLETE") == [4, 8, 16]
    for number, value in finished.items():
        assert study.trials[number].value == value  # kept, not rerun
    killed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(killed) == 1 and killed[0].user_attrs["outcome"]["status"] == "killed"


def test_sqrt_law_adds_alpha_c_sqrt_r_under_standard():
    grid = SweepGrid(ranks=(4, 16), rules=("rslora",), alphas=(8.0,), lrs=(1e-3,), sqrt_law_c=8.0)
    law = [p for p in grid.points() if p["rule"] == "standard"]
    assert [(p["rank"], p["alpha"]) for p in law] == [(4, 16.0), (16, 32.0)]
    assert len(grid.points()) == 4


def test_sqrt_law_coefficient_must_be_positive():
    with pytest.raises(SpecError, match="sqrt-law-c"):
        SweepGrid(ranks=(4,), rules=("standard",), alphas=(8.0,), lrs=(1e-3,), sqrt_law_c=0.0)
