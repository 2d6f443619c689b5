"""Device and precision choice for a trial."""

from __future__ import annotations

import contextlib

import torch

from core.specs import SpecError


def pick_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``: auto picks cuda, then mps, then cpu."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise SpecError("--device cuda but no CUDA GPU is visible: use --device auto or --device cpu")
    if name == "mps" and not mps:
        raise SpecError("--device mps but Apple MPS is not available: use --device auto or --device cpu")
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (weights and optimiser state stay fp32); a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def is_out_of_memory(err: BaseException) -> bool:
    """True when ``err`` is an accelerator (or host) out-of-memory error."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_accelerator_memory() -> None:
    """Return cached accelerator memory after a trial (matters after an OOM)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
