"""
A trigger's ``on_kill``: a user's stop cancels the remote work, a hand-over to another triggerer does not.

Airflow 3.3 calls ``on_kill`` in both cases (a trigger taken from a slow triggerer is cancelled with the
user-action message); the task instance's state tells them apart. The state is read the way a trigger in the
triggerer reads it: ``RuntimeTaskInstance.get_task_states`` through the supervisor's comms, answered by Airflow's
own request handler from its in-process execution API over the metadata database, where these tests put a real
task instance in the state a user's action (or a hand-over) leaves. Only the socket between the triggerer's two
processes is left out. ``tests/e2e/test_triggerer_handover.py`` runs the whole thing on a real stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_edgeimpulse.triggers import _kill
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger
from tests.airflow_compat import AIRFLOW_2
from tests.tuner_util import job_record, start_tuner

pytestmark = pytest.mark.skipif(AIRFLOW_2, reason="Airflow 2 never calls a trigger's on_kill")

# What a user's action leaves behind: marked failed or success, cleared (no state, or on its way to run again).
STOPPED_STATES = ("failed", "success", None, "scheduled", "running")


class Supervisor:
    """The triggerer supervisor's side of a task-state read: Airflow's handler and in-process execution API."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[Any] = []
        self.stalled = False
        self.released = threading.Event()
        self.delay_s = 0.0

    def send(self, msg: Any) -> Any:
        from airflow.sdk.execution_time.comms import GetTaskStates
        from airflow.sdk.execution_time.request_handlers import handle_get_task_states

        self.requests.append(msg)
        if self.stalled:  # a supervisor too busy to answer (the trouble that gets a triggerer's triggers moved)
            self.released.wait(30)
        time.sleep(self.delay_s)  # a supervisor busy with other work first
        assert isinstance(msg, GetTaskStates), msg
        response, _ = handle_get_task_states(self.client, msg)
        return response


@pytest.fixture(scope="module")
def dag_run(airflow_db: Any) -> Any:
    from tests.dags.trigger_kill_dags import KILL_STATES_DAG

    return KILL_STATES_DAG.test()


@pytest.fixture(scope="module")
def execution_api(dag_run: Any) -> Any:
    """The client the triggerer's supervisor builds, once: the in-process API app takes seconds to set up."""
    from airflow.jobs.triggerer_job_runner import in_process_api_server
    from airflow.sdk.api.client import Client

    client = Client(base_url=None, token="", dry_run=True, transport=in_process_api_server().transport)
    client.base_url = "http://in-process.invalid./"  # what the triggerer's supervisor sets
    client.task_instances.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id])  # set the app up now
    return client


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch, execution_api: Any) -> Iterator[Supervisor]:
    from airflow.sdk.execution_time import task_runner

    answering = Supervisor(execution_api)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", answering, raising=False)
    try:
        yield answering
    finally:
        answering.released.set()


def task_in_state(dag_run: Any, state: str | None, task_id: str = "waits", map_index: int = -1) -> Any:
    """Put the task instance in ``state`` and return it as the triggerer hands it to a trigger."""
    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id,
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).one()
        ti.state = state
        session.flush()
        return TaskInstanceDTO(
            id=ti.id,
            task_id=ti.task_id,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            dag_version_id=ti.dag_version_id,
            map_index=ti.map_index,
            pool_slots=ti.pool_slots,
            priority_weight=ti.priority_weight,
        )


def start_job(em: Any) -> int:
    resp = requests.post(
        f"{em.url}/v1/api/{em.project_id}/jobs/retrain", headers={"x-api-key": em.api_key}, json={}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


def job_trigger(em: Any, job_id: int, task_instance: Any, **kwargs: Any) -> EdgeImpulseJobTrigger:
    trigger = EdgeImpulseJobTrigger(job_id=job_id, project_id=em.project_id, **kwargs)
    trigger.task_instance = task_instance
    return trigger


def tuner_trigger(em: Any, run_id: int, task_instance: Any, **kwargs: Any) -> EONTunerStateTrigger:
    trigger = EONTunerStateTrigger(project_id=em.project_id, tuner_coordinator_job_id=run_id, **kwargs)
    trigger.task_instance = task_instance
    return trigger


def logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """What the triggers logged: through logging, or printed by Airflow's structlog set-up once a DAG ran."""
    captured = capsys.readouterr()
    return "\n".join([caplog.text, captured.out, captured.err])


async def record(em: Any, job_id: int) -> dict[str, Any]:
    return dict(await asyncio.to_thread(job_record, em, job_id))


# -- the job trigger -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", STOPPED_STATES)
async def test_a_user_stop_cancels_the_remote_job(edgeimpulse_emulator, dag_run, supervisor, state):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    await job_trigger(em, job_id, task_in_state(dag_run, state)).on_kill()
    job = await record(em, job_id)
    assert job["cancelled"] and job["finished"], job
    (asked,) = supervisor.requests
    assert (asked.dag_id, asked.task_ids, asked.run_ids, asked.map_index) == (
        dag_run.dag_id,
        ["waits"],
        [dag_run.run_id],
        -1,
    )


async def test_a_hand_over_to_another_triggerer_leaves_the_job_running(edgeimpulse_emulator, dag_run, supervisor):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    await job_trigger(em, job_id, task_in_state(dag_run, "deferred")).on_kill()
    assert not (await record(em, job_id))["finished"], "the task still waits on it from another triggerer"
    assert len(supervisor.requests) == 1


async def test_a_wait_on_a_job_it_did_not_start_leaves_it_running_after_a_user_stop(
    edgeimpulse_emulator, dag_run, supervisor
):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    await job_trigger(em, job_id, task_in_state(dag_run, "failed"), cancel_on_kill=False).on_kill()
    assert not (await record(em, job_id))["finished"], "a sensor's wait only watched the job"
    assert supervisor.requests == [], "nothing to decide: no state read"


async def test_a_mapped_task_is_told_apart_by_its_map_index(edgeimpulse_emulator, dag_run, supervisor):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    task_in_state(dag_run, "failed", "mapped_waits", map_index=0)  # its sibling was stopped; this one waits on
    job_id = await asyncio.to_thread(start_job, em)
    await job_trigger(em, job_id, task_in_state(dag_run, "deferred", "mapped_waits", map_index=1)).on_kill()
    assert not (await record(em, job_id))["finished"]
    task_in_state(dag_run, "failed", "mapped_waits", map_index=1)
    await job_trigger(em, job_id, task_in_state(dag_run, "failed", "mapped_waits", map_index=1)).on_kill()
    assert (await record(em, job_id))["cancelled"]


async def test_a_task_instance_gone_with_its_run_counts_as_stopped(edgeimpulse_emulator, dag_run, supervisor):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    gone = task_in_state(dag_run, "deferred").model_copy(update={"run_id": "a run a user deleted"})
    await job_trigger(em, job_id, gone).on_kill()
    assert (await record(em, job_id))["cancelled"]


async def test_an_unreadable_state_leaves_the_job_running_within_a_bound(
    edgeimpulse_emulator, dag_run, supervisor, monkeypatch, caplog, capsys
):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    # Airflow's on_kill bound of 7 s leaves the read 1 s: 5 s stay for a cancel, 1 s margin.
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "7")
    supervisor.stalled = True
    async with asyncio.timeout(10):  # a hang guard: the bound is what ends the read
        await job_trigger(em, job_id, task_in_state(dag_run, "failed")).on_kill()
    assert not (await record(em, job_id))["finished"]
    expected = f"Edge Impulse job {job_id} keeps running: the state of its task could not be read (no answer within 1 s"
    assert expected in logged(caplog, capsys)


async def test_a_trigger_without_a_task_instance_leaves_the_job_running(edgeimpulse_emulator, supervisor):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    await EdgeImpulseJobTrigger(job_id=job_id, project_id=em.project_id).on_kill()
    assert not (await record(em, job_id))["finished"]
    assert supervisor.requests == []


async def cancelled_again_while_it_runs(on_kill: Any) -> None:
    """What Airflow 3.3 does: the trigger's cancel comes again with the next state sync, cancelling ``on_kill``."""
    kill = asyncio.ensure_future(on_kill)
    await asyncio.sleep(0.2)
    kill.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await kill


async def until_cancelled(em: Any, job_id: int) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while not (job := await record(em, job_id))["cancelled"]:
            await asyncio.sleep(0.05)
    return job


async def test_a_user_stop_cancels_the_job_even_when_on_kill_is_cancelled_again(
    edgeimpulse_emulator, dag_run, supervisor
):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = await asyncio.to_thread(start_job, em)
    supervisor.delay_s = 1.0
    await cancelled_again_while_it_runs(job_trigger(em, job_id, task_in_state(dag_run, "failed")).on_kill())
    assert (await until_cancelled(em, job_id))["finished"]


@pytest.mark.parametrize("setting", ["nan", "0", "-3", "soon"])
def test_a_kill_budget_from_a_bad_setting_is_airflows_default(monkeypatch, setting):
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", setting)
    assert 28 < _kill.KillBudget().left() <= 29


def test_a_kill_budget_follows_airflows_setting_and_caps(monkeypatch):
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "61")
    budget = _kill.KillBudget()
    assert 59 < budget.left() <= 60
    assert budget.left(20) == 20
    budget.deadline -= 100  # spent
    assert budget.left(20) == 0


# -- the EON Tuner trigger ----------------------------------------------------------------------------------------


async def test_a_user_stop_cancels_the_tuner_run(edgeimpulse_emulator, dag_run, supervisor):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    await tuner_trigger(em, run_id, task_in_state(dag_run, "failed")).on_kill()
    run = await record(em, run_id)
    assert run["finished"] and run["cancelled"]


async def test_a_user_stop_cancels_the_tuner_run_even_when_on_kill_is_cancelled_again(
    edgeimpulse_emulator, dag_run, supervisor
):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    supervisor.delay_s = 1.0
    await cancelled_again_while_it_runs(tuner_trigger(em, run_id, task_in_state(dag_run, "failed")).on_kill())
    assert (await until_cancelled(em, run_id))["finished"]


async def test_a_hand_over_leaves_the_tuner_run_running(edgeimpulse_emulator, dag_run, supervisor):
    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    await tuner_trigger(em, run_id, task_in_state(dag_run, "deferred")).on_kill()
    assert not (await record(em, run_id))["finished"]


async def test_the_tuner_cancel_is_bounded_when_studio_hangs(
    edgeimpulse_emulator, dag_run, supervisor, monkeypatch, caplog, capsys
):
    import airflow_provider_edgeimpulse.triggers._kill as module

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = await asyncio.to_thread(start_tuner, em)
    stopped = task_in_state(dag_run, "failed")
    monkeypatch.setattr(module, "CANCEL_BOUND_S", 0.3)
    await asyncio.to_thread(em.fault, latency_ms=1500)
    async with asyncio.timeout(10):  # a hang guard: the bound is what ends the cancel
        await tuner_trigger(em, run_id, stopped).on_kill()  # logs a warning, raises nothing
    assert f"Could not cancel EON Tuner run {run_id}" in logged(caplog, capsys)
