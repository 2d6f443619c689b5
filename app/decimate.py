"""Min/max-preserving decimation: a long series drawn with a fixed number of points per trace."""

from __future__ import annotations

import numpy as np


def minmax_indices(ys: np.ndarray, budget: int) -> np.ndarray:
    """Sorted indices of at most ``budget`` points of ``ys`` that keep its shape.

    The series is cut into ``(budget - 2) // 2`` equal buckets; each keeps its lowest and highest
    point (NaN counts as neither), and the first and last points are always kept. A bucket of only
    NaN keeps one NaN point, so a gap stays a gap. Under budget, every index is returned.
    """
    ys = np.asarray(ys, dtype=float)
    n = len(ys)
    if n <= budget or budget < 4:
        return np.arange(n) if n <= budget else np.unique(np.linspace(0, n - 1, max(budget, 2)).round().astype(int))
    buckets = (budget - 2) // 2
    size = -(-n // buckets)  # ceil: every point falls in a bucket
    padded = np.full(buckets * size, np.nan)
    padded[:n] = ys
    grid = padded.reshape(buckets, size)
    missing = np.isnan(grid)
    offsets = np.arange(buckets) * size
    lows = np.where(missing, np.inf, grid).argmin(axis=1) + offsets
    highs = np.where(missing, -np.inf, grid).argmax(axis=1) + offsets
    keep = np.concatenate(([0, n - 1], np.minimum(lows, n - 1), np.minimum(highs, n - 1)))
    return np.unique(keep)


def decimate(xs: np.ndarray, ys: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """``xs`` and ``ys`` cut to at most ``budget`` points by :func:`minmax_indices`."""
    idx = minmax_indices(ys, budget)
    return np.asarray(xs)[idx], np.asarray(ys, dtype=float)[idx]
