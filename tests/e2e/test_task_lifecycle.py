"""
What happens to the remote Edge Impulse job when Airflow's side of a task goes away, on a real Airflow 3.

- Worker death: the process of a task that waits in blocking mode is SIGKILLed (an OOM kill, a lost node);
  Airflow retries the task, and the retry re-attaches to the job the dead try started: exactly one remote job
  exists and the retry returns its outcome.
- Kill and clear: a user marks a waiting task failed, or clears it, in the UI (here: the same REST calls the UI
  makes). The remote job is cancelled in every case: blocking (the worker's ``on_kill``) and deferred (the
  trigger's ``on_kill`` in the triggerer). A cleared task runs again and trains anew.
- Hand-over: the triggerer holding a deferred task's wait stalls (SIGSTOP) past the health threshold, a second
  triggerer adopts the wait, then the first one wakes up (SIGCONT). Airflow 3.3 calls the trigger's ``on_kill`` on
  the first one as if a user had acted; the task is still deferred, so the remote job runs on and the task ends
  with its outcome. This one runs on a stack of its own, with two triggerers and a short health threshold.

The DAGs are in tests/e2e/dags/e2e_task_lifecycle.py. Jobs started here run until the test finishes or cancels
them (emulator ``job_duration: null``), so every state the tests look at is held as long as they need.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_edgeimpulse.operators.resume import job_variable_key
from tests.e2e.conftest import on_airflow, running_stack
from tests.e2e.runs import (
    ACTION_TIMEOUT_S,
    check_the_retry_re_attached,
    emulator_job,
    jobs_started_since,
    task_instance,
    task_process,
    ti_path,
    trigger,
    trigger_logs,
    trigger_relays,
    try_log_tails,
    variable,
    wait_cancelled,
    wait_for_job_of,
    wait_for_ti_state,
    xcom,
)
from tests.e2e.stack import REPO, AirflowStack, StackError, StackSettings, wait_until
from tests.e2e.versions import TASK_STATE_STORE_SINCE, TRIGGER_ON_KILL_SINCE, VersionVenv

pytestmark = pytest.mark.e2e

KILL_CLEAR_TASKS = ("blocking_mark_failed", "blocking_clear", "deferred_mark_failed", "deferred_clear")
# The hand-over stack: a heartbeat every second, adopted by another triggerer after 10 s without one.
TRIGGERER_HEARTBEAT_S = 1
TRIGGERER_HEALTH_THRESHOLD_S = 10


@pytest.fixture
def jobs_wait_for_the_test(airflow_stack: AirflowStack) -> Iterator[None]:
    airflow_stack.emulator("POST", "/config", json={"job_duration": None})
    try:
        yield
    finally:
        airflow_stack.emulator("POST", "/config", json={"job_duration": airflow_stack.settings.job_duration})


@pytest.mark.versions
def test_a_retry_after_the_worker_died_re_attaches_to_the_one_remote_job(
    airflow_stack: AirflowStack, jobs_wait_for_the_test: None
) -> None:
    stack, dag_id, task_id = airflow_stack, "e2e_worker_death", "retrain_blocking"
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    run_id = trigger(stack, dag_id)
    job_id = wait_for_job_of(stack, dag_id, run_id, task_id, "running", try_number=1)

    # Before 3.3 (no task state store) the job id waits for the retry in an Airflow Variable; on 3.3 in the store.
    key = job_variable_key(dag_id, task_id, run_id)
    carried_by_a_variable = stack.airflow_version < TASK_STATE_STORE_SINCE
    assert variable(stack, key) == (str(job_id) if carried_by_a_variable else None)

    ti_id = task_instance(stack, dag_id, run_id, task_id)["id"]
    pid = wait_until(lambda: task_process(ti_id), timeout=30, what=f"the process of task instance {ti_id}")
    os.kill(pid, signal.SIGKILL)

    # The retry finds the job still running and waits for it instead of starting another.
    assert wait_for_job_of(stack, dag_id, run_id, task_id, "running", try_number=2) == job_id
    assert emulator_job(stack, job_id)["cancelled"] is False, "a dead worker must not take its job with it"
    check_the_retry_re_attached(stack, dag_id, run_id, task_id, job_id, known)
    assert variable(stack, key) is None, f"the Variable {key} outlived the job it carried"


@pytest.mark.versions
def test_marking_failed_or_clearing_a_waiting_task_cancels_its_remote_job_where_airflow_tells_the_trigger(
    airflow_stack: AirflowStack, jobs_wait_for_the_test: None
) -> None:
    stack, dag_id = airflow_stack, "e2e_kill_and_clear"
    run_id = trigger(stack, dag_id)
    first_jobs = {
        task: wait_for_job_of(stack, dag_id, run_id, task, "running" if task.startswith("blocking") else "deferred", 1)
        for task in KILL_CLEAR_TASKS
    }
    assert len(set(first_jobs.values())) == len(KILL_CLEAR_TASKS), first_jobs

    for task in KILL_CLEAR_TASKS:
        if task.endswith("mark_failed"):
            stack.api("PATCH", ti_path(dag_id, run_id, task), json={"new_state": "failed"})
        else:
            body = {"dry_run": False, "task_ids": [task], "dag_run_id": run_id, "only_failed": False}
            stack.api("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)

    on_kill = stack.airflow_version >= TRIGGER_ON_KILL_SINCE
    if not on_kill:
        check_deferred_jobs_run_on_without_trigger_on_kill(stack, dag_id, run_id, first_jobs)
    for task, job_id in first_jobs.items():
        if on_kill or task.startswith("blocking"):
            wait_cancelled(stack, job_id)

    # A marked-failed task stays failed; a cleared one runs again and trains anew.
    for task in KILL_CLEAR_TASKS:
        if task.endswith("mark_failed"):
            assert task_instance(stack, dag_id, run_id, task)["state"] == "failed"
            continue
        if not on_kill and task.startswith("deferred"):
            continue  # checked above: it re-attached to the job its stopped try left running
        mode_state = "running" if task.startswith("blocking") else "deferred"
        second = wait_for_job_of(stack, dag_id, run_id, task, mode_state, try_number=2)
        assert second != first_jobs[task]
        stack.emulator("POST", f"/jobs/{second}/finish", json={"success": True})
        ti = wait_for_ti_state(stack, dag_id, run_id, task, {"success", "failed"})
        outcome = (ti["state"], ti["try_number"])
        assert outcome == ("success", 2), f"{ti}\n{try_log_tails(stack, dag_id, run_id, task, ti['try_number'])}"


def check_deferred_jobs_run_on_without_trigger_on_kill(
    stack: AirflowStack, dag_id: str, run_id: str, first_jobs: dict[str, int]
) -> None:
    """
    Before Airflow 3.3 a triggerer calls no trigger's ``on_kill``: it only cancels the trigger's coroutine, which
    cannot tell a user's stop from a hand-over or a shutdown. So the job of a deferred task marked failed runs on
    (to its own end, named in the task's log), and a cleared deferred task's next try finds that job still running
    and re-attaches to it, as to a job a dead worker left (no task state store to tell the two apart).
    """
    marked, cleared = first_jobs["deferred_mark_failed"], first_jobs["deferred_clear"]
    assert wait_for_job_of(stack, dag_id, run_id, "deferred_clear", "deferred", try_number=2) == cleared
    for job_id in (marked, cleared):
        job = emulator_job(stack, job_id)
        assert (job["finished"], job["cancelled"]) == (None, False), f"no trigger on_kill, yet the job ended: {job}"
    stack.emulator("POST", f"/jobs/{cleared}/finish", json={"success": True})
    ti = wait_for_ti_state(stack, dag_id, run_id, "deferred_clear", {"success", "failed"})
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti
    assert xcom(stack, dag_id, run_id, "deferred_clear")["job_id"] == cleared
    stack.emulator("POST", f"/jobs/{marked}/finish", json={"success": False})  # nothing else would end it


@pytest.fixture(scope="module")
def handover_stack(e2e_artifacts: Path, other_airflow: VersionVenv | None) -> Iterator[AirflowStack]:
    settings = StackSettings(
        dag_folders=(REPO / "tests" / "e2e" / "dags",),
        artifacts=e2e_artifacts / "triggerer-handover",
        triggerer_heartbeat_s=TRIGGERER_HEARTBEAT_S,
        triggerer_health_check_threshold_s=TRIGGERER_HEALTH_THRESHOLD_S,
        **on_airflow(other_airflow),
    )
    yield from running_stack(settings)


def check_the_first_try_ended_with_its_job(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, job_id: int, known: set[int]
) -> None:
    """Finish the job a deferred task waits on: its first try succeeds; the job, never cancelled, is the only one."""
    stack.emulator("POST", f"/jobs/{job_id}/finish", json={"success": True})
    ti = wait_for_ti_state(stack, dag_id, run_id, task_id, {"success", "failed"})
    assert (ti["state"], ti["try_number"]) == ("success", 1), ti
    job = emulator_job(stack, job_id)
    assert (job["cancelled"], job["finishedSuccessful"]) == (False, True), job
    started = jobs_started_since(stack, known)
    assert [int(j["id"]) for j in started] == [job_id], f"exactly one remote job: {started}"


def triggerer_ids(stack: AirflowStack) -> set[int]:
    """The triggerer jobs that heartbeat now (Airflow's own view of which triggerers are alive)."""
    jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob", "is_alive": True})["jobs"]
    return {int(job["id"]) for job in jobs}


def test_a_wait_handed_to_another_triggerer_keeps_its_remote_job(handover_stack: AirflowStack) -> None:
    stack, dag_id, task_id = handover_stack, "e2e_triggerer_handover", "retrain_deferred"
    stack.emulator("POST", "/config", json={"job_duration": None})  # the job runs until the test finishes it
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    (first,) = wait_until(lambda: triggerer_ids(stack) or None, timeout=60, what="the first triggerer's heartbeat")
    run_id = trigger(stack, dag_id)
    job_id = wait_for_job_of(stack, dag_id, run_id, task_id, "deferred", try_number=1)
    assert task_instance(stack, dag_id, run_id, task_id)["trigger"]["triggerer_id"] == first

    stack.start_triggerer("triggerer-2")
    (second,) = wait_until(
        lambda: (triggerer_ids(stack) - {first}) or None, timeout=90, what="the second triggerer's heartbeat"
    )

    stack.signal("triggerer", signal.SIGSTOP)  # the supervisor and its runner: slow, not dead
    try:

        def adopted() -> bool | None:
            holder = (task_instance(stack, dag_id, run_id, task_id).get("trigger") or {}).get("triggerer_id")
            relays = trigger_relays(stack, dag_id, run_id, task_id, 1, job_id, triggerer=str(second))
            return True if holder == second and relays else None

        wait_until(adopted, timeout=ACTION_TIMEOUT_S, what=f"triggerer {second} to take the wait over", interval=1)
    finally:
        stack.signal("triggerer", signal.SIGCONT)

    # Woken up, the first triggerer lets go of the wait, and Airflow calls on_kill there as on a user's action.
    def let_go() -> str | None:
        if emulator_job(stack, job_id)["cancelled"]:
            raise StackError(f"the hand-over cancelled Edge Impulse job {job_id}, which the deferred task waits on")
        logs = "\n".join(trigger_logs(stack, dag_id, run_id, task_id, 1, triggerer=str(first)))
        return logs if f"Edge Impulse job {job_id} keeps running" in logs else None

    first_log = wait_until(let_go, timeout=ACTION_TIMEOUT_S, what=f"triggerer {first} to let the wait go")
    assert "Trigger cancelled by user action, invoking on_kill" in first_log
    assert "its task is still deferred, its wait moved to another triggerer" in first_log
    job = emulator_job(stack, job_id)
    assert (job["finished"], job["cancelled"]) == (None, False), job
    assert task_instance(stack, dag_id, run_id, task_id)["state"] == "deferred"

    check_the_first_try_ended_with_its_job(stack, dag_id, run_id, task_id, job_id, known)


@pytest.mark.versions
def test_a_deferred_task_survives_the_death_of_its_triggerer(handover_stack: AirflowStack) -> None:
    """
    The triggerer holding a deferred task's wait is SIGKILLed (its node is lost) and a new triggerer starts: the
    new one adopts the wait once the dead one's heartbeat is past the health threshold, and the task ends with the
    remote job's outcome. A death calls no ``on_kill``, so the job is never cancelled.
    """
    # The hand-over test's DAG, in a run of its own: a deferred task and nothing else.
    stack, dag_id, task_id = handover_stack, "e2e_triggerer_handover", "retrain_deferred"
    stack.emulator("POST", "/config", json={"job_duration": None})  # the job runs until the test finishes it
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    run_id = trigger(stack, dag_id)
    job_id = wait_for_job_of(stack, dag_id, run_id, task_id, "deferred", try_number=1)

    before = wait_until(lambda: triggerer_ids(stack) or None, timeout=60, what="a triggerer's heartbeat")
    for component in [c for c in stack.components if c.name.startswith("triggerer") and c.alive()]:
        stack.kill(component.name)
    stack.start_triggerer("triggerer-after-death")
    (new,) = wait_until(
        lambda: (triggerer_ids(stack) - before) or None, timeout=90, what="the new triggerer's heartbeat"
    )

    def adopted() -> bool | None:
        if emulator_job(stack, job_id)["finished"] is not None:
            raise StackError(f"Edge Impulse job {job_id} ended while its task waited: {emulator_job(stack, job_id)}")
        return True if trigger_relays(stack, dag_id, run_id, task_id, 1, job_id, triggerer=str(new)) else None

    wait_until(adopted, timeout=ACTION_TIMEOUT_S, what=f"triggerer {new} to take the wait over", interval=1)
    assert task_instance(stack, dag_id, run_id, task_id)["state"] == "deferred"

    check_the_first_try_ended_with_its_job(stack, dag_id, run_id, task_id, job_id, known)
