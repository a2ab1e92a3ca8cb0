"""Starting EON Tuner runs on the emulator over plain HTTP, independent of the hook under test."""

from __future__ import annotations

from typing import Any

import requests


def start_tuner(em: Any, trials: int = 3) -> int:
    """Configure and start a run; returns its coordinator job id."""
    headers = {"x-api-key": em.api_key}
    base = f"{em.url}/v1/api/{em.project_id}"
    config = {"targetLatency": 100, "targetDevice": {"name": "cortex-m4f-80mhz"}, "tuningMaxTrials": trials}
    requests.post(f"{base}/optimize/config", headers=headers, json=config, timeout=10).raise_for_status()
    resp = requests.post(f"{base}/jobs/optimize", headers=headers, json={}, timeout=10)
    resp.raise_for_status()
    return int(resp.json()["id"])


def start_job(em: Any, path: str = "jobs/retrain") -> int:
    resp = requests.post(
        f"{em.url}/v1/api/{em.project_id}/{path}", headers={"x-api-key": em.api_key}, json={}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


def job_record(em: Any, job_id: int) -> dict[str, Any]:
    return next(j for j in em.jobs() if j["id"] == job_id)


def route_count(em: Any, route: str) -> int:
    return int(em.requests()["by_route"].get(route, 0))


STATE_ROUTE = "GET /v1/api/{projectId}/optimize/{tunerCoordinatorJobId}/state"
STATUS_ROUTE = "GET /v1/api/{projectId}/jobs/{jobId}/status"
