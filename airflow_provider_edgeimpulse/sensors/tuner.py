"""Wait for an EON Tuner run to end (``tunerJobIsRunning == false``) and summarise it for downstream tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    PokeReturnValue,
    conf,
)

from airflow_provider_edgeimpulse.hooks.job_log import ERROR_TAIL_LINES, quoted_tail
from airflow_provider_edgeimpulse.jobs import tuner
from airflow_provider_edgeimpulse.sensors._base import (
    EdgeImpulseBaseSensor,
    is_template,
    positive_int,
)
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID
from airflow_provider_edgeimpulse.trigger_events import TASK_SUCCESS
from airflow_provider_edgeimpulse.validation import positive_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class EONTunerStateSensor(EdgeImpulseBaseSensor):
    """
    Done when the EON Tuner run ``tuner_coordinator_job_id`` is over; fails when it ended with ``jobError`` or
    without one completed trial (every trial failed, or it was stopped before any finished).

    Returns (XCom ``return_value``) a summary, the same in every mode (see :func:`jobs.tuner.summarize`)::

        {"tuner_coordinator_job_id", "tuner_job_id", "running", "run_status",
         "status_counts": {"numCompletedTrials", "numFailedTrials", ...},     # Studio's counters
         "trial_counts": {"pending", "running", "completed", "failed", "other"},  # unknown statuses: "other"
         "metric", "mode",
         "trials": [{"id", "name", "status", "value", "metrics": {"validation": {"float32": {"accuracy",
                     "loss"}}, "test": {...}, "devicePerformance": {...}}}],
         "best_trial": {"trial_id", "value", "metric", "mode"} | None, "best_trial_error", "job_error"}

    ``best_trial`` is ``None`` (and ``best_trial_error`` says why) when no completed trial reports ``metric``;
    the run still counts as a success then.

    Poke and reschedule modes read the state every ``poke_interval``. Deferred (``deferrable=True``), the
    triggerer wakes on the coordinator job's ``job-finished`` event, reads the state every
    ``state_poll_interval`` seconds as well, and ends at the sensor's ``timeout`` without cancelling anything.
    A user who marks the deferred task failed or success, or clears it, cancels the run (``cancel_on_kill``):
    the sensor is usually the only waiter of a run started with ``wait_for_completion=False``, which would
    otherwise search on for hours. Worker kills and triggerer restarts cancel nothing.

    ``best_trial`` is chosen the way ``EdgeImpulseSetTunerPrimaryOperator(trial_id="best")`` chooses (one
    function, :func:`jobs.tuner.best_trial`), with the same parameter names.

    :param tuner_coordinator_job_id: the run: the job id ``jobs/optimize`` returned. Templated.
    :param metric: what "best" means: ``accuracy`` (validation set), ``loss``, ``test_accuracy``,
        ``test_loss``, ``latency``, ``ram``, ``rom``, or a path such as ``test.accuracy``, ``validation.loss``,
        ``validation.int8.accuracy`` or ``devicePerformance.latency`` (see ``jobs/tuner.py``). Templated.
    :param metric_mode: ``max`` or ``min``; by default the metric's natural direction (``max`` for
        accuracies, ``min`` for loss, latency and sizes; required for other paths). Templated.
    :param model_variant: the model variant whose figures count (``float32``, ``int8``); the run's
        ``optimizationPrecision`` when omitted. Templated.
    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param state_poll_interval: deferred: seconds between state reads.
    :param cancel_on_kill: deferred: a user's kill of the task cancels the run.
    """

    template_fields: Sequence[str] = (
        "tuner_coordinator_job_id",
        "project_id",
        "metric",
        "metric_mode",
        "model_variant",
    )

    def __init__(
        self,
        *,
        tuner_coordinator_job_id: int | str,
        metric: str = "accuracy",
        metric_mode: str | None = None,
        model_variant: str | None = None,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        state_poll_interval: float = 60.0,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(edgeimpulse_conn_id=edgeimpulse_conn_id, project_id=project_id, **kwargs)
        self.tuner_coordinator_job_id = tuner_coordinator_job_id
        self.metric = metric
        self.metric_mode = metric_mode
        self.model_variant = model_variant
        self.deferrable = deferrable
        self.state_poll_interval = positive_seconds("state_poll_interval", state_poll_interval)
        self.cancel_on_kill = cancel_on_kill
        if not any(is_template(value) for value in (metric, metric_mode, model_variant)):
            self._selection()  # a typo in the metric fails the DAG's parse, not the task hours later

    def _run_id(self) -> int:
        return positive_int("tuner_coordinator_job_id", self.tuner_coordinator_job_id)

    def _selection(self) -> tuple[str, str, str | None]:
        return tuner.check_choice(self.metric, self.metric_mode, self.model_variant)

    def waits_for(self) -> str:
        return f"EON Tuner run {self._run_id()}"

    def look(self, context: Context) -> bool | PokeReturnValue:
        run_id = self._run_id()
        selection = self._selection()
        state = self.hook.get_tuner_state(run_id)
        if tuner.is_running(state):
            self.log.info("EON Tuner run %s is running: %s", run_id, tuner.progress_line(state))
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(run_id, state, *selection))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_edgeimpulse.compat import can_end_from_trigger
        from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger

        run_id = self._run_id()
        metric, mode, variant = self._selection()
        state = self.read_before_deferring(lambda: self.hook.get_tuner_state(run_id))
        if state is not None and not tuner.is_running(state):
            try:
                return self._finish(run_id, state, metric, mode, variant)
            except AirflowFailException as err:
                self.fail_outside_poke(err)
        progress = tuner.progress_line(state) if state is not None else "its state not read yet"
        self.log.info("EON Tuner run %s is running (%s); waiting in the triggerer", run_id, progress)
        trigger = EONTunerStateTrigger(
            project_id=self.hook.project_id,
            tuner_coordinator_job_id=run_id,
            edgeimpulse_conn_id=self.edgeimpulse_conn_id,
            deadline=self.trigger_deadline(),
            poll_interval=self.state_poll_interval,
            metric=metric,
            metric_mode=mode,
            model_variant=variant,
            cancel_on_kill=bool(self.cancel_on_kill),
            # Nothing is left for a worker after a success: ending in the triggerer avoids the Airflow 3.2/3.3
            # resume race (apache/airflow#66374); the summary becomes the return value there.
            end_task_on_success=can_end_from_trigger(),
        )
        # timeout=None: the deadline lives in the trigger, which reports it as a timeout event.
        self.defer(trigger=trigger, method_name="execute_complete", timeout=None)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        if event == TASK_SUCCESS:
            # The trigger ended the task itself; runners that resume anyway (dag.test) land here.
            run_id = self._run_id()
            state = self.hook.get_tuner_state(run_id)
            if tuner.is_running(state):
                raise AirflowException(f"Resumed after a success event, but run {run_id} is running; failing closed")
            return self._finish(run_id, state, *self._selection())
        summary = self.checked_event(event).get("summary")
        if not isinstance(summary, dict):
            raise AirflowException(f"Success event without a summary: {event!r}; failing closed")
        self._log_best(summary)
        return summary

    def _finish(
        self, run_id: int, state: dict[str, Any], metric: str, mode: str, variant: str | None
    ) -> dict[str, Any]:
        summary = tuner.summarize(state, metric, mode, variant=variant)
        failure = tuner.run_failure(state)
        if failure is not None:
            # A finished run's outcome cannot change: AirflowFailException skips retries that could only fail again.
            raise AirflowFailException(f"EON Tuner run {run_id} failed: {failure}{self._log_tail(run_id)}")
        self._log_best(summary)
        return summary

    def _log_tail(self, run_id: int) -> str:
        try:
            lines = self.hook.get_job_stdout_lines(run_id, limit=ERROR_TAIL_LINES)
        except Exception as err:  # the failure stands without its log; say why it is missing
            self.log.warning("Could not read the log of EON Tuner run %s: %s", run_id, err)
            return ""
        return "\nLast log lines:\n" + quoted_tail(lines)

    def _log_best(self, summary: dict[str, Any]) -> None:
        best = summary.get("best_trial")
        if isinstance(best, dict):
            self.log.info(
                "Best EON Tuner trial by %s (%s): %s = %s",
                best["metric"],
                best["mode"],
                best["trial_id"],
                best["value"],
            )
        else:
            self.log.warning("No best EON Tuner trial: %s", summary.get("best_trial_error"))
