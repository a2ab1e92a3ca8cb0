"""The worker's blocking wait: same engine, run on a private event loop."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pytest

from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking


def _wait_in_thread(credentials: Any, job_id: int, results: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        results["outcome"] = wait_for_job_blocking(credentials, credentials.project_id, job_id, timeout=30)
        results["returned_at"] = time.perf_counter()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_blocking_wait_returns_soon_after_the_finish(credentials, jobs, edgeimpulse_emulator):
    latencies = []
    for _ in range(10):
        job_id = jobs.start()
        results: dict[str, Any] = {}
        thread = _wait_in_thread(credentials, job_id, results)
        deadline = time.monotonic() + 10
        while edgeimpulse_emulator.sockets() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # past the wait's first REST check: the finish must come by socket
        finished_at = time.perf_counter()
        edgeimpulse_emulator.finish_job(job_id, True)
        thread.join(15)
        assert results["outcome"]["success"] is True
        latencies.append((results["returned_at"] - finished_at) * 1000)
    median = statistics.median(latencies)
    print(f"wait_for_job latency after the finish: median {median:.1f} ms, max {max(latencies):.1f} ms")
    assert median < 100


def test_blocking_wait_rejects_a_negative_timeout(credentials):
    with pytest.raises(ValueError, match="timeout"):
        wait_for_job_blocking(credentials, credentials.project_id, 1, timeout=-1)


def test_blocking_wait_times_out_without_cancelling(credentials, jobs, edgeimpulse_emulator):
    job_id = jobs.start()
    outcome = wait_for_job_blocking(credentials, credentials.project_id, job_id, timeout=0.3)
    assert outcome["status"] == "timeout"
    job = next(j for j in edgeimpulse_emulator.jobs() if j["id"] == job_id)
    assert not job["finished"]
