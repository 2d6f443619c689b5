"""Built-in tasks, their defaults and up-front source checks (no torch: the CLI imports this)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.builtin_text import fact_examples, style_examples
from core.data import Example, load_examples, split_examples
from core.spectra import SPECTRA
from core.specs import SpecError, TrialSpec


@dataclass(frozen=True)
class TaskInfo:
    """A built-in task: what it is and the defaults that suit it."""

    name: str
    kind: str  # "synthetic" or "text"
    description: str
    batch_size: int
    steps: int
    lr: float


TASKS: dict[str, TaskInfo] = {
    "synthetic-style": TaskInfo("synthetic-style", "synthetic", SPECTRA["synthetic-style"].description,
                                batch_size=64, steps=300, lr=1e-3),
    "synthetic-facts": TaskInfo("synthetic-facts", "synthetic", SPECTRA["synthetic-facts"].description,
                                batch_size=64, steps=300, lr=1e-3),
    "tiny-facts": TaskInfo("tiny-facts", "text", "tiny pretrained LM learns 144 fictional facts "
                           "(\"The capital of Velmora is Quandrel.\"); loss on answers; eval on the "
                           "same facts (the task is memorisation)", batch_size=16, steps=200, lr=1e-3),
    "tiny-style": TaskInfo("tiny-style", "text", "tiny pretrained LM learns a fixed rewrite style "
                           "(\"Verily, ..., indeed.\"); loss on answers; eval on held-out sentences",
                           batch_size=16, steps=200, lr=1e-3),
}

TEXT_DATA: dict[str, Callable[[], tuple[list[Example], list[Example]]]] = {
    "tiny-facts": lambda: (fact_examples(), fact_examples()),
    "tiny-style": lambda: split_examples(style_examples()),
}


def get_task(name: str) -> TaskInfo:
    """Return built-in task ``name``; raise SpecError listing the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise SpecError(f"unknown task {name!r}: use one of {', '.join(TASKS)}") from None


def check_task_sources(spec: TrialSpec) -> None:
    """Raise SpecError when a built-in task is combined with sources it does not take."""
    if not spec.task:
        return
    task = get_task(spec.task)
    if task.kind == "synthetic" and (spec.model or spec.data):
        raise SpecError(f"task {spec.task} is synthetic: drop --model and --data")
    if spec.data:
        raise SpecError(f"task {spec.task} brings its own data: drop --data or drop --task")


def check_sources(spec: TrialSpec) -> list[str]:
    """Validate task, model path and data file up front (cheap checks, no model loading).

    Returns notes for the user, such as dataset rows that will be skipped.
    """
    from core.models import resolve_model_path

    notes: list[str] = []
    check_task_sources(spec)
    if spec.data:
        split_examples(load_examples(spec.data, notes), spec.data)
    if not spec.task or get_task(spec.task).kind == "text":
        resolve_model_path(spec.model)
    return notes


CUSTOM_DATA = TaskInfo("custom", "text", "your model and dataset file", batch_size=8, steps=200, lr=2e-4)


def task_defaults(task: str | None) -> TaskInfo:
    """Defaults (batch size, steps, lr) for a built-in task, or for a user's own data."""
    return get_task(task) if task else CUSTOM_DATA
