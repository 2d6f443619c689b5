"""Run tab helpers (app/tabs/run_tab.py): uploads kept by content, and Stop on an idle study."""

import hashlib

from app.runner import Runner
from app.state import StudyView
from app.tabs.run_tab import idle, stable_upload


def test_uploads_with_the_same_name_are_kept_apart_by_content(tmp_path):
    first, second = tmp_path / "a" / "data.jsonl", tmp_path / "b" / "data.jsonl"
    for path, text in ((first, '{"text": "one"}\n'), (second, '{"text": "two"}\n')):
        path.parent.mkdir()
        path.write_text(text)
    runs = tmp_path / "runs"
    kept_first, kept_second = stable_upload(str(first), runs), stable_upload(str(second), runs)
    assert kept_first != kept_second
    assert open(kept_first).read() == '{"text": "one"}\n' and open(kept_second).read() == '{"text": "two"}\n'
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert kept_first == str(runs / "uploads" / digest / "data.jsonl")
    assert stable_upload(str(first), runs) == kept_first  # the same bytes again: the same file
    assert stable_upload(None, runs) is None


def test_a_study_is_idle_only_with_no_worker_and_no_running_or_queued_trial():
    done = StudyView("s", [{"state": "COMPLETE"}, {"state": "FAIL"}])
    assert idle(done, running=False)
    assert not idle(done, running=True)
    assert not idle(StudyView("s", [{"state": "COMPLETE"}, {"state": "WAITING"}]), running=False)
    assert not idle(StudyView("s", [{"state": "RUNNING"}]), running=False)  # e.g. a worker on another machine


def test_stop_on_an_idle_study_says_nothing_is_running(tmp_path):
    from app.ui import build_app

    app = build_app(f"sqlite:///{tmp_path}/s.db", run_dir=str(tmp_path / "runs"))
    stop = next(block_fn.fn for block_fn in app.fns.values() if block_fn.name == "stop_run")
    assert stop("never-started") == "Nothing running in **never-started**."
    assert stop(None) == "No study selected."
    assert Runner(f"sqlite:///{tmp_path}/s.db", tmp_path / "runs").pid("never-started") is None
