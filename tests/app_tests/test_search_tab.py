"""The Search & fit tab's outputs (app/tabs/search_tab.py search_outputs)."""

import math

from app.tabs.search_tab import search_outputs


def _rec(number, rank, alpha, loss):
    return {"number": number, "state": "COMPLETE", "rank": rank, "alpha": float(alpha), "rule": "rslora", "lr": 1e-3,
            "seed": 0, "eval_loss": loss, "study": "s", "gamma": 1.0}


def test_a_one_alpha_sweep_or_a_single_trial_shows_no_fit_and_no_recommendation():
    for records in ([_rec(i, r, 16.0, 1.0 / r) for i, r in enumerate((4, 16, 64))], [_rec(0, 4, 16.0, 0.5)]):
        text, landscape, law = search_outputs(records)
        assert "Not enough alphas per rank to locate alpha" in text and "recommended" not in text
        assert landscape.data and not law.data and "not located" in law.layout.annotations[0].text


def test_a_search_with_located_optima_shows_the_fit_and_the_law():
    records = [_rec(n, r, a, (math.log(a) - math.log(3.0 * r**0.5)) ** 2)
               for n, (r, a) in enumerate((r, a) for r in (4, 16, 64) for a in (1, 4, 16, 64, 256))]
    text, _, law = search_outputs(records)
    assert "recommended: " in text and "alpha* = 3 * r^0.500" in text
    assert {t.meta["kind"] for t in law.data} >= {"optima", "fit", "band"}
