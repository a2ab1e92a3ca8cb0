"""Wait for an Edge Impulse job started elsewhere (by another DAG, by hand in Studio, by a script)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    PokeReturnValue,
    conf,
)

from airflow_provider_edgeimpulse.hooks.job_log import quoted_tail
from airflow_provider_edgeimpulse.jobs.blocking import finished_job_outcome
from airflow_provider_edgeimpulse.jobs.waiter import (
    DEFAULT_LOG_TAIL,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_SAFETY_INTERVAL_S,
)
from airflow_provider_edgeimpulse.sensors._base import (
    EdgeImpulseBaseSensor,
    positive_int,
)
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID
from airflow_provider_edgeimpulse.trigger_events import TASK_SUCCESS
from airflow_provider_edgeimpulse.validation import positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class EdgeImpulseJobSensor(EdgeImpulseBaseSensor):
    """
    Done when Edge Impulse job ``job_id`` has finished; fails the task when it finished unsuccessfully.

    Poke and reschedule modes read the job's REST status every ``poke_interval``. ``deferrable=True`` hands the
    wait to the triggerer (live socket events, confirmed over REST) and frees the worker slot, unless the job has
    already finished; the sensor's ``timeout`` becomes the trigger's deadline. The sensor never cancels the job,
    not on timeout and not when a user kills the task: it did not start it.

    An unsuccessful job fails the task with ``AirflowFailException`` (the last log lines in the message), which
    skips the task's retries: a finished job's outcome cannot change, so a retry could only fail again. A poke
    that Studio does not answer (429, 5xx, no answer) is a "not yet" (see the base class); an answer that cannot
    change (a bad key, an unknown job) is a plain failure, which the task's retries may repeat.

    :param job_id: the job to wait for. Templated.
    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param safety_interval: deferred: seconds between REST checks while the live socket is up.
    :param poll_interval: deferred: seconds between REST checks while no socket can be had.
    :param log_tail: how many of the job's last log lines the result keeps.
    :return: ``{"job_id", "project_id", "status": "success", "success": True, "finished", "log_tail", "job"}``
        (``job`` is the REST job object), the same in every mode.
    """

    template_fields: Sequence[str] = ("job_id", "project_id")

    def __init__(
        self,
        *,
        job_id: int | str,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        safety_interval: float = DEFAULT_SAFETY_INTERVAL_S,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        log_tail: int = DEFAULT_LOG_TAIL,
        **kwargs: Any,
    ) -> None:
        super().__init__(edgeimpulse_conn_id=edgeimpulse_conn_id, project_id=project_id, **kwargs)
        self.job_id = job_id
        self.deferrable = deferrable
        # Not templated, so checked at parse time, where the error points at the DAG line.
        self.safety_interval = positive_seconds("safety_interval", safety_interval)
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.log_tail = positive_int("log_tail", log_tail)

    def _job_id(self) -> int:
        return positive_int("job_id", self.job_id)

    def waits_for(self) -> str:
        return f"Edge Impulse job {self._job_id()}"

    def look(self, context: Context) -> bool | PokeReturnValue:
        job_id = self._job_id()
        job = self.hook.get_job_status(job_id)
        if not job.get("finished"):
            self.log.info("Edge Impulse job %s is still running", job_id)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._settle(self._outcome(job_id, job)))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_edgeimpulse.compat import can_end_from_trigger
        from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger

        job_id = self._job_id()
        job = self.read_before_deferring(lambda: self.hook.get_job_status(job_id))
        if job is not None and job.get("finished"):
            try:
                return self._settle(self._outcome(job_id, job))
            except AirflowFailException as err:
                self.fail_outside_poke(err)
        self.log.info(
            "Edge Impulse job %s is %s; waiting in the triggerer", job_id, "running" if job else "not read yet"
        )
        trigger = EdgeImpulseJobTrigger(
            job_id=job_id,
            project_id=self.hook.project_id,
            edgeimpulse_conn_id=self.edgeimpulse_conn_id,
            deadline=self.trigger_deadline(),
            safety_interval=self.safety_interval,
            poll_interval=self.poll_interval,
            log_tail=self.log_tail,
            # The sensor only watches a job started elsewhere: neither its deadline nor a kill stops the job.
            cancel_on_timeout=False,
            cancel_on_kill=False,
            # Nothing is left for a worker after a success: ending in the triggerer avoids the Airflow 3.2/3.3
            # resume race (apache/airflow#66374); the outcome becomes the return value there.
            end_task_on_success=can_end_from_trigger(),
        )
        # timeout=None: the deadline lives in the trigger, which reports it as a timeout event.
        self.defer(trigger=trigger, method_name="execute_complete", timeout=None)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        if event == TASK_SUCCESS:
            # The trigger ended the task itself; runners that resume anyway (dag.test) land here.
            job_id = self._job_id()
            job = self.hook.get_job_status(job_id)
            if not job.get("finished"):
                raise AirflowException(
                    f"Resumed after a success event, but job {job_id} is not finished; failing closed"
                )
            return self._settle(self._outcome(job_id, job))
        outcome = event.get("outcome") if isinstance(event, dict) else None
        if isinstance(event, dict) and event.get("status") == "failure":
            tail = list((outcome or {}).get("log_tail") or [])
            raise AirflowFailException(_failure_message(event.get("job_id", self.job_id), tail))
        self.checked_event(event)
        if not isinstance(outcome, dict) or outcome.get("success") is not True:
            raise AirflowException(f"Success event without a successful job outcome: {event!r}; failing closed")
        return outcome

    def _outcome(self, job_id: int, job: dict[str, Any]) -> dict[str, Any]:
        """The result of a finished job, shaped as the trigger's outcome so that XCom is the same in every mode."""
        return finished_job_outcome(self.hook, job_id, job, log_tail=self.log_tail, log=self.log)

    @staticmethod
    def _settle(outcome: dict[str, Any]) -> dict[str, Any]:
        if not outcome["success"]:
            raise AirflowFailException(_failure_message(outcome["job_id"], outcome["log_tail"]))
        return outcome


def _failure_message(job_id: Any, tail: list[str]) -> str:
    return f"Edge Impulse job {job_id} finished unsuccessfully. Last log lines:\n{quoted_tail(tail)}"
