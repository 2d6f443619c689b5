"""Turn the UI's raw widget values into CLI arguments, or per-field error messages.

Pure functions: the same validation as the CLI (specs, grids), run before anything starts, so
the UI can show each problem next to its field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.specs import SpecError, TrialSpec
from core.tasks import TASKS, check_sources
from tuning.search import SearchSpec
from tuning.sweep import SweepGrid

CUSTOM = "your model + data"
SOURCES = [*TASKS, CUSTOM]
SQRT_LAW = "sqrt law (alpha = c*sqrt(r))"
RULE_CHOICES = ["standard", "rslora", SQRT_LAW]


@dataclass
class FormResult:
    """Either CLI arguments for a worker, or errors keyed by field name."""

    argv: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth telling, not blocking (skipped data rows)

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors


def parse_numbers(text: str, kind: type, name: str) -> tuple:
    """Parse a comma-separated list, raising ValueError with a message naming the field."""
    try:
        values = tuple(kind(part.strip()) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{name}: use comma-separated {'integers' if kind is int else 'numbers'}, e.g. 4,16,64") from None
    if not values:
        raise ValueError(f"{name}: give at least one value")
    return values


def _source_argv(source: str, model: str | None, data: str | None, errors: dict) -> list[str]:
    if source in TASKS:
        return ["--task", source]
    argv = []
    if model and model.strip():
        argv += ["--model", model.strip()]
    if data:
        argv += ["--data", data]
    else:
        errors["data"] = "choose a dataset file (JSONL, CSV or TXT) or a built-in task"
    return argv


def _integer(value, name: str, errors: dict, key: str) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[key] = f"{name} must be a whole number"
        return None
    if not math.isfinite(number) or number != int(number) or number < 1:
        errors[key] = f"{name} must be a positive whole number, got {value}"
        return None
    return int(number)


def _spec_errors(source, model, data, steps, batch_size, device, errors, notes=None) -> TrialSpec | None:
    try:
        spec = TrialSpec(task=source if source in TASKS else None, model=(model or "").strip() or None,
                         data=data or None, steps=steps, batch_size=batch_size, device=device)
        (notes if notes is not None else []).extend(check_sources(spec))
        return spec
    except SpecError as err:
        key = "data" if "data" in str(err) else "model" if "model" in str(err) else "source"
        errors.setdefault(key, str(err))
        return None


def sweep_form(source, model, data, ranks, rules, law_c, alphas, lr, steps, batch_size, device) -> FormResult:
    """Validate the Run form; on success the argv of `lorascope sweep`."""
    result = FormResult()
    errors = result.errors
    argv = ["sweep", *_source_argv(source, model, data, errors)]
    steps_i = _integer(steps, "steps", errors, "steps")
    batch_i = _integer(batch_size, "batch size", errors, "batch_size")
    rules = list(rules or [])
    plain_rules = [r for r in rules if r != SQRT_LAW]
    try:
        rank_values = parse_numbers(ranks, int, "ranks")
        alpha_values = parse_numbers(alphas, float, "alphas") if plain_rules else (16.0,)
    except ValueError as err:
        errors["ranks" if "ranks" in str(err) else "alphas"] = str(err)
        rank_values = alpha_values = None
    if not rules:
        errors["rules"] = "tick at least one rule"
    law = float(law_c) if SQRT_LAW in rules and law_c is not None else None
    if rank_values and alpha_values and rules:
        try:
            SweepGrid(ranks=rank_values, rules=tuple(plain_rules) or ("standard",), alphas=alpha_values,
                      lrs=(float(lr or 0),), sqrt_law_c=law)
        except SpecError as err:
            text = str(err)
            key = next((k for k in ("rank", "alpha", "learning rate", "sqrt-law") if k in text), "ranks")
            errors[{"rank": "ranks", "alpha": "alphas", "learning rate": "lr", "sqrt-law": "law_c"}[key]] = text
    if steps_i and batch_i and not errors.get("data"):
        _spec_errors(source, model, data, steps_i, batch_i, device, errors, result.notes)
    if errors:
        return result
    argv += ["--ranks", ",".join(map(str, rank_values)), "--lrs", repr(float(lr)), "--steps", str(steps_i),
             "--batch-size", str(batch_i), "--device", device]
    if plain_rules:
        argv += ["--rules", ",".join(plain_rules), "--alphas", ",".join(repr(a) for a in alpha_values)]
    else:  # only the law: the grid still needs a rule; the law's points are all standard
        argv += ["--rules", "standard", "--alphas", repr(law * math.sqrt(rank_values[0]))]
    if law is not None:
        argv += ["--sqrt-law-c", repr(law)]
    result.argv = argv
    return result


def search_form(source, model, data, ranks, rule, alpha_min, alpha_max, trials, sampler, pruner, lr, steps,
                batch_size, device) -> FormResult:
    """Validate the search form; on success the argv of `lorascope search`."""
    result = FormResult()
    errors = result.errors
    argv = ["search", *_source_argv(source, model, data, errors)]
    steps_i = _integer(steps, "steps", errors, "steps")
    batch_i = _integer(batch_size, "batch size", errors, "batch_size")
    trials_i = _integer(trials, "trials per rank", errors, "trials")
    try:
        rank_values = parse_numbers(ranks, int, "ranks")
    except ValueError as err:
        errors["ranks"] = str(err)
        rank_values = None
    if rank_values and trials_i:
        try:
            SearchSpec(ranks=rank_values, rule=rule, alpha_min=float(alpha_min or 0),
                       alpha_max=float(alpha_max) if alpha_max else None, trials_per_rank=trials_i,
                       sampler=sampler, pruner=pruner, lr=float(lr or 0))
        except SpecError as err:
            text = str(err)
            key = "alpha" if "alpha" in text else "ranks" if "rank" in text else "lr" if "lr" in text else "search"
            errors[key] = text
    if steps_i and batch_i and not errors.get("data"):
        _spec_errors(source, model, data, steps_i, batch_i, device, errors)
    if errors:
        return result
    argv += ["--ranks", ",".join(map(str, rank_values)), "--rule", rule, "--alpha-min", repr(float(alpha_min)),
             "--trials-per-rank", str(trials_i), "--sampler", sampler, "--pruner", pruner, "--lr", repr(float(lr)),
             "--steps", str(steps_i), "--batch-size", str(batch_i), "--device", device]
    if alpha_max:
        argv += ["--alpha-max", repr(float(alpha_max))]
    result.argv = argv
    return result
