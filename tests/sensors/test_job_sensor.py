"""EdgeImpulseJobSensor against the emulator: poke, deferral and its events, failures, fail-closed paths."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from tests.airflow_compat import ENDS_IN_TRIGGER
from tests.operators.fakes import make_context
from tests.tuner_util import job_record, start_job

OUTCOME_KEYS = {"job_id", "project_id", "status", "success", "finished", "log_tail", "job"}


def sensor(job_id: Any, **kwargs: Any) -> EdgeImpulseJobSensor:
    return EdgeImpulseJobSensor(task_id="wait_job", job_id=job_id, **kwargs)


def run_trigger(trigger: EdgeImpulseJobTrigger) -> Any:
    async def first() -> Any:
        gen = trigger.run()
        try:
            async with asyncio.timeout(30):
                return await anext(gen)
        finally:
            await gen.aclose()

    return asyncio.run(first())


def deferred_trigger(task: EdgeImpulseJobSensor) -> EdgeImpulseJobTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    assert deferred.value.timeout is None, "the deadline lives in the trigger"
    assert deferred.value.method_name == "execute_complete"
    trigger = deferred.value.trigger
    assert isinstance(trigger, EdgeImpulseJobTrigger)
    return trigger


def test_poke_is_false_while_running_then_returns_the_outcome(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    assert sensor(job_id).poke(make_context()) is False
    em.finish_job(job_id, True)
    result = sensor(str(job_id)).poke(make_context())  # a templated id arrives as a string
    assert result.is_done
    outcome = result.xcom_value
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["job_id"] == job_id and outcome["project_id"] == em.project_id
    assert outcome["success"] is True and outcome["status"] == "success"
    assert outcome["job"]["finishedSuccessful"] is True
    assert outcome["log_tail"][-1] == "Job completed"


def test_poke_fails_the_task_for_a_failed_job_with_its_log_and_no_retry(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    em.finish_job(job_id, False)
    with pytest.raises(AirflowFailException, match="Last log lines") as err:
        sensor(job_id, retries=3).execute(make_context())
    assert f"Edge Impulse job {job_id} finished unsuccessfully" in str(err.value)
    assert "Job failed (see above)" in str(err.value)


def test_poke_mode_waits_until_the_job_ends(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.6)
    job_id = start_job(em)
    assert sensor(job_id, poke_interval=0.1, timeout=30).execute(make_context())["success"] is True


def test_soft_fail_skips_a_failed_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    em.finish_job(job_id, False)
    with pytest.raises(AirflowSkipException):
        sensor(job_id, soft_fail=True).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(job_id, soft_fail=True, deferrable=True).execute(make_context())


def test_deferrable_defers_to_a_trigger_that_cancels_nothing(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    before = time.time()
    trigger = deferred_trigger(sensor(job_id, deferrable=True, timeout=120, poll_interval=3, safety_interval=30))
    kwargs = trigger.serialize()[1]
    assert kwargs["cancel_on_timeout"] is False, "a sensor never cancels a job it did not start"
    assert kwargs["job_id"] == job_id and kwargs["project_id"] == em.project_id
    assert before + 120 <= kwargs["deadline"] <= time.time() + 120
    assert (kwargs["poll_interval"], kwargs["safety_interval"]) == (3, 30)
    asyncio.run(trigger.on_kill())  # a user marking the task failed
    assert not job_record(em, job_id)["finished"], "the job keeps running after the user's kill"


def test_deferred_success_ends_in_the_triggerer_on_airflow_3_and_resumes_to_the_same_result(edgeimpulse_emulator):
    from airflow.triggers.base import TaskSuccessEvent

    em = edgeimpulse_emulator
    em.configure(job_duration=0.4)
    job_id = start_job(em)
    task = sensor(job_id, deferrable=True, timeout=60)
    trigger = deferred_trigger(task)
    event = run_trigger(trigger)
    if ENDS_IN_TRIGGER:
        assert isinstance(event, TaskSuccessEvent), "ended from the triggerer: no resume race on Airflow 3.2/3.3"
        from_trigger = event.xcoms["return_value"]
    else:
        assert not isinstance(event, TaskSuccessEvent), "Airflow 2 cannot end a task from the triggerer"
        from_trigger = event.payload["outcome"]
    assert set(from_trigger) == OUTCOME_KEYS and from_trigger["success"] is True
    # Airflow 3: dag.test() resumes the task anyway with the bare "success", and the result is rebuilt over REST.
    # Airflow 2: the worker resumes with the event and returns its outcome.
    resumed = task.execute_complete(make_context(), event.payload)
    assert set(resumed) == OUTCOME_KEYS
    assert {k: resumed[k] for k in ("job_id", "status", "success", "finished")} == {
        k: from_trigger[k] for k in ("job_id", "status", "success", "finished")
    }
    poked = sensor(job_id).poke(make_context()).xcom_value
    assert resumed == poked


def test_deferred_event_dicts_settle_the_task(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    ok_job = start_job(em)
    task = sensor(ok_job, deferrable=True)
    trigger = deferred_trigger(task)
    # As on Airflow 2 (no TaskSuccessEvent): the success comes back to the worker as a dict.
    event = run_trigger(type(trigger)(**{**trigger.serialize()[1], "end_task_on_success": False}))
    assert task.execute_complete(make_context(), event.payload)["success"] is True

    em.configure(job_duration=0.3, job_outcome="failure")
    bad_job = start_job(em)
    task = sensor(bad_job, deferrable=True)
    event = run_trigger(deferred_trigger(task))
    assert event.payload["status"] == "failure"
    with pytest.raises(AirflowFailException, match="Job failed"):
        task.execute_complete(make_context(), event.payload)


def test_deferrable_does_not_defer_for_a_finished_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    ok_job, bad_job = start_job(em), start_job(em)
    em.finish_job(ok_job, True)
    em.finish_job(bad_job, False)
    assert sensor(ok_job, deferrable=True).execute(make_context())["success"] is True
    with pytest.raises(AirflowFailException, match="Job failed"):
        sensor(bad_job, deferrable=True).execute(make_context())


def test_deferred_timeout_leaves_the_job_running(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    task = sensor(job_id, deferrable=True, timeout=0.5)
    event = run_trigger(deferred_trigger(task))
    assert event.payload["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout):
        task.execute_complete(make_context(), event.payload)
    assert not job_record(em, job_id)["finished"]


def test_an_error_event_is_retryable_not_final():
    with pytest.raises(AirflowException) as err:
        sensor(1).execute_complete(make_context(), {"status": "error", "message": "Studio unreachable"})
    assert not isinstance(err.value, AirflowFailException)
    assert "Studio unreachable" in str(err.value)


@pytest.mark.parametrize(
    "event",
    [None, "garbage", 3, {"status": "?"}, {"status": "success"}, {"status": "success", "outcome": {"success": False}}],
)
def test_unknown_or_incomplete_events_fail_closed(event):
    with pytest.raises(AirflowException, match="failing closed"):
        sensor(1).execute_complete(make_context(), event)


@pytest.mark.parametrize("bad", ["abc", 0, -4, True, None, "{{ not rendered }}"])
def test_a_bad_job_id_is_named(edgeimpulse_emulator, bad):
    with pytest.raises(ValueError, match="job_id"):
        sensor(bad).poke(make_context())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"poll_interval": 0}, "poll_interval"), ({"safety_interval": -1}, "safety_interval"), ({"log_tail": 0}, "log")],
)
def test_bad_settings_fail_at_parse_time(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sensor(1, **kwargs)


def test_job_id_is_templated():
    assert "job_id" in EdgeImpulseJobSensor.template_fields
