"""Curves in the storage: a chunk table on RDBs, read once when finished and incrementally when running."""

import math

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

import tuning.curves as curves
from tuning.curves import CurveWriter, read_curves
from tuning.results import study_results
from tuning.storage import load_study, open_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell outside optimize


def _records(start, stop, eval_every=5):
    out = []
    for step in range(start, stop):
        record = {"step": step, "loss": 1.0 / (step + 1), "grad_norm": 0.5 + step, "lr": 1e-3, "tokens": 64}
        if (step + 1) % eval_every == 0:
            record["eval_loss"] = 2.0 / (step + 1)
        out.append(record)
    return out


def _write(trial, records, flush_seconds=3600.0):
    writer = CurveWriter.for_trial(trial, flush_seconds=flush_seconds)
    for record in records:
        writer.add(record)
    writer.flush()
    return writer


@pytest.fixture
def study(tmp_path):
    curves.forget_cache()
    return optuna.create_study(study_name="c", storage=open_storage(f"sqlite:///{tmp_path}/c.db"))


@pytest.fixture
def fetched(monkeypatch):
    """The (trial id, seq) of every chunk row the readers fetch."""
    rows, fetch = [], curves._fetch

    def spy(engine, fresh, live):
        got = fetch(engine, fresh, live)
        rows.extend((r.trial_id, r.seq) for r in got)
        return got

    monkeypatch.setattr(curves, "_fetch", spy)
    return rows


def test_round_trip_keeps_values_types_nan_inf_and_missing_fields(study):
    trial = study.ask()
    records = _records(0, 450)
    records[3]["grad_norm"] = float("nan")
    records[4]["eval_loss"] = float("inf")
    records[7]["loss"] = float("-inf")
    _write(trial, records)
    curve = read_curves(study._storage, study.get_trials())[trial._trial_id]
    assert len(curve) == 450
    got = list(curve)
    assert math.isnan(got[3]["grad_norm"]) and got[4]["eval_loss"] == math.inf and got[7]["loss"] == -math.inf
    got[3]["grad_norm"] = records[3]["grad_norm"] = 0.0  # NaN != NaN
    assert got == records  # same keys (eval_loss only where written), same values
    assert type(got[10]["step"]) is int and type(got[10]["tokens"]) is int and type(got[10]["lr"]) is float


def test_writer_flushes_by_count_and_time_so_readers_see_a_running_trial(study):
    trial = study.ask()
    writer = CurveWriter.for_trial(trial, flush_seconds=3600.0)
    writer.add(_records(0, 1)[0])
    # the first record is written at once, so the UI draws a point as soon as training starts
    assert len(read_curves(study._storage, study.get_trials())[trial._trial_id]) == 1
    for record in _records(1, curves.FLUSH_RECORDS + 5):
        writer.add(record)
    assert len(read_curves(study._storage, study.get_trials())[trial._trial_id]) == 1 + curves.FLUSH_RECORDS
    quick = CurveWriter.for_trial(study.ask(), flush_seconds=0.0)
    quick.add(_records(0, 1)[0])
    quick.add(_records(1, 2)[0])
    assert [len(c) for c in read_curves(study._storage, study.get_trials()).values()] == [1 + curves.FLUSH_RECORDS, 2]


def test_incremental_read_fetches_only_chunks_not_seen(study, fetched):
    trial = study.ask()
    writer = CurveWriter.for_trial(trial, flush_seconds=3600.0)
    for record in _records(0, 30):
        writer.add(record)
    writer.flush()
    first = read_curves(study._storage, study.get_trials())[trial._trial_id]
    for record in _records(30, 50):
        writer.add(record)
    writer.flush()
    fetched.clear()
    second = read_curves(study._storage, study.get_trials())[trial._trial_id]
    assert fetched == [(trial._trial_id, 2)]  # only the new chunk (chunk 0 is the first record alone)
    assert [r["step"] for r in second] == list(range(50)) and list(first) == list(second)[:30]
    fetched.clear()
    assert len(read_curves(study._storage, study.get_trials())[trial._trial_id]) == 50 and fetched == []


def test_finished_curves_are_read_once_per_process(study, fetched):
    trial = study.ask()
    _write(trial, _records(0, 40))
    study.tell(trial, 0.5)
    first = read_curves(study._storage, study.get_trials())[trial._trial_id]
    fetched.clear()
    again = read_curves(load_study(study._storage._backend.url, "c")._storage, study.get_trials())
    assert again[trial._trial_id] is first and fetched == []


def test_two_writers_on_one_study_keep_their_own_curves(study):
    a, b = study.ask(), study.ask()
    wa, wb = CurveWriter.for_trial(a, flush_seconds=0.0), CurveWriter.for_trial(b, flush_seconds=0.0)
    for ra, rb in zip(_records(0, 20), _records(100, 120)):
        wa.add(ra)
        wb.add(rb)
    got = read_curves(study._storage, study.get_trials())
    assert [r["step"] for r in got[a._trial_id]] == list(range(20))
    assert [r["step"] for r in got[b._trial_id]] == list(range(100, 120))


def test_old_chunk_attr_studies_still_read(study):
    trial = study.ask()
    trial.set_user_attr("curve_00000", [{"step": 0, "loss": 1.5, "grad_norm": "nan"}])
    trial.set_user_attr("curve_00001", [{"step": 1, "loss": "inf", "grad_norm": 2.0, "eval_loss": 1.25}])
    study.tell(trial, 1.0)
    curve = read_curves(study._storage, study.get_trials())[trial._trial_id]
    assert [r["step"] for r in curve] == [0, 1] and math.isnan(curve[0]["grad_norm"])
    assert curve[1] == {"step": 1, "loss": math.inf, "grad_norm": 2.0, "eval_loss": 1.25}


def test_journal_storage_keeps_curves_in_user_attrs(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(study_name="j", storage=storage)
    trial = study.ask()
    records = _records(0, 12)
    records[2]["loss"] = float("nan")
    _write(trial, records)
    frozen = study.get_trials()
    assert "curve_00000" in frozen[0].user_attrs
    curve = read_curves(storage, frozen)[trial._trial_id]
    assert len(curve) == 12 and math.isnan(curve[2]["loss"]) and curve[9]["eval_loss"] == pytest.approx(2 / 10)


def test_results_json_has_whole_curves_with_non_finite_values_as_strings(study):
    trial = study.ask()
    records = _records(0, 25)
    records[1]["loss"] = float("nan")
    _write(trial, records)
    study.tell(trial, 0.5)
    curve = study_results(study)["trials"][0]["curve"]
    assert len(curve) == 25 and curve[1]["loss"] == "nan" and curve[24]["eval_loss"] == pytest.approx(2 / 25)
