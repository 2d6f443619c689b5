"""Packed sweeps, searches and workers: K claimed trials train together, each stays its own trial."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import app.cli
import app.commands
from core import factory, synthetic
from core.specs import PackSpec, TrialSpec
from tuning.attrs import OUTCOME_ATTR
from tuning.curves import read_curves
from tuning.queue import point_key
from tuning.search import SearchSpec, run_search
from tuning.sweep import SweepGrid, prepare_sweep, run_pending

ROOT = Path(__file__).resolve().parents[2]
BASE = TrialSpec(task="synthetic-facts", steps=8, batch_size=8, eval_every=3, device="cpu")
GRID8 = SweepGrid(ranks=(4, 16, 64, 128), rules=("standard", "rslora"), alphas=(16.0,), lrs=(3e-3,))
WILD = {"rank": 8, "alpha": 1e6, "rule": "standard", "lr": 10.0, "seed": 0}  # its loss grows past 1e16


def _sweep(tmp_path, name, pack, grid=GRID8, extra=(), **hooks):
    url = f"sqlite:///{tmp_path}/{name}.db"
    study = prepare_sweep(url, name, BASE, grid)
    for params in extra:
        study.enqueue_trial(params)
    run_pending(study, BASE, pack=PackSpec(pack), **hooks)
    return study


def _by_point(study):
    trials = study.get_trials()
    curves = read_curves(study._storage, trials)
    return {point_key(t.params): (t, list(curves[t._trial_id])) for t in trials}


def _assert_same_run(a, b):
    (ta, ca), (tb, cb) = a, b
    assert ta.state == tb.state == TrialState.COMPLETE
    assert ta.value == pytest.approx(tb.value, abs=1e-5)
    assert [r["step"] for r in ca] == [r["step"] for r in cb] == list(range(BASE.steps))
    for ra, rb in zip(ca, cb):
        assert ra["loss"] == pytest.approx(rb["loss"], abs=1e-5)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-5)


def test_a_packed_sweep_gives_each_trial_the_result_and_curve_of_its_sequential_run(tmp_path):
    packed = _by_point(_sweep(tmp_path, "packed", 4))
    alone = _by_point(_sweep(tmp_path, "alone", 1))
    assert sorted(packed) == sorted(alone) and len(packed) == 8
    for key, (trial, curve) in packed.items():
        _assert_same_run((trial, curve), alone[key])
        assert sorted(trial.intermediate_values) == [2, 5, 7]
        assert trial.user_attrs[OUTCOME_ATTR]["info"]["pack_size"] == 4
        assert alone[key][0].user_attrs[OUTCOME_ATTR]["info"]["pack_size"] == 1


def test_a_diverging_config_fails_alone_and_leaves_the_pack_unchanged(tmp_path, monkeypatch):
    losses = synthetic.SyntheticWorkload._losses

    def overflowing(self, x, y, n):  # the losses as half precision holds them: inf past its largest number
        out = losses(self, x, y, n)
        return torch.where(out > torch.finfo(torch.float16).max, torch.full_like(out, float("inf")), out)

    monkeypatch.setattr(synthetic.SyntheticWorkload, "_losses", overflowing)
    grid = SweepGrid(ranks=(4, 16, 64), rules=("rslora",), alphas=(16.0,), lrs=(3e-3,))
    packed = _by_point(_sweep(tmp_path, "wild", 4, grid, extra=[WILD]))
    alone = _by_point(_sweep(tmp_path, "tame", 1, grid))
    wild, wild_curve = packed.pop(point_key(WILD))
    outcome = wild.user_attrs[OUTCOME_ATTR]
    assert wild.state == TrialState.FAIL and outcome["status"] == "diverged", outcome
    assert outcome["info"]["pack_size"] == 4 and len(wild_curve) == outcome["steps_done"] < BASE.steps
    assert sorted(packed) == sorted(alone)
    for key, run in packed.items():
        _assert_same_run(run, alone[key])


def test_a_trial_with_bad_input_fails_alone_and_the_rest_of_its_pack_trains(tmp_path):
    grid = SweepGrid(ranks=(4, 300, 16), rules=("standard",), alphas=(16.0,), lrs=(3e-3,))  # width is 256
    packed = _by_point(_sweep(tmp_path, "bad", 3, grid))
    alone = _by_point(_sweep(tmp_path, "good", 1, SweepGrid((4, 16), ("standard",), (16.0,), (3e-3,))))
    (bad,) = [t for t, _ in packed.values() if t.params["rank"] == 300]
    assert bad.state == TrialState.FAIL and "exceeds" in bad.user_attrs[OUTCOME_ATTR]["error"]
    for key, run in alone.items():
        _assert_same_run(packed[key], run)


def test_a_stop_mid_pack_stops_every_trial_of_the_pack(tmp_path):
    stop = []
    study = _sweep(tmp_path, "stop", 4, on_record=lambda t, r: stop.append(1) if r["step"] == 3 else None,
                   stop_requested=lambda: bool(stop))
    ran = [t for t in study.trials if t.state != TrialState.WAITING]
    assert len(ran) == 4 and len(study.get_trials(states=(TrialState.WAITING,))) == 4
    for trial in ran:
        outcome = trial.user_attrs[OUTCOME_ATTR]
        assert trial.state == TrialState.FAIL and outcome["status"] == "stopped"
        assert 4 <= outcome["steps_done"] < BASE.steps


def test_a_search_asks_for_a_pack_of_alphas_and_creates_exactly_trials_per_rank(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    search = SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=5)
    study = run_search(url, "a", BASE, search, pack=PackSpec(3))[0]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert sorted(t.user_attrs[OUTCOME_ATTR]["info"]["pack_size"] for t in trials) == [2, 2, 3, 3, 3]
    assert len({t.params["alpha"] for t in trials}) == 5
    assert len(run_search(url, "a", BASE, search, pack=PackSpec(3))[0].get_trials()) == 5  # nothing more to run


def test_a_pruned_search_finishes_the_pruners_startup_trials_before_packing_the_rest(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    search = SearchSpec(ranks=(16,), alpha_min=0.01, alpha_max=1000.0, trials_per_rank=8, sampler="grid",
                        pruner="median")
    trials = run_search(url, "p", BASE.with_params(steps=24, eval_every=3), search)[0].get_trials()
    sizes = [t.user_attrs[OUTCOME_ATTR]["info"]["pack_size"] for t in trials]
    assert sizes == [3] * 3 + [5] * 5  # median pruning compares with finished trials only
    assert len({t.params["alpha"] for t in trials}) == 8  # the grid's points, none asked twice
    assert any(t.state == TrialState.PRUNED for t in trials)


def test_a_worker_process_loads_the_base_model_once_for_all_its_packs(tmp_path, monkeypatch):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f" A{i}"}) + "\n" for i in range(20)))
    loads, load = [], factory.load_model_and_tokenizer
    monkeypatch.setattr(factory, "load_model_and_tokenizer", lambda *a, **k: loads.append(a) or load(*a, **k))
    factory.clear_base_cache()
    base = TrialSpec(data=str(data), steps=2, batch_size=2, eval_every=2, device="cpu", max_length=16)
    study = prepare_sweep(f"sqlite:///{tmp_path}/s.db", "c", base, SweepGrid((2, 4, 8), ("standard",), (8.0,), (1e-3,)))
    run_pending(study, base, pack=PackSpec(1))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 and len(loads) == 1


def test_pack_must_be_a_positive_whole_number(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(app.commands, "run_pending", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit) as exit_info:
        app.cli.main(["sweep", "--task", "synthetic-style", "--storage", f"sqlite:///{tmp_path}/s.db", "--pack", "0"])
    err = capsys.readouterr().err.splitlines()
    assert exit_info.value.code == 2 and err == ["lorascope: error: --pack: must be a whole number between 1 "
                                                 "and 2000, got 0"]


@pytest.mark.slow
def test_two_packing_workers_train_each_point_of_a_study_once(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    grid = SweepGrid(ranks=(1, 2, 4, 8, 16, 32), rules=("standard", "rslora"), alphas=(8.0,), lrs=(3e-3,))
    prepare_sweep(url, "q", BASE, grid)
    worker = [sys.executable, "-m", "app.cli", "worker", "--storage", url, "--study", "q", "--quiet", "--pack", "3"]
    procs = [subprocess.Popen(worker, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, err
    trials = optuna.load_study(study_name="q", storage=url).trials
    assert sorted(point_key(t.params) for t in trials) == sorted(point_key(p) for p in grid.points())
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    sizes = [t.user_attrs[OUTCOME_ATTR]["info"]["pack_size"] for t in trials]
    # packs of up to 3; the last queued trials may be split between the two workers as they race for them
    assert max(sizes) == 3 and set(sizes) <= {1, 2, 3} and sizes.count(3) >= 6
