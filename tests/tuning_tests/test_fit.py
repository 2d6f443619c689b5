"""The alpha-law fit: alpha* per rank, the power law with intervals, the sqrt coefficient."""

import math

import numpy as np
import pytest

from scipy import stats

from tuning.fit import RankOptimum, alpha_optimum, confidence_band, equivalence_note, fit_law, fit_report


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


def test_interval_matches_scipys_regression_with_student_t_on_n_minus_2_dof():
    ranks = np.array([4, 16, 64, 256])
    noise = np.array([0.1, -0.1, -0.1, 0.1])
    optima = [_optimum(int(r), float(2.0 * r**0.5 * math.exp(e))) for r, e in zip(ranks, noise)]
    law = fit_law(optima, "rslora")
    reference = stats.linregress(np.log(ranks), np.log([o.alpha for o in optima]))
    half = 4.302652729911275 * reference.stderr  # t(0.975, 2)
    assert law.p_ci == pytest.approx((reference.slope - half, reference.slope + half), rel=1e-9)
    assert law.sqrt_inside_ci is True
    assert law.sqrt_c == pytest.approx(2.0, rel=1e-9)  # the symmetric noise cancels in the mean


def test_two_ranks_fit_a_line_without_intervals():
    law = fit_law([_optimum(4, 8.0), _optimum(16, 16.0)], "standard")
    assert law.p == pytest.approx(0.5) and law.p_ci is None and law.sqrt_inside_ci is None


def test_one_rank_cannot_fit_a_law():
    with pytest.raises(ValueError, match="located at 2 or more ranks"):
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


# ------------------------------------------------------------------ located or not (issue 8, 8a)

def _rec(number, rank, alpha, loss, rule="standard", lr=1e-3, seed=0, study="s"):
    return {"number": number, "state": "COMPLETE", "rank": rank, "alpha": float(alpha), "rule": rule, "lr": lr,
            "seed": seed, "eval_loss": loss, "study": study}


def test_one_alpha_per_rank_locates_nothing_and_gives_no_law_nor_zero_width_interval():
    # the case: a plain sweep at alpha 8 fitted "alpha* = 8 * r^0.000; 95% CI p [-4e-16, 7.7e-16]"
    records = [_rec(i, r, 8.0, 1.0 / r) for i, r in enumerate((4, 16, 64))]
    entry = fit_report(records)["rules"]["standard"]
    assert entry["law"] is None and entry["law_status"] == "bound" and "predicted_alpha" not in entry
    assert [(o["located"], o["at_edge"], o["n_alphas"], o["edge"]) for o in entry["optima"]] == [(False, True, 1, None)] * 3
    assert entry["bounds"] == [{"rank": r, "relation": None, "alpha": 8.0, "n_alphas": 1} for r in (4, 16, 64)]
    assert fit_report(records)["recommendation"]["alpha_located"] is False


def test_best_alpha_at_an_end_of_the_range_is_a_bound_not_an_optimum():
    top = alpha_optimum([(a, 1.0 / a) for a in (1.0, 4.0, 16.0)], rank=4)
    bottom = alpha_optimum([(a, a) for a in (1.0, 4.0, 16.0)], rank=4)
    inside = alpha_optimum([(1.0, 2.0), (4.0, 1.0), (16.0, 3.0)], rank=4)
    two = alpha_optimum([(1.0, 2.0), (4.0, 1.0)], rank=4)
    assert (top.located, top.at_edge, top.edge) == (False, True, "high")
    assert (bottom.located, bottom.at_edge, bottom.edge) == (False, True, "low")
    assert (inside.located, inside.at_edge, inside.n_alphas) == (True, False, 3)
    assert (two.located, two.edge) == (False, "high")  # 2 alphas cannot show a minimum
    repeated = alpha_optimum([(1.0, 2.0), (4.0, 1.0), (4.0, 1.5)], rank=4)  # 3 trials, 2 distinct alphas
    assert repeated.n_alphas == 2 and not repeated.located


def test_law_fits_only_the_located_ranks_and_names_those_left_out():
    records, n = [], 0
    for r in (4, 16, 64):  # located: parabola in log alpha around 2 * r
        for a in (1, 4, 16, 64, 256, 1024):
            records.append(_rec(n, r, a, (math.log(a) - math.log(2.0 * r)) ** 2 + 1.0 / r))
            n += 1
    records += [_rec(n, 256, a, 1.0 / a) for n, a in enumerate((1, 4, 16), start=n)]  # best at the top edge
    entry = fit_report(records, target_rank=128)["rules"]["standard"]
    law = entry["law"]
    assert list(law["excluded_ranks"]) == [256] and law["n_ranks"] == 3
    assert law["p"] == pytest.approx(1.0, abs=1e-6) and law["c"] == pytest.approx(2.0, rel=1e-6)
    assert entry["law_status"] == "fitted" and entry["bounds"] == [
        {"rank": 256, "relation": ">=", "alpha": 16.0, "n_alphas": 3}]
    assert entry["predicted_alpha"]["alpha"] == pytest.approx(256.0, rel=1e-6)


def test_fewer_than_two_located_ranks_give_a_bound_not_a_law():
    records = [_rec(i, 4, a, (math.log(a) - math.log(8.0)) ** 2) for i, a in enumerate((1, 8, 64))]
    records += [_rec(10 + i, r, a, 1.0 / a) for i, (r, a) in enumerate([(16, 1), (16, 4), (64, 1), (64, 4)])]
    entry = fit_report(records)["rules"]["standard"]
    assert [o["located"] for o in entry["optima"]] == [True, False, False]
    assert entry["law"] is None and entry["law_status"] == "bound"
    assert [(b["rank"], b["relation"], b["alpha"]) for b in entry["bounds"]] == [(16, ">=", 4.0), (64, ">=", 4.0)]


def test_confidence_band_uses_located_ranks_only():
    located = [_optimum(r, 3.0 * r**0.5) for r in (4, 16, 64)]
    stray = RankOptimum(rank=256, alpha=1.0, loss=0.1, best_trial_alpha=1.0, n_trials=1, refined=False,
                        alpha_min=1.0, alpha_max=1.0, n_alphas=1, at_edge=True, located=False)
    fit, low, high = confidence_band(located + [stray], [4.0, 256.0])
    assert fit == pytest.approx([6.0, 48.0]) and low == pytest.approx(fit) and high == pytest.approx(fit)


# ------------------------------------------------------------------ one fit per training setting (issue 8, 8b)

def _parabolas(c, p, *, lr, seed=0, study="s", start=0, ranks=(4, 16, 64), alphas=(1, 4, 16, 64, 256, 1024, 4096)):
    records = []
    for r in ranks:
        for a in alphas:
            records.append(_rec(start + len(records), r, a, (math.log(a) - math.log(c * r**p)) ** 2 + lr,
                                lr=lr, seed=seed, study=study))
    return records


def test_each_learning_rate_gets_its_own_law_and_the_recommendation_names_its_setting():
    # pooled, these two lrs (alpha* = 4r and alpha* = 40) would give one meaningless law
    report = fit_report(_parabolas(4.0, 1.0, lr=5e-4) + _parabolas(40.0, 0.0, lr=5e-3, start=100))
    assert list(report["groups"]) == ["lr=0.0005 seed=0", "lr=0.005 seed=0"]
    low, high = (report["groups"][k]["rules"]["standard"]["law"] for k in report["groups"])
    assert low["p"] == pytest.approx(1.0, abs=1e-6) and high["p"] == pytest.approx(0.0, abs=1e-6)
    assert report["groups"]["lr=0.0005 seed=0"]["setting"] == {"lr": 5e-4, "seed": 0}
    assert report["groups"]["lr=0.0005 seed=0"]["n_trials"] == 21
    rec = report["recommendation"]
    assert rec["setting"] == "lr=0.0005 seed=0" and rec["alpha_located"] is True
    assert report["rules"] == report["groups"]["lr=0.0005 seed=0"]["rules"]


def test_seeds_are_settings_too():
    report = fit_report(_parabolas(4.0, 1.0, lr=1e-3, seed=0) + _parabolas(4.0, 1.0, lr=1e-3, seed=1, start=100))
    assert list(report["groups"]) == ["lr=0.001 seed=0", "lr=0.001 seed=1"]


def test_studies_with_different_steps_or_batch_size_are_fitted_apart():
    records = (_parabolas(4.0, 1.0, lr=1e-3, study="a") + _parabolas(4.0, 0.5, lr=1e-3, study="b", start=100)
               + _parabolas(4.0, 0.5, lr=1e-3, study="c", start=200))
    base = {"task": "synthetic-style", "steps": 200, "batch_size": 16, "device": "cpu", "eval_every": 50}
    settings = {"a": {"base": base}, "b": {"base": {**base, "steps": 400, "device": "cuda"}},
                "c": {"base": {**base, "steps": 400, "batch_size": 8}}}
    report = fit_report(records, settings=settings)
    assert list(report["groups"]) == ["lr=0.001 seed=0 steps=200 batch_size=16", "lr=0.001 seed=0 steps=400 batch_size=8",
                                      "lr=0.001 seed=0 steps=400 batch_size=16"]
    laws = {k: g["rules"]["standard"]["law"]["p"] for k, g in report["groups"].items()}
    assert laws["lr=0.001 seed=0 steps=200 batch_size=16"] == pytest.approx(1.0, abs=1e-6)
    assert laws["lr=0.001 seed=0 steps=400 batch_size=16"] == pytest.approx(0.5, abs=1e-6)
    # the device does not change what a trial computes: same setting
    same = fit_report(records[:21] + _parabolas(4.0, 1.0, lr=1e-3, study="b", start=100),
                      settings={"a": {"base": base}, "b": {"base": {**base, "device": "cuda"}}})
    assert list(same["groups"]) == ["lr=0.001 seed=0 steps=200 batch_size=16"]
    assert same["groups"]["lr=0.001 seed=0 steps=200 batch_size=16"]["n_trials"] == 42
