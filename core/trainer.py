"""The packed trainer: K LoRA fine-tunes over one frozen base model, step by step.

Reads like nanoGPT's loop: get batch, forward under autocast, backward, measure, clip, step.
The K configs of a pack share base model, data order, batch size and step count; each has its
own adapter, AdamW state and lr schedule, loss, gradient norm, clipping and outcome, and follows
the trajectory of its own unpacked run (their parameters are disjoint, so the gradient of the
summed loss with respect to config k's adapter is config k's own gradient). Divergence (NaN/Inf),
stop and prune requests end one config, never the others; an out-of-memory pack is split in
halves and retried; all of these are outcomes, never exceptions. ``run_trial`` is the K = 1 case.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import torch

from core.devices import autocast, free_accelerator_memory, is_out_of_memory, pick_device
from core.factory import build_workload
from core.packed_lora import AdapterSetting, config_parameters
from core.specs import SpecError, TrialSpec

FINAL_LOSS_WINDOW = 10  # final_loss is the mean training loss over this many last steps
CUDA_SYNC_EVERY = 16  # steps between host syncs on an accelerator (eval steps always sync)
PACKABLE = ("rank", "alpha", "rule", "lr", "warmup_steps", "schedule", "max_grad_norm", "lora_dropout")

StepCallback = Callable[[dict[str, Any]], None]
StopCheck = Callable[[], str | None]  # returns a reason ("stopped", "pruned") to end the trial
PackStepCallback = Callable[[int, dict[str, Any]], None]  # (index into specs, record)
PackStopCheck = Callable[[int], str | None]  # index into specs -> reason or None


@dataclass
class TrialOutcome:
    """How a trial ended and what it measured."""

    status: str  # completed | diverged | oom | stopped | pruned | failed
    gamma: float | None = None
    final_loss: float | None = None
    eval_loss: float | None = None
    svd_floor: float | None = None
    steps_done: int = 0
    seconds: float = 0.0  # wall time of the trial's pack, model loading included
    train_seconds: float = 0.0  # wall time of the training loop until this trial ended
    tokens_per_s: float | None = None  # this trial's tokens / train_seconds
    error: str | None = None
    device: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    adapter: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # see run_pack

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as a JSON-friendly dict (without adapter weights)."""
        return {k: v for k, v in asdict(self).items() if k != "adapter"}


def lr_factor(step: int, spec: TrialSpec) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warmup, then constant or cosine."""
    if step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    if spec.schedule == "cosine":
        progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def lr_is_constant(spec: TrialSpec) -> bool:
    """True when :func:`lr_factor` is 1 at every step (a constant schedule without warmup)."""
    return not spec.warmup_steps and spec.schedule == "constant"


def pack_key(spec: TrialSpec) -> tuple:
    """Specs with equal keys may share a pack (same base model, data order, batch and steps)."""
    shared = spec.to_dict()
    for name in PACKABLE:
        shared.pop(name)
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in shared.items()))


def run_trial(spec: TrialSpec, on_step: StepCallback | None = None,
              should_stop: StopCheck | None = None) -> TrialOutcome:
    """Run one trial (a pack of one) to completion or to a stop request; never raises for training failures.

    ``on_step`` receives ``{"step", "loss", "grad_norm", "lr", "tokens"}`` every step, plus
    ``"eval_loss"`` every ``spec.eval_every`` steps and at the last step.
    """
    return run_pack([spec], on_step and (lambda k, record: on_step(record)),
                    should_stop and (lambda k: should_stop()))[0]


def run_pack(
    specs: list[TrialSpec],
    on_step: PackStepCallback | None = None,
    should_stop: PackStopCheck | None = None,
    *,
    pack_size: int | None = None,
    sync_every: int | None = None,
    return_adapters: bool = False,
) -> list[TrialOutcome]:
    """Train ``specs`` together over one frozen base model; return one outcome per spec, in order.

    Args:
        specs: trial specs with one :func:`pack_key` (they may differ in rank, alpha, rule, lr,
            warmup, schedule, max_grad_norm and dropout); SpecError otherwise.
        on_step: called as ``on_step(k, record)`` with spec k's records, exactly those
            :func:`run_trial` gives. On an accelerator records arrive in bursts, every
            ``sync_every`` steps and at eval steps. After an out-of-memory split a config starts
            again at step 0, so a consumer should key records by (trial, step) and overwrite.
        should_stop: called as ``should_stop(k)`` before every step of each running config;
            a reason ("stopped", "pruned") ends config k alone with that status.
        pack_size: the most configs trained at once (None: all; an out-of-memory pack is split).
        sync_every: steps between host syncs (default 1 on the CPU, 16 on an accelerator).
        return_adapters: put each config's trained weights in ``outcome.adapter``
            (``{"<module>.lora_A.weight": tensor, ...}`` on the CPU), e.g. for checks against PEFT.
    """
    if not specs:
        return []
    keys = {pack_key(s) for s in specs}
    if len(keys) > 1:
        raise SpecError("a pack's trials must share task, model, data, seed, steps and batch size: "
                        "group them by core.trainer.pack_key")
    on_step = on_step or (lambda k, record: None)
    should_stop = should_stop or (lambda k: None)
    size = pack_size or len(specs)
    outcomes: list[TrialOutcome | None] = [None] * len(specs)
    for start in range(0, len(specs), size):
        _run_or_split(specs, list(range(start, min(start + size, len(specs)))), outcomes, on_step,
                      should_stop, sync_every, return_adapters)
    return outcomes


def _run_or_split(specs, indices, outcomes, on_step, should_stop, sync_every, return_adapters) -> None:
    """Run one pack; when it runs out of memory, run each half of it instead."""
    result = _PackRun(specs, indices, on_step, should_stop, sync_every, return_adapters).run()
    if result is not None:
        for k, outcome in zip(indices, result):
            outcomes[k] = outcome
        return
    half = len(indices) // 2
    for part in (indices[:half], indices[half:]):
        _run_or_split(specs, part, outcomes, on_step, should_stop, sync_every, return_adapters)


@dataclass(eq=False)  # identity hash: configs key the held records
class _Config:
    """One config's running state inside a pack."""

    index: int  # position in run_pack's specs
    slot: int  # position in the pack
    spec: TrialSpec
    outcome: TrialOutcome
    params: list[torch.nn.Parameter] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)
    tokens: int = 0
    ended_at: float | None = None

    @property
    def running(self) -> bool:
        return self.ended_at is None


@dataclass
class _Step:
    """A step's device-side metrics, held until the next sync."""

    step: int
    configs: list[_Config]  # in row-group order
    losses: torch.Tensor  # (n,)
    norms: torch.Tensor  # (n,)
    lrs: list[float]
    tokens: int


def _clip_per_config(active: list[_Config]) -> torch.Tensor:
    """Each config's L2 norm over its own adapter gradients (before clipping), then its own clipping.

    The same arithmetic as ``clip_grad_norm_`` per config, in one batched norm for the whole pack.
    """
    grads = [p.grad for c in active for p in c.params]
    per_tensor = torch.stack(torch._foreach_norm(grads)).view(len(active), -1)  # (n, tensors per config)
    norms = torch.linalg.vector_norm(per_tensor, dim=1)
    for i, c in enumerate(active):
        if c.spec.max_grad_norm is not None:
            coef = torch.clamp(c.spec.max_grad_norm / (norms[i] + 1e-6), max=1.0)
            torch._foreach_mul_([p.grad for p in c.params], coef)
    return norms


class _PackRun:
    """One attempt at training a pack; ``run`` returns None when the pack ran out of memory."""

    def __init__(self, specs, indices, on_step, should_stop, sync_every, return_adapters):
        self.spec = specs[indices[0]]
        self.device = pick_device(self.spec.device)
        self.sync_every = sync_every or (1 if self.device.type == "cpu" else CUDA_SYNC_EVERY)
        self.configs = [_Config(k, slot, specs[k], TrialOutcome("completed", device=str(self.device)))
                        for slot, k in enumerate(indices)]
        self.on_step, self.should_stop, self.return_adapters = on_step, should_stop, return_adapters
        self.pending: list[_Step] = []
        self._active_cache: list[_Config] | None = None

    def run(self) -> list[TrialOutcome] | None:
        started = time.perf_counter()
        workload = None
        try:
            workload = build_workload(self.spec, self.device)
            self.pack = workload.attach([AdapterSetting.from_spec(c.spec) for c in self.configs])
            layers = [layer for _, layer in workload.layers]
            for c in self.configs:
                c.params = config_parameters(layers, c.slot)
                c.outcome.gamma = self.pack.settings[c.slot].gamma
                c.outcome.svd_floor = workload.svd_floor(c.spec.rank)
                c.outcome.info = {**workload.describe(), "pack_size": len(self.configs)}
            self._train(workload)
            if self.return_adapters:
                for c in self.configs:
                    c.outcome.adapter = {f"{name}.lora_{ab}.weight": p.detach().cpu().clone()
                                         for name, layer in workload.layers
                                         for ab, p in (("A", layer.lora_A[c.slot]), ("B", layer.lora_B[c.slot]))}
        except Exception as err:  # noqa: BLE001 - out of memory becomes an outcome or a split
            if not is_out_of_memory(err):
                raise
            if len(self.configs) > 1:
                return None
            c = self.configs[0]
            c.outcome.status = "oom"
            c.outcome.error = (f"out of memory at step {c.outcome.steps_done} on {self.device}: "
                               f"lower --batch-size, --max-length or the rank")
        finally:
            if workload is not None:
                workload.detach()
            del workload
            self.pending.clear()
            free_accelerator_memory()
        for c in self.configs:
            c.outcome.seconds = time.perf_counter() - started
        return [c.outcome for c in self.configs]

    def _train(self, workload) -> None:
        spec, device, model = self.spec, self.device, workload.model
        self.started = time.perf_counter()
        # configs with one lr schedule share a param group: one fused AdamW call for all of them
        # (Adam is elementwise, so this changes no config's update)
        schedules: dict[tuple, list[_Config]] = {}
        for c in self.configs:
            schedules.setdefault((c.spec.lr, c.spec.warmup_steps, c.spec.schedule), []).append(c)
        groups = list(schedules.values())
        group_of = {c.slot: i for i, members in enumerate(groups) for c in members}
        optimizer = torch.optim.AdamW([{"params": [p for c in members for p in c.params], "lr": members[0].spec.lr}
                                       for members in groups],
                                      weight_decay=0.0, fused=device.type in ("cpu", "cuda") or None)
        params = [p for c in self.configs for p in c.params]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, [partial(lr_factor, spec=members[0].spec) for members in groups])
        lr_changes = not all(lr_is_constant(c.spec) for c in self.configs)  # else skip the scheduler's bookkeeping
        model.train()
        for step in range(spec.steps):
            stops = [(c, reason) for c in self._active() if (reason := self.should_stop(c.index))]
            if stops:
                self._sync()
                for c, reason in stops:
                    if c.running:
                        self._end(c, reason)
            active = self._active()
            if not active:
                break
            batch = workload.train_batch(step)
            with autocast(device):
                losses = workload.losses(batch, len(active))  # (n,), row-group order
            losses.sum().backward()
            norms = _clip_per_config(active)
            lrs = [optimizer.param_groups[group_of[c.slot]]["lr"] for c in active]
            optimizer.step()
            if lr_changes:
                scheduler.step()
            for p in params:  # zero_grad(set_to_none=True), without its per-call bookkeeping
                p.grad = None
            self.pending.append(_Step(step, active, losses.detach(), norms.detach(), lrs, batch.tokens))
            if (step + 1) % spec.eval_every == 0 or step + 1 == spec.steps:
                held = self._sync(hold_last=True)
                self._evaluate(workload, held)
            elif len(self.pending) >= self.sync_every:
                self._sync()
        for c in self.configs:
            if c.running:
                c.ended_at = time.perf_counter()
        for c in self.configs:
            o = c.outcome
            o.train_seconds = c.ended_at - self.started
            o.tokens_per_s = c.tokens / o.train_seconds if o.train_seconds > 0 else None

    def _active(self) -> list[_Config]:
        """Running configs in row-group order; the pack's batch layout follows this list."""
        running = [c for c in self.configs if c.running]
        if self._active_cache is None or len(self._active_cache) != len(running):  # a config ended
            by_slot = {c.slot: c for c in running}
            if sorted(by_slot) != sorted(self.pack.active):
                self.pack.set_active(by_slot)
            self._active_cache = [by_slot[slot] for slot in self.pack.active]
        return self._active_cache

    def _sync(self, hold_last: bool = False) -> dict[_Config, dict[str, Any]]:
        """Bring pending metrics to the host (one sync) and hand out their records.

        With ``hold_last``, the last step's records are returned instead of handed out (the
        eval loss still has to be added to them).
        """
        if not self.pending:
            return {}
        values = torch.cat([t for s in self.pending for t in (s.losses, s.norms)]).tolist()  # sync point
        held: dict[_Config, dict[str, Any]] = {}
        at = 0
        for i, s in enumerate(self.pending):
            n = len(s.configs)
            losses, norms = values[at:at + n], values[at + n:at + 2 * n]
            at += 2 * n
            for c, loss, norm, lr in zip(s.configs, losses, norms, s.lrs):
                if not c.running:
                    continue
                if not math.isfinite(loss):
                    self._diverged(c, s.step, "loss", loss)
                    continue
                if not math.isfinite(norm):
                    self._diverged(c, s.step, "grad_norm", norm)
                    continue
                record = {"step": s.step, "loss": loss, "grad_norm": norm, "lr": lr, "tokens": s.tokens}
                c.tokens += s.tokens
                c.recent = (c.recent + [loss])[-FINAL_LOSS_WINDOW:]
                c.outcome.steps_done = s.step + 1
                c.outcome.final_loss = sum(c.recent) / len(c.recent)
                if hold_last and i == len(self.pending) - 1:
                    held[c] = record
                else:
                    self.on_step(c.index, record)
        self.pending.clear()
        return held

    def _evaluate(self, workload, held: dict[_Config, dict[str, Any]]) -> None:
        """Score the configs still running on held-out data; hand out their held records."""
        active = self._active()
        if active:
            workload.model.eval()
            with autocast(self.device):
                evals = workload.evaluate(len(active)).tolist()  # sync point
            workload.model.train()
            for c, value in zip(active, evals):
                held[c]["eval_loss"] = c.outcome.eval_loss = value
        for c, record in held.items():
            self.on_step(c.index, record)
            if not math.isfinite(record["eval_loss"]):
                self._diverged(c, record["step"], "eval_loss", record["eval_loss"])

    def _end(self, c: _Config, status: str) -> None:
        c.outcome.status = status
        c.ended_at = time.perf_counter()

    def _diverged(self, c: _Config, step: int, what: str, value: float) -> None:
        self._end(c, "diverged")
        c.outcome.error = (f"diverged at step {step}: {what} is {value}; lower the learning rate or "
                           f"alpha, or set --max-grad-norm")
        c.outcome.info["diverged_step"] = step
