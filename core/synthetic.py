"""Synthetic tasks: learn a known low- or full-rank delta on top of a frozen linear map.

The frozen base is ``y = W0 x``; the target is ``y = (W0 + D) x`` with ``D = U diag(s) V^T``
(U, V orthonormal from QR of Gaussian matrices), plus 1% noise on training targets. The loss is
the squared error divided by the delta's expected output energy ``E||D x||^2 = ||D||_F^2``, so a
zero adapter scores 1.0 and, by Eckart-Young, no rank-r adapter scores below
``sum_{i>r} s_i^2 / sum_i s_i^2`` (the SVD floor). Seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.packed_lora import install_packed_layers
from core.spectra import Spectrum, svd_floor
from core.specs import SpecError, TrialSpec
from core.workload import Batch, Workload

TARGET_SEED = 1234  # one fixed target per task, whatever the trial's seed, so trials compare
NOISE_FRACTION = 0.01  # training-target noise energy, as a fraction of the delta's energy


class FrozenLinear(nn.Module):
    """The base model of a synthetic task: one frozen linear map named ``proj``."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(weight)
        self.proj.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def make_target(spectrum: Spectrum, dim: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Return (W0, D, singular values) for ``spectrum``, fixed by TARGET_SEED."""
    gen = torch.Generator().manual_seed(TARGET_SEED)
    base = torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim**0.5
    u, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    s = spectrum.singular_values(dim)
    delta = u @ torch.diag(torch.from_numpy(s)) @ v.T
    return base.float(), delta.float(), s


class SyntheticWorkload(Workload):
    """A synthetic task made ready for packs sharing ``spec``'s seed, batch size and steps."""

    shared_input = True  # the one adapted layer sees the raw batch: the base map runs once per step

    def __init__(self, spectrum: Spectrum, spec: TrialSpec, device: torch.device, dim: int = 256):
        self.dim = dim
        self.device = device
        self.spec = spec
        base, delta, self.singular_values = make_target(spectrum, dim)
        self.target = (base + delta).to(device)
        self.energy = float((delta.double() ** 2).sum())  # ||D||_F^2 = E||D x||^2 for x ~ N(0, I)
        self.noise_std = (NOISE_FRACTION * self.energy / dim) ** 0.5
        self.model = FrozenLinear(base).to(device)
        self.layers = install_packed_layers(self.model, ["proj"])
        self.data_gen = torch.Generator().manual_seed(spec.seed + 1)
        self.eval_gen = torch.Generator().manual_seed(spec.seed + 2)

    def attach(self, settings):
        for s in settings:
            if s.rank > self.dim:
                raise SpecError(f"rank {s.rank} exceeds the synthetic map's width {self.dim}: "
                                f"use rank <= {self.dim}")
        return super().attach(settings)

    def train_batch(self, step: int) -> Batch:
        x = torch.randn(self.spec.batch_size, self.dim, generator=self.data_gen)
        noise = torch.randn(self.spec.batch_size, self.dim, generator=self.data_gen) * self.noise_std
        x = x.to(self.device)
        y = x @ self.target.T + noise.to(self.device)
        return Batch({"x": x, "y": y}, tokens=self.spec.batch_size)

    def _losses(self, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
        pred = self.model(x).float().view(n, *x.shape)  # (n, B, dim): the pack's layer fans x out
        squared = F.mse_loss(pred, y.expand_as(pred), reduction="none")  # one fused op, forward and backward
        return squared.sum(dim=2).mean(dim=1) / self.energy

    def losses(self, batch: Batch, n: int) -> torch.Tensor:
        return self._losses(batch.inputs["x"], batch.inputs["y"], n)

    @torch.no_grad()
    def evaluate(self, n: int) -> torch.Tensor:
        # Fresh inputs forming a scaled random orthonormal basis: the mean squared error over
        # them equals ||W_eff - W0 - D||_F^2 exactly, i.e. the expected loss on clean targets.
        q, _ = torch.linalg.qr(torch.randn(self.dim, self.dim, generator=self.eval_gen))
        x = (q * self.dim**0.5).to(self.device)
        return self._losses(x, x @ self.target.T, n)

    def svd_floor(self, rank: int) -> float:
        return svd_floor(self.singular_values, rank)

    def describe(self) -> dict:
        return {"target_modules": ["proj"], "dim": self.dim}
