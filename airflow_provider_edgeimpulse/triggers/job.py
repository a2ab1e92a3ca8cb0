"""
Deferred waits on Edge Impulse jobs, run by the triggerer.

Kwargs hold plain data only (connection id, ids, an absolute deadline): credentials are resolved inside
``run()`` so no secret is ever written to the trigger table.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_edgeimpulse.jobs.relay import LineBatcher
from airflow_provider_edgeimpulse.jobs.waiter import (
    DEFAULT_LOG_TAIL,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_SAFETY_INTERVAL_S,
    JobOutcome,
    WaitSettings,
    wait_for_job,
)
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID

# A triggerer picks up a new trigger within seconds; one whose run starts this long after the deferral was
# rebuilt after its first triggerer went away (Airflow notices a dead triggerer after 30 s by default).
HANDOVER_AFTER_S = 20.0


class EdgeImpulseJobTrigger(BaseTrigger):
    """
    Fire once when job ``job_id`` of ``project_id`` finishes, fails, or reaches ``deadline`` (UNIX time).

    Event payload: ``{"status": "success"|"failure"|"timeout"|"error", "job_id", "project_id", "message",
    "outcome"}``. On timeout the remote job is cancelled (``cancel_on_timeout``) so it does not run on
    unattended. When a user stops the deferred task, ``on_kill`` cancels the job (``cancel_on_kill``): right
    for the operators, which started it; a sensor watching a job started elsewhere turns it off. With
    ``end_task_on_success`` a successful job ends the task from here, with ``xcoms`` plus the outcome as
    ``return_value``, instead of resuming it on a worker.

    ``deferred_at`` (UNIX time, set when the task defers) tells a rebuilt trigger from a new one: the log is
    relayed from the job's start each time, so after a hand-over the log says lines may repeat.
    """

    def __init__(
        self,
        *,
        job_id: int,
        project_id: int,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        deadline: float | None = None,
        safety_interval: float = DEFAULT_SAFETY_INTERVAL_S,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        log_tail: int = DEFAULT_LOG_TAIL,
        cancel_on_timeout: bool = True,
        end_task_on_success: bool = False,
        xcoms: dict[str, Any] | None = None,
        deferred_at: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.job_id = int(job_id)
        self.project_id = int(project_id)
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.deadline = deadline
        self.safety_interval = safety_interval
        self.poll_interval = poll_interval
        self.log_tail = log_tail
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = bool(cancel_on_kill)
        self.end_task_on_success = end_task_on_success
        self.xcoms = dict(xcoms or {})
        self.deferred_at = time.time() if deferred_at is None else _unix_time("deferred_at", deferred_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "project_id": self.project_id,
                "edgeimpulse_conn_id": self.edgeimpulse_conn_id,
                "deadline": self.deadline,
                "safety_interval": self.safety_interval,
                "poll_interval": self.poll_interval,
                "log_tail": self.log_tail,
                "cancel_on_timeout": self.cancel_on_timeout,
                "end_task_on_success": self.end_task_on_success,
                "xcoms": self.xcoms,
                "deferred_at": self.deferred_at,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _event(self, status: str, message: str, outcome: JobOutcome | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "job_id": self.job_id,
            "project_id": self.project_id,
            "message": message,
            "outcome": outcome.to_dict() if outcome else None,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials

        self._say_if_handed_over()
        lines = LineBatcher(self, f"[job {self.job_id}] ")
        try:
            credentials = await aresolve_credentials(self.edgeimpulse_conn_id)
            settings = WaitSettings.shared(self.safety_interval, self.poll_interval, self.log_tail)
            outcome = await wait_for_job(
                credentials,
                self.project_id,
                self.job_id,
                deadline=self.deadline,
                on_log=lines,
                settings=settings,
            )
        except asyncio.CancelledError:
            lines.flush()
            raise  # a triggerer shutting down: the job keeps running and a new triggerer re-attaches
        except Exception as err:
            lines.flush()
            yield TriggerEvent(self._event("error", f"Waiting for Edge Impulse job {self.job_id} failed: {err}"))
            return
        lines.flush()
        if outcome.timed_out:
            message = f"Edge Impulse job {self.job_id} did not finish before its deadline"
            if self.cancel_on_timeout:
                from airflow_provider_edgeimpulse.triggers._kill import cancel_remote_job

                what = f"Edge Impulse job {self.job_id}"
                message += await cancel_remote_job(self, credentials, self.project_id, self.job_id, what)
            yield TriggerEvent(self._event("timeout", message, outcome))
            return
        if outcome.success and self.end_task_on_success:
            yield self._task_success_event(outcome)
            return
        state = "finished successfully" if outcome.success else "failed"
        yield TriggerEvent(self._event(outcome.status, f"Edge Impulse job {self.job_id} {state}", outcome))

    def _say_if_handed_over(self) -> None:
        late = time.time() - self.deferred_at
        if late > HANDOVER_AFTER_S:
            self.log.info(
                "Edge Impulse job %s: this wait began %.0f s after the task deferred, so it took over from another "
                "triggerer; the job's log is relayed from its start, and lines from before the hand-over may repeat",
                self.job_id,
                late,
            )

    def _task_success_event(self, outcome: JobOutcome) -> TriggerEvent:
        from airflow.triggers.base import TaskSuccessEvent

        return TaskSuccessEvent(xcoms={**self.xcoms, "return_value": outcome.to_dict()})

    async def on_kill(self) -> None:
        """
        A user marked the deferred task failed/success or cleared it: stop the remote job too (``cancel_on_kill``).

        Airflow 3.3 also calls this when it hands the wait to another triggerer; the task is still deferred
        then, and the job is left running (see ``triggers/_kill.py``).
        """
        what = f"Edge Impulse job {self.job_id}"
        if not self.cancel_on_kill:
            self.log.info("%s keeps running: this wait only watched it (cancel_on_kill is off)", what)
            return
        from airflow_provider_edgeimpulse.triggers._kill import stop_if_task_stopped

        await stop_if_task_stopped(self, self.edgeimpulse_conn_id, self.project_id, self.job_id, what)


def _unix_time(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a UNIX time in seconds, got {value!r}")
    return float(value)


def deadline_from_timeout(timeout: float | None) -> float | None:
    """An absolute deadline (UNIX time) survives a triggerer restart; a relative timeout would restart."""
    return None if timeout is None else time.time() + float(timeout)
