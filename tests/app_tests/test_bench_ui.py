"""The bench's ui section (app/bench_ui.py) and its wiring into `lorascope bench --sections`."""

import pytest

import app.ui_process
from app.bench_ui import start_to_first_curve, tasks_seconds
from core.specs import SpecError


def test_tasks_wall_time_is_measured_in_a_fresh_process():
    result = tasks_seconds(repeats=1)
    assert len(result["runs"]) == 1 and result["seconds"] == result["runs"][0] > 0
    assert result["target_s"] == 1.0 and result["meets_target"] == (result["seconds"] < 1.0)


def test_first_curve_is_skipped_without_chromium(monkeypatch):
    monkeypatch.setattr(app.ui_process, "CHROMIUM", "/nonexistent/chromium")
    assert start_to_first_curve() == {"skipped": "no chromium (/nonexistent/chromium is missing: run "
                                                 "scripts/install_browser.sh)"}


def test_bench_knows_the_scale_and_ui_sections():
    from app.bench import SECTIONS, run_bench

    assert {"scale", "ui"} <= set(SECTIONS)
    with pytest.raises(SpecError, match="use throughput, pruning, packed, scale, ui"):
        run_bench("cpu", ("nope",))
