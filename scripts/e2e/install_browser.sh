#!/usr/bin/env bash
# Installs Debian's Chromium for the UI end-to-end test (tests/e2e/test_ui_connection.py).
# The browser comes from apt on purpose: this machine cannot download a browser build of its own
# (so never `playwright install`); Playwright drives /usr/bin/chromium through executable_path.
# Idempotent and quiet when Chromium is already there; needs root (CI runs as root).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser.sh: Chromium is missing and installing it needs root: apt-get install chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# chromium-driver is not needed by Playwright; fonts-liberation keeps screenshots legible.
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
chromium --version
