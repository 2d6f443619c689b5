#!/usr/bin/env python
"""Screenshot the app for the README: run the built-in demo sweep in a headless Chromium.

Starts `lorascope ui` on a fresh sqlite storage in a temp folder (as tests/browser_tests does),
presses Start on the preselected demo (synthetic-facts, ranks 4,16,64,256, standard + rslora),
waits for all trials to complete and writes:

  docs/live-view.png   the Run tab with its live loss and gradient-norm curves
  docs/compare.png     the Compare tab (loss and gradient norm vs rank)

Needs /usr/bin/chromium (scripts/install_browser.sh) and playwright (pip install -e '.[test]').
Usage: python scripts/screenshot.py [--steps N] [--out DIR] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1500, "height": 1100}
STUDY = "demo"
TRIALS = 8

PLOT_TRACES_JS = """(root) => Array.from(document.querySelectorAll(root + ' .js-plotly-plot'))
  .filter(el => el.offsetParent !== null).map(el => (el.data || []).length)"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def start_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--port", str(port),
                             "--storage", f"sqlite:///{tmp}/s.db"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"

    def up():
        if proc.poll() is not None:
            raise SystemExit(f"screenshot: lorascope ui exited:\n{(tmp / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_until(up, 90, "the server")
    return proc, url


def kill_group(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def status_text(page) -> str:
    return page.inner_text("#run-status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="Steps per trial (default: the demo's own).")
    parser.add_argument("--out", default=str(REPO / "docs"), help="Folder for live-view.png and compare.png.")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for the sweep.")
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"screenshot: {CHROMIUM} is missing: run scripts/install_browser.sh")
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lorascope-shot-"))
    proc, url = start_server(tmp)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector("#start-sweep")
            if args.steps:
                page.get_by_label("Steps", exact=True).fill(str(args.steps))
            page.locator("#study-name").locator("input, textarea").first.fill(STUDY)
            page.click("#start-sweep")
            t0 = time.monotonic()
            wait_until(lambda: f"{TRIALS} complete" in status_text(page) and "(idle)" in status_text(page),
                       args.timeout, f"all {TRIALS} trials to complete")
            print(f"screenshot: sweep done in {time.monotonic() - t0:.0f}s", file=sys.stderr)
            time.sleep(2.5)  # one more refresh tick, so the plots show the final curves
            page.mouse.move(0, 0)
            page.screenshot(path=str(out / "live-view.png"), full_page=True)

            page.get_by_role("tab", name="Compare").click()
            wait_until(lambda: (lambda n: len(n) >= 2 and all(n))(page.evaluate(PLOT_TRACES_JS, "body")), 30,
                       "the Compare plots")
            time.sleep(1.0)
            page.mouse.move(0, 0)
            page.screenshot(path=str(out / "compare.png"), full_page=True)
            browser.close()
    finally:
        kill_group(proc.pid)
        proc.wait(timeout=10)
        for pid_file in (tmp / "runs" / "logs").glob("*.pid.json"):
            kill_group(json.loads(pid_file.read_text())["pid"])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"screenshot: wrote {out / 'live-view.png'} and {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
