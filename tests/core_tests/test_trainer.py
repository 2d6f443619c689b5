"""The trial trainer: grad-norm signature of each rule, outcomes instead of exceptions."""

import math

import pytest
import torch

from core import synthetic
from core.specs import TrialSpec
from core.trainer import lr_factor, lr_is_constant, run_trial


def _step0_grad_norm(rule, rank, task="synthetic-facts"):
    records = []
    spec = TrialSpec(task=task, rank=rank, alpha=16.0, rule=rule, lr=1e-3, steps=1, batch_size=64,
                     device="cpu")
    outcome = run_trial(spec, records.append)
    assert outcome.status == "completed"
    return records[0]["grad_norm"]


def test_standard_grad_norm_shrinks_like_inverse_sqrt_rank():
    ratio = _step0_grad_norm("standard", 4) / _step0_grad_norm("standard", 256)
    assert 6.0 < ratio < 10.0  # sqrt(256 / 4) = 8


def test_rslora_grad_norm_flat_in_rank():
    ratio = _step0_grad_norm("rslora", 4) / _step0_grad_norm("rslora", 256)
    assert 0.8 < ratio < 1.25


def test_records_carry_step_metrics_and_eval():
    records = []
    spec = TrialSpec(task="synthetic-style", rank=4, steps=20, eval_every=10, batch_size=16,
                     lr=1e-3, device="cpu")
    outcome = run_trial(spec, records.append)
    assert [r["step"] for r in records] == list(range(20))
    assert {"loss", "grad_norm", "lr", "tokens"} <= set(records[0])
    assert [r["step"] for r in records if "eval_loss" in r] == [9, 19]
    assert outcome.eval_loss == records[-1]["eval_loss"]
    assert outcome.final_loss == pytest.approx(sum(r["loss"] for r in records[-10:]) / 10)
    assert outcome.gamma == pytest.approx(16.0 / 4)


def test_same_seed_same_curve():
    spec = TrialSpec(task="synthetic-facts", rank=8, steps=5, batch_size=16, device="cpu")
    first, second = [], []
    run_trial(spec, first.append)
    run_trial(spec, second.append)
    assert [r["loss"] for r in first] == [r["loss"] for r in second]


def test_nan_loss_ends_trial_as_diverged_with_step(monkeypatch):
    spec = TrialSpec(task="synthetic-facts", rank=8, steps=50, batch_size=16, device="cpu")
    losses = synthetic.SyntheticWorkload.losses
    nan_from_step_3 = [0]

    def diverging(self, batch, n):
        nan_from_step_3[0] += 1
        return losses(self, batch, n) * (float("nan") if nan_from_step_3[0] > 3 else 1.0)

    monkeypatch.setattr(synthetic.SyntheticWorkload, "losses", diverging)
    outcome = run_trial(spec)
    assert outcome.status == "diverged"
    assert "diverged at step" in outcome.error and "learning rate" in outcome.error
    assert outcome.info["diverged_step"] == 3


def test_stop_request_ends_trial_cleanly():
    calls = []
    spec = TrialSpec(task="synthetic-style", rank=4, steps=100, batch_size=8, device="cpu")
    outcome = run_trial(spec, calls.append, should_stop=lambda: "stopped" if len(calls) >= 7 else None)
    assert outcome.status == "stopped" and outcome.steps_done == 7


def test_out_of_memory_becomes_an_outcome(monkeypatch):
    from core import synthetic

    def boom(self, batch, n):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(synthetic.SyntheticWorkload, "losses", boom)
    outcome = run_trial(TrialSpec(task="synthetic-style", rank=4, steps=3, device="cpu"))
    assert outcome.status == "oom"
    assert "out of memory" in outcome.error and "--batch-size" in outcome.error


def test_warmup_then_cosine_schedule():
    spec = TrialSpec(task="synthetic-style", steps=110, warmup_steps=10, schedule="cosine")
    assert lr_factor(0, spec) == pytest.approx(0.1)
    assert lr_factor(9, spec) == pytest.approx(1.0)
    assert lr_factor(60, spec) == pytest.approx(0.5)
    assert lr_factor(110, spec) == pytest.approx(0.0, abs=1e-12)


def test_only_a_constant_schedule_without_warmup_counts_as_constant():
    constant = TrialSpec(task="synthetic-style", steps=50)
    assert lr_is_constant(constant) and {lr_factor(s, constant) for s in range(50)} == {1.0}
    for changing in (constant.with_params(warmup_steps=5), constant.with_params(schedule="cosine")):
        assert not lr_is_constant(changing) and len({lr_factor(s, changing) for s in range(50)}) > 1


def test_grad_norm_is_l2_over_all_adapter_gradients(monkeypatch):
    seen = {}
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):  # no clipping here, so the gradients the optimizer sees are the raw ones
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.setdefault("manual", math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    records = []
    run_trial(TrialSpec(task="synthetic-facts", rank=8, steps=1, device="cpu"), records.append)
    assert records[0]["grad_norm"] == pytest.approx(seen["manual"], rel=1e-5)
