"""The alpha-law fit: alpha* per rank, the power law with intervals, the sqrt coefficient."""

import math

import numpy as np
import pytest

from tuning.fit import RankOptimum, alpha_optimum, equivalence_note, fit_law, fit_report


def _optimum(rank, alpha):
    return RankOptimum(rank=rank, alpha=alpha, loss=0.1, best_trial_alpha=alpha, n_trials=5,
                       refined=False, alpha_min=1.0, alpha_max=1e4)


def test_quadratic_refinement_finds_the_vertex_between_grid_points():
    true_alpha = 37.0
    alphas = np.geomspace(4, 512, 8)
    points = [(a, (math.log(a) - math.log(true_alpha)) ** 2 + 0.3) for a in alphas]
    opt = alpha_optimum(points, rank=16)
    assert opt.refined
    assert opt.alpha == pytest.approx(true_alpha, rel=1e-6)
    assert opt.loss == pytest.approx(0.3, abs=1e-9)


def test_optimum_at_the_edge_of_the_range_is_not_extrapolated():
    points = [(a, 1.0 / a) for a in (1.0, 2.0, 4.0, 8.0)]
    opt = alpha_optimum(points, rank=4)
    assert not opt.refined and opt.alpha == 8.0


def test_non_finite_losses_are_ignored():
    opt = alpha_optimum([(1.0, float("nan")), (2.0, 0.5), (4.0, float("inf"))], rank=4)
    assert opt.alpha == 2.0 and opt.n_trials == 1


def test_exact_power_law_is_recovered():
    optima = [_optimum(r, 3.0 * r**0.75) for r in (4, 16, 64, 256)]
    law = fit_law(optima, "standard")
    assert law.p == pytest.approx(0.75, abs=1e-9) and law.c == pytest.approx(3.0, rel=1e-9)
    assert law.p_ci[0] == pytest.approx(0.75, abs=1e-6) and law.p_ci[1] == pytest.approx(0.75, abs=1e-6)
    assert law.predict(1024) == pytest.approx(3.0 * 1024**0.75)
    assert law.sqrt_inside_ci is False


def test_interval_uses_student_t_with_n_minus_2_dof():
    ranks = np.array([4, 16, 64, 256])
    noise = np.array([0.1, -0.1, -0.1, 0.1])
    optima = [_optimum(int(r), float(2.0 * r**0.5 * math.exp(e))) for r, e in zip(ranks, noise)]
    law = fit_law(optima, "rslora")
    x = np.log(ranks)
    resid = noise - np.polyval(np.polyfit(x, noise, 1), x)
    se = math.sqrt((resid @ resid) / 2 / ((x - x.mean()) ** 2).sum())
    half = 4.302652729911275 * se  # t(0.975, 2)
    assert law.p_ci[1] - law.p_ci[0] == pytest.approx(2 * half, rel=1e-6)
    assert law.sqrt_inside_ci is True
    assert law.sqrt_c == pytest.approx(2.0, rel=1e-9)  # the symmetric noise cancels in the mean


def test_two_ranks_fit_a_line_without_intervals():
    law = fit_law([_optimum(4, 8.0), _optimum(16, 16.0)], "standard")
    assert law.p == pytest.approx(0.5) and law.p_ci is None and law.sqrt_inside_ci is None


def test_one_rank_cannot_fit_a_law():
    with pytest.raises(ValueError, match="2 or more ranks"):
        fit_law([_optimum(4, 8.0)], "standard")


def test_equivalence_note_names_rslora_alpha():
    law = fit_law([_optimum(r, 12.0 * r**0.5) for r in (4, 16, 64)], "standard")
    assert "rslora with lora_alpha = 12" in equivalence_note(law)


def _records(rule, law_c, law_p, ranks=(4, 16, 64), alphas=(1, 4, 16, 64, 256, 1024, 4096)):
    records, number = [], 0
    for r in ranks:
        best = law_c * r**law_p
        for a in alphas:
            records.append({"number": number, "state": "COMPLETE", "rank": r, "alpha": float(a), "rule": rule,
                            "eval_loss": (math.log(a) - math.log(best)) ** 2 + 1.0 / r})
            number += 1
    return records


def test_report_recovers_each_rules_exponent_and_their_half_offset():
    report = fit_report(_records("standard", 20.0, 1.0) + _records("rslora", 20.0, 0.5), target_rank=32)
    p_std = report["rules"]["standard"]["law"]["p"]
    p_rs = report["rules"]["rslora"]["law"]["p"]
    assert p_std == pytest.approx(1.0, abs=1e-6) and p_rs == pytest.approx(0.5, abs=1e-6)
    assert report["rules"]["standard"]["predicted_alpha"]["alpha"] == pytest.approx(20.0 * 32, rel=1e-6)
    assert report["recommendation"]["rank"] == 64


def test_report_without_completed_trials_says_so():
    with pytest.raises(ValueError, match="no completed trials"):
        fit_report([{"number": 0, "state": "FAIL", "rank": 4, "alpha": 1.0, "rule": "standard", "eval_loss": None}])
