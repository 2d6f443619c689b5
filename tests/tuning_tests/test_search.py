"""Alpha search per rank: resumable studies, pruning, kill -9 recovery, and the half-offset law."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from core.specs import PackSpec, SpecError, TrialSpec
from tuning.curves import read_curves
from tuning.fit import fit_report
from tuning.results import collect_records
from tuning.search import SearchSpec, finished_count, run_search, search_study_names


def _base(**kw):
    return TrialSpec(**{"task": "synthetic-facts", "steps": 40, "batch_size": 16, "eval_every": 10,
                        "device": "cpu", **kw})


def test_each_rank_gets_its_own_study_with_trials_per_rank(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    search = SearchSpec(ranks=(4, 16), alpha_min=1.0, alpha_max=1000.0, trials_per_rank=3)
    studies = run_search(url, "a", _base(), search)
    assert search_study_names(url, "a") == ["a/r4", "a/r16"]
    for study in studies:
        assert finished_count(study) == 3
        assert all(1.0 <= t.params["alpha"] <= 1000.0 for t in study.trials)
    records, settings = collect_records(url, "a")
    assert {r["rank"] for r in records} == {4, 16} and settings["kind"] == "search"
    assert all(r["rule"] == "standard" and r["lr"] == search.lr for r in records)


def test_rerun_with_more_trials_continues_the_same_studies(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    run_search(url, "b", _base(), SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=2))
    first = optuna.load_study(study_name="b/r4", storage=url).trials
    study = run_search(url, "b", _base(), SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=4))[0]
    assert len(study.trials) == 4
    assert [t.value for t in study.trials[:2]] == [t.value for t in first]


def test_changing_the_searched_range_needs_a_new_study(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    run_search(url, "c", _base(steps=5), SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=1))
    with pytest.raises(SpecError, match="alpha-max"):
        run_search(url, "c", _base(steps=5), SearchSpec(ranks=(4,), alpha_max=200.0, trials_per_rank=1))


def test_grid_sampler_tries_log_spaced_alphas(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    search = SearchSpec(ranks=(4,), alpha_min=1.0, alpha_max=1000.0, trials_per_rank=4, sampler="grid")
    study = run_search(url, "g", _base(steps=5), search)[0]
    assert sorted(t.params["alpha"] for t in study.trials) == pytest.approx([1.0, 10.0, 100.0, 1000.0])


def test_median_pruner_stops_bad_alphas_early(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    search = SearchSpec(ranks=(16,), alpha_min=0.01, alpha_max=1000.0, trials_per_rank=8, sampler="grid",
                        pruner="median")
    study = run_search(url, "p", _base(steps=80), search)[0]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "median pruning stopped no trial"
    assert all(max(t.intermediate_values) < 79 for t in pruned)
    assert study.best_trial.params["alpha"] > 1.0  # the tiny alphas learn nothing and get pruned


def _search_cmd(url):
    return [sys.executable, "-m", "app.cli", "search", "--task", "synthetic-facts", "--ranks", "4",
            "--trials-per-rank", "3", "--steps", "1500", "--batch-size", "8", "--alpha-max", "100",
            "--storage", url, "--study", "k", "--quiet", "--pack", "1"]  # one at a time: some finish while one runs


def test_kill_9_mid_search_loses_no_completed_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    proc = subprocess.Popen(_search_cmd(url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, complete = time.time() + 240, []
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            running_study = optuna.load_study(study_name="k/r4", storage=url)
            trials = running_study.trials
        except Exception:  # noqa: BLE001 - not created yet
            continue
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        if complete and any(t.state.name == "RUNNING" and len(read_curves(running_study._storage, [t])[t._trial_id])
                            for t in trials):
            break
    assert complete, "no trial finished before the deadline"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {t.number: t.value for t in complete}

    rerun = subprocess.run(_search_cmd(url), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="k/r4", storage=url)
    assert finished_count(study) == 3
    for number, value in kept.items():
        assert study.trials[number].value == value
    killed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(killed) == 1 and killed[0].user_attrs["outcome"]["status"] == "killed"
    retried = [t for t in study.trials if t.user_attrs.get("retry_of", {}).get("trial") == killed[0].number]
    assert retried and retried[0].params["alpha"] == killed[0].params["alpha"]
    assert read_curves(study._storage, retried)[retried[0]._trial_id][0]["step"] == 0  # its own curve, not the dead trial's


@pytest.mark.slow
def test_standard_and_rslora_exponents_differ_by_one_half(tmp_path):
    """gamma is the same function of alpha under both rules, shifted by sqrt(r)."""
    url = f"sqlite:///{tmp_path}/s.db"
    laws = {}
    for rule in ("standard", "rslora"):
        search = SearchSpec(ranks=(4, 16, 64), rule=rule, alpha_min=1.0, alpha_max=4096.0, trials_per_rank=10)
        # one trial at a time, so TPE models every earlier trial (a pack of 8 would be mostly random)
        run_search(url, rule, _base(steps=150, batch_size=64, eval_every=50), search, pack=PackSpec(1))
        records, _ = collect_records(url, rule)
        entry = fit_report(records)["rules"][rule]
        laws[rule] = entry["law"]
        for optimum in entry["optima"]:
            assert optimum["alpha_min"] <= optimum["alpha"] <= optimum["alpha_max"]
    std, rs = laws["standard"], laws["rslora"]
    assert rs["p_ci"][0] <= std["p"] - 0.5 <= rs["p_ci"][1]
    assert std["p_ci"][0] <= rs["p"] + 0.5 <= std["p_ci"][1]
    assert std["p"] - rs["p"] == pytest.approx(0.5, abs=0.25)
