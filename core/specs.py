"""The trial spec: everything one short fine-tune needs, validated in one place.

Field help texts double as CLI help and UI tooltips (read them with :func:`field_help`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from core.scaling import check_alpha, check_rank, get_rule

DEVICES = ("auto", "cpu", "cuda", "mps")
SCHEDULES = ("constant", "cosine")


class SpecError(ValueError):
    """A user-supplied value is invalid; the message says what to change."""


def _help(text: str, default: Any = None, **kw: Any) -> Any:
    if "default_factory" in kw:
        return field(metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class TrialSpec:
    """One LoRA fine-tune: task, adapter (rank, alpha, rule) and optimiser settings."""

    task: str | None = _help("Built-in task (see `lorascope tasks`); omit when --data is given.")
    model: str | None = _help("Local Hugging Face model folder or hub id; default: the built-in tiny LM.")
    data: str | None = _help("Dataset file: JSONL (text, or prompt/completion), CSV or TXT.")
    rank: int = _help("LoRA rank r.", 8)
    alpha: float = _help("LoRA alpha (lora_alpha).", 16.0)
    rule: str = _help("Scaling rule: standard (gamma = alpha/r) or rslora (gamma = alpha/sqrt(r)).", "standard")
    lr: float = _help("Peak learning rate of AdamW.", 2e-4)
    steps: int = _help("Optimiser steps.", 200)
    batch_size: int = _help("Examples per step.", 16)
    seed: int = _help("Seed for adapter init and data order: same seed, same run.", 0)
    device: str = _help("auto (cuda, then mps, then cpu), cpu, cuda or mps.", "auto")
    warmup_steps: int = _help("Linear warmup steps before the peak learning rate.", 0)
    schedule: str = _help("Learning-rate schedule after warmup: constant or cosine.", "constant")
    eval_every: int = _help("Evaluate on held-out data every N steps (and at the end).", 50)
    max_grad_norm: float | None = _help("Clip gradients to this norm (recorded grad_norm is before clipping).", None)
    lora_dropout: float = _help("Dropout on the adapter input.", 0.0)
    target_modules: tuple[str, ...] | None = _help(
        "Module names to adapt; default: every linear layer of attention and MLP.", None
    )
    max_length: int = _help("Longest tokenized example; longer ones are truncated.", 128)
    trust_remote_code: bool = _help("Allow a model folder's own Python code to run (off by default).", False)

    def __post_init__(self) -> None:
        try:
            check_rank(self.rank)
            check_alpha(self.alpha)
            get_rule(self.rule)
        except ValueError as err:
            raise SpecError(str(err)) from None
        if not self.task and not self.data:
            raise SpecError("no task and no data: pass --task NAME (see `lorascope tasks`) or --data FILE")
        _positive_number("lr", self.lr)
        _positive_int("steps", self.steps)
        _positive_int("batch-size", self.batch_size)
        _positive_int("eval-every", self.eval_every)
        _positive_int("max-length", self.max_length)
        if self.warmup_steps < 0:
            raise SpecError(f"warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.device not in DEVICES:
            raise SpecError(f"unknown device {self.device!r}: use one of {', '.join(DEVICES)}")
        if self.schedule not in SCHEDULES:
            raise SpecError(f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SpecError(f"lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.max_grad_norm is not None:
            _positive_number("max-grad-norm", self.max_grad_norm)

    @property
    def gamma(self) -> float:
        """The scale the rule gives for this spec's alpha and rank."""
        return get_rule(self.rule).gamma(self.alpha, self.rank)

    def with_params(self, **params: Any) -> "TrialSpec":
        """Return a copy with some fields replaced (validated again)."""
        return replace(self, **params)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-friendly dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["target_modules"] is not None:
            out["target_modules"] = list(out["target_modules"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialSpec":
        """Build a spec from :meth:`to_dict` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if kwargs.get("target_modules") is not None:
            kwargs["target_modules"] = tuple(kwargs["target_modules"])
        return cls(**kwargs)


def field_help(name: str) -> str:
    """Return the help text of TrialSpec field ``name``."""
    return next(f.metadata["help"] for f in fields(TrialSpec) if f.name == name)


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")


def _positive_number(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise SpecError(f"{name} must be a positive number, got {value!r}")
