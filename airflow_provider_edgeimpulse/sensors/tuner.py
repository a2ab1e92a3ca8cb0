"""Wait for an EON Tuner run to end (``tunerJobIsRunning == false``) and summarise it for downstream tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    BaseSensorOperator,
    conf,
)

from airflow_provider_edgeimpulse.jobs import tuner_state
from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseSensorMixin, deadline_for, positive_int, settle_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class EONTunerStateSensor(EdgeImpulseSensorMixin, BaseSensorOperator):
    """
    Done when the EON Tuner run ``tuner_coordinator_job_id`` is over; fails when it ended with ``jobError`` or
    with every trial failed.

    Pushes (as its return value) a summary: ``trial_counts`` by status (unknown statuses under ``other``),
    ``trials`` (id, name, status, the chosen metric), ``best_trial`` (``{"trial_id", "metric", "mode",
    "value"}`` or ``None``), ``job_error``. Deferred, it wakes on the coordinator's ``job-finished`` event and
    also reads the state every ``state_poll_interval`` seconds.

    :param tuner_coordinator_job_id: the run (the id ``jobs/optimize`` returned). Templated.
    :param metric: what "best" means (``accuracy``, ``test_accuracy``, ``loss``, ``latency``, ``ram``, ``rom`` or a
        dotted path into a trial). Templated.
    :param metric_mode: ``max`` or ``min`` (the metric's natural direction when omitted). Templated.
    :param state_poll_interval: seconds between state reads in deferrable mode.
    """

    template_fields: Sequence[str] = ("tuner_coordinator_job_id", "project_id", "metric", "metric_mode")
    ui_color = "#4ab6a6"

    def __init__(
        self,
        *,
        tuner_coordinator_job_id: int | str,
        metric: str = "accuracy",
        metric_mode: str | None = None,
        edgeimpulse_conn_id: str = "edgeimpulse_default",
        project_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        state_poll_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tuner_coordinator_job_id = tuner_coordinator_job_id
        self.metric = metric
        self.metric_mode = metric_mode
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.project_id = project_id
        self.deferrable = deferrable
        self.state_poll_interval = state_poll_interval

    def _run_id(self) -> int:
        return positive_int("tuner_coordinator_job_id", self.tuner_coordinator_job_id)

    def _mode(self) -> str:
        from airflow_provider_edgeimpulse.operators.tuner import NAMED_METRICS

        mode = self.metric_mode or NAMED_METRICS.get(str(self.metric))
        if mode not in ("max", "min"):
            raise ValueError(f"metric_mode must be 'max' or 'min' for metric {self.metric!r}, got {mode!r}")
        return mode

    def _finish(self, state: dict[str, Any]) -> dict[str, Any]:
        summary = tuner_state.summarize(state, str(self.metric), self._mode())
        failure = tuner_state.run_failure(state)
        if failure:
            raise AirflowFailException(failure)
        return summary

    def poke(self, context: Context) -> Any:
        from airflow.providers.common.compat.sdk import PokeReturnValue

        run_id = self._run_id()
        self._mode()
        state = self.hook.get_tuner_state(run_id)
        if tuner_state.is_running(state):
            self.log.info("EON Tuner run %s: %s", run_id, tuner_state.progress_line(state))
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(state))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger

        run_id = self._run_id()
        mode = self._mode()
        state = self.hook.get_tuner_state(run_id)
        if not tuner_state.is_running(state):
            return self._finish(state)
        self.defer(
            trigger=EONTunerStateTrigger(
                project_id=self.hook.project_id,
                tuner_coordinator_job_id=run_id,
                edgeimpulse_conn_id=self.edgeimpulse_conn_id,
                deadline=deadline_for(self),
                poll_interval=self.state_poll_interval,
                metric=str(self.metric),
                metric_mode=mode,
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        return settle_event(event, event.get("summary") if isinstance(event, dict) else None)
