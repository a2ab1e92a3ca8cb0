"""EONTunerStateTrigger against the emulator's EON Tuner over loopback HTTP and Socket.IO."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest

from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger
from tests.jobs.scripted_socket import ScriptedSubscription, early_then_replayed
from tests.tuner_util import STATE_ROUTE, job_record, route_count, start_tuner


def state_reads(em: Any) -> int:
    return route_count(em, STATE_ROUTE)


def make_trigger(em: Any, run_id: int, **kwargs: Any) -> EONTunerStateTrigger:
    kwargs.setdefault("poll_interval", 300)  # long: a test that finishes quickly was woken by something else
    return EONTunerStateTrigger(project_id=em.project_id, tuner_coordinator_job_id=run_id, **kwargs)


async def first_event(trigger: EONTunerStateTrigger) -> Any:
    gen = trigger.run()
    try:
        async with asyncio.timeout(30):
            return await anext(gen)
    finally:
        await gen.aclose()


async def wait_for_sockets(em: Any, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while await asyncio.to_thread(em.sockets) < count:
            await asyncio.sleep(0.02)


def test_serialize_round_trips_exactly_and_holds_no_secret(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    trigger = make_trigger(
        em,
        5,
        deadline=1234.5,
        poll_interval=7,
        metric="test.loss",
        metric_mode="min",
        model_variant="int8",
        cancel_on_kill=False,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_edgeimpulse.triggers.tuner.EONTunerStateTrigger"
    rebuilt = EONTunerStateTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert vars(rebuilt) == vars(trigger)
    assert kwargs == {
        "project_id": em.project_id,
        "tuner_coordinator_job_id": 5,
        "edgeimpulse_conn_id": "edgeimpulse_default",
        "deadline": 1234.5,
        "poll_interval": 7.0,
        "metric": "test.loss",
        "metric_mode": "min",
        "model_variant": "int8",
        "cancel_on_kill": False,
        "end_task_on_success": False,
    }
    dumped = json.dumps(kwargs)  # plain data only: json.dumps would raise on anything else
    assert em.api_key not in dumped and em.password not in dumped
    # A trigger row written before model_variant existed still builds: the run's own precision counts.
    older = {key: value for key, value in kwargs.items() if key != "model_variant"}
    assert EONTunerStateTrigger(**older).model_variant is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "acuracy"}, "unknown"),
        ({"metric_mode": "up"}, "metric_mode"),
        ({"model_variant": "int4"}, "model_variant"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": True}, "poll_interval"),
    ],
)
def test_bad_arguments_fail_on_the_worker_before_deferring(edgeimpulse_emulator, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_trigger(edgeimpulse_emulator, 5, **kwargs)


async def test_the_coordinators_job_finished_event_wakes_it_with_a_summary(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    task = asyncio.ensure_future(first_event(make_trigger(em, run_id, poll_interval=300)))
    await wait_for_sockets(em)
    await asyncio.sleep(0.2)
    reads_before = await asyncio.to_thread(state_reads, em)
    started = time.monotonic()
    await asyncio.to_thread(em.finish_job, run_id, True)
    event = await task
    assert time.monotonic() - started < 5, "woken by the job-finished event, not by the 300 s state poll"
    assert await asyncio.to_thread(state_reads, em) - reads_before <= 2
    payload = event.payload
    assert payload["status"] == "success", payload
    assert payload["tuner_coordinator_job_id"] == run_id
    summary = payload["summary"]
    assert summary["running"] is False
    assert summary["trial_counts"]["completed"] == 3
    assert summary["status_counts"]["numCompletedTrials"] == 3
    assert summary["best_trial"]["trial_id"].startswith(f"trial_{run_id}_")
    assert summary["best_trial"]["metric"] == "accuracy" and summary["best_trial"]["mode"] == "max"


async def test_state_polling_finishes_it_when_websockets_are_blocked(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.6)
    em.fault(block_websockets=True)
    run_id = await asyncio.to_thread(start_tuner, em)
    event = await first_event(make_trigger(em, run_id, poll_interval=0.2))
    assert event.payload["status"] == "success", event.payload
    assert await asyncio.to_thread(state_reads, em) >= 2, "the end was found by reading the state again"
    assert await asyncio.to_thread(em.sockets) == 0


async def test_a_reconnect_rereads_the_state_so_a_finish_missed_while_down_is_seen(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    task = asyncio.ensure_future(first_event(make_trigger(em, run_id, poll_interval=300)))
    await wait_for_sockets(em)
    # The socket goes down and stays down while the run ends: its job-finished event is lost.
    await asyncio.to_thread(em.fault, block_websockets=True)
    await asyncio.to_thread(em.fault, drop_sockets=True)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(em.finish_job, run_id, True)
    await asyncio.sleep(0.3)
    assert not task.done()
    await asyncio.to_thread(em.fault, block_websockets=False)
    event = await asyncio.wait_for(task, 20)  # the hub's reconnect back-off is short after few failures
    assert event.payload["status"] == "success", event.payload


async def test_every_trial_failed_is_a_failure_with_the_log(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.5, tuner_trial_failures=3)
    run_id = await asyncio.to_thread(start_tuner, em, 3)
    event = await first_event(make_trigger(em, run_id))
    payload = event.payload
    assert payload["status"] == "failure", payload
    assert "every one of the 3 EON Tuner trials failed" in payload["message"]
    assert "Last log lines" in payload["message"] and "emulated trial failure" in payload["message"]
    assert payload["summary"]["trial_counts"]["failed"] == 3
    assert payload["summary"]["best_trial"] is None


async def test_a_job_error_is_a_failure(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3, job_outcome="failure")
    run_id = await asyncio.to_thread(start_tuner, em)
    event = await first_event(make_trigger(em, run_id))
    assert event.payload["status"] == "failure", event.payload
    assert "ended with an error" in event.payload["message"]
    assert event.payload["summary"]["job_error"]


async def test_the_deadline_gives_a_timeout_and_leaves_the_run_going(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    started = time.monotonic()
    event = await first_event(make_trigger(em, run_id, deadline=time.time() + 0.6))
    assert 0.5 < time.monotonic() - started < 10
    assert event.payload["status"] == "timeout", event.payload
    assert event.payload["summary"]["running"] is True, "the progress so far comes with the timeout"
    record = await asyncio.to_thread(job_record, em, run_id)
    assert not record["finished"] and not record["cancelled"]


async def test_a_run_that_ended_before_a_passed_deadline_is_still_a_success(edgeimpulse_emulator):
    """A triggerer that comes back after the deadline reports what happened, not a timeout."""
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    await asyncio.to_thread(em.finish_job, run_id, True)
    event = await first_event(make_trigger(em, run_id, deadline=time.time() - 60))
    assert event.payload["status"] == "success", event.payload


async def test_an_unknown_run_is_an_error_event(edgeimpulse_emulator):
    event = await first_event(make_trigger(edgeimpulse_emulator, 987654))
    assert event.payload["status"] == "error"
    assert "987654" in event.payload["message"]
    assert event.payload["summary"] is None


async def test_a_missing_connection_is_an_error_event(edgeimpulse_emulator):
    event = await first_event(make_trigger(edgeimpulse_emulator, 1, edgeimpulse_conn_id="no_such_connection"))
    assert event.payload["status"] == "error"


async def test_end_task_on_success_ends_the_task_from_the_triggerer(edgeimpulse_emulator):
    from airflow.triggers.base import TaskSuccessEvent

    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    run_id = await asyncio.to_thread(start_tuner, em)
    event = await first_event(make_trigger(em, run_id, poll_interval=0.5, end_task_on_success=True))
    assert isinstance(event, TaskSuccessEvent)
    summary = event.xcoms["return_value"]
    assert summary["best_trial"]["trial_id"].startswith(f"trial_{run_id}_")


async def test_a_failure_is_not_ended_from_the_triggerer(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3, tuner_trial_failures=3)
    run_id = await asyncio.to_thread(start_tuner, em)
    event = await first_event(make_trigger(em, run_id, end_task_on_success=True))
    assert event.payload["status"] == "failure"


async def test_on_kill_without_cancel_on_kill_leaves_the_run(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    await make_trigger(em, run_id, cancel_on_kill=False).on_kill()
    assert not (await asyncio.to_thread(job_record, em, run_id))["finished"]


async def test_a_cancelled_run_cancels_nothing_and_releases_the_socket(edgeimpulse_emulator):
    """A triggerer restart cancels run(): the search goes on for the next triggerer to re-attach to."""
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    task = asyncio.ensure_future(first_event(make_trigger(em, run_id)))
    await wait_for_sockets(em)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
    record = await asyncio.to_thread(job_record, em, run_id)
    assert not record["finished"] and not record["cancelled"]
    async with asyncio.timeout(5):
        while await asyncio.to_thread(em.sockets):
            await asyncio.sleep(0.05)


async def test_the_coordinators_log_is_relayed_once_across_a_reconnect(edgeimpulse_emulator, capsys):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    trigger = make_trigger(em, run_id)
    task = asyncio.ensure_future(first_event(trigger))
    await wait_for_sockets(em)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(em.fault, drop_sockets=True)  # the reconnect replays the log from its start
    await wait_for_sockets(em)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(em.finish_job, run_id, True)
    assert (await task).payload["status"] == "success"
    relayed = capsys.readouterr().out  # Airflow's structlog writes trigger logs there
    assert relayed.count(f"[tuner {run_id}] Starting EON Tuner") == 1, relayed
    assert relayed.count(f"[tuner {run_id}] Job completed") == 1, relayed


class _TunerStates:
    """The REST side of a run that is over by the read after its finish (the first, the reconnect's, that one)."""

    def __init__(self) -> None:
        self.reads = 0

    async def get_tuner_state(self, project_id: int, run_id: int) -> dict[str, Any]:
        self.reads += 1
        return {"tunerJobIsRunning": self.reads < 3, "trials": []}


async def test_live_lines_ahead_of_the_subscription_reach_the_task_log_once():
    """The room's live lines can reach a new socket before it is subscribed; the replay then repeats them."""
    from airflow_provider_edgeimpulse.jobs.hub import HubEvent
    from airflow_provider_edgeimpulse.jobs.relay import LogRelay

    log_lines = ["Starting EON Tuner", "trial 1", "trial 2", "scheduling", "trial 3", "scheduling", "Job completed"]
    events = [*early_then_replayed(log_lines, early=slice(3, 5)), HubEvent("finished", success=True)]
    relayed: list[str] = []
    trigger = EONTunerStateTrigger(project_id=1, tuner_coordinator_job_id=7)
    state = await trigger._wait(_TunerStates(), ScriptedSubscription(events), LogRelay(relayed.append))
    assert state["tunerJobIsRunning"] is False
    assert sorted(relayed) == sorted(log_lines), "each line reaches the task log once"
