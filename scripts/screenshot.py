#!/usr/bin/env python
"""Screenshot the app for the README: the built-in demo sweep and a short alpha search in a headless Chromium.

Starts `lorascope ui` on a fresh sqlite storage in a temp folder (app/ui_process.py, as the browser
tests do), presses Start on the preselected demo (synthetic-facts, ranks 4,16,64,256, standard +
rslora), waits for all trials, then runs a short alpha search from the Search tab, and writes:

  docs/live-view.png   the Run tab with its live loss and gradient-norm curves (1600x1000, no scrolling)
  docs/compare.png     the Compare tab (loss and gradient norm vs rank)
  docs/search.png      the Search & fit tab: progress, fitted alpha* law and the alpha landscape
  docs/export.png      the Export tab with the search's recommendation as a PEFT config

Needs /usr/bin/chromium (scripts/install_browser.sh) and playwright (pip install -e '.[test]').
Usage: python scripts/screenshot.py [--steps N] [--out DIR] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.ui_process import REPO, browser_missing, open_app_page, start_server, stop_server  # noqa: E402

STUDY = "demo"
TRIALS = 8
SEARCH = "alpha-search"
SEARCH_RANKS, SEARCH_TRIALS, SEARCH_STEPS = "4,16,64", 8, 150

PLOT_TRACES_JS = """(root) => Array.from(document.querySelectorAll(root + ' .js-plotly-plot'))
  .filter(el => el.offsetParent !== null).map(el => (el.data || []).length)"""


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshot: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def text_input(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("input, textarea").first


def shoot(page, path: Path) -> None:
    time.sleep(2.5)  # one more refresh tick, so the plots show the final curves
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))  # the viewport, as a newcomer sees it without scrolling


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="Steps per trial of the demo sweep (default: the demo's own).")
    parser.add_argument("--out", default=str(REPO / "docs"), help="Folder for the PNG files.")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds to wait for each run.")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        raise SystemExit(f"screenshot: {missing}")
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lorascope-shot-"))
    server = start_server(tmp)
    try:
        with sync_playwright() as pw:
            browser, page = open_app_page(pw, server.url)
            if args.steps:
                page.get_by_label("Steps", exact=True).fill(str(args.steps))
            text_input(page, "study-name").fill(STUDY)
            page.click("#start-sweep")
            t0 = time.monotonic()
            status = lambda: page.inner_text("#run-status")  # noqa: E731
            wait_until(lambda: f"{TRIALS} complete" in status() and "(idle)" in status(), args.timeout,
                       f"all {TRIALS} trials to complete")
            print(f"screenshot: sweep done in {time.monotonic() - t0:.0f}s", file=sys.stderr)
            shoot(page, out / "live-view.png")

            page.get_by_role("tab", name="Compare").click()
            wait_until(lambda: (lambda n: len(n) >= 2 and all(n))(page.evaluate(PLOT_TRACES_JS, "body")), 30,
                       "the Compare plots")
            shoot(page, out / "compare.png")

            page.get_by_role("tab", name="Run").click()
            page.get_by_label("Steps", exact=True).fill(str(SEARCH_STEPS))
            page.get_by_role("tab", name="Search & fit").click()
            page.get_by_label("Ranks", exact=True).fill(SEARCH_RANKS)
            page.get_by_label("Trials per rank", exact=True).fill(str(SEARCH_TRIALS))
            page.get_by_label("Search name", exact=True).fill(SEARCH)
            page.click("#start-search")
            total = len(SEARCH_RANKS.split(",")) * SEARCH_TRIALS
            wait_until(lambda: f"{total} / {total} trials done" in page.inner_text("#search-status"), args.timeout,
                       "the search to finish")
            wait_until(lambda: (lambda n: len(n) >= 2 and all(n))(page.evaluate(PLOT_TRACES_JS, "body")), 30,
                       "the Search plots")
            shoot(page, out / "search.png")

            page.get_by_role("tab", name="Export").click()
            wait_until(lambda: "lora_alpha" in page.inner_text("#export-preview"), 30, "the export preview")
            shoot(page, out / "export.png")
            browser.close()
    finally:
        stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"screenshot: wrote live-view, compare, search and export PNGs to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
