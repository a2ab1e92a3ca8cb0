"""
Credentials that stop working in the middle of a long wait, on both wait paths (the trigger and the blocking hook).

- A JWT session that expires (the emulator gives its tokens a short life): the wait logs in again and completes.
- An API key revoked while the job runs: the wait ends with a clear authorization error, quickly, and without a
  retry storm: a 401 is not a hiccup that retrying can fix.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import requests

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking
from airflow_provider_edgeimpulse.jobs.waiter import WaitSettings
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger

JWT_CONN_ID = "edgeimpulse_jwt_expiring"
LOGIN_ROUTE = "POST /v1/api-login"
# Long enough that a login and the request after it fit in one token's life on a loaded machine.
TOKEN_LIFE_S = 1.0
# REST checks often enough that several land after each token expired.
SETTINGS = WaitSettings(safety_interval=0.2, poll_interval=0.2)
JOB_RUNS_S = 4.0
# A revoked key is noticed at the next REST check; anything near the deadline would be a hang.
NOTICE_BOUND_S = 5.0
REQUESTS_AFTER_REVOKE_BOUND = 4


@pytest.fixture
def jwt_conn(edgeimpulse_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{JWT_CONN_ID.upper()}", edgeimpulse_emulator.connection_json("jwt"))
    return JWT_CONN_ID


def start_job(em: Any) -> int:
    resp = requests.post(
        f"{em.url}/v1/api/{em.project_id}/jobs/retrain", headers={"x-api-key": em.api_key}, json={}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


def finish_later(em: Any, job_id: int, after: float) -> threading.Timer:
    timer = threading.Timer(after, em.finish_job, args=(job_id, True))
    timer.start()
    return timer


def logins(em: Any) -> int:
    return int(em.requests()["by_route"].get(LOGIN_ROUTE, 0))


def trigger_for(em: Any, job_id: int, conn_id: str) -> EdgeImpulseJobTrigger:
    return EdgeImpulseJobTrigger(
        job_id=job_id,
        project_id=em.project_id,
        edgeimpulse_conn_id=conn_id,
        safety_interval=SETTINGS.safety_interval,
        poll_interval=SETTINGS.poll_interval,
        deadline=time.time() + 60,
    )


async def first_event(trigger: EdgeImpulseJobTrigger) -> Any:
    events = trigger.run()
    try:
        return await anext(events)
    finally:
        await events.aclose()


def test_an_expiring_jwt_is_renewed_and_the_deferred_wait_completes(edgeimpulse_emulator: Any, jwt_conn: str) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None, jwt_ttl_s=TOKEN_LIFE_S)
    job_id = start_job(em)
    timer = finish_later(em, job_id, JOB_RUNS_S)
    try:
        event = asyncio.run(asyncio.wait_for(first_event(trigger_for(em, job_id, jwt_conn)), 30))
    finally:
        timer.cancel()
    assert (event.payload["status"], event.payload["job_id"]) == ("success", job_id), event.payload
    # The job outlived several tokens: the wait logged in again, about once per token life, not per request.
    assert 2 <= logins(em) <= JOB_RUNS_S / TOKEN_LIFE_S + 3, em.requests()["by_route"]


def test_an_expiring_jwt_is_renewed_and_the_blocking_wait_completes(edgeimpulse_emulator: Any, jwt_conn: str) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None, jwt_ttl_s=TOKEN_LIFE_S)
    job_id = start_job(em)
    timer = finish_later(em, job_id, JOB_RUNS_S)
    try:
        hook = EdgeImpulseHook(edgeimpulse_conn_id=jwt_conn)
        outcome = wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=30, settings=SETTINGS)
    finally:
        timer.cancel()
    assert (outcome["status"], outcome["success"]) == ("success", True), outcome
    assert 2 <= logins(em) <= JOB_RUNS_S / TOKEN_LIFE_S + 3, em.requests()["by_route"]


def revoke_when_waiting(em: Any) -> dict[str, float]:
    """Revoke the key once the wait is under way; the request count and time at that moment."""
    deadline = time.monotonic() + 10
    while em.sockets() < 1:
        assert time.monotonic() < deadline, "the wait never opened its socket"
        time.sleep(0.02)
    seen = {"requests": em.requests()["total"]}
    em.fault(revoke_api_key=True)
    seen["at"] = time.monotonic()
    return seen


def assert_clear_and_bounded(em: Any, message: str, seen: dict[str, float]) -> None:
    assert "401" in message, message
    assert em.api_key not in message
    assert time.monotonic() - seen["at"] < NOTICE_BOUND_S, "a revoked key must end the wait, not wait it out"
    after = em.requests()["total"] - seen["requests"]
    assert after <= REQUESTS_AFTER_REVOKE_BOUND, f"{after} requests after the key was revoked: a retry storm"


def test_a_revoked_api_key_ends_the_deferred_wait_with_a_clear_error(edgeimpulse_emulator: Any) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    seen: dict[str, float] = {}

    async def scenario() -> Any:
        waiting = asyncio.create_task(first_event(trigger_for(em, job_id, "edgeimpulse_default")))
        seen.update(await asyncio.to_thread(revoke_when_waiting, em))
        return await asyncio.wait_for(waiting, 30)

    event = asyncio.run(scenario())
    assert event.payload["status"] == "error", event.payload
    assert_clear_and_bounded(em, event.payload["message"], seen)


def test_a_revoked_api_key_ends_the_blocking_wait_with_a_clear_error(edgeimpulse_emulator: Any) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    seen: dict[str, float] = {}
    revoker = threading.Thread(target=lambda: seen.update(revoke_when_waiting(em)))
    revoker.start()
    try:
        hook = EdgeImpulseHook()
        with pytest.raises(EdgeImpulseAPIError) as info:
            wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=30, settings=SETTINGS)
    finally:
        revoker.join(15)
    assert info.value.status == 401
    assert_clear_and_bounded(em, str(info.value), seen)
