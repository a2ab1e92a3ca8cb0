"""
Wait in the triggerer until an EON Tuner run is over (``tunerJobIsRunning == false``).

Wakes on the coordinator job's ``job-finished`` event through the project's shared socket, re-reads the state
after every reconnect, and also reads it every ``poll_interval`` seconds (a tuner run has many phases, and the
state endpoint is the authority). Kwargs are plain data; credentials are resolved inside ``run()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_edgeimpulse.jobs import tuner_state

CANCEL_BOUND_S = 20.0


class EONTunerStateTrigger(BaseTrigger):
    """
    One event: ``{"status": "success"|"failure"|"timeout"|"error", "message", "summary"}``.

    ``failure`` means the run ended with ``jobError`` or with every trial failed. The deadline (UNIX time) lives
    here; a timeout does not cancel the run (a sensor did not start it). ``on_kill`` (a user marked the task
    failed or cleared it) cancels the coordinator job; a triggerer restart cancels nothing.
    """

    def __init__(
        self,
        *,
        project_id: int,
        tuner_coordinator_job_id: int,
        edgeimpulse_conn_id: str = "edgeimpulse_default",
        deadline: float | None = None,
        poll_interval: float = 60.0,
        metric: str = "accuracy",
        metric_mode: str = "max",
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.project_id = int(project_id)
        self.tuner_coordinator_job_id = int(tuner_coordinator_job_id)
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.deadline = deadline
        self.poll_interval = float(poll_interval)
        self.metric = metric
        self.metric_mode = metric_mode
        self.cancel_on_kill = cancel_on_kill

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
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials
        from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop

        job_id = self.tuner_coordinator_job_id
        try:
            credentials = await aresolve_credentials(self.edgeimpulse_conn_id)
            hub = registry_for_running_loop().hub_for(credentials, self.project_id)
            sub = hub.subscribe(job_id)
            try:
                remaining = None if self.deadline is None else max(self.deadline - time.time(), 0.0)
                async with asyncio.timeout(remaining):
                    state = await self._wait(hub, sub)
            finally:
                await sub.aclose()
        except asyncio.CancelledError:
            raise  # a triggerer stopping: the run goes on and a new triggerer re-attaches
        except TimeoutError:
            yield TriggerEvent(
                {"status": "timeout", "message": f"EON Tuner run {job_id} was still running at the deadline"}
            )
            return
        except Exception as err:
            yield TriggerEvent({"status": "error", "message": f"Waiting for EON Tuner run {job_id} failed: {err}"})
            return
        summary = tuner_state.summarize(state, self.metric, self.metric_mode)
        failure = tuner_state.run_failure(state)
        if failure:
            yield TriggerEvent({"status": "failure", "message": failure, "summary": summary})
        else:
            message = f"EON Tuner run {job_id} finished ({tuner_state.progress_line(state)})"
            yield TriggerEvent({"status": "success", "message": message, "summary": summary})

    async def _wait(self, hub: Any, sub: Any) -> dict[str, Any]:
        last_progress = ""
        while True:
            state = await hub.client.get_tuner_state(self.project_id, self.tuner_coordinator_job_id)
            if not tuner_state.is_running(state):
                return state
            progress = tuner_state.progress_line(state)
            if progress != last_progress:
                self.log.info("EON Tuner run %s: %s", self.tuner_coordinator_job_id, progress)
                last_progress = progress
            event = await sub.next(self.poll_interval)
            while event is not None and event.kind == "data":
                self.log.info("[tuner %s] %s", self.tuner_coordinator_job_id, event.line)
                event = await sub.next(0.05)

    async def on_kill(self) -> None:
        if not self.cancel_on_kill:
            return
        from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials

        credentials = await aresolve_credentials(self.edgeimpulse_conn_id)
        try:
            async with asyncio.timeout(CANCEL_BOUND_S), AsyncEdgeImpulseClient(credentials) as client:
                await client.cancel_job(self.project_id, self.tuner_coordinator_job_id)
            self.log.info("Cancelled EON Tuner run %s", self.tuner_coordinator_job_id)
        except Exception as err:
            self.log.warning("Could not cancel EON Tuner run %s: %s", self.tuner_coordinator_job_id, err)
