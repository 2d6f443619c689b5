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


def test_search_progress_counts_done_of_ranks_times_trials_per_rank():
    from app.state import StudyView
    from app.tabs.search_tab import search_progress

    records = [{**_rec(i, 4, 1.0, 0.5), "state": state} for i, state in
               enumerate(["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"])]
    view = StudyView("s", records, {"search": {"ranks": [4, 16, 64], "trials_per_rank": 12}})
    assert search_progress(view) == "**s**: 3 / 36 trials done, 1 running"
    assert search_progress(StudyView("t", records[:1], {})) == "**t**: 1 / 1 trials done"


def test_search_errors_go_under_their_own_fields_in_ui_words():
    from app.forms import search_form
    from app.tabs.search_tab import SEARCH_FIELDS, error_updates

    form = search_form("synthetic-facts", "", None, "4,16", "standard", 10.0, 5.0, 2.5, "tpe", "median", 1e-3,
                       0, 64, "cpu")
    updates = error_updates(form.errors)
    shown = {key: u["value"] for key, u in zip([*SEARCH_FIELDS, "run"], updates) if u["visible"]}
    assert set(shown) == {"trials", "run"}  # 2.5 trials; steps 0 is a Run tab field
    assert "whole number" in shown["trials"] and shown["run"].startswith("⚠️ Run tab, Steps")
    assert not any("--" in text for text in shown.values())
    form = search_form("synthetic-facts", "", None, "4,16", "standard", 10.0, 5.0, 6, "tpe", "median", 1e-3, 10, 64,
                       "cpu")
    shown = {key: u["value"] for key, u in zip(SEARCH_FIELDS, error_updates(form.errors)) if u["visible"]}
    assert list(shown) == ["alpha_max"] and "greater than alpha min" in shown["alpha_max"]


def test_alpha_max_help_has_no_markdown_asterisks(tmp_path):
    from app.ui import build_app

    app = build_app(f"sqlite:///{tmp_path}/s.db", run_dir=str(tmp_path / "runs"))
    [info] = [block.info for block in app.blocks.values() if getattr(block, "label", None) == "alpha max"]
    assert "*" not in info and "512×sqrt(64)" in info and "256×sqrt(r)" in info  # the browser test sees it drawn
