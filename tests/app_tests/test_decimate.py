"""Min/max decimation: a budget per trace that never hides a spike or a dip."""

import numpy as np

from app.decimate import decimate, minmax_indices


def test_series_under_budget_comes_back_exactly():
    xs, ys = np.arange(50), np.random.default_rng(0).random(50)
    dx, dy = decimate(xs, ys, 64)
    assert np.array_equal(dx, xs) and np.array_equal(dy, ys)


def test_budget_is_respected_and_both_ends_kept():
    ys = np.random.default_rng(1).random(10_001)
    for budget in (4, 10, 101, 500):
        idx = minmax_indices(ys, budget)
        assert len(idx) <= budget and idx[0] == 0 and idx[-1] == 10_000
        assert np.all(np.diff(idx) > 0)


def test_global_and_local_extremes_survive():
    ys = np.sin(np.linspace(0, 20, 5000))
    ys[1234], ys[3210] = 9.0, -7.0  # one-step spike and dip
    xs, kept = decimate(np.arange(5000), ys, 100)
    assert kept.max() == 9.0 and kept.min() == -7.0
    assert 1234 in xs and 3210 in xs
    # the runner-up extremes sit in other buckets, and each bucket keeps its own min and max
    assert np.sort(kept)[-2] == np.sort(ys)[-2] and np.sort(kept)[1] == np.sort(ys)[1]


def test_nan_never_wins_min_or_max_and_an_all_nan_stretch_stays_a_gap():
    ys = np.linspace(0.0, 1.0, 1000)
    ys[400:700] = np.nan
    xs, kept = decimate(np.arange(1000), ys, 40)
    assert np.nanmin(kept) == 0.0 and np.nanmax(kept) == 1.0
    assert np.isnan(kept).any() and all(400 <= x < 700 for x in xs[np.isnan(kept)])
