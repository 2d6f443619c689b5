"""The pre-warmed worker (app/standby.py): it runs the one command it is handed, into the run's log."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _standby(stdin: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app.standby"], input=stdin, text=True, capture_output=True,
                          cwd=cwd, env=env, timeout=300)


def test_the_command_runs_in_place_with_its_output_in_the_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("$ lorascope tasks\n")  # the runner writes the command line first
    done = _standby(json.dumps({"argv": ["tasks"], "log": str(log)}) + "\n", tmp_path)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""  # everything went to the log
    text = log.read_text()
    assert text.startswith("$ lorascope tasks\n") and "synthetic-facts" in text and "tiny-facts" in text


def test_a_failing_command_exits_with_its_status_and_one_line(tmp_path):
    log = tmp_path / "run.log"
    done = _standby(json.dumps({"argv": ["sweep", "--task", "nope", "--study", "s"], "log": str(log)}) + "\n",
                    tmp_path)
    assert done.returncode == 2 and "unknown task 'nope'" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_no_command_runs_nothing(tmp_path):
    done = _standby("", tmp_path)  # the app went away before any Start
    assert done.returncode == 0 and done.stdout == "" and list(tmp_path.iterdir()) == []
