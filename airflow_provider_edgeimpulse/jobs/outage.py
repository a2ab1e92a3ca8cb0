"""
Reads of a wait that outlast a bad hour at Studio.

A wait only reads (job status, job log, socket token, tuner state), so repeating a read is always safe. The
client's own retry budget (``RetryPolicy``: a few attempts within a minute) covers a hiccup; an outage that
outlasts it must not end a wait whose job is still running. :class:`OutageWatch` repeats such a read with
capped exponential backoff and jitter until it succeeds, and the wait's deadline (its ``asyncio.timeout``)
is what stops it. Only an answer that retrying cannot change (401/403, 404, another 4xx) is raised.

An outage is logged once when it starts and once when it is over, however many reads failed in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.policy import RETRYABLE_STATUSES, RetryPolicy
from airflow_provider_edgeimpulse.wire import clamp_seconds

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Logger(Protocol):
    """A stdlib logger or Airflow's (a trigger's ``self.log``): only these two methods are used."""

    def warning(self, msg: Any, /, *args: Any) -> Any: ...
    def info(self, msg: Any, /, *args: Any) -> Any: ...


# The first pause of an outage, even when the server said ``Retry-After: 0``: a rate-limited Studio is not
# asked again at once. Later pauses double up to the cap, with jitter so many waits do not come back together.
OUTAGE_FLOOR_S = 1.0
OUTAGE_CAP_S = 60.0
# 408 (request timeout) and 425 (too early) say "not now" as 429 and 5xx do.
TRANSIENT_STATUSES = RETRYABLE_STATUSES | {408, 425}


def is_transient(err: BaseException) -> bool:
    """
    Whether a failed read may succeed when repeated later.

    An ``EdgeImpulseAPIError`` without a status is a transport failure (no answer, a stall, a spent retry
    budget) or an answer cut short of what every answer has; either can pass. A status is transient only if
    it says "not now".
    """
    if isinstance(err, EdgeImpulseAPIError):
        return err.status is None or err.status in TRANSIENT_STATUSES
    # Imported here: this module is on the path of every DAG file that imports a job operator, and aiohttp
    # costs a quarter of a second to import; by the time an error is judged, the failed call has loaded it.
    import aiohttp

    return isinstance(err, aiohttp.ClientError | OSError | TimeoutError)


def outage_backoff(floor: float, cap: float) -> RetryPolicy:
    """Pauses between reads in an outage: from ``floor`` (with jitter up to twice it), doubling up to ``cap``."""
    return RetryPolicy(base_delay=2 * floor, max_delay=max(cap, floor))


class OutageLog:
    """
    The log of one wait's outages: a warning when the first read fails, a note when a read succeeds again.

    ``what`` names the wait (``"Edge Impulse job 12"``); ``plan`` says what the wait does meanwhile. Shared by
    every read of one wait, so an outage seen by its status read and then by its log read is one outage.
    """

    def __init__(self, what: str, *, plan: str, logger: _Logger = log) -> None:
        self.what = what
        self._plan = plan
        self.logger = logger
        self._since: float | None = None
        self._failed_reads = 0

    @property
    def plan(self) -> str:
        return self._plan

    @property
    def in_outage(self) -> bool:
        """Whether the last read failed: the outage it began is not over yet."""
        return self._since is not None

    def failed(self, read_what: str, err: BaseException) -> None:
        self._failed_reads += 1
        if self._since is not None:
            return
        self._since = time.monotonic()
        self.logger.warning(
            "%s: Edge Impulse did not answer the %s (%s); the wait goes on and %s",
            self.what,
            read_what,
            reason(err),
            self.plan,
        )

    def answered(self) -> None:
        if self._since is None:
            return
        lasted = time.monotonic() - self._since
        self.logger.info(
            "%s: Edge Impulse answers again, %.1f s after the first read that failed (%d failed reads); the wait "
            "goes on",
            self.what,
            lasted,
            self._failed_reads,
        )
        self._since = None
        self._failed_reads = 0


class OutageWatch(OutageLog):
    """One wait's reads through outages, logged as an :class:`OutageLog`: ``await watch.read(what, call)``."""

    def __init__(
        self, what: str, *, floor: float = OUTAGE_FLOOR_S, cap: float = OUTAGE_CAP_S, logger: _Logger = log
    ) -> None:
        self.floor = clamp_seconds(floor, low=0.001, high=OUTAGE_CAP_S, default=OUTAGE_FLOOR_S)
        self.cap = clamp_seconds(cap, low=self.floor, high=OUTAGE_CAP_S, default=OUTAGE_CAP_S)
        super().__init__(what, plan="", logger=logger)  # worded by ``plan`` when an outage is logged
        self._policy: RetryPolicy | None = None

    @classmethod
    def paced(cls, what: str, *, poll_interval: float, slowest: float, logger: _Logger = log) -> OutageWatch:
        """
        A watch at a wait's own pace: first pause a second, or ``poll_interval`` when shorter; longest pause
        ``slowest`` (the wait's longest quiet interval), at most a minute, so the end of an outage is seen soon.
        """
        floor = min(OUTAGE_FLOOR_S, poll_interval)
        return cls(what, floor=floor, cap=max(floor, min(OUTAGE_CAP_S, slowest)), logger=logger)

    @property
    def plan(self) -> str:
        # Worded here, not when made: a wait makes a watch for each read outside an outage, and most never see one.
        return (
            f"reads again with backoff ({self.floor:g} s to {self.cap:g} s) until Studio answers or the deadline passes"
        )

    @property
    def policy(self) -> RetryPolicy:
        # Made at the first outage: a triggerer holds a watch per wait, and most never see one.
        if self._policy is None:
            self._policy = outage_backoff(self.floor, self.cap)
        return self._policy

    def pause(self, failures: int) -> float:
        """Seconds before the next read, after ``failures`` failed reads in a row."""
        return clamp_seconds(self.policy.delay(failures), low=self.floor, high=self.cap, default=self.floor)

    async def read(self, read_what: str, call: Callable[[], Awaitable[T]]) -> T:
        failures = 0
        while True:
            try:
                result = await call()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not is_transient(err):
                    raise
                failures += 1
                self.failed(read_what, err)
                await asyncio.sleep(self.pause(failures))
                continue
            self.answered()
            return result


def reason(err: BaseException) -> str:
    """A failed read's cause for a log line: the API error's text, or the transport error's type."""
    if isinstance(err, EdgeImpulseAPIError):
        return str(err)
    return type(err).__name__
