"""Fixtures for the browser tests: the real `lorascope ui` server in a subprocess, and headless Chromium.

The server and browser helpers live in app/ui_process.py (the bench and scripts/screenshot.py use them too).
"""

from __future__ import annotations

import os

import pytest

from app.ui_process import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app, serving a fresh sqlite storage from its own temp folder."""
    server = start_server(tmp_path_factory.mktemp("browser"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from /usr/bin/chromium, driven by Playwright's sync API."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install_browser.sh")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
