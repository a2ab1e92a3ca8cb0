"""Waits of one socket that check their jobs together share one list read: running jobs, then finished ones."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow_provider_edgeimpulse.jobs.waiter import WaitSettings, wait_for_job
from tests.jobs.test_waiter import status_requests, wait_until

LIST_ROUTE = "GET /v1/api/{projectId}/jobs"
HISTORY_ROUTE = "GET /v1/api/{projectId}/jobs/history"
WAITS = 30
QUIET = WaitSettings(safety_interval=300, poll_interval=300)


def list_requests(emulator: Any, route: str = LIST_ROUTE) -> int:
    return int(emulator.requests()["by_route"].get(route, 0))


def _burst(emulator: Any, *batches: tuple[list[int], bool]) -> None:
    """
    End jobs while the test's event loop is blocked on purpose (called without ``await``): every finish event is in
    before the socket reads any, as in a burst of jobs that end together.
    """
    for job_ids, success in batches:
        emulator.finish_jobs(job_ids, success)
    time.sleep(0.5)


async def _socket_open(credentials: Any, jobs: Any, emulator: Any) -> asyncio.Task[Any]:
    """A first wait, alone: it opens the project's socket and checks its job with a status read of its own."""
    job_id = await jobs.astart()
    first = asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
    await wait_until(lambda: status_requests(emulator) >= 1, timeout=30)
    assert list_requests(emulator) == 0, "a wait that checks alone reads its own status"
    first.job_id = job_id  # type: ignore[attr-defined]
    return first


async def test_waits_that_start_together_check_with_one_list_read(credentials, jobs, edgeimpulse_emulator):
    first = await _socket_open(credentials, jobs, edgeimpulse_emulator)
    job_ids = [await jobs.astart() for _ in range(WAITS)]
    statuses_before = status_requests(edgeimpulse_emulator)
    waits = [
        asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
        for job_id in job_ids
    ]
    await wait_until(lambda: list_requests(edgeimpulse_emulator) >= 1, timeout=30)
    await asyncio.sleep(0.5)  # a wait that missed the list would read its status now
    assert status_requests(edgeimpulse_emulator) == statuses_before
    assert list_requests(edgeimpulse_emulator) == 1

    for job_id in [first.job_id, *job_ids]:  # type: ignore[attr-defined]
        await jobs.afinish(job_id, success=job_id % 2 == 0)
    outcomes = await asyncio.wait_for(asyncio.gather(first, *waits), 60)
    assert [outcome.success for outcome in outcomes[1:]] == [job_id % 2 == 0 for job_id in job_ids]


async def test_a_job_that_ended_before_its_wait_is_read_on_its_own(credentials, jobs, edgeimpulse_emulator):
    first = await _socket_open(credentials, jobs, edgeimpulse_emulator)
    running = [await jobs.astart() for _ in range(3)]
    ended = await jobs.astart()
    await jobs.afinish(ended, success=False)
    waits = [
        asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
        for job_id in [*running, ended]
    ]
    outcome = await asyncio.wait_for(waits[-1], 30)
    assert outcome.status == "failure" and outcome.job["finished"], "not on the list of active jobs: read, not assumed"
    assert list_requests(edgeimpulse_emulator) == 1
    assert all(not wait.done() for wait in waits[:-1]), "the running jobs' waits still wait"

    for job_id in [first.job_id, *running]:  # type: ignore[attr-defined]
        await jobs.afinish(job_id, success=True)
    assert all(o.success for o in await asyncio.wait_for(asyncio.gather(first, *waits[:-1]), 60))


async def test_a_list_read_that_fails_leaves_each_wait_to_read_its_own_status(credentials, jobs, edgeimpulse_emulator):
    first = await _socket_open(credentials, jobs, edgeimpulse_emulator)
    job_ids = [await jobs.astart() for _ in range(5)]
    statuses_before = status_requests(edgeimpulse_emulator)
    # The next request is the list read: answered with an error no retry changes.
    edgeimpulse_emulator.fault(status=400, count=1, path=f"/api/{credentials.project_id}/jobs")
    waits = [
        asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
        for job_id in job_ids
    ]
    await wait_until(lambda: status_requests(edgeimpulse_emulator) >= statuses_before + len(job_ids), timeout=30)
    assert list_requests(edgeimpulse_emulator) == 1

    for job_id in [first.job_id, *job_ids]:  # type: ignore[attr-defined]
        await jobs.afinish(job_id, success=True)
    assert all(o.success for o in await asyncio.wait_for(asyncio.gather(first, *waits), 60))


async def test_a_cancelled_wait_leaves_the_list_read_to_the_others(credentials, jobs, edgeimpulse_emulator):
    first = await _socket_open(credentials, jobs, edgeimpulse_emulator)
    job_ids = [await jobs.astart() for _ in range(4)]
    # The list read (the next request) is slow enough to cancel one wait while all of them wait for it.
    edgeimpulse_emulator.fault(latency_ms=1500, path=f"/api/{credentials.project_id}/jobs")
    waits = [
        asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
        for job_id in job_ids
    ]
    await wait_until(lambda: list_requests(edgeimpulse_emulator) >= 1, timeout=30)
    waits[0].cancel()
    edgeimpulse_emulator.clear_faults()
    await asyncio.sleep(2)
    assert all(not wait.done() for wait in waits[1:]), "the others still wait, with the list's answer"
    assert status_requests(edgeimpulse_emulator) == 1, "the list answered the others: no status read of their own"
    for job_id in [first.job_id, *job_ids]:  # type: ignore[attr-defined]
        await jobs.afinish(job_id, success=True)
    assert all(o.success for o in await asyncio.wait_for(asyncio.gather(first, *waits[1:]), 60))
    assert waits[0].cancelled()


async def test_jobs_that_end_together_are_confirmed_by_shared_history_reads(credentials, jobs, edgeimpulse_emulator):
    first = await _socket_open(credentials, jobs, edgeimpulse_emulator)
    job_ids = [await jobs.astart() for _ in range(WAITS)]
    waits = [
        asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
        for job_id in job_ids
    ]
    await wait_until(lambda: list_requests(edgeimpulse_emulator) >= 1, timeout=30)
    await asyncio.sleep(0.5)
    statuses_before = status_requests(edgeimpulse_emulator)
    failing = set(job_ids[::3])
    _burst(edgeimpulse_emulator, (sorted(failing), False), ([j for j in job_ids if j not in failing], True))
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 60)

    assert [outcome.success for outcome in outcomes] == [job_id not in failing for job_id in job_ids]
    assert [outcome.job["id"] for outcome in outcomes] == job_ids
    assert all(outcome.finished for outcome in outcomes)
    history_reads = list_requests(edgeimpulse_emulator, HISTORY_ROUTE)
    status_reads = status_requests(edgeimpulse_emulator) - statuses_before
    # The socket's reader hands a burst out a slice at a time (the loop runs other work every 0.25 ms), so the waits
    # ask in a few turns of the loop, and each read answers those that asked before it: a few reads, not 30.
    assert 1 <= history_reads <= 5, f"the burst of finish events took {history_reads} history reads"
    assert status_reads <= 1, f"{status_reads} waits of {WAITS} confirmed their finish with a status read of their own"

    await jobs.afinish(first.job_id, success=True)  # type: ignore[attr-defined]
    assert (await asyncio.wait_for(first, 30)).success


async def test_a_finished_job_beyond_the_history_page_is_read_on_its_own(credentials, jobs, edgeimpulse_emulator):
    first = await _socket_open(credentials, jobs, edgeimpulse_emulator)
    oldest = await jobs.astart()
    others = [await jobs.astart() for _ in range(3)]
    waits = [
        asyncio.create_task(wait_for_job(credentials, credentials.project_id, job_id, settings=QUIET))
        for job_id in [oldest, *others]
    ]
    await wait_until(lambda: list_requests(edgeimpulse_emulator) >= 1, timeout=30)
    # Newer jobs that nobody waits for end first: more of them than the history page the waits ask for.
    unwatched = [await jobs.astart() for _ in range(30)]
    await asyncio.to_thread(edgeimpulse_emulator.finish_jobs, unwatched, True)
    statuses_before = status_requests(edgeimpulse_emulator)
    _burst(edgeimpulse_emulator, ([oldest, *others], True))
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 60)
    assert all(outcome.success for outcome in outcomes)
    assert status_requests(edgeimpulse_emulator) > statuses_before, "a job the page did not show was read on its own"

    await jobs.afinish(first.job_id, success=True)  # type: ignore[attr-defined]
    assert (await asyncio.wait_for(first, 30)).success
