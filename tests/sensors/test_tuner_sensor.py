"""EONTunerStateSensor against the emulator's EON Tuner: the XCom summary in every mode, failures, deferral."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor
from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger
from tests.airflow_compat import ENDS_IN_TRIGGER
from tests.operators.fakes import make_context
from tests.tuner_util import job_record, start_tuner


def sensor(run_id: Any, **kwargs: Any) -> EONTunerStateSensor:
    return EONTunerStateSensor(task_id="wait_for_tuner", tuner_coordinator_job_id=run_id, **kwargs)


def raw_state(em: Any, run_id: int) -> dict[str, Any]:
    resp = requests.get(
        f"{em.url}/v1/api/{em.project_id}/optimize/{run_id}/state", headers={"x-api-key": em.api_key}, timeout=10
    )
    resp.raise_for_status()
    return dict(resp.json())


def run_trigger(trigger: EONTunerStateTrigger) -> Any:
    async def first() -> Any:
        gen = trigger.run()
        try:
            async with asyncio.timeout(30):
                return await anext(gen)
        finally:
            await gen.aclose()

    return asyncio.run(first())


def deferred_trigger(task: EONTunerStateSensor) -> EONTunerStateTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    assert deferred.value.timeout is None, "the deadline lives in the trigger"
    trigger = deferred.value.trigger
    assert isinstance(trigger, EONTunerStateTrigger)
    return trigger


def test_poke_until_over_then_the_summary(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None, tuner_trial_failures=1)
    run_id = start_tuner(em, trials=4)
    assert sensor(run_id).poke(make_context()) is False
    em.finish_job(run_id, True)
    result = sensor(run_id).poke(make_context())
    assert result.is_done
    summary = result.xcom_value

    # Checked against the raw state the emulator serves, not against the code under test.
    state = raw_state(em, run_id)
    completed = [t for t in state["trials"] if t["status"] == "completed"]
    best = max(completed, key=lambda t: t["metrics"]["validation"]["float32"]["accuracy"])
    assert summary["best_trial"] == {
        "trial_id": best["id"],
        "value": best["metrics"]["validation"]["float32"]["accuracy"],
        "metric": "accuracy",
        "mode": "max",
    }
    assert summary["best_trial_error"] is None
    assert summary["tuner_coordinator_job_id"] == run_id
    assert summary["running"] is False and summary["run_status"] == "completed"
    assert summary["status_counts"]["numCompletedTrials"] == 3
    assert summary["status_counts"]["numFailedTrials"] == 1
    assert summary["trial_counts"] == {"pending": 0, "running": 0, "completed": 3, "failed": 1, "other": 0}
    assert [(t["id"], t["name"], t["status"]) for t in summary["trials"]] == [
        (t["id"], t["name"], t["status"]) for t in state["trials"]
    ]
    first = summary["trials"][0]
    raw_first = state["trials"][0]
    assert first["value"] == raw_first["metrics"]["validation"]["float32"]["accuracy"]
    assert first["metrics"]["validation"]["float32"] == {
        "accuracy": raw_first["metrics"]["validation"]["float32"]["accuracy"],
        "loss": raw_first["metrics"]["validation"]["float32"]["loss"],
    }
    assert first["metrics"]["devicePerformance"] == {k: float(v) for k, v in raw_first["devicePerformance"].items()}
    assert summary["trials"][-1]["metrics"] == {} and summary["trials"][-1]["value"] is None  # the failed one
    assert summary["job_error"] is None


def test_a_minimised_metric_path(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em, trials=3)
    em.finish_job(run_id, True)
    summary = sensor(run_id, metric="test.loss").poke(make_context()).xcom_value
    state = raw_state(em, run_id)
    best = min(state["trials"], key=lambda t: t["metrics"]["test"]["float32"]["loss"])
    assert summary["best_trial"]["trial_id"] == best["id"]
    assert summary["best_trial"]["mode"] == "min", "loss is minimised unless told otherwise"


def test_a_metric_no_trial_reports_gives_no_best_trial_but_no_failure(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    em.finish_job(run_id, True)
    summary = sensor(run_id, metric="train.accuracy").poke(make_context()).xcom_value
    assert summary["best_trial"] is None
    assert "train.accuracy" in summary["best_trial_error"]


def test_every_trial_failed_fails_the_task_with_the_log(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None, tuner_trial_failures=3)
    run_id = start_tuner(em, trials=3)
    em.finish_job(run_id, True)
    with pytest.raises(AirflowFailException, match="every one of the 3") as err:
        sensor(run_id, retries=2).execute(make_context())
    assert "emulated trial failure" in str(err.value)


def test_a_job_error_fails_the_task(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    em.finish_job(run_id, False)
    with pytest.raises(AirflowFailException, match="ended with an error"):
        sensor(run_id).poke(make_context())


def test_a_run_cancelled_before_any_trial_completed_fails_the_task(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    requests.post(
        f"{em.url}/v1/api/{em.project_id}/jobs/{run_id}/cancel", headers={"x-api-key": em.api_key}, timeout=10
    ).raise_for_status()
    with pytest.raises(AirflowFailException, match="no EON Tuner trial completed"):
        sensor(run_id).poke(make_context())


def test_deferrable_defers_with_the_trigger_settings(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    before = time.time()
    trigger = deferred_trigger(sensor(str(run_id), deferrable=True, timeout=3600, state_poll_interval=15))
    kwargs = trigger.serialize()[1]
    assert kwargs["tuner_coordinator_job_id"] == run_id and kwargs["project_id"] == em.project_id
    assert before + 3600 <= kwargs["deadline"] <= time.time() + 3600
    assert kwargs["poll_interval"] == 15
    assert (kwargs["metric"], kwargs["metric_mode"]) == ("accuracy", "max"), "the mode is resolved before deferring"
    assert kwargs["cancel_on_kill"] is True
    assert kwargs["end_task_on_success"] is ENDS_IN_TRIGGER


def test_the_summary_is_the_same_in_every_mode(edgeimpulse_emulator):
    from airflow.triggers.base import TaskSuccessEvent

    em = edgeimpulse_emulator
    em.configure(job_duration=None, tuner_trial_failures=1)
    run_id = start_tuner(em, trials=3)
    task = sensor(run_id, deferrable=True, state_poll_interval=300)
    trigger = deferred_trigger(task)
    plain = EONTunerStateTrigger(**{**trigger.serialize()[1], "end_task_on_success": False})
    em.finish_job(run_id, True)

    ended = run_trigger(trigger)
    if ENDS_IN_TRIGGER:
        assert isinstance(ended, TaskSuccessEvent)
        from_triggerer = ended.xcoms["return_value"]
    else:
        assert not isinstance(ended, TaskSuccessEvent), "Airflow 2 cannot end a task from the triggerer"
        from_triggerer = ended.payload["summary"]
    # Airflow 3: dag.test() resumes anyway, with the bare "success". Airflow 2: the worker resumes with the event.
    resumed_bare = task.execute_complete(make_context(), ended.payload)
    resumed_dict = task.execute_complete(make_context(), run_trigger(plain).payload)  # Airflow 2
    poked = sensor(run_id).poke(make_context()).xcom_value
    already_over = sensor(run_id, deferrable=True).execute(make_context())
    assert from_triggerer == resumed_bare == resumed_dict == poked == already_over
    assert from_triggerer["best_trial"]["trial_id"].startswith(f"trial_{run_id}_")


def test_deferred_failure_fails_the_task(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.4, tuner_trial_failures=3)
    run_id = start_tuner(em, trials=3)
    task = sensor(run_id, deferrable=True, state_poll_interval=0.3)
    event = run_trigger(deferred_trigger(task))
    assert event.payload["status"] == "failure"
    with pytest.raises(AirflowFailException, match="every one of the 3"):
        task.execute_complete(make_context(), event.payload)


def test_deferred_timeout_leaves_the_run_going(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    task = sensor(run_id, deferrable=True, timeout=0.5)
    event = run_trigger(deferred_trigger(task))
    with pytest.raises(AirflowSensorTimeout):
        task.execute_complete(make_context(), event.payload)
    assert not job_record(em, run_id)["finished"]


def test_deferrable_does_not_defer_for_a_failed_run_and_soft_fail_skips(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    em.finish_job(run_id, False)
    with pytest.raises(AirflowFailException):
        sensor(run_id, deferrable=True).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(run_id, deferrable=True, soft_fail=True).execute(make_context())


@pytest.mark.parametrize(
    "event",
    [None, "garbage", 7, {"status": "?"}, {"status": "success"}, {"status": "success", "summary": "not a dict"}],
)
def test_unknown_or_incomplete_events_fail_closed(event):
    with pytest.raises(AirflowException, match="failing closed"):
        sensor(1).execute_complete(make_context(), event)


def test_an_error_event_is_retryable_not_final():
    with pytest.raises(AirflowException) as err:
        sensor(1).execute_complete(make_context(), {"status": "error", "message": "Studio unreachable"})
    assert not isinstance(err.value, AirflowFailException)


def test_a_metric_typo_fails_the_dag_parse_but_templates_wait_for_rendering():
    with pytest.raises(ValueError, match="unknown"):
        sensor(1, metric="acuracy")
    with pytest.raises(ValueError, match="metric_mode"):
        sensor(1, metric="validation.f1")
    templated = sensor(1, metric="{{ params.metric }}")
    assert {"tuner_coordinator_job_id", "metric", "metric_mode", "project_id"} <= set(templated.template_fields)
    templated.metric = "acuracy"  # what rendering a bad param gives
    with pytest.raises(ValueError, match="unknown"):
        templated.poke(make_context())


@pytest.mark.parametrize("bad", ["abc", 0, -1, None, True])
def test_a_bad_run_id_is_named(edgeimpulse_emulator, bad):
    with pytest.raises(ValueError, match="tuner_coordinator_job_id"):
        sensor(bad).poke(make_context())
