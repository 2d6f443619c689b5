"""Training claimed trials (here one, the K = 1 pack): params from the queue, curve in the storage, pruning only if asked."""

import optuna
import pytest
from optuna.trial import TrialState

from core.specs import PackSpec, TrialSpec
from tuning.curves import read_curves
from tuning.objective import run_claimed, run_packs, train_trials
from tuning.queue import claim_waiting, fail_if_running
from tuning.storage import open_storage

POINT = {"rank": 4, "alpha": 8.0, "rule": "rslora", "lr": 3e-3, "seed": 1}
BASE = TrialSpec(task="synthetic-style", steps=12, batch_size=8, eval_every=3, device="cpu")


class AlwaysPrune(optuna.pruners.BasePruner):
    """Prunes at the first chance: shows whether the objective asks the pruner at all."""

    def prune(self, study, trial) -> bool:
        return True


def _claimed(tmp_path, pruner=None):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/s.db"), pruner=pruner)
    study.enqueue_trial(POINT)
    return study, claim_waiting(study)[0]


def test_trains_the_queued_point_and_writes_its_curve(tmp_path):
    study, trial = _claimed(tmp_path)
    (outcome,) = train_trials([trial], BASE)
    frozen = study._storage.get_trial(trial._trial_id)
    assert outcome["status"] == "completed" and outcome["steps_done"] == 12
    assert frozen.params == POINT
    assert outcome["gamma"] == 8.0 / 2  # rslora: alpha / sqrt(4)
    assert [r["step"] for r in read_curves(study._storage, [frozen])[frozen._trial_id]] == list(range(12))
    assert sorted(frozen.intermediate_values) == [2, 5, 8, 11]


def test_never_asks_the_pruner_unless_told(tmp_path):
    study, trial = _claimed(tmp_path, AlwaysPrune())
    assert train_trials([trial], BASE, prune=False)[0]["status"] == "completed"
    (tmp_path / "b").mkdir()
    study, trial = _claimed(tmp_path / "b", AlwaysPrune())
    assert train_trials([trial], BASE, prune=True)[0]["status"] == "pruned"


def test_run_claimed_prunes_only_with_a_real_pruner_and_tells_the_state(tmp_path):
    study, trial = _claimed(tmp_path, optuna.pruners.NopPruner())
    assert run_claimed(study, [trial], BASE)[0].state == TrialState.COMPLETE
    (tmp_path / "b").mkdir()
    study, trial = _claimed(tmp_path / "b", AlwaysPrune())
    ended = []
    (frozen,) = run_claimed(study, [trial], BASE, on_trial_end=lambda s, t: ended.append(t.number))
    assert frozen.state == TrialState.PRUNED and ended == [frozen.number]


def test_a_trial_failed_by_another_process_ends_quietly(tmp_path, capsys):
    study, trial = _claimed(tmp_path)

    def other_process_fails_it(t, record):
        if record["step"] == 4:
            assert fail_if_running(study, t._trial_id, {"status": "killed", "error": "stale"})

    assert run_claimed(study, [trial], BASE, on_record=other_process_fails_it) == [None]
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.state == TrialState.FAIL and frozen.user_attrs["outcome"]["status"] == "killed"
    assert capsys.readouterr().err.count("failed by another process") == 1


def test_run_packs_takes_up_to_the_pack_size_until_nothing_is_handed_out(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/s.db"))
    for rank in (2, 4, 8):
        study.enqueue_trial({**POINT, "rank": rank})
    asked, ended = [], []

    def take(k):
        asked.append(k)
        return claim_waiting(study, k)

    run_packs(study, BASE, take, pack=PackSpec(2), on_trial_end=lambda s, t: ended.append(t.params["rank"]))
    assert asked == [2, 2, 2]  # two packs (2 + 1 trials), then an empty take ends it
    assert ended == [2, 4, 8] and {t.state for t in study.trials} == {TrialState.COMPLETE}


def test_run_packs_takes_nothing_once_a_stop_is_requested(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/s.db"))
    study.enqueue_trial(POINT)
    run_packs(study, BASE, lambda k: pytest.fail("took trials after a stop"), stop_requested=lambda: True)
    assert [t.state for t in study.trials] == [TrialState.WAITING]
