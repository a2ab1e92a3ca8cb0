"""EdgeImpulseJobTrigger: one event per wait, plain-data kwargs, cancels only when it should."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import requests

from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger


def start_job(em: Any) -> int:
    resp = requests.post(
        f"{em.url}/v1/api/{em.project_id}/jobs/retrain", headers={"x-api-key": em.api_key}, json={}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


def job_record(em: Any, job_id: int) -> dict[str, Any]:
    return next(j for j in em.jobs() if j["id"] == job_id)


async def first_event(trigger: EdgeImpulseJobTrigger) -> Any:
    gen = trigger.run()
    try:
        return await anext(gen)
    finally:
        await gen.aclose()


async def wait_for_socket(em: Any) -> None:
    async with asyncio.timeout(5):
        while await asyncio.to_thread(em.sockets) < 1:
            await asyncio.sleep(0.02)


def make_trigger(em: Any, job_id: int, **kwargs: Any) -> EdgeImpulseJobTrigger:
    return EdgeImpulseJobTrigger(job_id=job_id, project_id=em.project_id, **kwargs)


def test_serialize_round_trips_exactly_and_holds_no_secret(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    trigger = make_trigger(em, 7, deadline=1234.5, safety_interval=30, poll_interval=3, xcoms={"job_id": 7})
    classpath, kwargs = trigger.serialize()
    rebuilt = EdgeImpulseJobTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert classpath == "airflow_provider_edgeimpulse.triggers.job.EdgeImpulseJobTrigger"
    dumped = json.dumps(kwargs)
    assert em.api_key not in dumped and em.password not in dumped


def old_watch_row(em: Any, job_id: int) -> tuple[str, dict[str, Any]]:
    """A trigger row the job sensor wrote before a trigger's cancel on kill became an argument."""
    kwargs = {
        "job_id": job_id,
        "project_id": em.project_id,
        "edgeimpulse_conn_id": "edgeimpulse_default",
        "deadline": time.time() + 60,
        "safety_interval": 30.0,
        "poll_interval": 0.5,
        "log_tail": 50,
        "cancel_on_timeout": False,
        "end_task_on_success": False,
        "xcoms": {},
        "deferred_at": time.time(),
    }
    return "airflow_provider_edgeimpulse.triggers.job_watch.EdgeImpulseJobWatchTrigger", kwargs


async def test_a_sensor_trigger_row_from_an_earlier_version_loads_runs_and_leaves_its_job_on_kill(
    edgeimpulse_emulator,
):
    from importlib import import_module

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    classpath, kwargs = old_watch_row(em, job_id)
    module, name = classpath.rsplit(".", 1)
    trigger = getattr(import_module(module), name)(**kwargs)  # what the triggerer does with a row
    assert trigger.serialize() == (classpath, {**kwargs, "cancel_on_kill": False})
    await trigger.on_kill()  # Airflow 2 never calls it; Airflow 3 after a user's stop
    assert not job_record(em, job_id)["finished"], "the sensor only watched the job"
    waiting = asyncio.ensure_future(first_event(trigger))
    await wait_for_socket(em)
    await asyncio.to_thread(em.finish_job, job_id, True)
    event = await asyncio.wait_for(waiting, 15)
    assert (event.payload["status"], event.payload["job_id"]) == ("success", job_id)


async def test_success_event_carries_the_outcome(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    job_id = start_job(em)
    event = await first_event(make_trigger(em, job_id))
    assert event.payload["status"] == "success"
    assert event.payload["job_id"] == job_id
    assert event.payload["outcome"]["success"] is True


async def test_failure_event_for_a_failed_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3, job_outcome="failure")
    job_id = start_job(em)
    event = await first_event(make_trigger(em, job_id))
    assert event.payload["status"] == "failure"
    assert event.payload["outcome"]["log_tail"]


async def test_end_task_on_success_ends_from_the_triggerer_with_xcoms(edgeimpulse_emulator):
    from airflow.triggers.base import TaskSuccessEvent

    em = edgeimpulse_emulator
    em.configure(job_duration=0.2)
    job_id = start_job(em)
    event = await first_event(make_trigger(em, job_id, end_task_on_success=True, xcoms={"job_id": job_id}))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms["job_id"] == job_id
    assert event.xcoms["return_value"]["success"] is True


async def test_deadline_cancels_the_remote_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    started = time.monotonic()
    event = await first_event(make_trigger(em, job_id, deadline=time.time() + 0.5))
    assert event.payload["status"] == "timeout"
    assert "cancelled" in event.payload["message"]
    assert time.monotonic() - started < 5
    assert job_record(em, job_id)["cancelled"]


async def test_timeout_without_cancel_leaves_the_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    event = await first_event(make_trigger(em, job_id, deadline=time.time() + 0.3, cancel_on_timeout=False))
    assert event.payload["status"] == "timeout"
    assert not job_record(em, job_id)["finished"]


async def test_triggerer_restart_does_not_cancel_and_the_rebuilt_trigger_gets_the_outcome(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    trigger = make_trigger(em, job_id)
    task = asyncio.create_task(first_event(trigger))
    await wait_for_socket(em)
    task.cancel()  # what a triggerer shutdown does
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not job_record(em, job_id)["finished"], "a restart must not cancel the job"
    await asyncio.to_thread(em.finish_job, job_id, True)
    _, kwargs = trigger.serialize()
    event = await first_event(EdgeImpulseJobTrigger(**kwargs))
    assert event.payload["status"] == "success"


async def test_an_unknown_job_becomes_an_error_event(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    event = await first_event(make_trigger(em, 999999))
    assert event.payload["status"] == "error"
    assert "999999" in event.payload["message"]
    assert em.api_key not in event.payload["message"]


async def _die_while_waiting(trigger: EdgeImpulseJobTrigger, em: Any) -> None:
    """Run ``trigger`` until its socket is up, then stop it the way a triggerer that goes away does."""
    task = asyncio.create_task(first_event(trigger))
    await wait_for_socket(em)
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_trigger_rebuilt_after_its_job_finished_relays_the_log_from_rest(edgeimpulse_emulator, capsys):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    await asyncio.to_thread(em.write_job_log, job_id, "heard by the first triggerer")
    trigger = make_trigger(em, job_id)
    await _die_while_waiting(trigger, em)
    # While no triggerer listens, the job logs on and ends.
    await asyncio.to_thread(em.write_job_log, job_id, "logged while no triggerer listened")
    await asyncio.to_thread(em.finish_job, job_id, True)
    capsys.readouterr()
    _, kwargs = trigger.serialize()
    event = await first_event(EdgeImpulseJobTrigger(**kwargs))
    assert event.payload["status"] == "success", event.payload
    relayed = capsys.readouterr().out  # Airflow's structlog writes trigger logs there
    assert f"[job {job_id}] logged while no triggerer listened" in relayed, relayed
    assert f"[job {job_id}] heard by the first triggerer" in relayed, relayed
    assert "logged while no triggerer listened" in event.payload["outcome"]["log_tail"]


async def test_a_trigger_rebuilt_while_its_job_runs_says_lines_may_repeat(edgeimpulse_emulator, capsys):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    await asyncio.to_thread(em.write_job_log, job_id, "before the hand-over")
    trigger = make_trigger(em, job_id)
    await _die_while_waiting(trigger, em)
    assert "may repeat" not in capsys.readouterr().out, "a trigger's first run is no hand-over"
    _, kwargs = trigger.serialize()
    # Rebuilt on another triggerer once Airflow gave the first one up (30 s without a heartbeat by default).
    kwargs["deferred_at"] -= 120
    task = asyncio.create_task(first_event(EdgeImpulseJobTrigger(**kwargs)))
    await wait_for_socket(em)
    await asyncio.to_thread(em.write_job_log, job_id, "after the hand-over")
    await asyncio.to_thread(em.finish_job, job_id, True)
    assert (await task).payload["status"] == "success"
    relayed = capsys.readouterr().out
    assert "lines from before the hand-over may repeat" in relayed, relayed
    assert relayed.index("may repeat") < relayed.index(f"[job {job_id}] before the hand-over"), relayed
    assert f"[job {job_id}] after the hand-over" in relayed, relayed
