"""
The one implementation of "wait for Edge Impulse job N": live socket events, confirmed by REST.

Order matters: subscribe first, then check REST, so a job that finishes between the two is never
missed. The outcome is always read from REST (``finishedSuccessful``); socket events only say when to
look. Triggers await :func:`wait_for_job`; the hook's blocking path runs it with ``asyncio.run()``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.jobs.outage import OutageWatch
from airflow_provider_edgeimpulse.jobs.relay import LogRelay, confirm_end
from airflow_provider_edgeimpulse.jobs.shared_read import is_finished

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
    from airflow_provider_edgeimpulse.jobs.hub import HubEvent, JobEventHub, News

log = logging.getLogger(__name__)

DEFAULT_SAFETY_INTERVAL_S = 120.0
DEFAULT_POLL_INTERVAL_S = 10.0
DEFAULT_LOG_TAIL = 50
_CONNECT_GRACE_S = 10.0
_UNAVAILABLE_AFTER_FAILURES = 3
# A job that ended before this wait heard any of its log (it ended while no triggerer listened, say): the newest
# lines REST holds are relayed, up to this many.
REST_RELAY_LINES = 1000
# How long a finished job's log is read through an outage when the wait has no deadline of its own.
_LOG_PATIENCE_S = 300.0

LogCallback = Callable[[str], None]
T = TypeVar("T")


@dataclass
class JobOutcome:
    """How a wait ended. ``status`` is ``success``, ``failure`` or ``timeout``."""

    job_id: int
    project_id: int
    status: str
    success: bool
    finished: str | None = None
    log_tail: list[str] = field(default_factory=list)
    job: dict[str, Any] = field(default_factory=dict)

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "project_id": self.project_id,
            "status": self.status,
            "success": self.success,
            "finished": self.finished,
            "log_tail": list(self.log_tail),
            "job": dict(self.job),
        }


@dataclass(frozen=True)
class WaitSettings:
    safety_interval: float = DEFAULT_SAFETY_INTERVAL_S
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    log_tail: int = DEFAULT_LOG_TAIL

    def __post_init__(self) -> None:
        for name in ("safety_interval", "poll_interval"):
            value = getattr(self, name)
            # NaN passes a plain "> 0" check and then makes every wait time out at once; inf would never look.
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        tail = self.log_tail
        if not isinstance(tail, int) or isinstance(tail, bool) or tail < 1:
            # Checked here, not by the deque of the wait, which would only fail once the job has started.
            raise ValueError(f"log_tail must be a positive number of lines, got {tail!r}")

    @classmethod
    def shared(cls, safety_interval: Any, poll_interval: Any, log_tail: Any) -> WaitSettings:
        """Equal settings as one object: a triggerer holds thousands of waits, most of them with the same settings."""
        try:
            return _shared_settings(safety_interval, poll_interval, log_tail)
        except TypeError:  # an unhashable value is no setting: the constructor names it
            return cls(safety_interval, poll_interval, log_tail)


_shared_settings = functools.lru_cache(maxsize=64)(WaitSettings)
_DEFAULT_SETTINGS = WaitSettings()


def _if_finished(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if is_finished(job) else None


def wait_for_job(
    credentials: EdgeImpulseCredentials,
    project_id: int,
    job_id: int,
    *,
    deadline: float | None = None,
    on_log: LogCallback | None = None,
    settings: WaitSettings | None = None,
) -> Coroutine[Any, Any, JobOutcome]:
    """
    Wait until job ``job_id`` finishes or ``deadline`` (a UNIX time) passes: ``await`` it.

    Returns the outcome; a job that failed is an outcome (``success=False``), not an exception. Raises only
    for answers that retrying cannot change (refused credentials, an unknown job): 429, 5xx, stalls and lost
    connections are read through until the deadline (``jobs/outage.py``).

    A plain function returning the wait's coroutine: a triggerer holds one per wait, and a coroutine frame less
    per wait is that much less for every full garbage collection to scan.
    """
    return _JobWait(None, project_id, job_id, settings or _DEFAULT_SETTINGS, on_log).wait(credentials, deadline)


async def _bounded(coro: Any, seconds: float = 10.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            await coro
    except TimeoutError:
        log.warning("Closing the Edge Impulse socket took longer than %s s; left to the event loop", seconds)


class _JobWait(LogRelay):
    """One wait, its own log relay (one object rather than two for each of a triggerer's waits)."""

    __slots__ = (
        "_outage",
        "_said_polling",
        "finished_job",
        "hub",
        "job_id",
        "live",
        "on_log",
        "project_id",
        "settings",
        "tail",
    )

    def __init__(
        self,
        hub: JobEventHub | None,
        project_id: int,
        job_id: int,
        settings: WaitSettings,
        on_log: LogCallback | None,
    ) -> None:
        super().__init__()
        # Looked up by ``wait`` when not given: a hub belongs to the running event loop.
        self.hub = hub
        self.project_id = project_id
        self.job_id = job_id
        self.settings = settings
        self.on_log = on_log
        self.tail: deque[str] = deque(maxlen=settings.log_tail)
        self.live = False
        self._said_polling = False
        self._outage: OutageWatch | None = None
        self.finished_job: dict[str, Any] | None = None

    async def wait(self, credentials: EdgeImpulseCredentials, deadline: float | None) -> JobOutcome:
        from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop

        hub = self.hub = registry_for_running_loop().hub_for(credentials, self.project_id)
        remaining = None if deadline is None else max(deadline - time.time(), 0.0)
        sub = hub.subscribe(self.job_id)
        try:
            if remaining is None:
                return await self.run(sub)
            async with asyncio.timeout(remaining):
                return await self.run(sub)
        except TimeoutError:
            if self.finished_job is not None:
                # The job ended in time; only reading its log (through an outage) ran into the deadline.
                log.warning(
                    "Edge Impulse job %s finished, but its log could not be read before the deadline", self.job_id
                )
                return self.finished_outcome()
            log.info("Edge Impulse job %s did not finish before the deadline", self.job_id)
            return self.outcome("timeout", {})
        finally:
            await _bounded(sub.aclose())

    async def run(self, sub: Any) -> JobOutcome:
        await self._await_first_socket_news(sub)
        job = _if_finished(await self._check_subscribed())
        # Nothing of the last round (its event, a running job's status) is kept while the next event is awaited:
        # a triggerer holds thousands of waits here, and every full garbage collection scans what they hold.
        while job is None:
            timeout = self.settings.safety_interval if self.live else self.settings.poll_interval
            job = await self._after(await sub.next(timeout))
        return await self._finish(job)

    async def _after(self, event: News | None) -> dict[str, Any] | None:
        """The job's status if ``event`` (``None``: the quiet interval passed) shows it finished, else ``None``."""
        if event is None:
            job = await self._status()
        elif isinstance(event, str):
            self.socket_line(event)
            return None
        elif event.kind == "connected":
            self._expect_replay()
            job = await self._check_subscribed()
        elif event.kind == "disconnected":
            self.live = False
            self._maybe_say_polling(event)
            return None
        else:
            job = await self._confirm_finished()
        return _if_finished(job)

    async def _await_first_socket_news(self, sub: Any) -> None:
        """Hold the first REST check until the socket is subscribed (or failed), closing the race."""
        event = await sub.next(_CONNECT_GRACE_S)
        while isinstance(event, str):
            self.socket_line(event)
            event = await sub.next(_CONNECT_GRACE_S)
        if event is None:
            return
        if event.kind == "connected":
            self._expect_replay()
        elif event.kind == "disconnected":
            self._maybe_say_polling(event)
        else:
            sub.queue.put_nowait(event)

    def _maybe_say_polling(self, event: HubEvent) -> None:
        if not self._said_polling and event.failures >= _UNAVAILABLE_AFTER_FAILURES:
            self._said_polling = True
            log.warning(
                "No live Edge Impulse socket for job %s (%s); checking its status over REST every %.0f s until "
                "the socket is back",
                self.job_id,
                event.reason or "unavailable",
                self.settings.poll_interval,
            )

    async def _read(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A read of this wait's own, through outages (``jobs/outage.py``)."""
        watch = self._outage
        if watch is None:
            pace = self.settings
            watch = self._outage = OutageWatch.paced(
                f"Edge Impulse job {self.job_id}", poll_interval=pace.poll_interval, slowest=pace.safety_interval
            )
        try:
            return await watch.read(what, call)
        finally:
            # Kept only through an outage (so that it is logged once): a triggerer holds thousands of waits, and
            # every full garbage collection scans what they hold.
            if not watch.in_outage:
                self._outage = None

    @property
    def _client(self) -> AsyncEdgeImpulseClient:
        assert self.hub is not None, "the wait has not started"
        return self.hub.client

    async def _status(self) -> dict[str, Any]:
        client = self._client
        return await self._read("status read", lambda: client.get_job_status(self.project_id, self.job_id))

    async def _check_subscribed(self) -> dict[str, Any]:
        """The check after a (re)subscription: the socket's waits that check together share one list read."""
        assert self.hub is not None, "the wait has not started"
        running = await self.hub.running_jobs.lookup(self.job_id)
        return running if running is not None else await self._status()

    async def _confirm_finished(self) -> dict[str, Any]:
        """The check after a finish event: the socket's waits told together share one history read."""
        assert self.hub is not None, "the wait has not started"
        finished = await self.hub.finished_jobs.lookup(self.job_id)
        return finished if finished is not None else await confirm_end(self._status, is_finished)

    async def _finish(self, job: dict[str, Any]) -> JobOutcome:
        self.finished_job = job
        success = job.get("finishedSuccessful") is True
        if not success or not self.tail or self.early:
            await self._fetch_tail()
        return self.finished_outcome()

    def finished_outcome(self) -> JobOutcome:
        job = self.finished_job or {}
        return self.outcome("success" if job.get("finishedSuccessful") is True else "failure", job)

    async def _fetch_tail(self) -> None:
        # Nothing heard yet: the job ended while nobody listened, so its log is relayed from REST.
        limit = self.settings.log_tail if self.tail else max(self.settings.log_tail, REST_RELAY_LINES)
        client = self._client
        try:
            async with asyncio.timeout(_LOG_PATIENCE_S):
                lines = await self._read(
                    "log read", lambda: client.get_job_stdout(self.project_id, self.job_id, limit=limit)
                )
        except Exception as err:  # the outcome stands without its log; say why it is missing
            reason = str(err) or type(err).__name__
            log.warning("Could not read the log of Edge Impulse job %s: %s", self.job_id, reason)
            return
        relay = self
        relay.end_replay()
        if not self.tail:
            if len(lines) >= limit:
                log.info("Edge Impulse job %s: relaying the newest %d lines of its log", self.job_id, len(lines))
            for line in lines:
                relay.rest_line(line)
            return
        seen = relay.seen
        if relay.early:
            # Lines came out of the log's order: relay those not relayed yet, and keep the log's order in the tail.
            pending = Counter(seen)
            for line in lines:
                if pending[line]:
                    pending[line] -= 1
                else:
                    relay.rest_line(line)
            self.tail.clear()
            self.tail.extend(lines[-self.settings.log_tail :])
            return
        # The REST tail overlaps what the socket delivered: relay only what follows the overlap.
        overlap = next((k for k in range(min(len(lines), len(seen)), 0, -1) if lines[:k] == seen[-k:]), 0)
        for line in lines[overlap:]:
            relay.rest_line(line)

    def _expect_replay(self) -> None:
        """A (re)subscription replays the job's log from its start: skip the part already relayed."""
        self.live = True
        self.expect_replay()

    def on_line(self, line: str) -> None:
        self.tail.append(line)
        if self.on_log is not None:
            try:
                self.on_log(line)
            except Exception:
                log.exception("The job log callback failed; the wait goes on")

    def outcome(self, status: str, job: dict[str, Any]) -> JobOutcome:
        return JobOutcome(
            job_id=self.job_id,
            project_id=self.project_id,
            status=status,
            success=status == "success",
            finished=job.get("finished"),
            log_tail=list(self.tail),
            job=job,
        )
