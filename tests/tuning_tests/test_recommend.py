"""Choosing what to export from a study's trials (tuning/recommend.py)."""

import math

import pytest

from core.specs import SpecError
from tuning.recommend import choice_from_record, choose

SETTINGS = {"base": {"task": "synthetic-style", "target_modules": ["proj"], "lora_dropout": 0.1}}


def _rec(number, rank, alpha, loss, *, lr=1e-3, rule="standard", state="COMPLETE", study="s"):
    return {"number": number, "state": state, "rank": rank, "alpha": float(alpha), "rule": rule, "lr": lr, "seed": 0,
            "eval_loss": loss, "study": study, "target_modules": ["proj"]}


def _parabolas(c, p, *, lr, start=0, ranks=(4, 16, 64), alphas=(1, 4, 16, 64, 256, 1024), offset=0.0):
    """Eval loss a parabola in log alpha around c * r**p at each rank."""
    out = []
    for r in ranks:
        for a in alphas:
            out.append(_rec(start + len(out), r, a, (math.log(a) - math.log(c * r**p)) ** 2 + offset + 1.0 / r, lr=lr))
    return out


def test_the_best_trial_by_default_with_its_study_settings():
    records = _parabolas(2.0, 1.0, lr=1e-3)
    choice = choose(records, SETTINGS)
    assert (choice.rank, choice.alpha, choice.rule) == (64, 64.0, "standard")  # the grid point nearest 2 * 64
    assert choice.base_model is None and choice.task_type is None  # a synthetic task: no base model
    assert choice.lora_dropout == 0.1 and choice.target_modules == ("proj",)
    assert choice.notes[0].startswith("best trial: eval loss") and "not located" not in choice.notes[0]


def test_a_best_trial_whose_alpha_was_not_located_says_so():
    records = [_rec(i, r, 8.0, 1.0 / r) for i, r in enumerate((4, 16))]
    assert "alpha* not located" in choose(records, SETTINGS).notes[0]


def test_a_rank_takes_alpha_from_the_law_of_the_best_trials_learning_rate_only():
    # lr 1e-3 (best) has alpha* = 2r; lr 1e-2 has alpha* = 300, flat: a pooled law would mix them
    records = _parabolas(2.0, 1.0, lr=1e-3) + _parabolas(300.0, 0.0, lr=1e-2, start=100, offset=1.0)
    choice = choose(records, SETTINGS, rank=32)
    assert choice.rank == 32 and choice.alpha == pytest.approx(64.0, rel=1e-6)
    assert "lr=0.001" in choice.notes[0]


def test_without_a_law_a_rank_takes_its_own_best_trial_of_the_same_setting():
    records = [_rec(0, 4, 8.0, 0.1), _rec(1, 16, 8.0, 0.3), _rec(2, 16, 32.0, 0.4),
               _rec(3, 16, 64.0, 0.2, lr=1e-2)]  # better, but at another learning rate
    choice = choose(records, SETTINGS, rank=16)
    assert (choice.rank, choice.alpha) == (16, 8.0) and choice.notes == ("best trial at rank 16",)
    with pytest.raises(SpecError, match="no fitted law"):
        choose(records, SETTINGS, rank=64)


def test_a_given_trial_number_and_its_errors():
    records = [_rec(0, 4, 8.0, 0.3, study="s-r4"), _rec(0, 16, 8.0, 0.2, study="s-r16"), _rec(1, 4, 2.0, 0.1)]
    assert choose(records, SETTINGS, trial=1).alpha == 2.0
    assert choose(records, SETTINGS, trial=0, rank=16).rank == 16
    with pytest.raises(SpecError, match="add --rank"):
        choose(records, SETTINGS, trial=0)
    with pytest.raises(SpecError, match="no completed trial number 7"):
        choose(records, SETTINGS, trial=7)
    with pytest.raises(SpecError, match="no completed trials"):
        choose([_rec(0, 4, 8.0, None, state="FAIL")], SETTINGS)


def test_a_record_without_target_modules_cannot_be_exported():
    with pytest.raises(SpecError, match="no target modules"):
        choice_from_record({**_rec(0, 4, 8.0, 0.1), "target_modules": None}, {"base": {"task": "synthetic-style"}})
    text = choice_from_record(_rec(0, 4, 8.0, 0.1), {"base": {"data": "x.jsonl", "target_modules": ["q"]}})
    assert text.base_model and text.task_type == "CAUSAL_LM"  # custom data: the tiny LM as base model
