"""Export tab choices (app/tabs/export_tab.py): "recommended" only when alpha* is located."""

import math

from app.tabs.export_tab import BEST_TRIAL, RECOMMENDED, choice_labels


def _rec(number, rank, alpha, loss, state="COMPLETE"):
    return {"number": number, "state": state, "rank": rank, "alpha": float(alpha), "rule": "rslora", "lr": 1e-3,
            "seed": 0, "eval_loss": loss, "study": "s", "gamma": 1.0}


def test_a_one_alpha_sweep_offers_the_best_trial_not_a_recommendation():
    records = [_rec(i, r, 16.0, 1.0 / r) for i, r in enumerate((4, 16, 64))] + [_rec(3, 4, 16.0, None, "RUNNING")]
    labels = choice_labels(records)
    assert labels[0] == BEST_TRIAL and len(labels) == 4
    assert choice_labels([]) == [BEST_TRIAL]


def test_a_search_with_alpha_star_located_offers_the_recommendation():
    records = [_rec(n, r, a, (math.log(a) - math.log(3.0 * r**0.5)) ** 2)
               for n, (r, a) in enumerate((r, a) for r in (4, 16, 64) for a in (1, 4, 16, 64, 256))]
    assert choice_labels(records)[0] == RECOMMENDED
