#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the storage tests (tests/conftest.py starts a throwaway
# server from /usr/lib/postgresql/*/bin on a temporary folder; nothing is configured system-wide).
# Idempotent: does nothing when the server binaries are already there. Uses the distribution's
# `postgresql` package only. Needs root, as in CI; otherwise it says what to run.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    echo "install_postgres: $(ls -d /usr/lib/postgresql/*/bin/postgres | tail -n 1) already present"
    exit 0
fi

# Without root or apt the PostgreSQL tests are skipped (they say so), and the rest of `make test` runs.
if [ "$(id -u)" -ne 0 ]; then
    echo "install_postgres: warning: not root, so postgresql is not installed and the PostgreSQL tests" \
         "will be skipped; run: sudo $0" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_postgres: warning: apt-get not found; install the PostgreSQL server with your package" \
         "manager, or the PostgreSQL tests will be skipped" >&2
    exit 0
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    echo "install_postgres: apt-get finished but no /usr/lib/postgresql/*/bin/postgres is there" >&2
    exit 1
fi
