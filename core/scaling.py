"""Scaling rules: how a LoRA adapter's output is scaled (gamma) from its rank and alpha.

Standard LoRA applies ``gamma = alpha / r``; rank-stabilized LoRA (rsLoRA, Kalajdzievski 2023)
applies ``gamma = alpha / sqrt(r)``, the only choice that keeps activations and gradients
Theta(1) as ``r`` grows. An :class:`AlphaLaw` ``alpha(r) = c * r**p`` picks alpha per rank; the
sqrt law (p = 0.5) under ``standard`` gives the same gamma as ``rslora`` with ``lora_alpha = c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ScalingRule:
    """A named rule mapping (alpha, rank) to the adapter scale gamma.

    Args:
        name: the rule's name as used on the command line and in results.
        rank_power: gamma = alpha / rank**rank_power.
        use_rslora: the PEFT ``LoraConfig.use_rslora`` flag that makes PEFT apply this rule.
    """

    name: str
    rank_power: float
    use_rslora: bool

    def gamma(self, alpha: float, rank: int) -> float:
        """Return the effective scale gamma for ``alpha`` at ``rank``."""
        check_rank(rank)
        check_alpha(alpha)
        return alpha / rank**self.rank_power

    def alpha_for_gamma(self, gamma: float, rank: int) -> float:
        """Return the alpha that gives scale ``gamma`` at ``rank`` under this rule."""
        check_rank(rank)
        return gamma * rank**self.rank_power


STANDARD = ScalingRule("standard", 1.0, use_rslora=False)
RSLORA = ScalingRule("rslora", 0.5, use_rslora=True)
RULES: dict[str, ScalingRule] = {rule.name: rule for rule in (STANDARD, RSLORA)}


def get_rule(name: str) -> ScalingRule:
    """Return the rule called ``name``; raise ValueError naming the known rules otherwise."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown scaling rule {name!r}: use one of {', '.join(RULES)}") from None


@dataclass(frozen=True)
class AlphaLaw:
    """The law ``alpha(r) = c * r**p`` (p = 0.5 is the sqrt law of the LoRA-alpha paper)."""

    c: float
    p: float = 0.5

    def __post_init__(self) -> None:
        if not (self.c > 0 and math.isfinite(self.c)):
            raise ValueError(f"alpha law coefficient c must be a positive number, got {self.c}")
        if not math.isfinite(self.p):
            raise ValueError(f"alpha law exponent p must be a finite number, got {self.p}")

    def alpha(self, rank: int) -> float:
        """Return the alpha this law gives at ``rank``."""
        check_rank(rank)
        return self.c * rank**self.p


def check_rank(rank: int) -> None:
    """Raise ValueError unless ``rank`` is a positive integer."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer (1, 4, 16, ...), got {rank!r}")


def check_alpha(alpha: float) -> None:
    """Raise ValueError unless ``alpha`` is a finite positive number."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number (e.g. 16), got {alpha!r}")
