"""
REST checks of many waits of one project, answered together by one list of the project's jobs.

Every wait checks its job over REST once its socket is subscribed (a job may have ended before), and again when
the socket says the job finished (REST decides the outcome). A triggerer that starts or takes over thousands of
waits at once, or sees hundreds of jobs end together, would send Studio one status read per wait; the waits of
one socket that check together share one list read instead: ``GET /api/{projectId}/jobs`` (the running jobs)
after a subscription, ``GET /api/{projectId}/jobs/history`` (the newest finished jobs) after a finish. A job the
list does not show as it should, or a list that could not be read, is read on its own, as is a wait that checks
alone: for one wait a status read is the cheaper answer. Not so right after a list read: the socket hands a
burst of finishes out a slice at a time, so the waits of one burst check over a few turns of the loop.

Only a list read that starts after a wait asked can answer it: an older one may predate the wait's subscription
or the job's end.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient

log = logging.getLogger(__name__)

# The newest finished jobs a history read asks for, per wait that asks plus a margin for other jobs of the
# project that ended at the same time; a job beyond the page is read on its own.
_HISTORY_MARGIN = 20
_HISTORY_MOST = 1000
# A wait that checks alone within this many seconds of a list read's answer joins a list read of its own: it is
# part of a burst that the socket hands out a slice at a time.
_BURST_GAP_S = 0.1

ListRead = Callable[[int], Awaitable[list[Any]]]
JobTest = Callable[[dict[str, Any]], bool]


class SharedListRead:
    """The list reads of one socket's waits: a wait that asks joins the next read, never one already sent."""

    def __init__(self, read: ListRead, shows: JobTest, what: str) -> None:
        self._read_list = read
        self._shows = shows
        self._what = what
        # The waits that asked since the last read was sent, each awaiting a future of its own: one that is
        # cancelled leaves the read to the others, as ``asyncio.shield`` would, at a third of its objects per wait
        # (thousands of waits ask at once when a triggerer starts or a burst of jobs ends).
        self._asked: list[asyncio.Future[dict[int, dict[str, Any]] | None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._last_read = -math.inf  # loop time when the last read was answered
        self._last_asked = 0  # the waits that the last read answered

    async def lookup(self, job_id: int) -> dict[str, Any] | None:
        """The job as the list shows it; None when the list cannot say (the caller reads it on its own)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[int, dict[str, Any]] | None] = loop.create_future()
        self._asked.append(answer)
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_while_asked())
        jobs = await answer
        return None if jobs is None else jobs.get(job_id)

    async def _read_while_asked(self) -> None:
        loop = asyncio.get_running_loop()
        while self._asked:
            await asyncio.sleep(0)  # the waits that check in this turn of the loop join this read
            asked, self._asked = self._asked, []
            answer = None
            try:
                # A wait alone reads its own job, the cheaper answer; not one that asks right after a read, which
                # is part of a burst that the socket hands out over a few turns of the loop. A read in a burst also
                # makes room for the jobs of the read before: they ended about when these did, some after them.
                in_burst = loop.time() - self._last_read < _BURST_GAP_S
                if len(asked) > 1 or in_burst:
                    answer = await self._read(len(asked) + (self._last_asked if in_burst else 0))
                    self._last_read, self._last_asked = loop.time(), len(asked)
            finally:
                _answer(asked, answer)  # None when cancelled: its waits read on their own

    async def _read(self, asking: int) -> dict[int, dict[str, Any]] | None:
        try:
            jobs = await self._read_list(asking)
        except Exception as err:  # each wait falls back to its own read, with its own outage handling
            log.debug("Reading %s failed; each wait reads its own job: %s", self._what, err)
            return None
        return {job["id"]: job for job in jobs if _job_id(job) is not None and self._shows(job)}

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
        asked, self._asked = self._asked, []
        _answer(asked, None)


def _answer(asked: list[asyncio.Future[Any]], answer: Any) -> None:
    for waiter in asked:
        if not waiter.done():  # a wait that was cancelled meanwhile has left
            waiter.set_result(answer)


def job_list_reads(client: AsyncEdgeImpulseClient, project_id: int) -> tuple[SharedListRead, SharedListRead]:
    """The shared reads of one socket's waits: (running jobs, after a subscription; finished jobs, after a finish)."""
    running = SharedListRead(lambda _asking: client.list_active_jobs(project_id), is_running, "the running jobs")
    finished = SharedListRead(
        lambda asking: client.list_finished_jobs(project_id, limit=history_limit(asking)),
        is_finished,
        "the newest finished jobs",
    )
    return running, finished


def is_finished(job: dict[str, Any]) -> bool:
    return bool(job.get("finished"))


def is_running(job: dict[str, Any]) -> bool:
    return not is_finished(job)


def history_limit(asking: int) -> int:
    return min(asking + _HISTORY_MARGIN, _HISTORY_MOST)


def _job_id(job: Any) -> int | None:
    job_id = job.get("id") if isinstance(job, dict) else None
    return job_id if isinstance(job_id, int) and not isinstance(job_id, bool) else None
