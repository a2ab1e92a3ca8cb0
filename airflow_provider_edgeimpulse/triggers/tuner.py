"""
Wait in the triggerer until an EON Tuner run is over (``tunerJobIsRunning == false``).

The state endpoint is the authority. The coordinator job's ``job-finished`` event, heard on the project's shared
socket (``jobs/hub.py``), only says when to read it early; the state is also read every ``poll_interval`` seconds
(a run has many phases and its socket may be down for hours) and after every (re)connect of the socket, since
events sent while it was down are lost. Kwargs are plain data; credentials are resolved inside ``run()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_edgeimpulse.hooks.job_log import ERROR_TAIL_LINES, quoted_tail
from airflow_provider_edgeimpulse.jobs import tuner
from airflow_provider_edgeimpulse.jobs.outage import OutageWatch
from airflow_provider_edgeimpulse.jobs.relay import LineBatcher, LogRelay, confirm_end
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
    from airflow_provider_edgeimpulse.jobs.hub import Subscription

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_STATE_POLL_INTERVAL_S = 60.0
# Reads and closes after the wait itself (deadline reached, socket released) get their own, short bound.
_AFTERWARDS_BOUND_S = 15.0


class EONTunerStateTrigger(BaseTrigger):
    """
    Fire once when EON Tuner run ``tuner_coordinator_job_id`` is over, or at ``deadline`` (UNIX time).

    Event payload: ``{"status": "success"|"failure"|"timeout"|"error", "message", "project_id",
    "tuner_coordinator_job_id", "summary"}`` where ``summary`` is :func:`jobs.tuner.summarize` of the last
    state read (``None`` when none was read). ``failure``: the run ended with ``jobError`` or without one
    completed trial. A timeout cancels nothing. With ``end_task_on_success`` a successful run ends the task
    from here (``TaskSuccessEvent``, the summary as ``return_value``) instead of resuming it on a worker.

    ``on_kill`` (a user marked the deferred task failed or success, or cleared it) cancels the coordinator job
    when ``cancel_on_kill``; a triggerer restart (``CancelledError``) cancels nothing.
    """

    def __init__(
        self,
        *,
        project_id: int,
        tuner_coordinator_job_id: int,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        deadline: float | None = None,
        poll_interval: float = DEFAULT_STATE_POLL_INTERVAL_S,
        metric: str = "accuracy",
        metric_mode: str = "max",
        model_variant: str | None = None,
        cancel_on_kill: bool = True,
        end_task_on_success: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.project_id = int(project_id)
        self.tuner_coordinator_job_id = int(tuner_coordinator_job_id)
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.deadline = None if deadline is None else float(deadline)
        self.poll_interval = float(poll_interval)
        # Checked here, on the worker that defers: a bad metric fails the task before the wait, not after it.
        self.metric, self.metric_mode, self.model_variant = tuner.check_choice(metric, metric_mode, model_variant)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.end_task_on_success = bool(end_task_on_success)
        self._last_progress = ""
        self._last_state: dict[str, Any] | None = None
        self._outage: OutageWatch | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "project_id": self.project_id,
                "tuner_coordinator_job_id": self.tuner_coordinator_job_id,
                "edgeimpulse_conn_id": self.edgeimpulse_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "metric": self.metric,
                "metric_mode": self.metric_mode,
                "model_variant": self.model_variant,
                "cancel_on_kill": self.cancel_on_kill,
                "end_task_on_success": self.end_task_on_success,
            },
        )

    # -- the wait ----------------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._outcome()
        if event["status"] == "success" and self.end_task_on_success:
            from airflow.triggers.base import TaskSuccessEvent

            # Nothing is left for a worker: ending here avoids the 3.2/3.3 resume race (apache/airflow#66374).
            yield TaskSuccessEvent(xcoms={"return_value": event["summary"]})
            return
        yield TriggerEvent(event)

    async def _outcome(self) -> dict[str, Any]:
        """The one event's payload. A ``CancelledError`` (triggerer stopping) propagates: the run goes on."""
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials
        from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop

        run_id = self.tuner_coordinator_job_id
        lines = LineBatcher(self, f"[tuner {run_id}] ")
        # Reads go on through 429s, 5xx and lost connections until the deadline, at the pace of the poll interval.
        self._outage = OutageWatch.paced(
            f"EON Tuner run {run_id}", poll_interval=self.poll_interval, slowest=self.poll_interval, logger=self.log
        )
        try:
            credentials = await aresolve_credentials(self.edgeimpulse_conn_id)
            hub = registry_for_running_loop().hub_for(credentials, self.project_id)
            # Subscribe before the first read, so a finish between the two is not missed.
            sub = hub.subscribe(run_id)
            try:
                state = await self._wait_until_deadline(hub.client, sub, LogRelay(lines))
                if state is None:
                    return self._event("timeout", f"EON Tuner run {run_id} was still running at the deadline")
                return await self._settle(hub.client, state)
            finally:
                lines.flush()
                await _bounded(sub.aclose(), "closing the socket subscription")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            return self._event("error", f"Waiting for EON Tuner run {run_id} failed: {err}")

    async def _wait_until_deadline(
        self, client: AsyncEdgeImpulseClient, sub: Subscription, relay: LogRelay
    ) -> dict[str, Any] | None:
        """The final state, or ``None`` when the deadline came first."""
        remaining = None if self.deadline is None else max(self.deadline - time.time(), 0.0)
        try:
            async with asyncio.timeout(remaining) as scope:
                return await self._wait(client, sub, relay)
        except TimeoutError:
            if not scope.expired():
                raise  # a timeout of some call inside, not our deadline
        # One last look: a run that ended right at the deadline (or while the triggerer was down) has finished.
        try:
            async with asyncio.timeout(_AFTERWARDS_BOUND_S):
                state = await self._read(client)
        except Exception as err:
            reason = str(err) or type(err).__name__
            log.warning("EON Tuner run %s: the last state read failed: %s", self.tuner_coordinator_job_id, reason)
            return None
        return None if tuner.is_running(state) else state

    async def _wait(self, client: AsyncEdgeImpulseClient, sub: Subscription, relay: LogRelay) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        state = await self._read(client)
        next_read = loop.time() + self.poll_interval
        while tuner.is_running(state):
            event = await sub.next(max(next_read - loop.time(), 0.0))
            if isinstance(event, str):
                relay.socket_line(event)
                continue
            if event is not None and event.kind == "disconnected":
                continue  # the periodic read goes on; the reconnect will bring a fresh read
            if event is not None and event.kind == "finished":
                state = await self._confirm_over(client)
            else:  # the poll interval passed, or the socket (re)connected and may have missed events
                if event is not None and event.kind == "connected":
                    relay.expect_replay()  # a (re)subscription replays the log from its start
                state = await self._read(client)
            next_read = loop.time() + self.poll_interval
        return state

    async def _confirm_over(self, client: AsyncEdgeImpulseClient) -> dict[str, Any]:
        state = await confirm_end(lambda: self._read(client), lambda read: not tuner.is_running(read))
        if tuner.is_running(state):
            self.log.info(
                "EON Tuner run %s: its job finished but the state still says running; reading it every %g s",
                self.tuner_coordinator_job_id,
                self.poll_interval,
            )
        return state

    async def _read(self, client: AsyncEdgeImpulseClient) -> dict[str, Any]:
        run_id = self.tuner_coordinator_job_id
        state = await self._patient("state read", lambda: client.get_tuner_state(self.project_id, run_id))
        self._last_state = state
        progress = tuner.progress_line(state)
        if progress != self._last_progress:
            self._last_progress = progress
            self.log.info("EON Tuner run %s: %s", self.tuner_coordinator_job_id, progress)
        return state

    async def _settle(self, client: AsyncEdgeImpulseClient, state: dict[str, Any]) -> dict[str, Any]:
        run_id = self.tuner_coordinator_job_id
        failure = tuner.run_failure(state)
        if failure is None:
            return self._event("success", f"EON Tuner run {run_id} finished ({tuner.progress_line(state)})")
        message = f"EON Tuner run {run_id} failed: {failure}"
        try:
            async with asyncio.timeout(_AFTERWARDS_BOUND_S):
                tail = await self._patient(
                    "log read", lambda: client.get_job_stdout(self.project_id, run_id, limit=ERROR_TAIL_LINES)
                )
        except Exception as err:  # the failure stands without its log; say why it is missing
            self.log.warning("Could not read the log of EON Tuner run %s: %s", run_id, str(err) or type(err).__name__)
        else:
            message += "\nLast log lines:\n" + quoted_tail(tail)
        return self._event("failure", message)

    async def _patient(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        if self._outage is None:
            return await call()
        return await self._outage.read(what, call)

    def _event(self, status: str, message: str) -> dict[str, Any]:
        state = self._last_state
        return {
            "status": status,
            "message": message,
            "project_id": self.project_id,
            "tuner_coordinator_job_id": self.tuner_coordinator_job_id,
            "summary": None
            if state is None
            else tuner.summarize(state, self.metric, self.metric_mode, variant=self.model_variant),
        }

    # -- a user's kill -----------------------------------------------------------------------------------------

    async def on_kill(self) -> None:
        """
        A user marked the deferred task failed/success or cleared it: stop the search too (if asked to).

        Airflow 3.3 also calls this when it hands the wait to another triggerer; the task is still deferred
        then, and the search is left running (see ``triggers/_kill.py``).
        """
        if not self.cancel_on_kill:
            return
        from airflow_provider_edgeimpulse.triggers._kill import stop_if_task_stopped

        run_id = self.tuner_coordinator_job_id
        await stop_if_task_stopped(self, self.edgeimpulse_conn_id, self.project_id, run_id, f"EON Tuner run {run_id}")


async def _bounded(coro: Any, what: str) -> None:
    try:
        async with asyncio.timeout(_AFTERWARDS_BOUND_S):
            await coro
    except TimeoutError:
        log.warning("%s took longer than %s s; left to the event loop", what, _AFTERWARDS_BOUND_S)
