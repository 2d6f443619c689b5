"""`lorascope bench` ui section: what a newcomer waits for.

`lorascope tasks` wall time (a fresh process, so imports count), and the time from pressing Start
on the Run tab's preselected CPU demo to the first curve point drawn in a real headless Chromium.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.ui_process import REPO, browser_missing, open_app_page, start_server, stop_server

TASKS_TARGET_S = 1.0
FIRST_CURVE_TARGET_S = 5.0
FIRST_CURVE_TIMEOUT_S = 120.0
# True once the Run tab's loss plot draws a trace with at least one point
FIRST_POINT_JS = """() => {
  const el = document.querySelector('#loss-plot .js-plotly-plot');
  if (!el || !el.data) return false;
  return el.data.some(t => { const x = t.x && t.x._inputArray ? t.x._inputArray : t.x; return x && x.length > 0; });
}"""


def tasks_seconds(repeats: int = 3) -> dict[str, Any]:
    """Median wall time of `lorascope tasks` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "app.cli", "tasks"], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {"seconds": round(median, 3), "runs": [round(t, 3) for t in times], "target_s": TASKS_TARGET_S,
            "meets_target": median < TASKS_TARGET_S}


def start_to_first_curve() -> dict[str, Any]:
    """Seconds from the Start click to the first loss point on screen (demo defaults, cpu).

    Measured as shipped (a pre-warmed standby worker takes the command) and with ``--no-standby``
    (a fresh worker process imports torch first).
    """
    missing = browser_missing()
    if missing:
        return {"skipped": missing}
    seconds = _first_curve_seconds(())
    cold = _first_curve_seconds(("--no-standby",))
    return {"seconds": seconds, "no_standby_seconds": cold, "task": "synthetic-facts (the Run tab's demo)",
            "device": "auto (the Run tab's default; cpu on a machine without a GPU)",
            "target_s": FIRST_CURVE_TARGET_S, "meets_target": seconds < FIRST_CURVE_TARGET_S,
            "note": "Start is pressed once the page has loaded and the standby worker is warm; the page "
                    "polls every 0.4 s until the first point"}


def _first_curve_seconds(server_args: tuple[str, ...]) -> float:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lorascope-bench-ui-") as folder:
        server = start_server(Path(folder), extra_args=server_args)
        try:
            if not server_args:
                wait_for_standby(server.proc.pid)
            with sync_playwright() as pw:
                browser, page = open_app_page(pw, server.url)
                page.locator("#study-name").locator("input, textarea").first.fill("bench-first-curve")
                page.click("#start-sweep")
                started = time.monotonic()
                page.wait_for_function(FIRST_POINT_JS, timeout=FIRST_CURVE_TIMEOUT_S * 1000, polling=100)
                seconds = time.monotonic() - started
                browser.close()
        finally:
            stop_server(server)
    return round(seconds, 2)


def wait_for_standby(server_pid: int, timeout: float = 60.0) -> None:
    """Wait until the app's standby worker has warmed up (it then sleeps reading its stdin)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.Process(server_pid).children():
            try:
                if "app.standby" in proc.cmdline() and proc.cpu_percent(interval=0.5) < 5:
                    return
            except psutil.Error:
                continue
        time.sleep(0.2)


def ui_section() -> dict[str, Any]:
    """The bench's ui section."""
    return {"tasks": tasks_seconds(), "start_to_first_curve": start_to_first_curve()}
