#!/usr/bin/env bash
# Install the headless Chromium the browser tests drive (tests/browser_tests).
# Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver are already there.
# Uses the distribution's packages only (Debian/Ubuntu apt); never downloads a browser any other way
# (no `playwright install`). Needs root, as in CI; otherwise it says what to run.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "install_browser: /usr/bin/chromium and /usr/bin/chromedriver already present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser: needs root to apt-get install chromium chromium-driver; run:" >&2
    echo "  sudo $0" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get not found; install chromium and chromedriver with your package manager" >&2
    exit 1
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "install_browser: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is missing" >&2
    exit 1
fi
/usr/bin/chromium --version || true
