"""A real `lorascope ui` server in a subprocess, and the headless Chromium that drives it.

Shared by the browser tests, `scripts/screenshot.py` and the bench's `ui` section. Chromium comes
from the distribution (`scripts/install_browser.sh` puts it at /usr/bin/chromium); Playwright only
drives it, so no `playwright install` download is ever needed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
REPO = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1600, "height": 1000}  # the screen the README screenshots and the bench use
SERVER_START_SECONDS = 90.0


def browser_missing() -> str | None:
    """Why the browser cannot be driven here (no chromium, no playwright), else None."""
    if not os.path.exists(CHROMIUM):
        return f"no chromium ({CHROMIUM} is missing: run scripts/install_browser.sh)"
    if importlib.util.find_spec("playwright") is None:
        return "no playwright (pip install -e '.[test]')"
    return None


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _live_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that have not exited (zombies awaiting a reap count as exited)."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return members


def kill_group(pid: int, *, grace: float = 5.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL it if it lingers."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _live_members(pgid):
                return
            time.sleep(0.1)


class Server:
    """A running `lorascope ui` subprocess (cwd = its own folder, so runs/ lands there)."""

    def __init__(self, tmp: Path, port: int, proc: subprocess.Popen, log: Path):
        self.tmp, self.port, self.proc, self.log = tmp, port, proc, log
        self.url = f"http://127.0.0.1:{port}/"
        self.storage_url = f"sqlite:///{tmp}/s.db"

    def worker_pids(self) -> list[int]:
        """Pids the app's runner recorded for its workers (alive or not)."""
        pids = []
        for path in (self.tmp / "runs" / "logs").glob("*.pid.json"):
            try:
                pids.append(int(json.loads(path.read_text())["pid"]))
            except (OSError, ValueError, KeyError):
                pass
        return pids

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_server(tmp: Path, port: int | None = None, extra_args: tuple[str, ...] = ()) -> Server:
    """Start `python -m app.cli ui [EXTRA_ARGS]` in ``tmp`` over ``tmp/s.db`` and wait until it answers HTTP."""
    port = port or free_port()
    log = tmp / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ui", "--port", str(port), "--storage", f"sqlite:///{tmp}/s.db",
             *extra_args],
            cwd=tmp, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    server = Server(tmp, port, proc, log)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lorascope ui exited with status {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"lorascope ui did not answer on port {port} within {SERVER_START_SECONDS:.0f}s:\n"
                       f"{server.log_tail()}")


def stop_server(server: Server, *, workers: bool = True) -> None:
    """Kill the server's process group and, unless ``workers`` is False, every worker it started."""
    kill_group(server.proc.pid)
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if workers:
        for pid in server.worker_pids():
            kill_group(pid, grace=2.0)


def open_app_page(pw, url: str):
    """Debian's Chromium (through Playwright ``pw``) on the app at ``url``, plots drawn: (browser, page)."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#loss-plot .js-plotly-plot")
    return browser, page
