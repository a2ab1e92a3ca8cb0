"""EONTunerStateTrigger and EONTunerStateSensor against the emulator's EON Tuner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_edgeimpulse.jobs import tuner_state
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor
from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger
from tests.operators.fakes import make_context


def start_tuner(em: Any, trials: int = 3) -> int:
    headers = {"x-api-key": em.api_key}
    base = f"{em.url}/v1/api/{em.project_id}"
    config = {"targetLatency": 100, "targetDevice": {"name": "cortex-m4f-80mhz"}, "tuningMaxTrials": trials}
    requests.post(f"{base}/optimize/config", headers=headers, json=config, timeout=10).raise_for_status()
    resp = requests.post(f"{base}/jobs/optimize", headers=headers, json={}, timeout=10)
    resp.raise_for_status()
    return int(resp.json()["id"])


def trigger_for(em: Any, run_id: int, **kwargs: Any) -> EONTunerStateTrigger:
    kwargs.setdefault("poll_interval", 30)
    return EONTunerStateTrigger(project_id=em.project_id, tuner_coordinator_job_id=run_id, **kwargs)


async def first_event(trigger: EONTunerStateTrigger) -> Any:
    gen = trigger.run()
    try:
        return await anext(gen)
    finally:
        await gen.aclose()


def test_serialize_round_trips_exactly_without_secrets(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    trigger = trigger_for(em, 5, deadline=123.0, metric="loss", metric_mode="min")
    classpath, kwargs = trigger.serialize()
    assert EONTunerStateTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert em.api_key not in json.dumps(kwargs)


async def test_the_coordinator_finish_wakes_it_with_a_summary(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=1.0)
    run_id = await asyncio.to_thread(start_tuner, em)
    started = time.monotonic()
    event = await first_event(trigger_for(em, run_id, poll_interval=300))
    assert time.monotonic() - started < 20, "woken by the job-finished event, not the 300 s state poll"
    assert event.payload["status"] == "success"
    summary = event.payload["summary"]
    assert summary["trial_counts"]["completed"] == 3
    assert summary["best_trial"]["trial_id"].startswith(f"trial_{run_id}_")


async def test_state_polling_finishes_it_when_websockets_are_blocked(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.5)
    em.fault(block_websockets=True)
    run_id = await asyncio.to_thread(start_tuner, em)
    event = await first_event(trigger_for(em, run_id, poll_interval=0.3))
    assert event.payload["status"] == "success"


async def test_every_trial_failed_is_a_failure(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.5, tuner_trial_failures=3)
    run_id = await asyncio.to_thread(start_tuner, em, 3)
    event = await first_event(trigger_for(em, run_id, poll_interval=0.5))
    assert event.payload["status"] == "failure"
    assert "every one of the 3" in event.payload["message"]


async def test_deadline_gives_a_timeout_and_keeps_the_run(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    event = await first_event(trigger_for(em, run_id, deadline=time.time() + 0.5))
    assert event.payload["status"] == "timeout"
    assert not next(j for j in em.jobs() if j["id"] == run_id)["finished"]


async def test_on_kill_cancels_the_run_but_a_restart_does_not(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    task = asyncio.ensure_future(first_event(trigger_for(em, run_id)))
    await asyncio.sleep(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not next(j for j in em.jobs() if j["id"] == run_id)["finished"]
    await trigger_for(em, run_id).on_kill()
    assert next(j for j in em.jobs() if j["id"] == run_id)["cancelled"]


def test_sensor_pokes_until_done_and_pushes_the_summary(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    sensor = EONTunerStateSensor(task_id="tuner", tuner_coordinator_job_id=run_id, metric="accuracy")
    assert sensor.poke(make_context()) is False
    em.finish_job(run_id, True)
    result = sensor.poke(make_context())
    assert result.is_done
    assert result.xcom_value["best_trial"]["metric"] == "accuracy"


def test_sensor_defers_while_the_run_goes_on(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    sensor = EONTunerStateSensor(task_id="tuner", tuner_coordinator_job_id=run_id, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    assert isinstance(deferred.value.trigger, EONTunerStateTrigger)
    with pytest.raises(AirflowFailException, match="every one"):
        sensor.execute_complete(make_context(), {"status": "failure", "message": "every one of the 3 trials failed"})


def test_summary_reads_unknown_enums_permissively():
    state = {
        "tunerJobIsRunning": False,
        "status": {"status": "brand-new-status"},
        "trials": [
            {"id": "a", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": 0.8}}}},
            {"id": "b", "status": "quantum", "metrics": {}},
            {"id": "c", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": 0.9}}}},
            "not a trial",
        ],
    }
    summary = tuner_state.summarize(state, "accuracy", "max")
    assert summary["trial_counts"]["other"] == 1
    assert summary["best_trial"]["trial_id"] == "c"
    assert summary["status"] == "brand-new-status"
    assert tuner_state.run_failure(state) is None
    assert tuner_state.run_failure({"jobError": "OOM"}) == "the EON Tuner run ended with an error: OOM"
    assert tuner_state.is_running({"tunerJobIsRunning": "maybe"}) is True
