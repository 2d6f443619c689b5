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

# Without root or apt the browser test is skipped (it says so), and the rest of `make test` runs.
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser: warning: not root, so chromium is not installed and the browser test will be" \
         "skipped; run: sudo $0" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: warning: apt-get not found; install chromium and chromedriver with your package" \
         "manager, or the browser test will be skipped" >&2
    exit 0
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "install_browser: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is missing" >&2
    exit 1
fi
/usr/bin/chromium --version || true
