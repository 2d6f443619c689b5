"""The issue's acceptance run: synthetic-facts, ranks 4..256, both rules, 300 steps, via the CLI."""

import json

import pytest

from app.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def facts_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("facts")
    code = main(["sweep", "--task", "synthetic-facts", "--ranks", "4,16,64,256", "--rules", "standard,rslora",
                 "--alphas", "16", "--lrs", "1e-3", "--steps", "300", "--device", "cpu", "--quiet",
                 "--storage", f"sqlite:///{out}/s.db", "--study", "facts", "--json", str(out / "r.json")])
    assert code == 0
    trials = json.loads((out / "r.json").read_text())["trials"]
    return {(t["rule"], t["rank"]): t for t in trials}


def _grad0(trial):
    return trial["curve"][0]["grad_norm"]


def test_every_trial_completes(facts_sweep):
    assert len(facts_sweep) == 8
    assert all(t["state"] == "COMPLETE" for t in facts_sweep.values())


def test_standard_step0_grad_norm_collapses_with_rank(facts_sweep):
    ratio = _grad0(facts_sweep["standard", 4]) / _grad0(facts_sweep["standard", 256])
    assert 6.0 < ratio < 10.0


def test_rslora_step0_grad_norm_is_rank_stable(facts_sweep):
    ratio = _grad0(facts_sweep["rslora", 4]) / _grad0(facts_sweep["rslora", 256])
    assert 0.8 < ratio < 1.25


def test_rslora_uses_high_rank_and_standard_does_not(facts_sweep):
    assert facts_sweep["rslora", 256]["final_loss"] < 0.5 * facts_sweep["standard", 256]["final_loss"]


def test_no_loss_beats_the_svd_floor(facts_sweep):
    for trial in facts_sweep.values():
        assert trial["eval_loss"] >= trial["svd_floor"]
        assert trial["final_loss"] >= trial["svd_floor"]
