"""The trial trainer: one LoRA fine-tune, step by step, metrics handed to a callback.

Reads like nanoGPT's loop: get batch, forward under autocast, backward, measure, clip, step.
Divergence (NaN/Inf), out-of-memory and stop requests end the trial with an outcome, never an
exception, so a sweep goes on and no finished result is lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from core.adapters import adapter_parameters, applied_gamma
from core.devices import autocast, free_accelerator_memory, is_out_of_memory, pick_device
from core.specs import TrialSpec
from core.tasks import build_workload

FINAL_LOSS_WINDOW = 10  # final_loss is the mean training loss over this many last steps

StepCallback = Callable[[dict[str, Any]], None]
StopCheck = Callable[[], str | None]  # returns a reason ("stopped", "pruned") to end the trial


@dataclass
class TrialOutcome:
    """How a trial ended and what it measured."""

    status: str  # completed | diverged | oom | stopped | pruned | failed
    gamma: float | None = None
    final_loss: float | None = None
    eval_loss: float | None = None
    svd_floor: float | None = None
    steps_done: int = 0
    seconds: float = 0.0  # wall time of the whole trial, model loading included
    train_seconds: float = 0.0  # wall time of the training loop alone
    tokens_per_s: float | None = None
    error: str | None = None
    device: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as a JSON-friendly dict."""
        return asdict(self)


def lr_factor(step: int, spec: TrialSpec) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warmup, then constant or cosine."""
    if step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    if spec.schedule == "cosine":
        progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def run_trial(
    spec: TrialSpec,
    on_step: StepCallback | None = None,
    should_stop: StopCheck | None = None,
) -> TrialOutcome:
    """Run one trial to completion or to a stop request; never raises for training failures.

    ``on_step`` receives ``{"step", "loss", "grad_norm", "lr", "tokens"}`` every step, plus
    ``"eval_loss"`` every ``spec.eval_every`` steps and at the last step.
    """
    on_step = on_step or (lambda record: None)
    should_stop = should_stop or (lambda: None)
    device = pick_device(spec.device)
    outcome = TrialOutcome(status="completed", device=str(device))
    started = time.perf_counter()
    workload = None
    try:
        workload = build_workload(spec, device)
        outcome.gamma = applied_gamma(workload.model)
        outcome.svd_floor = workload.svd_floor()
        outcome.info = workload.describe()
        _train(spec, workload, device, outcome, on_step, should_stop)
    except Exception as err:  # noqa: BLE001 - every failure becomes an outcome
        if is_out_of_memory(err):
            outcome.status = "oom"
            outcome.error = (f"out of memory at step {outcome.steps_done} on {device}: "
                             f"lower --batch-size, --max-length or the rank")
        else:
            raise
    finally:
        del workload
        free_accelerator_memory()
    outcome.seconds = time.perf_counter() - started
    return outcome


def _train(spec, workload, device, outcome, on_step, should_stop) -> None:
    started = time.perf_counter()
    model = workload.model
    params = adapter_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, spec))
    recent_losses: list[float] = []
    tokens_seen = 0
    model.train()
    for step in range(spec.steps):
        reason = should_stop()
        if reason:
            outcome.status = reason
            break
        batch = workload.train_batch(step)
        with autocast(device):
            loss = workload.loss(batch)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            _diverged(outcome, step, "loss", loss_value)
            break
        loss.backward()
        # max_norm=inf: the total L2 norm of all adapter gradients, before any clipping
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
        if not math.isfinite(grad_norm):
            _diverged(outcome, step, "grad_norm", grad_norm)
            break
        if spec.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        tokens_seen += batch.tokens
        recent_losses = (recent_losses + [loss_value])[-FINAL_LOSS_WINDOW:]
        outcome.steps_done = step + 1
        outcome.final_loss = sum(recent_losses) / len(recent_losses)
        record = {"step": step, "loss": loss_value, "grad_norm": grad_norm, "lr": lr,
                  "tokens": batch.tokens}
        if (step + 1) % spec.eval_every == 0 or step + 1 == spec.steps:
            model.eval()
            with autocast(device):
                record["eval_loss"] = outcome.eval_loss = workload.evaluate()
            model.train()
            if not math.isfinite(outcome.eval_loss):
                on_step(record)
                _diverged(outcome, step, "eval_loss", outcome.eval_loss)
                break
        on_step(record)
    outcome.train_seconds = time.perf_counter() - started
    outcome.tokens_per_s = tokens_seen / outcome.train_seconds if outcome.train_seconds > 0 else None


def _diverged(outcome: TrialOutcome, step: int, what: str, value: float) -> None:
    outcome.status = "diverged"
    outcome.error = (f"diverged at step {step}: {what} is {value}; lower the learning rate or "
                     f"alpha, or set --max-grad-norm")
    outcome.info["diverged_step"] = step
