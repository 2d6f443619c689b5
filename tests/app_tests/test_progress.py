"""The fit as text (app/progress.py format_fit): what it says when it cannot locate an optimum."""

import math

from app.progress import format_fit
from tuning.fit import fit_report


def _rec(number, rank, alpha, loss, lr=1e-3):
    return {"number": number, "state": "COMPLETE", "rank": rank, "alpha": float(alpha), "rule": "standard", "lr": lr,
            "seed": 0, "eval_loss": loss, "study": "s"}


def test_one_alpha_per_rank_is_named_not_located_with_no_law_and_no_recommendation():
    text = format_fit(fit_report([_rec(i, r, 8.0, 1.0 / r) for i, r in enumerate((4, 16, 64))]))
    assert text.count("alpha* not located: only one alpha tried (8") == 3
    assert "no law: alpha* located at 0 of 3 ranks" in text
    assert "CI" not in text and "p = 0.5" not in text and "recommended" not in text
    assert text.splitlines()[-1].startswith("best trial: r=64 alpha=8 rule=standard")
    assert "alpha* is not located at this rank" in text


def test_edges_are_bounds_and_the_law_says_which_ranks_it_left_out():
    records = [_rec(n, r, a, (math.log(a) - math.log(2.0 * r)) ** 2)
               for n, (r, a) in enumerate((r, a) for r in (4, 16, 64) for a in (1, 4, 16, 64, 256))]
    records += [_rec(100 + i, 256, a, 1.0 + 1.0 / a) for i, a in enumerate((1, 4, 16))]
    text = format_fit(fit_report(records))
    assert "r=256   alpha* not located: best at the top of the range tried, alpha* may be >= 16" in text
    assert "fitted on the 3 located ranks only; r=256 left out (alpha* not located)" in text
    assert "alpha* = 2 * r^1.000" in text and "recommended: " in text


def test_several_learning_rates_are_fitted_apart_and_the_recommendation_names_its_own():
    records = [_rec(i, r, 8.0, 1.0 / r + lr, lr=lr) for i, (r, lr) in enumerate((r, lr) for r in (4, 16) for lr in (5e-4, 5e-3))]
    text = format_fit(fit_report(records))
    assert text.startswith("2 training settings, each fitted on its own")
    assert "setting lr=0.0005 seed=0 (2 completed trials):" in text and "setting lr=0.005 seed=0" in text
    assert "at lr=0.0005 seed=0 (eval loss" in text
