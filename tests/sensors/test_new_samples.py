"""EdgeImpulseNewSamplesSensor: poke, reschedule-style re-pokes and deferral, against the emulator."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_edgeimpulse.new_samples import watermark as wm
from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor, commit_watermark
from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesSensorTrigger
from tests.airflow_compat import ENDS_IN_TRIGGER
from tests.operators.fakes import RecordingTaskInstance, make_context
from tests.samples_util import delete, sample_ids, upload


def sensor(store: wm.MemoryWatermarkStore, **kwargs: Any) -> EdgeImpulseNewSamplesSensor:
    kwargs.setdefault("task_id", "wait_for_data")
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    task = EdgeImpulseNewSamplesSensor(**kwargs)
    task.watermark_store = store
    return task


def stored(store: wm.MemoryWatermarkStore) -> int | None:
    values = list(store.values.values())
    return wm.parse_watermark("k", values[0]) if values else None


def wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Background:
    """A blocking execute() in a thread, as a worker runs a poking sensor."""

    def __init__(self, task: EdgeImpulseNewSamplesSensor, context: dict[str, Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(task, context), daemon=True)
        self.thread.start()

    def _run(self, task: EdgeImpulseNewSamplesSensor, context: dict[str, Any]) -> None:
        try:
            self.result = task.execute(context)
        except BaseException as err:
            self.error = err

    def join(self, timeout: float = 20) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the sensor did not finish"
        if self.error is not None:
            raise self.error
        return self.result


# -- arguments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_new_samples": 0}, "min_new_samples must be at least 1"),
        ({"min_new_samples": "many"}, "min_new_samples must be an integer"),
        ({"category": "trainnig"}, "category must be one of"),
        ({"start_after_sample_id": -5}, "start_after_sample_id must be at least 0"),
        ({"project_id": 0}, "project_id must be a positive integer"),
        ({"max_sample_ids": -1}, "max_sample_ids must be at least 0"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(Exception, match=message):
        EdgeImpulseNewSamplesSensor(task_id="t", **kwargs)


def test_templates_are_checked_once_rendered():
    task = EdgeImpulseNewSamplesSensor(task_id="t", min_new_samples="{{ params.n }}", category="{{ params.c }}")
    task.min_new_samples, task.category = "3", "testing"  # what rendering gives
    spec = task.watch_spec()
    assert spec.min_new_samples == 3 and spec.sample_filter.category == "testing"
    task.category = "bogus"
    with pytest.raises(ValueError, match="t: category must be one of"):
        task.watch_spec()
    task.category, task.labels = "training", "['idle', 'wave']"
    assert task.watch_spec().sample_filter.labels == ("idle", "wave")


def test_default_watermark_keys_are_per_task_and_per_filter():
    a = EdgeImpulseNewSamplesSensor(task_id="a").watch_spec()
    b = EdgeImpulseNewSamplesSensor(task_id="b").watch_spec()
    c = EdgeImpulseNewSamplesSensor(task_id="a", labels=["x"]).watch_spec()
    assert len({a.key(1), b.key(1), c.key(1)}) == 3
    assert a.key(1).startswith("edgeimpulse_new_samples__")
    assert EdgeImpulseNewSamplesSensor(task_id="a", watermark_key="mine").watch_spec().key(1) == "mine"


# -- poke mode ---------------------------------------------------------------------------------------------


def test_poke_mode_fires_on_the_new_uploads_and_advances_the_watermark(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    baseline = max(sample_ids(em))
    run = Background(sensor(store, min_new_samples=3), make_context())
    wait_until(lambda: stored(store) == baseline)  # first poke: the watermark starts at the newest sample
    new = upload(em, 2)
    time.sleep(0.3)
    assert run.thread.is_alive(), "2 of 3 is not enough"
    new += upload(em, 1)
    result = run.join()
    assert result["sample_ids"] == new
    assert result["new_sample_count"] == 3
    assert result["watermark"] == {"key": next(iter(store.values)), "previous": baseline, "current": max(new)}
    assert stored(store) == max(new)

    # The next DAG run starts from there: the same samples never count twice.
    again = Background(sensor(store, min_new_samples=1), make_context())
    time.sleep(0.3)
    assert again.thread.is_alive()
    later = upload(em, 1)
    assert again.join()["sample_ids"] == later


def test_poke_mode_goes_on_through_an_outage_and_fires_on_what_landed_in_it(edgeimpulse_emulator, capsys):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    baseline = max(sample_ids(em))
    run = Background(sensor(store, timeout=60), make_context())
    wait_until(lambda: stored(store) == baseline)
    # Longer than one read's retry budget, whose attempts a Retry-After: 0 spends at once.
    em.fault(status=429, retry_after=0, path="/raw-data", duration_s=1.0)
    em.fault(status=503, path="/raw-data", duration_s=3.0)
    new = upload(em, 1)
    assert run.join(30)["sample_ids"] == new
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if "did not answer" in line]) == 1, "one outage, logged once"
    assert len([line for line in lines if "answers again" in line]) == 1


def test_deleting_old_samples_neither_fires_nor_hides_new_ones(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    old = sample_ids(em)
    store = wm.MemoryWatermarkStore()
    run = Background(sensor(store, min_new_samples=2), make_context())
    wait_until(lambda: stored(store) is not None)
    delete(em, *old[:4])
    time.sleep(0.3)
    assert run.thread.is_alive(), "a deletion is not new data"
    new = upload(em, 2)  # the total is still below what it was
    assert run.join()["sample_ids"] == new


def test_a_timeout_fails_and_soft_fail_skips(edgeimpulse_emulator):
    store = wm.MemoryWatermarkStore()
    with pytest.raises(AirflowSensorTimeout):
        sensor(store, timeout=0.3).execute(make_context())
    with pytest.raises(AirflowSkipException):
        sensor(store, timeout=0.3, soft_fail=True).execute(make_context())


def test_an_unknown_category_on_the_server_side_fails_clearly(edgeimpulse_emulator):
    # "anomaly" is the older API's name; the emulator (like today's Studio) lists post-processing instead.
    task = sensor(wm.MemoryWatermarkStore())
    task.category = "anomaly"
    with pytest.raises(ValueError, match="category must be one of"):
        task.execute(make_context())


def test_start_after_counts_existing_samples_and_the_ids_are_capped(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    seeded = sample_ids(em)
    result = sensor(store, start_after_sample_id=0, max_sample_ids=5).execute(make_context())
    assert result["new_sample_count"] == len(seeded)
    assert result["sample_ids"] == seeded[-5:]
    assert result["truncated"] is True


def test_without_advance_the_watermark_moves_only_on_commit(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    baseline = max(sample_ids(em))
    run = Background(sensor(store, advance_watermark=False), make_context())
    wait_until(lambda: stored(store) is not None)
    new = upload(em, 2)
    result = run.join()
    assert stored(store) == baseline, "a failed run would see the same samples again"
    assert sensor(store, advance_watermark=False).execute(make_context())["sample_ids"] == new
    assert commit_watermark(result, store) == max(new)
    assert stored(store) == max(new)
    with pytest.raises(ValueError, match="sensor's result"):
        commit_watermark({"sample_ids": []}, store)


# -- deferrable mode ---------------------------------------------------------------------------------------


def defer(task: EdgeImpulseNewSamplesSensor, context: dict[str, Any]) -> EdgeImpulseNewSamplesSensorTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, EdgeImpulseNewSamplesSensorTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is None, "the deadline lives in the trigger"
    return trigger


async def first_event(trigger: EdgeImpulseNewSamplesSensorTrigger) -> Any:
    gen = trigger.run()
    try:
        return await anext(gen)
    finally:
        await gen.aclose()


def event_result(event: Any) -> dict[str, Any]:
    """The sensor's result in a success event: its XCom on Airflow 3, what the worker resumes with on Airflow 2."""
    return event.xcoms["return_value"] if ENDS_IN_TRIGGER else event.payload["result"]


async def test_deferred_sensor_fires_from_the_trigger_with_exactly_the_new_samples(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    baseline = max(sample_ids(em))
    context = make_context()
    task = sensor(store, deferrable=True, min_new_samples=2)
    trigger = await asyncio.to_thread(defer, task, context)
    trigger.watermark_store = store
    key = next(iter(store.values))
    assert context["ti"].xcoms["watermark_previous"] == baseline
    assert trigger.after_id == baseline
    assert trigger.commit_watermark_key == (key if ENDS_IN_TRIGGER else None)

    pending = asyncio.create_task(first_event(trigger))
    new = await asyncio.to_thread(upload, em, 1)
    await asyncio.sleep(0.3)
    assert not pending.done()
    new += await asyncio.to_thread(upload, em, 1)
    event = await asyncio.wait_for(pending, 10)
    if ENDS_IN_TRIGGER:
        assert isinstance(event, TaskSuccessEvent), "nothing is left for a worker: the trigger ends the task"
    else:
        assert not isinstance(event, TaskSuccessEvent), "Airflow 2 cannot end a task from the triggerer"
        assert stored(store) == baseline, "the worker commits, once it has the result"
        assert (await asyncio.to_thread(task.execute_complete, context, event.payload))["sample_ids"] == new
    assert event_result(event)["sample_ids"] == new
    assert stored(store) == max(new)

    # Airflow 3's dag.test() resumes a task the trigger ended, with event "success": the result is rebuilt, no more.
    ti = context["ti"]
    upload(em, 1)  # landed after the trigger fired: belongs to the next run
    again = sensor(store, deferrable=True, min_new_samples=2)
    assert (await asyncio.to_thread(again.execute_complete, {"ti": ti}, "success"))["sample_ids"] == new


async def test_a_triggerer_restart_rechecks_from_the_same_watermark(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    trigger = await asyncio.to_thread(defer, sensor(store, deferrable=True), make_context())
    trigger.watermark_store = store
    pending = asyncio.create_task(first_event(trigger))
    await asyncio.sleep(0.2)
    pending.cancel()  # triggerer shutdown
    with pytest.raises(asyncio.CancelledError):
        await pending
    new = await asyncio.to_thread(upload, em, 2)
    classpath, kwargs = trigger.serialize()
    rebuilt = EdgeImpulseNewSamplesSensorTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    rebuilt.watermark_store = store
    event = await asyncio.wait_for(first_event(rebuilt), 10)
    assert event_result(event)["sample_ids"] == new


async def test_deferred_timeout_and_errors_fail_closed(edgeimpulse_emulator):
    store = wm.MemoryWatermarkStore()
    task = sensor(store, deferrable=True, timeout=0.3)
    trigger = await asyncio.to_thread(defer, task, make_context())
    trigger.watermark_store = store
    event = await asyncio.wait_for(first_event(trigger), 10)
    assert event.payload["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout):
        task.execute_complete(make_context(), event.payload)
    task.soft_fail = True
    with pytest.raises(AirflowSkipException):
        task.execute_complete(make_context(), event.payload)
    with pytest.raises(Exception, match="failing closed"):
        task.execute_complete(make_context(), {"status": "weird"})
    with pytest.raises(Exception, match="boom"):
        task.execute_complete(make_context(), {"status": "error", "message": "boom"})


async def test_an_unreachable_project_is_an_error_event(edgeimpulse_emulator):
    trigger = EdgeImpulseNewSamplesSensorTrigger(project_id=999, after_id=0, watermark_key="k", poll_interval=0.05)
    trigger.watermark_store = wm.MemoryWatermarkStore()
    event = await asyncio.wait_for(first_event(trigger), 60)
    assert event.payload["status"] == "error"
    assert edgeimpulse_emulator.api_key not in event.payload["message"]


def test_resumed_with_a_result_on_airflow_2_commits_on_the_worker(edgeimpulse_emulator):
    # Airflow 2.11 cannot end a task from the trigger: the worker resumes with the result and commits.
    store = wm.MemoryWatermarkStore()
    task = sensor(store)
    result = {"sample_ids": [40, 41], "watermark": {"key": "wk", "previous": 39, "current": 41}}
    event = {"status": "success", "result": result}
    assert task.execute_complete(make_context(RecordingTaskInstance()), event) == result
    assert wm.parse_watermark("wk", store.values["wk"]) == 41
