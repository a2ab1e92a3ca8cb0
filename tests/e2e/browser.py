"""
Headless Debian Chromium, driven by Playwright, for the UI tests.

The browser is Debian's (/usr/bin/chromium, installed by scripts/e2e/install_browser.sh), never one Playwright
downloads: this machine cannot fetch a browser build, so ``playwright install`` must never run. The flags keep
Chromium off the network it would otherwise call at start (component updates, sync, QUIC probes), which this
machine's closed network refuses, and let it run as root (CI does).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import REPO

CHROMIUM = Path(os.environ.get("EI_E2E_CHROMIUM", "/usr/bin/chromium"))
INSTALL_SCRIPT = REPO / "scripts" / "e2e" / "install_browser.sh"
CHROMIUM_FLAGS = (
    "--no-sandbox",  # root has no user namespace sandbox here
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def ensure_chromium() -> Path:
    """Chromium's path; installs it when missing and running as root; fails in CI, skips elsewhere, if absent."""
    if not CHROMIUM.exists() and os.geteuid() == 0:
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, timeout=900)
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing; install it with `sudo bash {INSTALL_SCRIPT.relative_to(REPO)}`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
