"""`make demo` runs the nightly DAG with `airflow dags test` against the emulator and leaves nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conformance.serve import launcher_env

REPO = Path(__file__).resolve().parent.parent


def emulator_processes() -> int:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return sum(
        ("airflow_provider_edgeimpulse.emulator" in line or "tests.conformance.serve" in line)
        and "--port 0 --job-duration 2" in line
        for line in out.splitlines()
    )


def test_demo_prints_the_summary_and_leaves_no_process(tmp_path: Path) -> None:
    before = emulator_processes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EDGEIMPULSE_"))}
    # The demo's emulator checks its traffic against the OpenAPI definition (tests/conftest.py fails on what it finds).
    env = launcher_env(tmp_path / "emulator-openapi.jsonl", env)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Project 1: 'Emulated gestures'" in out
    assert "=== edgeimpulse_nightly_retrain: success" in out
    assert "model testing accuracy:" in out
    # The gate's verdict, check by check (figure and limit), and the version the passing model became.
    assert "model gate: passed" in out
    assert re.search(r"pass +accuracy +0\.83\d* \(limit 0\.6\)", out), out
    assert re.search(r"pass +ram_bytes\[cortex-m4f-80mhz/int8/eon\] +4812\.0 \(limit 131072\.0\)", out), out
    assert re.search(r"project version made: 1 \(id \d+, 'edgeimpulse_nightly_retrain manual__", out), out
    assert "deployment: " in out
    assert "bytes, sha256" in out
    assert emulator_processes() == before
