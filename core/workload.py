"""The interface between the trial trainer and a task: batches, loss and evaluation."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Batch:
    """One training batch: tensors handed to :meth:`Workload.loss`, and its size in tokens."""

    inputs: dict[str, torch.Tensor]
    tokens: int


class Workload(abc.ABC):
    """A task made ready for one trial: a LoRA-wrapped model and its data on one device."""

    #: the PEFT-wrapped model being trained
    model: torch.nn.Module

    @abc.abstractmethod
    def train_batch(self, step: int) -> Batch:
        """Return the batch for training step ``step`` (deterministic given the seed)."""

    @abc.abstractmethod
    def loss(self, batch: Batch) -> torch.Tensor:
        """Return the scalar training loss of the model on ``batch``."""

    @abc.abstractmethod
    def evaluate(self) -> float:
        """Return the loss on held-out data (no gradients)."""

    def svd_floor(self) -> float | None:
        """The lowest loss any adapter of this rank can reach, where it is known."""
        return None

    def describe(self) -> dict[str, Any]:
        """Facts about the workload worth recording with the trial (target modules, sizes)."""
        return {}
