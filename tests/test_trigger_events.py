"""
One contract for trigger events: every task that defers reads its event through the same fail-closed check.

A task resumed with something that is not one of our events (a string, a dict without a known status) must fail,
and fail with the same words whichever task it is, naming the task.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed, EdgeImpulseRunJobOperator
from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor
from airflow_provider_edgeimpulse.trigger_events import EVENT_STATUSES, TASK_SUCCESS, checked_event
from tests.operators.fakes import make_context

TASKS = {
    "run_job": lambda: EdgeImpulseRunJobOperator(task_id="run_job", job_path="jobs/retrain"),
    "job_sensor": lambda: EdgeImpulseJobSensor(task_id="job_sensor", job_id=1),
    "tuner_sensor": lambda: EONTunerStateSensor(task_id="tuner_sensor", tuner_coordinator_job_id=1),
    "samples_sensor": lambda: EdgeImpulseNewSamplesSensor(task_id="samples_sensor", poke_interval=1, timeout=30),
}
NOT_OUR_EVENTS = [None, 42, "garbage", {}, {"status": "weird"}, {"message": "no status"}]


def test_the_contract_names_each_status_once() -> None:
    assert sorted(EVENT_STATUSES) == ["error", "failure", "success", "timeout"]
    assert TASK_SUCCESS == "success"
    assert checked_event({"status": "timeout"}, "t") == {"status": "timeout"}


def test_a_status_the_task_does_not_expect_fails_closed() -> None:
    with pytest.raises(EdgeImpulseJobFailed, match="failing closed"):
        checked_event({"status": "failure"}, "t", statuses=("success",), error=EdgeImpulseJobFailed)


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("event", NOT_OUR_EVENTS, ids=repr)
def test_every_task_fails_closed_on_the_same_terms(edgeimpulse_emulator: Any, name: str, event: Any) -> None:
    with pytest.raises(AirflowException) as expected:
        checked_event(event, name)
    with pytest.raises(AirflowException) as got:
        TASKS[name]().execute_complete(make_context(), event)
    assert str(got.value) == str(expected.value)
