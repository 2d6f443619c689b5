"""A rerun of a sweep or a search must use the settings its study was made with."""

import pytest

from core.specs import SpecError, TrialSpec
from tuning.search import SearchSpec, open_search
from tuning.settings import build_pruner, build_sampler
from tuning.sweep import SweepGrid, prepare_sweep


def _base(**kw):
    return TrialSpec(**{"task": "synthetic-facts", "steps": 20, "batch_size": 16, "eval_every": 5,
                        "device": "cpu", **kw})


SEARCH = SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=2)


@pytest.mark.parametrize("field, changed, shown", [
    ("batch_size", {"batch_size": 32}, "batch-size=16, not 32"),
    ("schedule", {"schedule": "cosine"}, "schedule='constant', not 'cosine'"),
    ("warmup_steps", {"warmup_steps": 5}, "warmup-steps=0, not 5"),
    ("max_grad_norm", {"max_grad_norm": 1.0}, "max-grad-norm=None, not 1.0"),
    ("lora_dropout", {"lora_dropout": 0.1}, "lora-dropout=0.0, not 0.1"),
])
def test_search_rerun_with_changed_training_settings_is_refused(tmp_path, field, changed, shown):
    url = f"sqlite:///{tmp_path}/s.db"
    open_search(url, "s", _base(), SEARCH)
    with pytest.raises(SpecError) as err:
        open_search(url, "s", _base(**changed), SEARCH)
    assert shown in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("changed, shown", [
    ({"alpha_min": 2.0}, "alpha-min=1.0, not 2.0"),
    ({"alpha_max": 200.0}, "alpha-max=100.0, not 200.0"),
    ({"pruner": "median"}, "pruner='none', not 'median'"),
    ({"sampler": "grid"}, "sampler='tpe', not 'grid'"),
])
def test_search_rerun_with_changed_search_settings_is_refused(tmp_path, changed, shown):
    url = f"sqlite:///{tmp_path}/s.db"
    open_search(url, "s", _base(), SEARCH)
    with pytest.raises(SpecError, match=shown.replace("(", r"\(")):
        open_search(url, "s", _base(), SearchSpec(**{**SEARCH.__dict__, **changed}))


def test_more_trials_per_rank_or_another_device_is_a_continuation(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    open_search(url, "s", _base(), SEARCH)
    open_search(url, "s", _base(device="auto"), SearchSpec(ranks=(4,), alpha_max=100.0, trials_per_rank=5))


def test_sweep_and_search_share_one_check(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    grid = SweepGrid((4,), ("standard",), (16.0,), (1e-3,))
    prepare_sweep(url, "w", _base(), grid)
    with pytest.raises(SpecError, match="lora-dropout=0.0, not 0.1"):
        prepare_sweep(url, "w", _base(lora_dropout=0.1), grid)
    prepare_sweep(url, "x/r4", _base(), grid)
    with pytest.raises(SpecError, match="holds a sweep, not a search"):
        open_search(url, "x", _base(), SEARCH)


def test_stored_pruner_and_sampler_are_rebuilt_with_their_parameters():
    pruner = build_pruner({"name": "median", "n_startup_trials": 3, "n_warmup_steps": 7, "interval_steps": 1})
    assert type(pruner).__name__ == "MedianPruner" and pruner._n_warmup_steps == 7 and pruner._n_startup_trials == 3
    assert type(build_pruner(None)).__name__ == "NopPruner"
    sampler = build_sampler({"name": "grid", "search_space": {"alpha": [1.0, 10.0]}, "seed": 0})
    assert type(sampler).__name__ == "GridSampler"
