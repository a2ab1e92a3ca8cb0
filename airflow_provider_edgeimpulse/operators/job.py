"""
The base of every job operator: start an Edge Impulse job, then wait for it blocking or deferred.

Subclasses say which job to start (``job_request``) and what to hand downstream (``job_result``); this
class owns the Airflow side: XCom, the Studio link, re-attaching on retry, deferral, kill and timeout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, ResumableJobMixin, conf

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.hooks.job_log import quoted_tail
from airflow_provider_edgeimpulse.hooks.job_requests import JobRequest
from airflow_provider_edgeimpulse.jobs.blocking import finished_job_outcome, wait_for_job_blocking
from airflow_provider_edgeimpulse.jobs.waiter import (
    DEFAULT_LOG_TAIL,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_SAFETY_INTERVAL_S,
    WaitSettings,
)
from airflow_provider_edgeimpulse.links import STUDIO_URL_XCOM_KEY
from airflow_provider_edgeimpulse.operators import resume
from airflow_provider_edgeimpulse.operators._base import EdgeImpulseBaseOperator
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID, studio_job_url
from airflow_provider_edgeimpulse.trigger_events import TASK_SUCCESS, checked_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

JOB_ID_XCOM_KEY = "job_id"


class EdgeImpulseJobFailed(AirflowException):
    """The remote job ended unsuccessfully, timed out, or the wait for it failed."""


class EdgeImpulseRunJobOperator(ResumableJobMixin, EdgeImpulseBaseOperator):
    """
    Start any Edge Impulse job (``POST /api/{projectId}/jobs/...``) and wait for it.

    :param job_path: the start path under the project, e.g. ``"jobs/retrain"``.
    :param job_query: query parameters of the start call.
    :param job_body: JSON body of the start call.
    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project.
    :param wait_for_completion: wait for the job to finish; when off, return once it started, with
        ``{"job_id", "project_id", "status": "started"}``.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param timeout: seconds to wait before the job is cancelled and the task fails (``None``: no limit).
    :param safety_interval: seconds between REST checks while the live socket is up.
    :param poll_interval: seconds between REST checks while no socket can be had.
    :return: the job outcome (``job_id``, ``status``, ``success``, ``finished``, ``log_tail``...).
    """

    template_fields: Sequence[str] = ("project_id", "job_path", "job_query", "job_body", "timeout")
    template_fields_renderers = {"job_query": "json", "job_body": "json"}
    # Jobs whose outcome is the whole result can end the task from the triggerer: no worker resume. Derived
    # for each subclass (see __init_subclass__): one that overrides job_result needs a worker after the job.
    completes_in_trigger = True
    tuner_link = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides_result = cls.job_result is not EdgeImpulseRunJobOperator.job_result
        if overrides_result and cls.__dict__.get("completes_in_trigger") is True:
            # Ending in the triggerer would skip job_result: the task would return the bare outcome.
            raise TypeError(
                f"{cls.__name__} overrides job_result, so it cannot set completes_in_trigger = True: "
                "job_result runs on a worker after the job"
            )
        cls.completes_in_trigger = cls.completes_in_trigger and not overrides_result

    def __init__(
        self,
        *,
        job_path: str | None = None,
        job_query: dict[str, Any] | None = None,
        job_body: dict[str, Any] | None = None,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        timeout: float | None = None,
        safety_interval: float = DEFAULT_SAFETY_INTERVAL_S,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        log_tail: int = DEFAULT_LOG_TAIL,
        **kwargs: Any,
    ) -> None:
        super().__init__(edgeimpulse_conn_id=edgeimpulse_conn_id, project_id=project_id, **kwargs)
        self.job_path = job_path
        self.job_query = job_query
        self.job_body = job_body
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.timeout = timeout
        self.safety_interval = safety_interval
        self.poll_interval = poll_interval
        self.log_tail = log_tail
        self._job_id: int | None = None
        # Fail at parse time for what templates cannot change.
        self.wait_settings()

    # -- what to run: subclasses override these two -------------------------------------------------------------

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        """The start call as ``(path, query, body)``; validated before anything is sent."""
        if not isinstance(self.job_path, str) or not self.job_path.strip():
            raise ValueError(f"job_path must be a path such as 'jobs/retrain', got {self.job_path!r}")
        if self.job_query is not None and not isinstance(self.job_query, dict):
            raise TypeError(
                f"job_query must be a dict of query parameters, got {type(self.job_query).__name__} "
                f"{_params.shown(self.job_query)}"
            )
        if self.job_body is not None and not isinstance(self.job_body, dict):
            raise TypeError(
                f"job_body must be a JSON object (dict), got {type(self.job_body).__name__} "
                f"{_params.shown(self.job_body)}"
            )
        return self.job_path.strip(), self.job_query, self.job_body

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        """What the task returns (XCom ``return_value``) once the job finished successfully."""
        return outcome

    # -- Airflow plumbing ---------------------------------------------------------------------------------------

    def wait_settings(self) -> WaitSettings:
        # A string may still be a template; it is checked again once rendered.
        if not isinstance(self.timeout, (str, type(None))):
            self._timeout_seconds()
        return WaitSettings(self.safety_interval, self.poll_interval, self.log_tail)

    def _timeout_seconds(self) -> float | None:
        if self.timeout is None:
            return None
        if isinstance(self.timeout, bool):
            raise ValueError(f"timeout must be a number of seconds, got {self.timeout!r}")
        try:
            value = float(self.timeout)
        except (TypeError, ValueError):
            raise ValueError(f"timeout must be a number of seconds, got {self.timeout!r}") from None
        # NaN passes "< 0" and would time the wait out as soon as the job started; inf: use None for no limit.
        if not 0 <= value < math.inf:
            raise ValueError(f"timeout must be a non-negative number of seconds, got {self.timeout!r}")
        return value

    external_id_key = "edgeimpulse_job_id"

    def execute(self, context: Context) -> Any:
        # The rendered timeout first: it needs no request, while job_request may read the project.
        self._timeout_seconds()
        self.wait_settings()
        self._request = self.job_request(self.hook, context)
        self._final_result: Any = None
        return self.execute_resumable(context)

    # -- ResumableJobMixin: a retried task re-attaches to its job instead of starting a duplicate ----------

    def submit_job(self, context: Context) -> int:
        hook = self.hook
        previous = resume.previous_job_id(context)
        if previous is not None:
            state = self.get_job_status(previous, context)
            if state in ("running", "success"):
                self.log.info("Re-attaching to Edge Impulse job %s of an earlier try (%s)", previous, state)
                self._job_id = int(previous)
                return previous
            self.log.info("Edge Impulse job %s of an earlier try is %s; starting a new one", previous, state)
        # Kept the moment the job exists: a kill before the wait starts still cancels it.
        self._job_id = job_id = hook.start_job(*self._request)
        resume.remember(context, job_id)
        return job_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError

        try:
            job = self.hook.get_job_status(int(external_id))
        except EdgeImpulseAPIError as err:
            if err.status in (404, None) or "No job" in str(err.error or ""):
                return "gone"
            raise
        state = resume.job_state(job)
        if state == "running" and resume.stopped_while_deferred(context, external_id):
            # A user stopped that try to stop its job, whose cancel may still be on its way: start anew rather
            # than adopt a job that is about to end cancelled.
            self._cancel(self.hook, int(external_id), reason="a user stopped the try that was waiting on it")
            resume.mark_resumed(context)
            return "gone"
        return state

    def is_job_active(self, status: str) -> bool:
        return status == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "success"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        hook = self.hook
        job_id = int(external_id)
        self._job_id = job_id
        self._announce(hook, context, job_id)
        if not self.wait_for_completion:
            self._final_result = {"job_id": job_id, "project_id": hook.project_id, "status": "started"}
            return self._final_result
        if self.deferrable:
            self._final_result = self._defer(hook, context, job_id, self._timeout_seconds())
            return self._final_result
        timeout = self._timeout_seconds()
        outcome = wait_for_job_blocking(
            hook.credentials,
            hook.project_id,
            job_id,
            timeout=timeout,
            on_log=self._log_job_line,
            settings=self.wait_settings(),
        )
        if outcome["status"] == "timeout":
            self._cancel(hook, job_id, reason="its timeout passed")
            resume.forget(context)
            raise EdgeImpulseJobFailed(f"Edge Impulse job {job_id} did not finish within {timeout} s; it was cancelled")
        self._final_result = self._complete(hook, outcome, context)
        return self._final_result

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if self._final_result is not None:
            return self._final_result
        hook = self.hook
        job_id = int(external_id)
        self._job_id = job_id
        self._announce(hook, context, job_id)
        return self._complete(hook, self._outcome_from_status(hook, job_id), context)

    def _announce(self, hook: EdgeImpulseHook, context: Context, job_id: int) -> None:
        """XCom the job id and its Studio page first thing, so both exist even if the task fails."""
        url = studio_job_url(hook.studio_url, hook.project_id, job_id, tuner=self.tuner_link)
        ti = context["ti"]
        ti.xcom_push(key=JOB_ID_XCOM_KEY, value=job_id)
        ti.xcom_push(key=STUDIO_URL_XCOM_KEY, value=url)
        self.log.info("Edge Impulse job %s: %s", job_id, url)

    def _log_job_line(self, line: str) -> None:
        self.log.info("[job %s] %s", self._job_id, line)

    def _defer(self, hook: EdgeImpulseHook, context: Context, job_id: int, timeout: float | None) -> Any:
        from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger, deadline_from_timeout

        status = hook.get_job_status(job_id)
        if status.get("finished"):
            return self._complete(hook, self._outcome_from_status(hook, job_id, status), context)
        end_in_trigger = self.completes_in_trigger and resume.can_end_from_trigger()
        settings = self.wait_settings()
        trigger = EdgeImpulseJobTrigger(
            job_id=job_id,
            project_id=hook.project_id,
            edgeimpulse_conn_id=self.edgeimpulse_conn_id,
            deadline=deadline_from_timeout(timeout),
            safety_interval=settings.safety_interval,
            poll_interval=settings.poll_interval,
            log_tail=settings.log_tail,
            end_task_on_success=end_in_trigger,
            xcoms={JOB_ID_XCOM_KEY: job_id, STUDIO_URL_XCOM_KEY: context["ti"].xcom_pull(key=STUDIO_URL_XCOM_KEY)},
        )
        resume.mark_deferred(context, job_id)
        # timeout=None: the deadline lives in the trigger, which can cancel the job when it passes.
        self.defer(trigger=trigger, method_name="execute_complete", timeout=None)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        waited_on = resume.deferred_job(context)
        resume.mark_resumed(context)
        hook = self.hook
        if isinstance(event, dict) and waited_on is not None and event.get("job_id") not in (None, waited_on):
            # Clearing a deferred task does not stop its trigger at once: the old trigger's event (about the job
            # the user stopped) can reach the new try. It says nothing about this try's job: wait on.
            self.log.warning(
                "Ignoring an event about Edge Impulse job %s from an earlier try; waiting on job %s",
                event.get("job_id"),
                waited_on,
            )
            self._job_id = waited_on
            return self._defer(hook, context, waited_on, self._timeout_seconds())
        if event == TASK_SUCCESS:
            # The trigger ended the task itself; runners that resume anyway (dag.test) land here.
            job_id = context["ti"].xcom_pull(task_ids=context["ti"].task_id, key=JOB_ID_XCOM_KEY)
            if job_id is None:
                raise EdgeImpulseJobFailed("Resumed after a task-success event but no job_id XCom was found")
            return self._complete(hook, self._outcome_from_status(hook, int(job_id)), context)
        checked_event(event, self.task_id, error=EdgeImpulseJobFailed)
        self._job_id = event.get("job_id")
        outcome = event.get("outcome") or {}
        for line in outcome.get("log_tail") or []:
            self._log_job_line(line)
        if event["status"] in ("timeout", "error"):
            raise EdgeImpulseJobFailed(str(event.get("message") or event["status"]))
        return self._complete(hook, outcome, context)

    def _outcome_from_status(self, hook: EdgeImpulseHook, job_id: int, job: dict[str, Any] | None = None) -> dict:
        job = job or hook.get_job_status(job_id)
        if not job.get("finished"):
            raise EdgeImpulseJobFailed(f"Edge Impulse job {job_id} has not finished yet")
        return finished_job_outcome(hook, job_id, job, log_tail=self.log_tail, log=self.log)

    def _complete(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        job_id = outcome.get("job_id")
        resume.forget(context)
        if not outcome.get("success"):
            tail = quoted_tail(outcome.get("log_tail") or [])
            raise EdgeImpulseJobFailed(f"Edge Impulse job {job_id} failed. Last log lines:\n{tail}")
        return self.job_result(hook, outcome, context)

    def _cancel(self, hook: EdgeImpulseHook, job_id: int, *, reason: str) -> None:
        try:
            hook.cancel_job(job_id)
            self.log.info("Cancelled Edge Impulse job %s because %s", job_id, reason)
        except Exception as err:
            self.log.warning("Could not cancel Edge Impulse job %s: %s", job_id, err)

    def on_kill(self) -> None:
        if self._job_id is not None:
            self._cancel(self.hook, self._job_id, reason="the task was killed")
