"""The launcher of a checked emulator process (serve.py), as the end-to-end stacks start it, over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conformance.traffic import TrafficCheck

REPO = Path(__file__).resolve().parents[2]
READY = "Edge Impulse emulator listening on "
API_KEY = "ei_launched_key"


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """The launcher as a stack runs it: from another folder, the repo importable through PYTHONPATH only."""
    violations = tmp_path / "violations.jsonl"
    emulator_args = ["--port", "0", "--api-key", API_KEY, "--project-id", "7", "--job-duration", "-1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.conformance.serve", "--violations", str(violations), *emulator_args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        assert line.startswith(READY), line
        yield process, line.removeprefix(READY).strip(), violations
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def test_a_launched_emulator_reports_traffic_off_the_definition(launched) -> None:
    process, url, violations = launched
    check = TrafficCheck()
    check.follow(violations)
    session = requests.Session()
    session.headers["x-api-key"] = API_KEY
    # The emulator's own arguments reach it: its project is 7.
    assert session.get(f"{url}/v1/api/7/raw-data/count?category=all", timeout=30).status_code == 200
    assert check.drain() == []
    session.post(f"{url}/v1/api/7/jobs/train/anomaly/5", json={}, timeout=30)
    # Written before the answer left: a test reading right after its request sees it.
    found = [str(violation) for violation in check.drain()]
    assert len(found) == 1, found
    assert found[0].startswith("request POST /v1/api/{projectId}/jobs/train/anomaly/{learnId}: ")
    assert "'axes' is a required property" in found[0]
    assert check.drain() == []  # each line is read once

    # A test marked off_spec takes nothing in.
    session.post(f"{url}/v1/api/7/jobs/train/anomaly/5", json={}, timeout=30)
    check.exempt_reason = "sends a bad request on purpose"
    assert check.drain() == []
    check.exempt_reason = None

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    check.drain()
    assert check.followed_exchanges == 3
    assert check.checked[("GET", "/v1/api/{projectId}/raw-data/count", 200)] == 1
    assert all(
        set(json.loads(line)) <= {"violation", "checked", "seconds"} for line in violations.read_text().splitlines()
    )


def test_a_launched_emulator_that_conforms_writes_only_its_count(launched) -> None:
    process, url, violations = launched
    headers = {"x-api-key": API_KEY}
    assert requests.get(f"{url}/v1/api/7", headers=headers, timeout=30).status_code == 200
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    lines = [json.loads(line) for line in violations.read_text().splitlines()]
    assert lines == [{"checked": [["GET", "/v1/api/{projectId}", 200, 1]], "seconds": lines[0]["seconds"]}]
