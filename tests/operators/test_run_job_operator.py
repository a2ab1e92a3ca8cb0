"""EdgeImpulseRunJobOperator: the mechanics every job operator inherits, against the emulator."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed, EdgeImpulseRunJobOperator
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from tests.airflow_compat import AIRFLOW_2, HAS_TASK_STATE_STORE
from tests.operators.fakes import DictStateStore, RecordingTaskInstance, make_context
from tests.operators.helpers import defer_and_resume


def operator(**kwargs: Any) -> EdgeImpulseRunJobOperator:
    kwargs.setdefault("task_id", "retrain")
    kwargs.setdefault("job_path", "jobs/retrain")
    return EdgeImpulseRunJobOperator(**kwargs)


def emulator_jobs(em: Any) -> list[dict[str, Any]]:
    return em.jobs()


def wait_for_jobs(em: Any, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = em.jobs()
        if len(jobs) >= count:
            return jobs
        time.sleep(0.02)
    raise AssertionError(f"expected {count} jobs in the emulator, saw {len(em.jobs())}")


def test_blocking_run_returns_the_outcome_and_pushes_job_id_and_link(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    context = make_context()
    result = operator(deferrable=False).execute(context)
    assert result["success"] is True
    assert result["status"] == "success"
    ti = context["ti"]
    assert ti.xcoms["job_id"] == result["job_id"]
    assert ti.xcoms["studio_url"] == f"{em.url}/studio/{em.project_id}/jobs/{result['job_id']}"


def test_a_failed_job_fails_the_task_with_its_log_tail(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3, job_outcome="failure")
    context = make_context()
    with pytest.raises(EdgeImpulseJobFailed, match="Last log lines") as err:
        operator(deferrable=False).execute(context)
    assert "emulated failure" in str(err.value)
    assert "job_id" in context["ti"].xcoms, "the job id is pushed even when the job fails"


def test_blocking_timeout_cancels_the_remote_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    with pytest.raises(EdgeImpulseJobFailed, match="cancelled"):
        operator(deferrable=False, timeout=0.5).execute(make_context())
    (job,) = em.jobs()
    assert job["cancelled"]


def test_on_kill_cancels_the_running_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    op = operator(deferrable=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(make_context())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_jobs(em, 1)
    time.sleep(0.2)
    op.on_kill()
    thread.join(15)
    (job,) = em.jobs()
    assert job["cancelled"]
    assert errors
    assert isinstance(errors[0], EdgeImpulseJobFailed)


class _KilledBeforeTheWait(EdgeImpulseRunJobOperator):
    """The worker is killed right after the job started, before the wait began."""

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        self.on_kill()
        raise RuntimeError("killed before the wait")


def test_on_kill_right_after_the_start_cancels_the_job(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    op = _KilledBeforeTheWait(task_id="killed", job_path="jobs/retrain", deferrable=False)
    with pytest.raises(RuntimeError, match="killed before the wait"):
        op.execute(make_context())
    (job,) = em.jobs()
    assert job["cancelled"]


def test_a_retry_re_attaches_to_the_running_job_instead_of_starting_another(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    store = DictStateStore()
    # First try: the job starts, then the worker is lost (modelled by not waiting).
    first = operator(wait_for_completion=False).execute(make_context(store=store))
    assert first["status"] == "started"
    results: dict[str, Any] = {}

    def retry() -> None:
        results["value"] = operator(deferrable=False).execute(make_context(store=store))

    thread = threading.Thread(target=retry)
    thread.start()
    time.sleep(0.5)
    em.finish_job(first["job_id"], True)
    thread.join(15)
    assert results["value"]["job_id"] == first["job_id"]
    assert len(em.jobs()) == 1, "no second job was started"


def defer_twice(em: Any) -> tuple[DictStateStore, int, TaskDeferred]:
    """A try defers on its job and ends in the triggerer (never resumes); the next try starts: what it did."""
    em.configure(job_duration=None)
    store = DictStateStore()
    with pytest.raises(TaskDeferred) as first:
        operator(deferrable=True).execute(make_context(store=store))
    with pytest.raises(TaskDeferred) as second:
        operator(deferrable=True).execute(make_context(store=store))
    return store, first.value.trigger.job_id, second.value


@pytest.mark.skipif(
    not HAS_TASK_STATE_STORE, reason="the mark of a try waiting deferred lives in Airflow 3.3's task_state_store"
)
def test_a_try_after_one_stopped_while_deferred_cancels_that_job_and_starts_anew(edgeimpulse_emulator):
    """A user cleared a deferred task: its trigger's cancel may land after the next try started, so no re-attach."""
    em = edgeimpulse_emulator
    _, abandoned, deferred = defer_twice(em)
    first, second = emulator_jobs(em)
    assert first["id"] == abandoned and first["cancelled"] is True
    assert second["id"] != abandoned and second["finished"] is None
    assert deferred.trigger.job_id == second["id"]


@pytest.mark.skipif(
    not HAS_TASK_STATE_STORE, reason="the mark of a try waiting deferred lives in Airflow 3.3's task_state_store"
)
def test_an_event_about_an_earlier_tries_job_does_not_decide_this_try(edgeimpulse_emulator):
    """After a clear, the stopped try's trigger may fire about its cancelled job into the new try: wait on."""
    em = edgeimpulse_emulator
    store, old_job, second = defer_twice(em)
    new_job = second.trigger.job_id
    assert old_job != new_job
    stale = {"status": "failure", "job_id": old_job, "message": f"Edge Impulse job {old_job} failed"}
    with pytest.raises(TaskDeferred) as again:
        operator(deferrable=True).execute_complete(make_context(store=store), stale)
    assert again.value.trigger.job_id == new_job
    em.finish_job(new_job, True)
    result = operator(deferrable=True).execute_complete(
        make_context(store=store),
        {"status": "success", "job_id": new_job, "outcome": {"job_id": new_job, "success": True}},
    )
    assert result["job_id"] == new_job and result["success"] is True


@pytest.mark.skipif(not AIRFLOW_2, reason="Airflow 3 triggers cancel the job of a stopped task (the test above)")
def test_on_airflow_2_a_try_after_one_stopped_while_deferred_re_attaches_to_its_job(edgeimpulse_emulator):
    """Stopping a deferred task cancels nothing there (no trigger on_kill on Airflow 2): the job is still good."""
    em = edgeimpulse_emulator
    _, abandoned, deferred = defer_twice(em)
    (job,) = emulator_jobs(em)
    assert job["id"] == abandoned and not job["cancelled"]
    assert deferred.trigger.job_id == abandoned


def test_a_retry_after_a_finished_job_returns_its_result_without_deferring(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    store = DictStateStore()
    first = operator(wait_for_completion=False).execute(make_context(store=store))
    em.finish_job(first["job_id"], True)
    result = operator(deferrable=True).execute(make_context(store=store))
    assert result["job_id"] == first["job_id"]
    assert result["success"] is True
    assert len(em.jobs()) == 1


def test_a_retry_after_a_failed_job_starts_a_new_one(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    store = DictStateStore()
    first = operator(wait_for_completion=False).execute(make_context(store=store))
    em.finish_job(first["job_id"], False)
    em.configure(job_duration=0.2)
    result = operator(deferrable=False).execute(make_context(store=store))
    assert result["job_id"] != first["job_id"]
    assert len(em.jobs()) == 2


def test_deferrable_defers_with_plain_kwargs_and_completes_from_the_event(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    op = operator(deferrable=True, timeout=60)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, EdgeImpulseJobTrigger)
    assert deferred.value.timeout is None, "the deadline lives in the trigger"
    _, kwargs = trigger.serialize()
    assert em.api_key not in repr(kwargs)
    assert kwargs["deadline"] > time.time()
    trigger.end_task_on_success = False  # resume on the "worker" to exercise execute_complete

    async def first_event() -> Any:
        gen = trigger.run()
        try:
            return await anext(gen)
        finally:
            await gen.aclose()

    event = asyncio.run(first_event())
    result = op.execute_complete(context, event.payload)
    assert result["success"] is True
    assert result["job_id"] == context["ti"].xcoms["job_id"]


@pytest.mark.parametrize("event", [None, {}, {"status": "weird"}, "nonsense", 42])
def test_unknown_or_missing_trigger_events_fail_closed(edgeimpulse_emulator, event):
    with pytest.raises(EdgeImpulseJobFailed, match="Unexpected trigger event"):
        operator().execute_complete(make_context(), event)


def test_timeout_and_error_events_fail_the_task(edgeimpulse_emulator):
    for status in ("timeout", "error"):
        with pytest.raises(EdgeImpulseJobFailed, match="boom"):
            operator().execute_complete(make_context(), {"status": status, "job_id": 1, "message": "boom"})


def test_resume_after_an_end_in_trigger_rebuilds_the_result(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    ti = RecordingTaskInstance()
    started = operator(wait_for_completion=False).execute(make_context(ti=ti))
    em.finish_job(started["job_id"], True)
    result = operator().execute_complete(make_context(ti=ti), "success")
    assert result["success"] is True
    assert result["job_id"] == started["job_id"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -5}, "timeout"),
        ({"safety_interval": 0}, "safety_interval"),
        ({"poll_interval": "fast"}, "poll_interval"),
        ({"job_path": ""}, "job_path"),
        ({"job_query": ["a"]}, "job_query"),
        ({"project_id": "abc"}, "project_id"),
    ],
)
def test_bad_arguments_fail_before_any_job_starts(edgeimpulse_emulator, kwargs, message):
    em = edgeimpulse_emulator
    with pytest.raises((ValueError, TypeError), match=message):
        operator(**kwargs).execute(make_context())
    assert em.jobs() == []


class _RetrainWithTag(EdgeImpulseRunJobOperator):
    """A job operator that adds to the outcome and says nothing about where the task completes."""

    def job_result(self, hook: Any, outcome: dict[str, Any], context: Any) -> Any:
        return {**outcome, "tag": "read-after-the-job"}


def test_an_operator_overriding_job_result_resumes_on_a_worker_to_return_it(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    op = _RetrainWithTag(task_id="tagged", job_path="jobs/retrain", deferrable=True, timeout=60)
    result = defer_and_resume(op, make_context())
    assert result["tag"] == "read-after-the-job"
    assert result["success"] is True


def test_an_operator_overriding_job_result_cannot_claim_to_complete_in_the_trigger():
    with pytest.raises(TypeError, match="overrides job_result"):

        class _Wrong(EdgeImpulseRunJobOperator):
            completes_in_trigger = True

            def job_result(self, hook: Any, outcome: dict[str, Any], context: Any) -> Any:
                return outcome
