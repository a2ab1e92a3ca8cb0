"""EdgeImpulseJobSensor: poke, deferrable, failure and fail-closed paths against the emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from tests.operators.fakes import make_context


def start_job(em: Any) -> int:
    resp = requests.post(
        f"{em.url}/v1/api/{em.project_id}/jobs/retrain", headers={"x-api-key": em.api_key}, json={}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


def sensor(job_id: Any, **kwargs: Any) -> EdgeImpulseJobSensor:
    return EdgeImpulseJobSensor(task_id="wait_job", job_id=job_id, **kwargs)


def run_trigger(trigger: EdgeImpulseJobTrigger) -> Any:
    async def first() -> Any:
        gen = trigger.run()
        try:
            return await anext(gen)
        finally:
            await gen.aclose()

    return asyncio.run(first())


def test_poke_is_false_while_running_then_returns_the_outcome(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    assert sensor(job_id).poke(make_context()) is False
    em.finish_job(job_id, True)
    result = sensor(str(job_id)).poke(make_context())
    assert result.is_done
    assert result.xcom_value["success"] is True
    assert result.xcom_value["job_id"] == job_id


def test_poke_fails_the_task_for_a_failed_job_with_its_log(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    em.finish_job(job_id, False)
    with pytest.raises(AirflowFailException, match="Last log lines") as err:
        sensor(job_id).poke(make_context())
    assert "Job failed" in str(err.value)


def test_deferrable_defers_without_cancelling_on_timeout_and_completes(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    job_id = start_job(em)
    task = sensor(job_id, deferrable=True, timeout=120)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, EdgeImpulseJobTrigger)
    assert trigger.cancel_on_timeout is False, "a sensor never cancels a job it did not start"
    assert deferred.value.timeout is None
    event = run_trigger(trigger)
    result = task.execute_complete(make_context(), event.payload)
    assert result["success"] is True


def test_deferrable_does_not_defer_for_a_finished_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    em.finish_job(job_id, True)
    assert sensor(job_id, deferrable=True).execute(make_context())["success"] is True


def test_deferrable_timeout_leaves_the_job_running(edgeimpulse_emulator):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    task = sensor(job_id, deferrable=True, timeout=0.5)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    event = run_trigger(deferred.value.trigger)
    with pytest.raises(AirflowSensorTimeout):
        task.execute_complete(make_context(), event.payload)
    assert not next(j for j in em.jobs() if j["id"] == job_id)["finished"]


@pytest.mark.parametrize("event", [None, "success", {"status": "?"}, 3])
def test_unknown_events_fail_closed(edgeimpulse_emulator, event):
    with pytest.raises(AirflowException, match="failing closed"):
        sensor(1).execute_complete(make_context(), event)


@pytest.mark.parametrize("bad", ["abc", 0, -4, True, None])
def test_a_bad_job_id_is_named(edgeimpulse_emulator, bad):
    with pytest.raises(ValueError, match="job_id"):
        sensor(bad).poke(make_context())
