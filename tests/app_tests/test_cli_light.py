"""The light CLI and UI: commands that do not train never import torch, transformers or PEFT."""

import subprocess
import sys
from pathlib import Path

import pytest

from test_cli_export_fit_bad_input import completed_study

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft")
# Runs the CLI as `python -m app.cli ARGS` would, and reports the heavy modules loaded by its exit.
PROBE = ("import atexit, runpy, sys; "
         "atexit.register(lambda: print('HEAVY', [m for m in %r if m in sys.modules], file=sys.stderr)); "
         "sys.argv = ['lorascope', *sys.argv[1:]]; runpy.run_module('app.cli', run_name='__main__')") % (HEAVY,)


def heavy_modules(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    line = next(line for line in done.stderr.splitlines() if line.startswith("HEAVY "))
    return done.returncode, eval(line.removeprefix("HEAVY "))


def test_import_app_ui_leaves_torch_out():
    code = f"import sys, app.ui; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tasks_under_python_m_imports_no_torch():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "app.cli", "tasks"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "synthetic-style" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "optuna" in imported and not imported & set(HEAVY)


@pytest.mark.parametrize("command", ["--help", "tasks", "results", "fit", "export"])
def test_commands_that_do_not_train_stay_light(tmp_path, command):
    url = f"sqlite:///{tmp_path}/s.db"
    completed_study(url)
    study = ["--storage", url, "--study", "done"]
    args = {"--help": ["--help"], "tasks": ["tasks"],
            "results": ["results", *study, "--json", str(tmp_path / "r.json")], "fit": ["fit", *study],
            "export": ["export", *study, "--format", "python", "--out", str(tmp_path / "c.py")]}
    rc, heavy = heavy_modules(*args[command])
    assert rc == 0 and heavy == []
