"""The command line: ``python -m airflow_provider_edgeimpulse.emulator`` prints its URL and stops on signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_edgeimpulse.emulator.__main__ import parse_args
from tests.conformance.serve import launcher

PRODUCT_COMMAND = [sys.executable, "-m", "airflow_provider_edgeimpulse.emulator"]


def _start(*args: str, command: list[str] = PRODUCT_COMMAND) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*command, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.fullmatch(r"Edge Impulse emulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
    if match is None:
        process.kill()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {process.communicate()[1]}")
    assert int(match.group(2)) > 0
    return process, match.group(1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    process, url = _start()
    try:
        response = requests.get(f"{url}/v1/api/projects", headers={"x-api-key": "ei_emulator_key"}, timeout=10)
        assert response.status_code == 200
        assert response.json()["projects"][0]["id"] == 1
    finally:
        process.send_signal(sig)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0
    assert "Traceback" not in process.stderr.read() if process.stderr else True


def test_cli_options(tmp_path: Path) -> None:
    # The product's argument parsing and serving behind the conformance launcher, so these exchanges are checked
    # against the OpenAPI definition too; the test above runs the entry point itself (one exchange, the same).
    command = launcher(tmp_path / "emulator-openapi.jsonl")
    process, url = _start("--api-key", "ei_custom", "--project-id", "77", "--job-duration", "0.1", command=command)
    try:
        headers = {"x-api-key": "ei_custom"}
        assert requests.get(f"{url}/v1/api/projects", headers=headers, timeout=10).json()["projects"][0]["id"] == 77
        job = requests.post(f"{url}/v1/api/77/jobs/evaluate", headers=headers, timeout=10).json()["id"]
        time.sleep(0.5)
        status = requests.get(f"{url}/v1/api/77/jobs/{job}/status", headers=headers, timeout=10).json()
        assert status["job"]["finishedSuccessful"] is True
        assert requests.get(f"{url}/v1/api/1", headers=headers, timeout=10).status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_parse_args_defaults_and_manual_jobs() -> None:
    config = parse_args([])
    assert (config.host, config.port, config.api_key, config.project_id) == ("127.0.0.1", 4810, "ei_emulator_key", 1)
    assert (config.username, config.password, config.job_duration) == ("emulator", "emulator", 3.0)
    assert parse_args(["--job-duration", "-1"]).job_duration is None
