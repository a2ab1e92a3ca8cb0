"""The job waiter against the emulator over loopback HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop
from airflow_provider_edgeimpulse.jobs.shared_read import job_list_reads
from airflow_provider_edgeimpulse.jobs.waiter import WaitSettings, wait_for_job
from tests.jobs.scripted_socket import ScriptedSubscription, early_then_replayed

STATUS_ROUTE = "GET /v1/api/{projectId}/jobs/{jobId}/status"


def status_requests(emulator: Any) -> int:
    return int(emulator.requests()["by_route"].get(STATUS_ROUTE, 0))


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(predicate):
            await asyncio.sleep(0.02)


async def test_job_finished_before_the_wait_returns_at_once(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    await jobs.afinish(job_id, success=True)
    started = time.monotonic()
    outcome = await wait_for_job(credentials, credentials.project_id, job_id)
    assert outcome.success and outcome.status == "success"
    assert outcome.finished
    assert time.monotonic() - started < 5


async def test_finish_right_after_subscribe_is_not_missed(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    await jobs.afinish(job_id, success=True)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.success


async def test_failed_job_is_an_outcome_with_its_log(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    await jobs.afinish(job_id, success=False)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.status == "failure" and not outcome.success
    assert outcome.log_tail, "a failed job's outcome carries the end of its log"


async def test_success_comes_from_rest_not_from_the_socket_payload(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    # A lying event: the socket says success while REST will say the job failed.
    edgeimpulse_emulator.state.sockets.broadcast(credentials.project_id, f"job-finished-{job_id}", {"success": True})
    await asyncio.sleep(0.3)
    assert not waiting.done(), "a finish event for a job REST shows running must not end the wait"
    await jobs.afinish(job_id, success=False)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.success is False


async def test_log_lines_reach_the_callback_as_they_come(credentials, jobs, edgeimpulse_emulator):
    edgeimpulse_emulator.configure(job_duration=0.6)
    job_id = await jobs.astart("jobs/train/keras/" + str(_learn_id(edgeimpulse_emulator, "keras")))
    lines: list[tuple[float, str]] = []
    outcome = await wait_for_job(
        credentials, credentials.project_id, job_id, on_log=lambda line: lines.append((time.monotonic(), line))
    )
    assert outcome.success
    assert any("Epoch" in line for _, line in lines)
    assert lines[0][0] < lines[-1][0], "lines arrive while the job runs, not in one batch at the end"


async def test_cancel_over_the_socket_ends_the_wait_as_failure(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    hub = registry_for_running_loop().hub_for(credentials, credentials.project_id)
    from airflow_provider_edgeimpulse import socketio_codec as sio

    hub._send_nowait(sio.encode_event("job-cancel", job_id))
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.status == "failure"
    job = next(j for j in edgeimpulse_emulator.jobs() if j["id"] == job_id)
    assert job["cancelled"]


async def test_finish_during_a_dropped_socket_is_not_lost(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    settings = WaitSettings(safety_interval=300, poll_interval=300)
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=settings))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    # Cut every socket and refuse the next reconnects, then finish the job while nobody listens.
    edgeimpulse_emulator.fault(refuse_socket_tokens=2)
    edgeimpulse_emulator.fault(drop_sockets=True)
    await jobs.afinish(job_id, success=True)
    outcome = await asyncio.wait_for(waiting, 15)
    assert outcome.success, "the re-check after reconnecting finds the finish that happened in the gap"


async def test_refused_token_then_accepted(credentials, jobs, edgeimpulse_emulator):
    edgeimpulse_emulator.fault(refuse_socket_tokens=2)
    job_id = await jobs.astart()
    settings = WaitSettings(safety_interval=300, poll_interval=300)
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=settings))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1, timeout=10)
    before = status_requests(edgeimpulse_emulator)
    await jobs.afinish(job_id, success=True)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.success
    assert status_requests(edgeimpulse_emulator) - before <= 2, "the finish came by socket, not by polling"


async def test_blocked_websockets_fall_back_to_polling_and_say_so(credentials, jobs, edgeimpulse_emulator, caplog):
    edgeimpulse_emulator.fault(block_websockets=True)
    job_id = await jobs.astart()
    settings = WaitSettings(safety_interval=300, poll_interval=0.3)
    caplog.set_level(logging.WARNING)
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=settings))
    await asyncio.sleep(1.5)
    await jobs.afinish(job_id, success=True)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.success
    polling_notes = [r for r in caplog.records if "over REST every" in r.getMessage()]
    assert len(polling_notes) == 1, "the fallback is announced once"


async def test_deadline_ends_the_wait_with_a_timeout_outcome(credentials, jobs, edgeimpulse_emulator):
    job_id = await jobs.astart()
    started = time.monotonic()
    outcome = await wait_for_job(credentials, credentials.project_id, job_id, deadline=time.time() + 0.5)
    elapsed = time.monotonic() - started
    assert outcome.status == "timeout" and outcome.timed_out and not outcome.success
    assert 0.4 < elapsed < 3
    job = next(j for j in edgeimpulse_emulator.jobs() if j["id"] == job_id)
    assert not job["finished"], "the waiter leaves cancelling to its caller"


async def test_malformed_frames_are_skipped(credentials, jobs, edgeimpulse_emulator, caplog):
    job_id = await jobs.astart()
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id))
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    caplog.set_level(logging.WARNING)
    for garbage in ('42["job-data-', "9zzz", '42{"not":"a list"}', "4", ""):
        edgeimpulse_emulator.state.sockets.send_raw(credentials.project_id, garbage)
    await jobs.afinish(job_id, success=True)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.success
    assert any("malformed" in r.getMessage().lower() for r in caplog.records)


async def test_concurrent_waits_share_one_socket(credentials, jobs, edgeimpulse_emulator):
    job_ids = [await jobs.astart() for _ in range(100)]
    waits = [asyncio.create_task(wait_for_job(credentials, credentials.project_id, j)) for j in job_ids]
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 1)
    await asyncio.sleep(0.2)
    assert edgeimpulse_emulator.sockets() == 1
    failing = set(job_ids[::3])
    for job_id in job_ids:
        await jobs.afinish(job_id, success=job_id not in failing)
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 30)
    assert {o.job_id: o.success for o in outcomes} == {j: j not in failing for j in job_ids}
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 0)
    assert len(registry_for_running_loop()) == 0, "the socket closes when its last waiter leaves"


async def test_waits_on_one_job_each_hear_it_and_one_leaving_keeps_the_others(credentials, jobs, edgeimpulse_emulator):
    # An operator's trigger and a sensor on the same job, say: one entry of the hub holds both, then one again.
    edgeimpulse_emulator.configure(job_duration=None)
    job_id = await jobs.astart()
    project_id = credentials.project_id
    heard: list[str] = []
    waits = [asyncio.create_task(wait_for_job(credentials, project_id, job_id)) for _ in range(2)]
    waits.append(asyncio.create_task(wait_for_job(credentials, project_id, job_id, on_log=heard.append)))
    hub = registry_for_running_loop().hub_for(credentials, project_id)
    await wait_until(lambda: sum(sub._armed is not None for sub in hub.subscriptions()) == 3, timeout=30)
    waits[0].cancel()
    await asyncio.gather(waits[0], return_exceptions=True)
    assert len(hub.subscriptions()) == 2
    waits[1].cancel()
    await asyncio.gather(waits[1], return_exceptions=True)
    assert [sub.job_id for sub in hub.subscriptions()] == [job_id]
    await jobs.afinish(job_id, success=True)
    outcome = await asyncio.wait_for(waits[2], 30)
    assert outcome.success
    assert heard and heard == edgeimpulse_emulator.state.job_log(project_id, job_id)
    await wait_until(lambda: edgeimpulse_emulator.sockets() == 0)


async def test_rest_requests_do_not_grow_with_job_duration(credentials, jobs, edgeimpulse_emulator):
    counts = []
    for duration in (0.3, 2.0):
        edgeimpulse_emulator.reset()
        edgeimpulse_emulator.configure(job_duration=duration)
        job_id = await jobs.astart()
        outcome = await wait_for_job(credentials, credentials.project_id, job_id)
        assert outcome.success
        counts.append(edgeimpulse_emulator.requests()["total"] - 1)  # minus the start call
    print(f"REST requests per wait by job duration: 0.3 s -> {counts[0]}, 2.0 s -> {counts[1]}")
    assert counts[0] == counts[1] <= 3


def _learn_id(emulator: Any, kind: str) -> int:
    import requests

    impulse = requests.get(
        f"{emulator.url}/v1/api/{emulator.project_id}/impulse", headers={"x-api-key": emulator.api_key}, timeout=10
    ).json()["impulse"]
    return next(int(b["id"]) for b in impulse["learnBlocks"] if kind in str(b.get("type", "")))


@pytest.mark.parametrize("eio", [3, 4])
async def test_both_engine_io_versions_carry_a_wait(credentials, jobs, edgeimpulse_emulator, eio):
    from airflow_provider_edgeimpulse.jobs.hub import JobEventHub

    job_id = await jobs.astart()
    hub = JobEventHub(credentials, credentials.project_id, eio=eio)
    sub = hub.subscribe(job_id)
    try:
        first = await sub.next(5)
        assert first is not None and first.kind == "connected"
        await jobs.afinish(job_id, success=True)
        event = await sub.next(5)
        while isinstance(event, str):
            event = await sub.next(5)
        assert event is not None and event.kind == "finished" and event.success is True
    finally:
        await sub.aclose()


async def test_every_log_line_is_relayed_once_even_repeated_ones_and_across_a_reconnect(
    credentials, jobs, edgeimpulse_emulator
):
    em = edgeimpulse_emulator
    em.configure(job_duration=1.5)
    job_id = await jobs.astart()
    lines: list[str] = []
    waiting = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, on_log=lines.append))
    await asyncio.sleep(0.7)
    await asyncio.to_thread(em.fault, drop_sockets=True)  # the new subscription replays the log from its start
    outcome = await asyncio.wait_for(waiting, 15)
    assert outcome.success
    expected = em.state.job_log(credentials.project_id, job_id)
    assert len(expected) != len(set(expected)), "the emulated retrain repeats lines: the check needs that"
    # Each line once, a repeated line as often as the log repeats it. The order is the log's unless live lines
    # reached the socket before its subscription (a loaded machine): those come first, and the outcome's tail
    # is then put back in the log's order from REST.
    assert Counter(lines) == Counter(expected), lines
    assert outcome.log_tail == expected[-len(outcome.log_tail) :]


class _StudioLog:
    """The REST side of a finished job: its status and its whole log, in order."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    async def get_job_status(self, project_id: int, job_id: int) -> dict[str, Any]:
        return {"id": job_id, "finished": "2026-01-01T00:00:00Z", "finishedSuccessful": True}

    async def get_job_stdout(self, project_id: int, job_id: int, limit: int) -> list[str]:
        return self.lines[-limit:]


class _StudioHub:
    """A hub without a socket: the REST side only (the socket's events are scripted)."""

    def __init__(self, client: _StudioLog) -> None:
        self.client = client
        self.running_jobs, self.finished_jobs = job_list_reads(client, 1)  # type: ignore[arg-type]


async def test_live_lines_ahead_of_the_subscription_are_neither_repeated_nor_misordered():
    """The room's live lines can reach a new socket before it is subscribed; the replay then repeats them."""
    from airflow_provider_edgeimpulse.jobs.hub import HubEvent
    from airflow_provider_edgeimpulse.jobs.waiter import _JobWait

    log_lines = ["start", "features", "scheduling", "training", "epoch 1", "scheduling", "epoch 2", "done"]
    events = [*early_then_replayed(log_lines, early=slice(2, 4)), HubEvent("finished", success=True)]
    relayed: list[str] = []
    wait = _JobWait(_StudioHub(_StudioLog(log_lines)), 1, 7, WaitSettings(), relayed.append)  # type: ignore[arg-type]
    outcome = await wait.run(ScriptedSubscription(events))
    assert outcome.success
    assert outcome.log_tail == log_lines, "the outcome keeps the log's order"
    assert sorted(relayed) == sorted(log_lines), "each line reaches the task log once"
