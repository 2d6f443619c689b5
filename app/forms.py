"""Turn the UI's raw widget values into CLI arguments, or per-field error messages.

Pure functions (but for a cached probe of the accelerator): the same specs as the CLI, run
before anything starts. Each :class:`SpecError` lands under the widget of its ``field``, in UI
words (labels, never ``--flags``).
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.data import load_examples, split_examples
from core.models import resolve_model_path
from core.specs import SearchSpec, SpecError, SweepGrid, TrialSpec, spec_fields, ui_message
from core.tasks import TASKS, get_task

CUSTOM = "your model + data"
SOURCES = [*TASKS, CUSTOM]
SQRT_LAW = "sqrt law (alpha = c*sqrt(r))"
RULE_CHOICES = ["standard", "rslora", SQRT_LAW]
# spec field -> form widget
FORM_KEYS = {"task": "source", "model": "model", "data": "data", "ranks": "ranks", "rules": "rules",
             "alphas": "alphas", "lrs": "lr", "lr": "lr", "sqrt_law_c": "law_c", "steps": "steps",
             "batch_size": "batch_size", "device": "device", "rule": "rule", "alpha_min": "alpha_min",
             "alpha_max": "alpha_max", "trials_per_rank": "trials", "sampler": "sampler", "pruner": "pruner"}


@dataclass
class FormResult:
    """Either CLI arguments for a worker, or errors keyed by form widget."""

    argv: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth telling, not blocking (skipped data rows)

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors

    def add(self, err: SpecError, default: str) -> None:
        """Put ``err`` under its field's widget (``default`` when it names none); the first one wins."""
        self.errors.setdefault(FORM_KEYS.get(err.field or "", default), ui_message(err))


def parse_numbers(text, kind: type) -> tuple:
    """Parse a comma-separated list; raise ValueError with a UI message."""
    try:
        values = tuple(kind(part.strip()) for part in str(text or "").split(",") if part.strip())
    except ValueError:
        raise ValueError(f"use comma-separated {'whole numbers' if kind is int else 'numbers'}, e.g. 4,16,64") from None
    if not values:
        raise ValueError("give at least one value")
    return values


def _number(value, key: str, result: FormResult, *, whole: bool = False) -> float | int | None:
    """A number from a widget; a whole number when ``whole`` (2.5 steps is refused, never rounded)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        result.errors[key] = "give a whole number" if whole else "give a number"
        return None
    if whole:
        if not math.isfinite(number) or number != int(number):
            result.errors[key] = f"must be a whole number, got {value}"
            return None
        return int(number)
    return number


@functools.cache
def accelerator_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine, else None (asked of a child: torch stays out of the UI)."""
    probe = ("import torch, sys; d = sys.argv[1]; ok = torch.cuda.is_available() if d == 'cuda' else "
             "(getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available()); "
             "sys.exit(0 if ok else 3)")
    done = subprocess.run([sys.executable, "-c", probe, device], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, timeout=120)
    if done.returncode == 0:
        return None
    what = "no CUDA GPU is visible" if device == "cuda" else "Apple MPS is not available"
    return f"{what} on this machine: choose auto or cpu"


def _source(source, model, data, result: FormResult) -> tuple[list[str], dict]:
    """argv and TrialSpec kwargs for the source; a task ignores the model and dataset widgets."""
    if source in TASKS:
        return ["--task", source], {"task": source}
    if source != CUSTOM:
        result.errors["source"] = f"unknown task {source!r}: pick one from the list"
        return [], {}
    model = (model or "").strip() or None
    argv = ["--model", model] if model else []
    if not data:
        result.errors["data"] = "choose a dataset file (JSONL, CSV or TXT) or a built-in task"
        return argv, {}
    return argv + ["--data", data], {"model": model, "data": data}


def _check_sources(kwargs: dict, result: FormResult) -> None:
    """Dataset rows and model folder, each error under its own widget."""
    if kwargs.get("data"):
        try:
            split_examples(load_examples(kwargs["data"], result.notes), kwargs["data"])
        except SpecError as err:
            result.errors.setdefault("data", ui_message(err))
    if kwargs.get("data") or get_task(kwargs["task"]).kind == "text":
        try:
            resolve_model_path(kwargs.get("model"))
        except SpecError as err:
            result.errors.setdefault("model" if kwargs.get("model") else "source", ui_message(err))


def _trial_checks(source_kwargs: dict, steps, batch_size, device, result: FormResult) -> None:
    numbers = {}
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        numbers[name] = _number(value, name, result, whole=True)
        problem = numbers[name] is not None and spec_fields(TrialSpec)[name].metadata["check"](numbers[name])
        if problem:
            result.errors[name] = ui_message(SpecError(problem, field=name))
    if result.errors.keys() & {"steps", "batch_size"} or not source_kwargs:
        return
    steps_i, batch_i = numbers["steps"], numbers["batch_size"]
    try:
        TrialSpec(**source_kwargs, steps=steps_i, batch_size=batch_i, device=device)
    except SpecError as err:
        result.add(err, "source")
        return
    _check_sources(source_kwargs, result)
    if device in ("cuda", "mps") and "device" not in result.errors:
        problem = accelerator_problem(device)
        if problem:
            result.errors["device"] = problem


def sweep_form(source, model, data, ranks, rules, law_c, alphas, lr, steps, batch_size, device) -> FormResult:
    """Validate the Run form; on success the argv of `lorascope sweep`."""
    result = FormResult()
    errors = result.errors
    source_argv, source_kwargs = _source(source, model, data, result)
    rules = list(rules or [])
    plain_rules = tuple(r for r in rules if r != SQRT_LAW)
    values = {}
    for key, text, kind in (("ranks", ranks, int), ("alphas", alphas, float)):
        if key == "alphas" and not plain_rules:
            continue  # only the sqrt law: its alphas come from c
        try:
            values[key] = parse_numbers(text, kind)
        except ValueError as err:
            errors[key] = str(err)
    if not rules:
        errors["rules"] = "tick at least one rule"
    law = None
    if SQRT_LAW in rules:
        law = _number(law_c, "law_c", result) if law_c not in (None, "") else None
        if law is None:
            errors.setdefault("law_c", "give c, e.g. 16 (or untick the sqrt law)")
    lr_value = _number(lr, "lr", result)
    if "ranks" in values and rules and lr_value is not None and not errors.get("law_c") and not errors.get("alphas"):
        try:
            SweepGrid(ranks=values["ranks"], rules=plain_rules, alphas=values.get("alphas", (16.0,)),
                      lrs=(lr_value,), sqrt_law_c=law)
        except SpecError as err:
            result.add(err, "ranks")
    _trial_checks(source_kwargs, steps, batch_size, device, result)
    if errors:
        return result
    argv = ["sweep", *source_argv, "--ranks", ",".join(map(str, values["ranks"])), "--lrs", repr(lr_value),
            "--steps", str(int(float(steps))), "--batch-size", str(int(float(batch_size))), "--device", device]
    if plain_rules:
        argv += ["--rules", ",".join(plain_rules), "--alphas", ",".join(repr(a) for a in values["alphas"])]
    else:  # only the law: a grid of the law's points alone
        argv += ["--rules", "none"]
    if law is not None:
        argv += ["--sqrt-law-c", repr(law)]
    result.argv = argv
    return result


def search_form(source, model, data, ranks, rule, alpha_min, alpha_max, trials, sampler, pruner, lr, steps,
                batch_size, device) -> FormResult:
    """Validate the search form; on success the argv of `lorascope search`."""
    result = FormResult()
    source_argv, source_kwargs = _source(source, model, data, result)
    trials_i = _number(trials, "trials", result, whole=True)
    low = _number(alpha_min, "alpha_min", result)
    high = _number(alpha_max, "alpha_max", result) if alpha_max not in (None, "") else None
    lr_value = _number(lr, "lr", result)
    try:
        rank_values = parse_numbers(ranks, int)
    except ValueError as err:
        result.errors["ranks"] = str(err)
        rank_values = None
    if rank_values and trials_i is not None and low is not None and lr_value is not None:
        try:
            SearchSpec(ranks=rank_values, rule=rule, alpha_min=low, alpha_max=high, trials_per_rank=trials_i,
                       sampler=sampler, pruner=pruner, lr=lr_value)
        except SpecError as err:
            result.add(err, "ranks")
    _trial_checks(source_kwargs, steps, batch_size, device, result)
    if result.errors:
        return result
    argv = ["search", *source_argv, "--ranks", ",".join(map(str, rank_values)), "--rule", rule,
            "--alpha-min", repr(low), "--trials-per-rank", str(trials_i), "--sampler", sampler, "--pruner", pruner,
            "--lr", repr(lr_value), "--steps", str(int(float(steps))), "--batch-size", str(int(float(batch_size))),
            "--device", device]
    if high is not None:
        argv += ["--alpha-max", repr(high)]
    result.argv = argv
    return result
