"""Synthetic tasks: spectra, the SVD floor, and an exact evaluation."""

import numpy as np
import pytest
import torch

from core.specs import TrialSpec
from core.packed_lora import AdapterSetting
from core.spectra import SPECTRA, svd_floor
from core.synthetic import SyntheticWorkload, make_target


def test_style_delta_has_true_rank_four():
    s = SPECTRA["synthetic-style"].singular_values(256)
    assert s[0] == pytest.approx(5.0) and s[3] == pytest.approx(0.5)
    assert np.count_nonzero(s) == 4


def test_facts_delta_is_flat_over_full_width():
    s = SPECTRA["synthetic-facts"].singular_values(256)
    assert s[0] == pytest.approx(3.0) and s[-1] == pytest.approx(0.5)
    assert np.count_nonzero(s) == 256


def test_target_delta_has_the_requested_singular_values():
    _, delta, s = make_target(SPECTRA["synthetic-facts"], 64)
    measured = torch.linalg.svdvals(delta.double()).numpy()
    np.testing.assert_allclose(measured, s, rtol=1e-5)


def test_svd_floor_is_energy_beyond_rank():
    s = np.array([2.0, 1.0, 1.0, 0.0])
    assert svd_floor(s, 1) == pytest.approx(2.0 / 6.0)
    assert svd_floor(s, 3) == 0.0


def test_floor_is_zero_at_true_rank_and_falls_with_rank():
    s = SPECTRA["synthetic-facts"].singular_values(256)
    floors = [svd_floor(s, r) for r in (4, 16, 64, 256)]
    assert floors == sorted(floors, reverse=True) and floors[-1] == 0.0
    assert svd_floor(SPECTRA["synthetic-style"].singular_values(256), 4) == 0.0


def _workload(rank=8, dim=64, task="synthetic-facts"):
    spec = TrialSpec(task=task, rank=rank, alpha=16.0, device="cpu", batch_size=32)
    workload = SyntheticWorkload(SPECTRA[task], spec, torch.device("cpu"), dim=dim)
    workload.attach([AdapterSetting.from_spec(spec)])
    return workload


def test_untrained_adapter_scores_one():
    # B starts at zero, so the model is the frozen base and misses the whole delta
    assert float(_workload().evaluate(1)[0]) == pytest.approx(1.0, rel=1e-4)


def test_eval_equals_relative_frobenius_error_exactly():
    workload = _workload()
    with torch.no_grad():
        for p in workload.model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    with torch.no_grad():
        w_eff = workload.model(torch.eye(64)).T  # columns are the images of the basis vectors
    expected = float(((w_eff - workload.target) ** 2).sum() / workload.energy)
    assert float(workload.evaluate(1)[0]) == pytest.approx(expected, rel=1e-4)


def test_rank_above_width_is_rejected():
    with pytest.raises(ValueError, match="exceeds"):
        _workload(rank=128, dim=64)
