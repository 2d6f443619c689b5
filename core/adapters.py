"""Attach a PEFT LoRA adapter to a base model and read back the scale PEFT applies."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

from core.scaling import get_rule


def lora_config(
    *,
    rank: int,
    alpha: float,
    rule: str,
    target_modules: list[str],
    lora_dropout: float = 0.0,
    task_type: str | None = None,
) -> LoraConfig:
    """Return the PEFT ``LoraConfig`` that applies ``rule`` with this rank and alpha."""
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        use_rslora=get_rule(rule).use_rslora,
        target_modules=list(target_modules),
        lora_dropout=lora_dropout,
        bias="none",
        task_type=task_type,
    )


def attach_lora(model: torch.nn.Module, config: LoraConfig) -> torch.nn.Module:
    """Wrap ``model`` with a fresh LoRA adapter; only adapter weights stay trainable."""
    return get_peft_model(model, config)


def applied_gamma(model: torch.nn.Module, adapter: str = "default") -> float:
    """Return the ``scaling`` PEFT applies in ``model``'s LoRA layers (all must agree)."""
    scales = {
        float(module.scaling[adapter])
        for module in model.modules()
        if isinstance(module, LoraLayer) and adapter in module.scaling
    }
    if not scales:
        raise ValueError("the model has no LoRA layers: check target_modules")
    if max(scales) - min(scales) > 1e-9 * max(scales):
        raise ValueError(f"LoRA layers apply different scales: {sorted(scales)}")
    return scales.pop()


def adapter_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Return the trainable (adapter) parameters of ``model``."""
    return [p for p in model.parameters() if p.requires_grad]
