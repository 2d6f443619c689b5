"""A real PostgreSQL server for the storage tests: started once per session, stopped at the end.

The server runs Debian's ``postgresql`` binaries (``scripts/install_postgres.sh`` installs them) on
a temporary folder and a free port on 127.0.0.1, as user ``postgres`` when the tests run as root
(initdb and postgres refuse root). Each test gets its own database, reached over TCP by a user
with a password, as a remote worker would.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "lorascope"
START_SECONDS = 60


@dataclass
class PgServer:
    """A running throwaway server: its port, the test user's password, and a superuser socket."""

    port: int
    password: str
    socket_dir: str

    def url(self, database: str, *, password: str | None = None, port: int | None = None) -> str:
        """The SQLAlchemy URL of ``database`` for the test user (optionally with a wrong password or port)."""
        return (f"postgresql+psycopg://{PG_USER}:{password or self.password}"
                f"@127.0.0.1:{port or self.port}/{database}")

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser over the server's Unix socket."""
        import psycopg

        with psycopg.connect(host=self.socket_dir, port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)


def _server_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server():
    """Start a PostgreSQL server for the session; skip (with a warning) when none is installed."""
    bin_dir = _server_bin()
    if bin_dir is None:
        message = ("PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/postgres): PostgreSQL "
                   "tests skipped; run: sudo bash scripts/install_postgres.sh")
        warnings.warn(message)
        pytest.skip(message)
    pytest.importorskip("psycopg", reason="psycopg missing: pip install 'psycopg[binary]'")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = tempfile.mkdtemp(prefix="lorascope-pg-")
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data, log = f"{root}/data", f"{root}/server.log"
    port = _free_port()
    subprocess.run([*as_user, bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    # fsync off: a test server has nothing to keep after a crash
    options = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
               "-c max_connections=500")  # each test database keeps its pooled connections open in this process
    started = subprocess.run([*as_user, bin_dir / "pg_ctl", "start", "-D", data, "-l", log, "-w",
                              "-t", str(START_SECONDS), "-o", options], capture_output=True, text=True)
    if started.returncode:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {started.stderr.strip()}")
    server = PgServer(port=port, password=secrets.token_hex(12), socket_dir=root)
    try:
        server.admin(f"CREATE USER {PG_USER} WITH PASSWORD '{server.password}' CREATEDB")
        yield server
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server, as a postgresql+psycopg:// URL with a password."""
    name = f"t_{secrets.token_hex(6)}"
    pg_server.admin(f"CREATE DATABASE {name} OWNER {PG_USER}")
    return pg_server.url(name)

