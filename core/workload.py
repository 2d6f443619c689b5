"""The interface between the packed trainer and a task: batches, per-config losses and evaluation.

A workload holds one frozen base model whose target linears are :class:`PackedLoRALinear`
layers, and its data. :meth:`Workload.attach` gives it a pack of K adapters; every batch is then
seen by each active config on its own replica of the rows, and losses come back one per config.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch

from core.packed_lora import AdapterSetting, Pack, PackedLoRALinear, attach_pack, detach_pack


@dataclass
class Batch:
    """One training batch: tensors handed to :meth:`Workload.losses`, and its size in tokens."""

    inputs: dict[str, torch.Tensor]
    tokens: int
    label_tokens: int = 0  # tokens that carry a label (text tasks), counted on the host


class Workload(abc.ABC):
    """A task made ready for packs of trials: a frozen base with packed LoRA layers, and data."""

    #: the base model, its target linears replaced by packed LoRA layers
    model: torch.nn.Module
    #: (module name, layer) in module order
    layers: list[tuple[str, PackedLoRALinear]]
    device: torch.device

    #: True when the model's input reaches the packed layers unchanged, so it is passed once, not K times
    shared_input: bool = False

    def attach(self, settings: list[AdapterSetting]) -> Pack:
        """Give every packed layer fresh adapters for ``settings`` (PEFT's init per config)."""
        return attach_pack([layer for _, layer in self.layers], settings, self.device, self.shared_input)

    def detach(self) -> None:
        """Drop the pack's adapters; the base model stays for the next pack."""
        detach_pack([layer for _, layer in self.layers])

    @abc.abstractmethod
    def train_batch(self, step: int) -> Batch:
        """Return the batch for training step ``step`` (deterministic given the seed)."""

    @abc.abstractmethod
    def losses(self, batch: Batch, n: int) -> torch.Tensor:
        """Return the training loss of each of the ``n`` active configs on ``batch``, shape (n,)."""

    @abc.abstractmethod
    def evaluate(self, n: int) -> torch.Tensor:
        """Return each active config's loss on held-out data, shape (n,), without gradients."""

    def svd_floor(self, rank: int) -> float | None:
        """The lowest loss any adapter of ``rank`` can reach, where it is known."""
        return None

    def describe(self) -> dict[str, Any]:
        """Facts about the workload worth recording with the trial (target modules, sizes)."""
        return {}
