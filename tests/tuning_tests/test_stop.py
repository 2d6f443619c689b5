"""Stop is a flag in the storage: set from one process, seen by workers polling from others."""

import os
import subprocess
import sys
import textwrap

import optuna
import pytest

from core.specs import SpecError
from tuning.attrs import STOP_ATTR
from tuning.stop import clear_stop, request_stop, stop_poller
from tuning.storage import open_storage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=["sqlite", "postgresql", "journal"])
def url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return {"sqlite": f"sqlite:///{tmp_path}/s.db", "journal": f"journal:///{tmp_path}/s.log"}[request.param]


def _studies(url, *names):
    return [optuna.create_study(study_name=name, storage=open_storage(url)) for name in names]


def test_stop_flags_every_rank_study_of_a_search_and_nothing_else(url):
    _studies(url, "srch/r4", "srch/r16", "srch2/r4", "other")
    assert request_stop(url, "srch") == ["srch/r4", "srch/r16"]
    flags = {s.study_name: s.user_attrs.get(STOP_ATTR) for s in optuna.get_all_study_summaries(open_storage(url))}
    assert flags == {"srch/r4": True, "srch/r16": True, "srch2/r4": None, "other": None}
    assert clear_stop(url, "srch") == ["srch/r4", "srch/r16"]
    assert not any(s.user_attrs.get(STOP_ATTR) for s in optuna.get_all_study_summaries(open_storage(url)))


def test_poller_reads_the_storage_at_most_every_interval_and_stays_stopped(url):
    (study,) = _studies(url, "sweep")
    now = [100.0]
    stopped = stop_poller(study, every=2.0, clock=lambda: now[0])
    assert stopped() is False
    request_stop(url, "sweep")
    now[0] += 1.9
    assert stopped() is False  # within the interval: the cached answer, no read
    now[0] += 0.2
    assert stopped() is True
    clear_stop(url, "sweep")
    now[0] += 10
    assert stopped() is True  # a worker that saw Stop does not resume on its own


def test_stop_of_unknown_study_names_the_studies_there(url):
    _studies(url, "a")
    with pytest.raises(SpecError, match=r"no study 'b' .*studies there: a"):
        request_stop(url, "b")


def test_stop_from_another_process_ends_a_polling_worker(pg_url):
    """A stand-in worker polls through stop_poller; `lorascope stop` in another process ends it."""
    _studies(pg_url, "x/r4", "x/r8")
    worker = textwrap.dedent("""
        import sys, time, optuna
        from tuning.stop import stop_poller
        stopped = stop_poller(optuna.load_study(study_name="x/r8", storage=sys.argv[1]), every=0.2)
        print("polling", flush=True)
        while not stopped():
            time.sleep(0.05)
        print("stopped", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-c", worker, pg_url], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "polling\n"
        done = subprocess.run([sys.executable, "-m", "app.cli", "stop", "--study", "x"], cwd=ROOT, text=True,
                              capture_output=True, env={**env, "LORASCOPE_STORAGE": pg_url}, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "x/r4, x/r8" in done.stdout
        assert proc.wait(timeout=60) == 0 and proc.stdout.read() == "stopped\n"
    finally:
        proc.kill()
        proc.wait()


def test_cli_stop_of_unknown_study_exits_2(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    _studies(url, "a")
    done = subprocess.run([sys.executable, "-m", "app.cli", "stop", "--storage", url, "--study", "zz"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("lorascope: error: no study 'zz'")
