"""Results records: the JSON of `results --json` and the records the UI reads (queued trials too)."""

import json

import optuna
import pytest
from optuna.trial import TrialState

from tuning.curves import CurveWriter, forget_cache
from tuning.objective import suggest_fixed
from tuning.results import REPORTED_STATES, group_records, study_results
from tuning.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell outside optimize


def test_results_json_leaves_queued_trials_out_and_ui_records_can_include_them(tmp_path):
    forget_cache()
    study = optuna.create_study(study_name="r", storage=open_storage(f"sqlite:///{tmp_path}/r.db"))
    for rank in (4, 16):
        study.enqueue_trial({"rank": rank, "alpha": 8.0, "rule": "standard", "lr": 1e-3, "seed": 0})
    trial = study.ask()
    suggest_fixed(trial)
    writer = CurveWriter.for_trial(trial)
    for step in range(3):
        writer.add({"step": step, "loss": float("nan") if step == 1 else 1.0, "grad_norm": 0.1, "lr": 1e-3,
                    "tokens": 8})
    writer.flush()
    study.tell(trial, 0.9)

    results = study_results(study)
    assert [(t["number"], t["state"], t["rank"]) for t in results["trials"]] == [(0, "COMPLETE", 4)]
    assert [p["loss"] for p in results["trials"][0]["curve"]] == [1.0, "nan", 1.0]
    json.dumps(results, allow_nan=False)  # strict JSON: non-finite values are strings

    records, _ = group_records([study], with_curves=True, states=(*REPORTED_STATES, TrialState.WAITING))
    assert [(r["state"], r["rank"], len(r["curve"]), r["study"]) for r in records] == [
        ("COMPLETE", 4, 3, "r"), ("WAITING", 16, 0, "r")]
