from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials


class JobStarter:
    """Starts emulator jobs over plain HTTP, independent of the hook under test."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator

    def start(self, path: str = "jobs/retrain") -> int:
        em = self.emulator
        resp = requests.post(
            f"{em.url}/v1/api/{em.project_id}/{path}", headers={"x-api-key": em.api_key}, json={}, timeout=10
        )
        resp.raise_for_status()
        return int(resp.json()["id"])

    async def astart(self, path: str = "jobs/retrain") -> int:
        return await asyncio.to_thread(self.start, path)

    async def afinish(self, job_id: int, success: bool = True) -> None:
        await asyncio.to_thread(self.emulator.finish_job, job_id, success)


@pytest.fixture
def credentials(edgeimpulse_emulator: Any) -> EdgeImpulseCredentials:
    em = edgeimpulse_emulator
    return EdgeImpulseCredentials(
        studio_url=em.url, auth_type=AuthType.API_KEY, api_key=em.api_key, project_id=em.project_id, timeout=10
    )


@pytest.fixture
def jobs(edgeimpulse_emulator: Any) -> JobStarter:
    # Jobs run until a test finishes them, so every timing below is the test's choice.
    edgeimpulse_emulator.configure(job_duration=None)
    return JobStarter(edgeimpulse_emulator)
