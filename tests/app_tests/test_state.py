"""What the UI reads for a study: queued trials listed, curves read incrementally and finished ones once."""

import optuna
import pytest

import tuning.curves as curves
from app.state import read_study
from app.views import trial_rows
from tuning.curves import CurveWriter
from tuning.objective import suggest_fixed
from tuning.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell outside optimize

PARAMS = {"rank": 4, "alpha": 16.0, "rule": "rslora", "lr": 1e-3, "seed": 0}


def _study(tmp_path, queued):
    curves.forget_cache()
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    study.set_user_attr("lorascope", {"kind": "sweep", "base": {"steps": 100}})
    for rank in (4, 16, 64)[:queued + 1]:
        study.enqueue_trial({**PARAMS, "rank": rank})
    return url, study


def _steps(writer, start, stop):
    for step in range(start, stop):
        writer.add({"step": step, "loss": 1.0, "grad_norm": 0.5, "lr": 1e-3, "tokens": 8})
    writer.flush()


def test_queued_trials_are_listed_and_counted(tmp_path):
    url, study = _study(tmp_path, queued=2)
    trial = study.ask()
    suggest_fixed(trial)
    _steps(CurveWriter.for_trial(trial), 0, 7)
    view = read_study(url, "s")
    assert [r["state"] for r in view.records] == ["RUNNING", "WAITING", "WAITING"]
    assert view.waiting == 2 and [r["state"] for r in view.started] == ["RUNNING"]
    rows = trial_rows(view.records, view.steps)
    assert [(row[1], row[2], row[7]) for row in rows] == [("running", "4", "7/100"), ("waiting", "16", "0/100"),
                                                          ("waiting", "64", "0/100")]


def test_running_curves_grow_between_reads_and_finished_ones_are_kept(tmp_path, monkeypatch):
    url, study = _study(tmp_path, queued=1)
    done, live = study.ask(), study.ask()
    for trial in (done, live):
        suggest_fixed(trial)
    _steps(CurveWriter.for_trial(done), 0, 100)
    study.tell(done, 0.5)
    writer = CurveWriter.for_trial(live, flush_seconds=3600.0)
    _steps(writer, 0, 10)
    first_view = read_study(url, "s")
    first = {r["number"]: r["curve"] for r in first_view.records}
    _steps(writer, 10, 25)
    fetches = []
    fetch = curves._fetch
    monkeypatch.setattr(curves, "_fetch", lambda engine, fresh, live: fetches.append((fresh, live)) or
                        fetch(engine, fresh, live))
    view = read_study(url, "s")
    second = {r["number"]: r["curve"] for r in view.records}
    assert len(first[1]) == 10 and len(second[1]) == 25 and [p["step"] for p in second[1]] == list(range(25))
    assert second[0] is first[0] and len(second[0]) == 100
    # nothing for the finished trial, the live one from chunk 2 (chunk 0 is its first record, written at once)
    assert fetches == [([], [(live._trial_id, 2)])]
    # the UI redraws figures when the signature moves, and only then
    assert first_view.signature() != view.signature() == read_study(url, "s").signature()
