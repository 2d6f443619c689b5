"""What a trial, a sweep grid and an alpha search are: defaults, limits and help in one place.

Every field is declared with :func:`spec_field` (PEFT's ``field(metadata={"help": ...})`` style):
its default, its check, its help text and its UI label live there, and the CLI flags
(app/cli_args.py) and the UI labels (app/tabs) are generated from them. A bad value raises
:class:`SpecError` naming the field, so the CLI can print the flag and the UI can put the message
under the right widget.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any

from core.scaling import RULES, AlphaLaw, get_rule

DEVICES = ("auto", "cpu", "cuda", "mps")
SCHEDULES = ("constant", "cosine")
SAMPLERS = ("tpe", "gp", "grid")
PRUNERS = ("none", "median", "hyperband")
# The ranges Optuna stores for every study (tuning/objective.py DISTRIBUTIONS reads these): a value
# outside them could not be recorded, so it is refused up front.
RANK_MAX = 1 << 16
SEED_MAX = 2**31 - 1
ALPHA_RANGE = (1e-4, 1e6)
LR_RANGE = (1e-8, 10.0)
MAX_GRID_POINTS = 2000  # trials one sweep or search may queue; more is a typo, not a plan

Check = Callable[[Any], "str | None"]


class SpecError(ValueError):
    """A user-supplied value is invalid; ``field`` names it and ``message`` says what to change.

    ``str(err)`` is one line for the CLI, starting with the field's flag (``--lrs: ...``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{flag_of(field)}: {message}" if field else message)


def flag_of(name: str) -> str:
    """The CLI flag of spec field ``name`` (``batch_size`` -> ``--batch-size``)."""
    return "--" + name.replace("_", "-")


def spec_field(default: Any = MISSING, *, help: str, label: str | None = None, check: Check | None = None,
               task_default: bool = False, allow_none_word: bool = False) -> Any:
    """A dataclass field with its help text, UI label and check.

    ``task_default``: the CLI leaves it unset and the task's default applies. ``allow_none_word``:
    a list flag that accepts the word ``none`` for an empty list.
    """
    meta = {"help": help, "label": label, "check": check, "task_default": task_default,
            "allow_none_word": allow_none_word}
    return field(default=default, metadata=meta)


# --- checks: each returns the problem (without the field's name) or None -------------------------

def _integer(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value and (high is None or value <= high)
        if ok:
            return None
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        return f"must be a whole number {span}, got {value!r}"
    return check


def _number(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            if (value > low if low_open else value >= low) and (value < high if high_open else value <= high):
                return None
        if high == math.inf:
            span = "a positive number" if low == 0 and low_open else f"a number >= {low:g}"
        else:
            span = f"a number from {low:g} to {high:g}" + (" (not included)" if high_open else "")
        return f"must be {span}, got {value!r}"
    return check


def _choice(options: tuple[str, ...], what: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in options else f"unknown {what} {value!r}: use one of {', '.join(options)}"
    return check


def _each(check: Check) -> Check:
    def check_all(values: Any) -> str | None:
        if not values:
            return "is empty: give at least one value"
        return next((problem for value in values if (problem := check(value))), None)
    return check_all


RANK_CHECK = _integer(1, RANK_MAX)
ALPHA_CHECK = _number(*ALPHA_RANGE)
LR_CHECK = _number(*LR_RANGE)
SEED_CHECK = _integer(0, SEED_MAX)
RULE_CHECK = _choice(tuple(RULES), "scaling rule")


def _validate(spec: Any) -> None:
    for f in fields(spec):
        value = getattr(spec, f.name)
        check = f.metadata.get("check")
        if check is None or (value is None and f.default is None):
            continue
        problem = check(value)
        if problem:
            raise SpecError(problem, field=f.name)


def _seed_field() -> Any:
    return spec_field(0, help="Seed for adapter init and data order: same seed, same run.", label="Seed",
                      check=SEED_CHECK)


@dataclass(frozen=True)
class TrialSpec:
    """One LoRA fine-tune: task, adapter (rank, alpha, rule) and optimiser settings."""

    task: str | None = spec_field(None, label="Task or your own model + data",
                                  help="Built-in task (see `lorascope tasks`); leave it out to train on your own data.")
    model: str | None = spec_field(None, label="Model folder",
                                   help="Local Hugging Face model folder or hub id; default: the built-in tiny LM.")
    data: str | None = spec_field(None, label="Dataset",
                                  help="Dataset file: JSONL (text, or prompt/completion), CSV or TXT.")
    rank: int = spec_field(8, help="LoRA rank r.", label="Rank", check=RANK_CHECK)
    alpha: float = spec_field(16.0, help="LoRA alpha (lora_alpha).", label="Alpha", check=ALPHA_CHECK)
    rule: str = spec_field("standard", label="Scaling rule", check=RULE_CHECK,
                           help="Scaling rule: standard (gamma = alpha/r) or rslora (gamma = alpha/sqrt(r)).")
    lr: float = spec_field(2e-4, help="Peak learning rate of AdamW.", label="Learning rate", check=LR_CHECK,
                           task_default=True)
    steps: int = spec_field(200, help="Optimiser steps.", label="Steps", check=_integer(1), task_default=True)
    batch_size: int = spec_field(16, help="Examples per step.", label="Batch size", check=_integer(1),
                                 task_default=True)
    seed: int = _seed_field()
    device: str = spec_field("auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps.", label="Device",
                             check=_choice(DEVICES, "device"))
    warmup_steps: int = spec_field(0, help="Linear warmup steps before the peak learning rate.",
                                   label="Warmup steps", check=_integer(0))
    schedule: str = spec_field("constant", help="Learning-rate schedule after warmup: constant or cosine.",
                               label="Schedule", check=_choice(SCHEDULES, "schedule"))
    eval_every: int = spec_field(50, help="Evaluate on held-out data every N steps (and at the end).",
                                 label="Evaluate every", check=_integer(1))
    max_grad_norm: float | None = spec_field(
        None, label="Max gradient norm", check=_number(0, low_open=True),
        help="Clip gradients to this norm (recorded grad_norm is before clipping).")
    lora_dropout: float = spec_field(0.0, help="Dropout on the adapter input.", label="LoRA dropout",
                                     check=_number(0.0, 1.0, high_open=True))
    target_modules: tuple[str, ...] | None = spec_field(
        None, label="Target modules", help="Module names to adapt; default: every linear layer of attention and MLP.")
    max_length: int = spec_field(128, help="Longest tokenized example; longer ones are truncated.",
                                 label="Max length", check=_integer(1))
    trust_remote_code: bool = spec_field(False, label="Trust remote code",
                                         help="Allow a model folder's own Python code to run (off by default).")

    def __post_init__(self) -> None:
        if not self.task and not self.data:
            raise SpecError("no task and no data: name a built-in task (see `lorascope tasks`) or give --data FILE",
                            field="task")
        _validate(self)

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


@dataclass(frozen=True)
class SweepGrid:
    """The axes of a sweep; every combination is one trial, plus the sqrt law's points if asked."""

    ranks: tuple[int, ...] = spec_field((4, 16, 64), help="Comma-separated ranks.", label="Ranks",
                                        check=_each(RANK_CHECK))
    rules: tuple[str, ...] = spec_field(
        ("standard", "rslora"), label="Scaling rules", check=lambda v: _each(RULE_CHECK)(v) if v else None,
        allow_none_word=True,
        help="Comma-separated scaling rules: standard, rslora ('none' with --sqrt-law-c: only the law's points).")
    alphas: tuple[float, ...] = spec_field((16.0,), help="Comma-separated alphas.", label="Alphas",
                                           check=_each(ALPHA_CHECK))
    lrs: tuple[float, ...] = spec_field((), help="Comma-separated learning rates.", label="Learning rate",
                                        check=_each(LR_CHECK), task_default=True)
    seed: int = _seed_field()
    sqrt_law_c: float | None = spec_field(None, label="c of the sqrt law", check=_number(0, low_open=True),
                                          help="Also run alpha = C * sqrt(r) under standard at each rank "
                                               "(the LoRA-alpha law).")

    def __post_init__(self) -> None:
        _validate(self)
        if not self.rules and self.sqrt_law_c is None:
            raise SpecError("is empty: tick a rule, or give the sqrt law's c", field="rules")
        if self.sqrt_law_c is not None:
            for rank in self.ranks:
                alpha = self.sqrt_law_c * math.sqrt(rank)
                if ALPHA_CHECK(alpha):
                    raise SpecError(f"gives alpha = c*sqrt({rank}) = {alpha:g}, outside the alphas a study stores "
                                    f"({ALPHA_RANGE[0]:g} to {ALPHA_RANGE[1]:g}): use another c", field="sqrt_law_c")
        count = self.size
        if count > MAX_GRID_POINTS:
            raise SpecError(f"the grid has {count} points (ranks x rules x alphas x lrs), more than the "
                            f"{MAX_GRID_POINTS} one study may queue: use fewer values", field="ranks")

    @property
    def size(self) -> int:
        """Number of grid points before duplicates are merged."""
        per_lr = len(self.ranks) * (len(self.rules) * len(self.alphas) + (self.sqrt_law_c is not None))
        return per_lr * len(self.lrs)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point as trial params, in rule, rank, alpha, lr order."""
        points = [
            {"rank": r, "alpha": float(a), "rule": rule, "lr": float(lr), "seed": self.seed}
            for rule, r, a, lr in itertools.product(self.rules, self.ranks, self.alphas, self.lrs)
        ]
        if self.sqrt_law_c is not None:
            law = AlphaLaw(c=self.sqrt_law_c, p=0.5)
            points += [{"rank": r, "alpha": law.alpha(r), "rule": "standard", "lr": float(lr), "seed": self.seed}
                       for r, lr in itertools.product(self.ranks, self.lrs)]
        unique = {tuple(sorted(p.items())): p for p in points}  # the law can coincide with a grid point
        return list(unique.values())


@dataclass(frozen=True)
class SearchSpec:
    """What an alpha search explores: log-alpha at each rank, the rest held fixed."""

    ranks: tuple[int, ...] = spec_field((4, 16, 64), help="Comma-separated ranks.", label="Ranks",
                                        check=_each(RANK_CHECK))
    rule: str = spec_field("standard", help="Scaling rule: standard or rslora.", label="Rule", check=RULE_CHECK)
    alpha_min: float = spec_field(1.0, help="Lowest alpha searched.", label="alpha min", check=ALPHA_CHECK)
    alpha_max: float | None = spec_field(None, label="alpha max", check=ALPHA_CHECK,
                                         help="Highest alpha searched. Default: 512 * sqrt(largest rank), past "
                                              "the LoRA-alpha paper's 256 * sqrt(r).")
    trials_per_rank: int = spec_field(12, help="Trials at each rank.", label="Trials per rank",
                                      check=_integer(1, MAX_GRID_POINTS))
    sampler: str = spec_field("tpe", help="tpe (default), gp or grid (log-spaced alphas).", label="Sampler",
                              check=_choice(SAMPLERS, "sampler"))
    pruner: str = spec_field("none", help="none, median or hyperband.", label="Pruner",
                             check=_choice(PRUNERS, "pruner"))
    lr: float = spec_field(1e-3, help="Learning rate, fixed for the search.", label="Learning rate",
                           check=LR_CHECK, task_default=True)
    seed: int = _seed_field()

    def __post_init__(self) -> None:
        _validate(self)
        if self.alpha_max is not None and not self.alpha_max > self.alpha_min:
            raise SpecError(f"must be greater than --alpha-min ({self.alpha_min:g}), got {self.alpha_max:g}",
                            field="alpha_max")
        if self.alpha_max is None and not self.alpha_min < self.alpha_high:
            raise SpecError(f"must be below the default --alpha-max, {self.alpha_high:g} (512 * sqrt(largest "
                            f"rank)), got {self.alpha_min:g}: lower it or raise --alpha-max", field="alpha_min")
        if self.alpha_max is None and ALPHA_CHECK(self.alpha_high):
            raise SpecError(f"default {self.alpha_high:g} is past the largest alpha stored, {ALPHA_RANGE[1]:g}: "
                            f"pass a smaller --alpha-max", field="alpha_max")
        count = len(self.ranks) * self.trials_per_rank
        if count > MAX_GRID_POINTS:
            raise SpecError(f"{len(self.ranks)} ranks x {self.trials_per_rank} trials is {count} trials, more than "
                            f"the {MAX_GRID_POINTS} one study may run: use fewer", field="trials_per_rank")

    @property
    def alpha_high(self) -> float:
        """The top of the searched alpha range."""
        return self.alpha_max if self.alpha_max is not None else 512.0 * math.sqrt(max(self.ranks))

    def alpha_grid(self) -> list[float]:
        """Log-spaced alphas for the grid sampler (one per trial), from alpha_min to alpha_high."""
        n = self.trials_per_rank
        if n == 1:
            return [self.alpha_min]
        low, high = math.log(self.alpha_min), math.log(self.alpha_high)
        inner = [math.exp(low + (high - low) * i / (n - 1)) for i in range(1, n - 1)]
        return [self.alpha_min, *inner, self.alpha_high]  # exact ends: both lie inside the searched range


DEFAULT_PACK = 8  # trials a process claims at once without --pack (an out-of-memory pack is split)


@dataclass(frozen=True)
class PackSpec:
    """How many claimed trials one process trains together over one frozen base model."""

    pack: int | None = spec_field(None, label="Pack size", check=_integer(1, MAX_GRID_POINTS),
                                  help=f"Trials trained together in one pass over the base model (1: one at a "
                                       f"time). Default: as many as are queued, up to {DEFAULT_PACK}.")

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def limit(self) -> int:
        """The most trials to claim and train at once."""
        return self.pack or DEFAULT_PACK


def spec_fields(cls: type) -> dict[str, Field]:
    """The fields of a spec class by name."""
    return {f.name: f for f in fields(cls)}


def field_help(name: str, cls: type = TrialSpec) -> str:
    """Return the help text of field ``name`` of spec class ``cls``."""
    return spec_fields(cls)[name].metadata["help"]


def field_label(name: str, cls: type = TrialSpec) -> str:
    """Return the UI label of field ``name`` of spec class ``cls``."""
    return spec_fields(cls)[name].metadata["label"] or name.replace("_", " ")


def field_default(name: str, cls: type = TrialSpec) -> Any:
    """Return the default of field ``name`` of spec class ``cls``."""
    return spec_fields(cls)[name].default


def ui_message(err: SpecError) -> str:
    """The error in UI words: the field's label instead of its flag, and no ``--flag`` anywhere."""
    labels = {flag_of(name): field_label(name, cls) for cls in (SearchSpec, SweepGrid, TrialSpec)
              for name in spec_fields(cls)}
    text = str(err)
    if err.field:
        label = labels.get(flag_of(err.field), err.field.replace("_", " "))
        text = f"{label} {err.message}" if err.message.startswith(("must ", "is ")) else err.message
    for flag in sorted(labels, key=len, reverse=True):
        text = text.replace(flag, labels[flag])
    return text
