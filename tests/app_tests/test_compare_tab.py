"""The Compare tab's verdicts (app/tabs/compare_tab.py compare_outputs)."""

import math

from app.tabs.compare_tab import compare_outputs


def test_sqrt_law_trials_get_their_own_verdict_beside_standard():
    records = []
    for n, (rank, alpha) in enumerate(sorted({(r, 16.0) for r in (4, 16, 64)} | {(r, 8.0 * math.sqrt(r)) for r in (4, 16, 64)})):
        grad = 0.1 * alpha / math.sqrt(rank)  # the step-0 norm follows gamma * sqrt(r) = alpha / sqrt(r)
        records.append({"number": n, "state": "COMPLETE", "rank": rank, "alpha": alpha, "rule": "standard",
                        "lr": 1e-3, "seed": 0, "study": "s", "eval_loss": 0.1, "final_loss": 0.1, "svd_floor": None,
                        "curve": [{"step": 0, "loss": 1.0, "grad_norm": grad}]})
    text, _, grad_fig = compare_outputs(records, "step0")
    assert "- **standard**: collapsing: slope -0.50" in text
    assert "- **sqrt law (standard, α=c·√r)**: rank-stabilized: slope +0.00" in text
    assert len([t for t in grad_fig.data if t.meta["kind"] == "fit"]) == 2
