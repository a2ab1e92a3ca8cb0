"""
A Studio that answers only 429 (``Retry-After: 0``) and then 503 for longer than any single request's retry budget,
while a job or an EON Tuner run goes on: the wait reads through it and reports the true outcome, on the blocking
path and the deferred one. An answer that retrying cannot change (401, 403, 404) still ends a wait at once.

The outage is compressed: seconds instead of minutes, against waits whose intervals (and so whose backoff, see
``OutageWatch.paced``) are short in the same proportion. With ``Retry-After: 0`` a single
request spends its whole budget (``RetryPolicy.max_attempts`` attempts) in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.hooks.policy import DEFAULT_RETRY_POLICY
from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking
from airflow_provider_edgeimpulse.jobs.waiter import WaitSettings
from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger
from tests.operators.fakes import make_context
from tests.tuner_util import STATE_ROUTE, STATUS_ROUTE, route_count, start_job, start_tuner

SETTINGS = WaitSettings(safety_interval=1.0, poll_interval=0.2)
RATE_LIMITED_S = 2.0  # 429 with Retry-After: 0 ...
OUTAGE_S = 5.0  # ... then 503 until this many seconds after the outage began
FINISH_AFTER_S = 1.0  # the job ends inside the outage, so its end can only be read after it
DEADLINE_S = 60.0
OUTAGE_STARTS = "did not answer"
OUTAGE_ENDS = "answers again"


def begin_outage(em: Any) -> float:
    """Every Studio request is answered 429 (Retry-After: 0) and then 503, starting now; returns the start."""
    em.fault(status=429, retry_after=0, duration_s=RATE_LIMITED_S)
    em.fault(status=503, duration_s=OUTAGE_S)
    return time.monotonic()


def wait_for_socket(em: Any) -> None:
    deadline = time.monotonic() + 10
    while em.sockets() < 1:
        assert time.monotonic() < deadline, "the wait never opened its socket"
        time.sleep(0.02)


def outage_during_job(em: Any, job_id: int, success: bool, *, drop_sockets: bool = False) -> dict[str, float]:
    """Once the wait is under way: the outage begins, and inside it the job ends (and sockets drop)."""
    wait_for_socket(em)
    seen = {"began": begin_outage(em)}
    if drop_sockets:
        em.fault(drop_sockets=True)  # the reconnect's socket-token read falls in the outage too
    time.sleep(FINISH_AFTER_S)
    em.finish_job(job_id, success)
    return seen


def assert_one_outage_logged(messages: list[str], what: str) -> None:
    starts = [m for m in messages if OUTAGE_STARTS in m and what in m]
    ends = [m for m in messages if OUTAGE_ENDS in m and what in m]
    assert len(starts) == 1, starts  # once per outage, not once per failed read
    assert len(ends) == 1, ends


def assert_outlasted_the_request_budget(em: Any, route: str, before: int) -> None:
    reads = route_count(em, route) - before
    # More requests than one read's whole budget (all its attempts) went by, and the wait went on.
    assert reads > DEFAULT_RETRY_POLICY.max_attempts, reads


def blocking_wait(hook: EdgeImpulseHook, job_id: int) -> dict[str, Any]:
    return wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=DEADLINE_S, settings=SETTINGS)


async def first_event(trigger: Any) -> Any:
    events = trigger.run()
    try:
        async with asyncio.timeout(DEADLINE_S + 10):
            return await anext(events)
    finally:
        await events.aclose()


def job_trigger(em: Any, job_id: int) -> EdgeImpulseJobTrigger:
    return EdgeImpulseJobTrigger(
        job_id=job_id,
        project_id=em.project_id,
        safety_interval=SETTINGS.safety_interval,
        poll_interval=SETTINGS.poll_interval,
        deadline=time.time() + DEADLINE_S,
        cancel_on_timeout=False,
    )


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
def test_the_blocking_wait_reads_through_an_outage_and_reports_the_true_outcome(
    edgeimpulse_emulator: Any, caplog: pytest.LogCaptureFixture, success: bool
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    caplog.set_level(logging.INFO)
    job_id = start_job(em)
    before = route_count(em, STATUS_ROUTE)
    seen: dict[str, float] = {}
    outage = threading.Thread(target=lambda: seen.update(outage_during_job(em, job_id, success)))
    outage.start()
    try:
        outcome = blocking_wait(EdgeImpulseHook(), job_id)
    finally:
        outage.join(30)
    assert (outcome["status"], outcome["success"]) == ("success" if success else "failure", success), outcome
    assert time.monotonic() - seen["began"] >= OUTAGE_S, "the end was read only once Studio answered again"
    assert_outlasted_the_request_budget(em, STATUS_ROUTE, before)
    assert_one_outage_logged(caplog.messages, f"job {job_id}")
    if not success:
        assert outcome["log_tail"], "a failed job's outcome still carries its log, read after the outage"


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
async def test_the_deferred_wait_reads_through_an_outage_and_reports_the_true_outcome(
    edgeimpulse_emulator: Any, caplog: pytest.LogCaptureFixture, success: bool
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    caplog.set_level(logging.INFO)
    job_id = await asyncio.to_thread(start_job, em)
    before = await asyncio.to_thread(route_count, em, STATUS_ROUTE)
    waiting = asyncio.ensure_future(first_event(job_trigger(em, job_id)))
    seen = await asyncio.to_thread(outage_during_job, em, job_id, success, drop_sockets=True)
    event = await waiting
    payload = event.payload
    assert payload["status"] == ("success" if success else "failure"), payload
    assert payload["outcome"]["success"] is success
    assert time.monotonic() - seen["began"] >= OUTAGE_S
    assert_outlasted_the_request_budget(em, STATUS_ROUTE, before)
    assert_one_outage_logged(caplog.messages, f"job {job_id}")


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
async def test_the_tuner_wait_reads_through_an_outage_and_reports_the_true_outcome(
    edgeimpulse_emulator: Any, capsys: pytest.CaptureFixture[str], success: bool
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    before = await asyncio.to_thread(route_count, em, STATE_ROUTE)
    trigger = EONTunerStateTrigger(
        project_id=em.project_id,
        tuner_coordinator_job_id=run_id,
        deadline=time.time() + DEADLINE_S,
        poll_interval=SETTINGS.poll_interval,
        cancel_on_kill=False,
    )
    waiting = asyncio.ensure_future(first_event(trigger))
    seen = await asyncio.to_thread(outage_during_job, em, run_id, success)
    event = await waiting
    payload = event.payload
    assert payload["status"] == ("success" if success else "failure"), payload
    assert payload["summary"]["running"] is False
    assert time.monotonic() - seen["began"] >= OUTAGE_S
    assert_outlasted_the_request_budget(em, STATE_ROUTE, before)
    # The trigger logs through Airflow's logger (its task log), which prints.
    assert_one_outage_logged(capsys.readouterr().out.splitlines(), f"EON Tuner run {run_id}")


POKE_INTERVAL_S = 0.2


def outage_after_first_poke(em: Any, route: str, before: int, run_id: int, success: bool) -> dict[str, float]:
    """Once a sensor has poked (it opens no socket), the outage begins, and inside it the job or run ends."""
    deadline = time.monotonic() + 10
    while route_count(em, route) <= before:
        assert time.monotonic() < deadline, "the sensor never poked"
        time.sleep(0.02)
    seen = {"began": begin_outage(em)}
    time.sleep(FINISH_AFTER_S)
    em.finish_job(run_id, success)
    return seen


def poke_through_outage(em: Any, sensor: Any, route: str, run_id: int, success: bool) -> Any:
    """The sensor's poke-mode run through an outage: what it returned (or the failure it raised)."""
    before = route_count(em, route)
    seen: dict[str, float] = {}
    outage = threading.Thread(target=lambda: seen.update(outage_after_first_poke(em, route, before, run_id, success)))
    outage.start()
    try:
        result: Any = sensor.execute(make_context())
    except AirflowFailException as err:
        result = err
    finally:
        outage.join(30)
    assert_outlasted_the_request_budget(em, route, before)
    assert time.monotonic() - seen["began"] >= OUTAGE_S, "the end was read only once Studio answered again"
    return result


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
def test_the_job_sensor_in_poke_mode_pokes_through_an_outage_and_reports_the_true_outcome(
    edgeimpulse_emulator: Any, capsys: pytest.CaptureFixture[str], success: bool
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    sensor = EdgeImpulseJobSensor(task_id="wait_job", job_id=job_id, poke_interval=POKE_INTERVAL_S, timeout=DEADLINE_S)
    result = poke_through_outage(em, sensor, STATUS_ROUTE, job_id, success)
    if success:
        assert (result["status"], result["success"]) == ("success", True), result
    else:
        assert isinstance(result, AirflowFailException), result
        assert f"Edge Impulse job {job_id} finished unsuccessfully" in str(result)
    # The sensor logs through Airflow's task logger, which prints.
    assert_one_outage_logged(capsys.readouterr().out.splitlines(), f"job {job_id}")


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
def test_the_tuner_sensor_in_poke_mode_pokes_through_an_outage_and_reports_the_true_outcome(
    edgeimpulse_emulator: Any, capsys: pytest.CaptureFixture[str], success: bool
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em)
    sensor = EONTunerStateSensor(
        task_id="wait_tuner", tuner_coordinator_job_id=run_id, poke_interval=POKE_INTERVAL_S, timeout=DEADLINE_S
    )
    result = poke_through_outage(em, sensor, STATE_ROUTE, run_id, success)
    if success:
        assert result["running"] is False and result["job_error"] is None, result
    else:
        assert isinstance(result, AirflowFailException), result
    # The sensor logs through Airflow's task logger, which prints.
    assert_one_outage_logged(capsys.readouterr().out.splitlines(), f"EON Tuner run {run_id}")


def succeeded(event: Any) -> bool:
    """A success event, or the end of the task that Airflow 3 lets a trigger make itself."""
    return isinstance(event, TaskSuccessEvent) or event.payload.get("status") == "success"


def deferred_through_outage(em: Any, sensor: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    """Studio answers only 429 (Retry-After: 0) when the deferrable sensor reads before deferring: it defers."""
    em.fault(status=429, retry_after=0, duration_s=RATE_LIMITED_S)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    assert "did not answer before deferring" in capsys.readouterr().out
    return deferred.value.trigger


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
async def test_a_deferrable_job_sensor_defers_through_an_outage_and_its_trigger_reports_the_true_outcome(
    edgeimpulse_emulator: Any, capsys: pytest.CaptureFixture[str], success: bool
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    sensor = EdgeImpulseJobSensor(
        task_id="wait_job", job_id=job_id, deferrable=True, poll_interval=SETTINGS.poll_interval, timeout=DEADLINE_S
    )
    trigger = await asyncio.to_thread(deferred_through_outage, em, sensor, capsys)
    waiting = asyncio.ensure_future(first_event(trigger))
    await asyncio.to_thread(em.finish_job, job_id, success)
    event = await waiting
    assert succeeded(event) if success else event.payload["status"] == "failure", event


async def test_a_deferrable_tuner_sensor_defers_through_an_outage_and_its_trigger_reports_the_end(
    edgeimpulse_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    sensor = EONTunerStateSensor(
        task_id="wait_tuner", tuner_coordinator_job_id=run_id, deferrable=True, state_poll_interval=0.2, timeout=60
    )
    trigger = await asyncio.to_thread(deferred_through_outage, em, sensor, capsys)
    waiting = asyncio.ensure_future(first_event(trigger))
    await asyncio.to_thread(em.finish_job, run_id, True)
    event = await waiting
    assert succeeded(event), event


STALLING_CONN_ID = "edgeimpulse_stalling"
REQUEST_TIMEOUT_S = 0.3
STALL_S = 12.0  # over one read's budget: max_attempts timeouts plus the client's backoff between them (< 10 s)


def test_the_blocking_wait_reads_through_stalled_status_reads(
    edgeimpulse_emulator: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    conn = json.loads(em.connection_json())
    conn["extra"]["timeout"] = REQUEST_TIMEOUT_S
    monkeypatch.setenv(f"AIRFLOW_CONN_{STALLING_CONN_ID.upper()}", json.dumps(conn))
    caplog.set_level(logging.INFO)
    job_id = start_job(em)
    before = route_count(em, STATUS_ROUTE)

    def stall_then_finish() -> None:
        wait_for_socket(em)
        em.fault(latency_ms=1000, path="/status")  # every status read outlasts the client's timeout
        time.sleep(FINISH_AFTER_S)
        em.finish_job(job_id, True)
        time.sleep(STALL_S)
        em.fault(latency_ms=0)

    staller = threading.Thread(target=stall_then_finish)
    staller.start()
    try:
        outcome = blocking_wait(EdgeImpulseHook(edgeimpulse_conn_id=STALLING_CONN_ID), job_id)
    finally:
        staller.join(30)
    assert (outcome["status"], outcome["success"]) == ("success", True), outcome
    assert_outlasted_the_request_budget(em, STATUS_ROUTE, before)
    assert_one_outage_logged(caplog.messages, f"job {job_id}")


FINAL_ANSWERS = [401, 403, 404]
# After the final answer: the one request that got it, plus at most one repeat (a fresh login's retry).
READS_AFTER_FINAL_ANSWER = 2


def final_answer_during_wait(em: Any, job_id: int, status: int) -> int:
    """Once the wait is under way, every status read of the job gets ``status``; the status reads so far."""
    wait_for_socket(em)
    before = route_count(em, STATUS_ROUTE)
    em.fault(status=status, path=f"/jobs/{job_id}/status", duration_s=DEADLINE_S)
    em.fault(drop_sockets=True)  # the reconnect makes the wait read the status again
    return before


@pytest.mark.parametrize("status", FINAL_ANSWERS)
def test_an_answer_that_cannot_change_ends_the_blocking_wait(edgeimpulse_emulator: Any, status: int) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    seen: dict[str, int] = {}
    answer = threading.Thread(target=lambda: seen.update(before=final_answer_during_wait(em, job_id, status)))
    answer.start()
    try:
        with pytest.raises(EdgeImpulseAPIError) as info:
            blocking_wait(EdgeImpulseHook(), job_id)
    finally:
        answer.join(30)
    assert info.value.status == status
    assert route_count(em, STATUS_ROUTE) - seen["before"] <= READS_AFTER_FINAL_ANSWER


@pytest.mark.parametrize("status", FINAL_ANSWERS)
async def test_an_answer_that_cannot_change_ends_the_deferred_wait(edgeimpulse_emulator: Any, status: int) -> None:
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    waiting = asyncio.ensure_future(first_event(job_trigger(em, job_id)))
    before = await asyncio.to_thread(final_answer_during_wait, em, job_id, status)
    event = await waiting
    assert event.payload["status"] == "error", event.payload  # not a timeout: it did not wait for the deadline
    assert f"HTTP {status}" in event.payload["message"]
    assert await asyncio.to_thread(route_count, em, STATUS_ROUTE) - before <= READS_AFTER_FINAL_ANSWER


def test_an_unknown_job_fails_the_poke_at_once(edgeimpulse_emulator: Any) -> None:
    em = edgeimpulse_emulator
    sensor = EdgeImpulseJobSensor(task_id="wait_job", job_id=987654, poke_interval=POKE_INTERVAL_S, timeout=DEADLINE_S)
    with pytest.raises(EdgeImpulseAPIError) as info:
        sensor.execute(make_context())
    assert info.value.status == 404
    assert route_count(em, STATUS_ROUTE) == 1


async def test_an_unknown_job_ends_the_deferred_wait_at_once(edgeimpulse_emulator: Any) -> None:
    em = edgeimpulse_emulator
    event = await first_event(job_trigger(em, 987654))
    assert event.payload["status"] == "error", event.payload
    assert "HTTP 404" in event.payload["message"]
    assert await asyncio.to_thread(route_count, em, STATUS_ROUTE) == 1
