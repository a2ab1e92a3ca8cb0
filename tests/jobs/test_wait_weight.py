"""
What a live wait costs the process it runs in: a triggerer holds thousands, and every full garbage collection scans
all of their objects while the event loop stands still.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable
from typing import Any

from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop
from airflow_provider_edgeimpulse.jobs.waiter import wait_for_job
from tests.jobs.test_waiter import status_requests, wait_until

WAITS = 50
# Tracked objects a live wait holds of its own, its task and its entry in the hub's deadline heap included. Earlier
# designs held about 29, then 15 (counted without the heap entry); with a heap entry that holds a subscription, 12;
# now that heap entries hold numbers only, 11.
MOST_TRACKED_PER_WAIT = 11


def _waiting(hub: Any) -> int:
    """The hub's waits that checked their job and now wait for its next event (each with a deadline armed)."""
    return sum(1 for sub in hub.subscriptions() if sub._armed is not None)


def _own_objects(roots: Iterable[Any], shared: set[int]) -> int:
    """Tracked objects reachable from ``roots`` without passing through one in ``shared`` (the hub, the loop...)."""
    seen: set[int] = set()
    todo = [root for root in roots if id(root) not in shared]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or id(obj) in shared or not gc.is_tracked(obj):
            continue
        seen.add(id(obj))
        todo.extend(gc.get_referents(obj))
    return len(seen)


async def test_a_live_wait_holds_few_objects_for_the_garbage_collector(credentials, jobs, edgeimpulse_emulator):
    project_id = credentials.project_id
    # The socket, its session and the connection pool are the project's, not a wait's: opened by a first wait.
    first = await jobs.astart()
    waits = [asyncio.create_task(wait_for_job(credentials, project_id, first))]
    await wait_until(lambda: status_requests(edgeimpulse_emulator) >= 1, timeout=60)
    job_ids = [await jobs.astart() for _ in range(WAITS)]
    gc.collect()
    # Held until the count is made: an object that died meanwhile would free its id for one of a wait's.
    before = gc.get_objects()
    shared = {id(obj) for obj in before}
    shared.update((id(shared), id(before)))
    for job_id in job_ids:
        # As a triggerer adds its triggers: one a turn of the loop, so many a wait checks its job on its own.
        waits.append(asyncio.create_task(wait_for_job(credentials, project_id, job_id)))
        await asyncio.sleep(0)
    hub = registry_for_running_loop().hub_for(credentials, project_id)
    await wait_until(lambda: _waiting(hub) == WAITS + 1, timeout=60)
    counts = []
    while len(counts) < 3 or len(set(counts[-3:])) > 1:  # until the answers are read and every wait waits again
        await asyncio.sleep(0.1)
        gc.collect()  # what a collection finds: it stops scanning a tuple of numbers, for one
        # A wait's entry in its hub's deadline heap is the wait's too.
        counts.append(_own_objects([*waits[1:], *hub.deadlines._heap], shared))
    per_wait = counts[-1] / WAITS

    for job_id in [first, *job_ids]:
        await jobs.afinish(job_id, success=True)
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 60)
    assert all(outcome.success for outcome in outcomes)
    assert per_wait <= MOST_TRACKED_PER_WAIT, f"a live wait holds {per_wait:.1f} tracked objects"
