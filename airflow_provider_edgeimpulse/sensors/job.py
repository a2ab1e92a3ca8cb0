"""Wait for an Edge Impulse job started elsewhere (by another DAG, by hand in Studio, by a script)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    conf,
)

from airflow_provider_edgeimpulse.jobs.waiter import (
    DEFAULT_LOG_TAIL,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_SAFETY_INTERVAL_S,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

_ERROR_TAIL_LINES = 20


class EdgeImpulseSensorMixin:
    """The connection, project and hook every Edge Impulse sensor shares."""

    edgeimpulse_conn_id: str
    project_id: Any

    @cached_property
    def hook(self) -> EdgeImpulseHook:
        from airflow_provider_edgeimpulse.hooks.connection import hook_for_task

        return hook_for_task(self.edgeimpulse_conn_id, self.project_id)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def settle_event(event: Any, result: Any, failure_tail: list[str] | None = None) -> Any:
    """Turn a trigger event into the sensor's result or the right exception; unknown events fail closed."""
    if not isinstance(event, dict) or event.get("status") not in ("success", "failure", "timeout", "error"):
        raise AirflowException(f"Unexpected trigger event {event!r}; failing closed")
    status, message = event["status"], str(event.get("message"))
    if status == "success":
        return result
    if status == "failure":
        tail = "\n".join((failure_tail or [])[-_ERROR_TAIL_LINES:])
        # A finished job's outcome cannot change: retrying the sensor would only fail again.
        raise AirflowFailException(f"{message}. Last log lines:\n{tail}" if failure_tail is not None else message)
    if status == "timeout":
        raise AirflowSensorTimeout(message)
    raise AirflowException(message)


def deadline_for(sensor: BaseSensorOperator) -> float | None:
    """The sensor's ``timeout`` as an absolute deadline for its trigger (it survives a triggerer restart)."""
    timeout = getattr(sensor, "timeout", None)
    return None if timeout is None else time.time() + float(timeout)


class EdgeImpulseJobSensor(EdgeImpulseSensorMixin, BaseSensorOperator):
    """
    Done when Edge Impulse job ``job_id`` has finished; fails the task when the job finished unsuccessfully.

    Poke and reschedule modes read the job's REST status each ``poke_interval``. ``deferrable=True`` hands the wait
    to the triggerer (live socket events, REST-confirmed) and frees the worker slot; the sensor's ``timeout``
    becomes the trigger's deadline. The sensor never cancels the job: it did not start it.

    :param job_id: the job to wait for. Templated.
    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    :param deferrable: wait in the triggerer.
    :return: the job outcome (``job_id``, ``status``, ``success``, ``finished``, ``log_tail``, ``job``).
    """

    template_fields: Sequence[str] = ("job_id", "project_id")
    ui_color = "#4ab6a6"

    def __init__(
        self,
        *,
        job_id: int | str,
        edgeimpulse_conn_id: str = "edgeimpulse_default",
        project_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        safety_interval: float = DEFAULT_SAFETY_INTERVAL_S,
        trigger_poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        log_tail: int = DEFAULT_LOG_TAIL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.project_id = project_id
        self.deferrable = deferrable
        self.safety_interval = safety_interval
        self.trigger_poll_interval = trigger_poll_interval
        self.log_tail = log_tail

    def _job_id(self) -> int:
        return positive_int("job_id", self.job_id)

    def poke(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import PokeReturnValue

        job_id = self._job_id()
        job = self.hook.get_job_status(job_id)
        if not job.get("finished"):
            self.log.info("Edge Impulse job %s is still running", job_id)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._settle(job_id, job))

    def _settle(self, job_id: int, job: dict[str, Any]) -> dict[str, Any]:
        success = job.get("finishedSuccessful") is True
        tail = self.hook.get_job_stdout_lines(job_id, limit=self.log_tail)
        outcome = {
            "job_id": job_id,
            "project_id": self.hook.project_id,
            "status": "success" if success else "failure",
            "success": success,
            "finished": job.get("finished"),
            "log_tail": tail,
            "job": job,
        }
        if not success:
            self._fail(job_id, tail)
        return outcome

    def _fail(self, job_id: Any, tail: list[str]) -> None:
        text = "\n".join(tail[-_ERROR_TAIL_LINES:]) or "<no log>"
        # A finished job's outcome cannot change: retrying the sensor would only fail again.
        raise AirflowFailException(f"Edge Impulse job {job_id} failed. Last log lines:\n{text}")

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger

        job_id = self._job_id()
        job = self.hook.get_job_status(job_id)
        if job.get("finished"):
            return self._settle(job_id, job)
        self.defer(
            trigger=EdgeImpulseJobTrigger(
                job_id=job_id,
                project_id=self.hook.project_id,
                edgeimpulse_conn_id=self.edgeimpulse_conn_id,
                deadline=deadline_for(self),
                safety_interval=self.safety_interval,
                poll_interval=self.trigger_poll_interval,
                log_tail=self.log_tail,
                cancel_on_timeout=False,
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        outcome = (event.get("outcome") if isinstance(event, dict) else None) or {}
        for line in outcome.get("log_tail") or []:
            self.log.info("[job %s] %s", event.get("job_id"), line)
        return settle_event(event, outcome, list(outcome.get("log_tail") or []))
