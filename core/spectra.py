"""The synthetic tasks' target spectra: how the delta's singular values are laid out (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spectrum:
    """How the target delta's singular values are laid out."""

    name: str
    description: str
    values: tuple[float, float]  # largest and smallest singular value
    true_rank: int | None  # None: full width
    decay: str  # "geometric" or "linear"

    def singular_values(self, dim: int) -> np.ndarray:
        """Return the target's singular values for a ``dim`` x ``dim`` map (descending)."""
        k = min(self.true_rank or dim, dim)
        hi, lo = self.values
        head = np.geomspace(hi, lo, k) if self.decay == "geometric" else np.linspace(hi, lo, k)
        return np.concatenate([head, np.zeros(dim - k)])


SPECTRA = {
    "synthetic-style": Spectrum(
        "synthetic-style", "frozen linear map; learn a rank-4 delta (singular values 5 to 0.5): "
        "saturates at low rank", (5.0, 0.5), 4, "geometric"),
    "synthetic-facts": Spectrum(
        "synthetic-facts", "frozen linear map; learn a full-width delta (singular values 3 to 0.5): "
        "needs high rank, which only a rank-stabilized scale can use", (3.0, 0.5), None, "linear"),
}


def svd_floor(singular_values: np.ndarray, rank: int) -> float:
    """Eckart-Young: the relative squared error of the best rank-``rank`` approximation."""
    energy = singular_values**2
    return float(energy[rank:].sum() / energy.sum())
