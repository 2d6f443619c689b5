"""Turn a trial spec into a ready workload; a worker process loads each base model once."""

from __future__ import annotations

import torch

from core.data import load_examples, split_examples
from core.models import discover_target_modules, keeps_label_logits, load_model_and_tokenizer, resolve_model_path
from core.packed_lora import install_packed_layers
from core.spectra import SPECTRA
from core.specs import TrialSpec
from core.synthetic import SyntheticWorkload
from core.tasks import TEXT_DATA, check_task_sources, get_task
from core.text_task import TextWorkload
from core.workload import Workload

_BASE_CACHE: dict[tuple, tuple] = {}  # one entry: (model, tokenizer, packed layers, target names, keeps label logits)


def build_workload(spec: TrialSpec, device: torch.device) -> Workload:
    """Make the spec's task, model and data ready for packs of trials on ``device``."""
    check_task_sources(spec)
    if spec.task:
        if get_task(spec.task).kind == "synthetic":
            return SyntheticWorkload(SPECTRA[spec.task], spec, device)
        train, evals = TEXT_DATA[spec.task]()
    else:
        train, evals = split_examples(load_examples(spec.data), spec.data)
    return TextWorkload(spec, device, base_model(spec, device), train, evals)


def base_model(spec: TrialSpec, device: torch.device) -> tuple:
    """(model, tokenizer, packed layers, targets, keeps label logits) for the spec's model, loaded once per process."""
    key = (resolve_model_path(spec.model), spec.trust_remote_code, spec.target_modules, str(device))
    if key not in _BASE_CACHE:
        _BASE_CACHE.clear()  # a worker trains one model at a time: free the last one first
        model, tokenizer = load_model_and_tokenizer(spec.model, trust_remote_code=spec.trust_remote_code)
        model.requires_grad_(False)
        targets = list(spec.target_modules or discover_target_modules(model))
        layers = install_packed_layers(model, targets)
        model.to(device)
        _BASE_CACHE[key] = (model, tokenizer, layers, targets, keeps_label_logits(model))
    return _BASE_CACHE[key]


def clear_base_cache() -> None:
    """Forget the cached base model (the bench uses it to time model loading per trial)."""
    _BASE_CACHE.clear()
