"""What the UI shows of trials: table rows and the status line (app/views.py)."""

from app.views import TABLE_HEADERS, outcome_word, run_status, trial_rows


def _rec(number, state="COMPLETE", status=None, **extra):
    rec = {"number": number, "state": state, "status": status or state.lower(), "rank": 4, "rule": "standard",
           "alpha": 8.0, "gamma": 2.0, "lr": 1e-3, "eval_loss": 0.5, "final_loss": 0.55, "svd_floor": None,
           "steps_done": 10, "error": None}
    return {**rec, **extra}


def test_a_stopped_trial_is_stopped_everywhere_and_other_failures_keep_their_cause():
    assert outcome_word(_rec(0, "FAIL", "stopped")) == "stopped"
    assert outcome_word(_rec(0, "FAIL", "diverged")) == "diverged"
    assert outcome_word({"number": 0, "state": "FAIL"}) == "failed"
    assert [outcome_word(_rec(0, s)) for s in ("COMPLETE", "RUNNING", "PRUNED")] == ["complete", "running", "pruned"]
    rows = trial_rows([_rec(0), _rec(1, "FAIL", "stopped", error="stopped by request")], steps=10)
    assert [row[TABLE_HEADERS.index("state")] for row in rows] == ["complete", "stopped"]
    line = run_status("demo", [_rec(0), _rec(1, "FAIL", "stopped"), _rec(2, "FAIL", "stopped")], running=False)
    assert line == "**demo** (idle): 1 complete, 2 stopped"


def test_rows_show_progress_of_running_trials_from_their_curve():
    running = _rec(3, "RUNNING", steps_done=None, curve=[{"step": 0}, {"step": 1}, {"step": 2}],
                   eval_loss=None, final_loss=None)
    rows = trial_rows([_rec(0), running], steps=10)
    progress = TABLE_HEADERS.index("progress")
    assert [row[progress] for row in rows] == ["10/10", "3/10"]
    assert rows[1][TABLE_HEADERS.index("eval loss")] == "" and rows[0][TABLE_HEADERS.index("eval loss")] == "0.5"
    assert trial_rows([_rec(0)], steps=None)[0][progress] == "10"


def test_rows_of_a_search_name_each_trial_by_its_rank_study():
    rows = trial_rows([_rec(2, study="search/r16"), _rec(5, study="sweep")], steps=10)
    assert [row[0] for row in rows] == ["r16#2", "5"]


def test_status_line_counts_queued_trials_and_shows_why_a_worker_stopped():
    assert run_status(None, [], running=False).startswith("No study yet")
    assert run_status("s", [], running=True) == ("**s** (running): starting...  \n"
                                                 "⏳ starting worker: loading the model, the first step follows")
    assert run_status("s", [], running=False) == "**s** (idle): starting..."
    line = run_status("s", [_rec(0, "RUNNING")], running=True, waiting=4, exit_message="boom")
    assert line.startswith("**s** (running): 1 running, 4 queued  \n⏳ starting worker")
    drawing = {**_rec(0, "RUNNING"), "curve": [{"step": 0, "loss": 1.0}]}
    line = run_status("s", [drawing], running=True, waiting=4, exit_message="boom")
    assert line == "**s** (running): 1 running, 4 queued  \n⚠️ worker stopped: `boom`"
