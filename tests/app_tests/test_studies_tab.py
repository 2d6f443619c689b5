"""Which study a fresh page opens (app/tabs/studies_tab.py)."""

from datetime import datetime

import optuna

from app.tabs.studies_tab import last_activity, study_to_open
from tuning.search import rank_study_name


def test_a_fresh_page_opens_the_newest_running_study():
    runs = ["newest", "running-old", "running-older"]
    assert study_to_open(runs, lambda n: n.startswith("running"), dict) == "running-old"


def test_with_nothing_running_it_opens_the_study_updated_last():
    runs = ["newest", "middle", "oldest"]
    activity = {"newest": datetime(2026, 1, 1), "oldest": datetime(2026, 1, 3), "middle": datetime(2026, 1, 2)}
    assert study_to_open(runs, lambda n: False, lambda: activity) == "oldest"
    assert study_to_open(runs, lambda n: False, dict) == "newest"  # no trial anywhere yet
    assert study_to_open([], lambda n: False, dict) is None


def test_last_activity_reads_trial_times_and_groups_a_search_by_its_name(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    older = optuna.create_study(study_name="sweep", storage=url)
    older.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    for rank in (4, 16):
        study = optuna.create_study(study_name=rank_study_name("search", rank), storage=url)
        study.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    optuna.create_study(study_name="empty", storage=url)
    latest = last_activity(url)
    assert set(latest) == {"sweep", "search"}
    assert latest["search"] >= latest["sweep"]
