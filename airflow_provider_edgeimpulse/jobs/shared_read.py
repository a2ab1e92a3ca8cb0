"""
REST checks of many waits of one project, answered together by one list of the project's jobs.

Every wait checks its job over REST once its socket is subscribed (a job may have ended before), and again when
the socket says the job finished (REST decides the outcome). A triggerer that starts or takes over thousands of
waits at once, or sees hundreds of jobs end together, would send Studio one status read per wait; the waits of
one socket that check together share one list read instead: ``GET /api/{projectId}/jobs`` (the running jobs)
after a subscription, ``GET /api/{projectId}/jobs/history`` (the newest finished jobs) after a finish. A job the
list does not show as it should, or a list that could not be read, is read on its own, as is a wait that checks
alone: for one wait a status read is the cheaper answer.

Only a list read that starts after a wait asked can answer it: an older one may predate the wait's subscription
or the job's end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient

log = logging.getLogger(__name__)

# The newest finished jobs a history read asks for, per wait that asks plus a margin for other jobs of the
# project that ended at the same time; a job beyond the page is read on its own.
_HISTORY_MARGIN = 20
_HISTORY_MOST = 1000

ListRead = Callable[[int], Awaitable[list[Any]]]
JobTest = Callable[[dict[str, Any]], bool]


class SharedListRead:
    """The list reads of one socket's waits: a wait that asks joins the next read, never one already sent."""

    def __init__(self, read: ListRead, shows: JobTest, what: str) -> None:
        self._read_list = read
        self._shows = shows
        self._what = what
        self._next: asyncio.Future[dict[int, dict[str, Any]] | None] | None = None
        self._asking = 0
        self._reader: asyncio.Task[None] | None = None

    async def lookup(self, job_id: int) -> dict[str, Any] | None:
        """The job as the list shows it; None when the list cannot say (the caller reads it on its own)."""
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            self._asking = 0
        self._asking += 1
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_while_asked())
        # Shielded: one wait that is cancelled must not cancel the answer the others wait for.
        jobs = await asyncio.shield(self._next)
        return None if jobs is None else jobs.get(job_id)

    async def _read_while_asked(self) -> None:
        while self._next is not None:
            await asyncio.sleep(0)  # the waits that check in this turn of the loop join this read
            asked, self._next = self._next, None
            answer = None
            try:
                if self._asking > 1:
                    answer = await self._read(self._asking)
            finally:
                asked.set_result(answer)  # None when cancelled: its waits read on their own

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
        asked, self._next = self._next, None
        if asked is not None and not asked.done():
            asked.set_result(None)


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
