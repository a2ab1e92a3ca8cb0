"""The job and tuner sensors inside real Airflow task runs (dag.test): reschedule mode, deferral, XCom, failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.airflow_compat import reschedules, xcom
from tests.tuner_util import STATE_ROUTE, STATUS_ROUTE, route_count, start_job, start_tuner

pytestmark = pytest.mark.usefixtures("airflow_db")


def task_instance(dag_run: Any, task_id: str) -> Any:
    return next(ti for ti in dag_run.get_task_instances() if ti.task_id == task_id)


@pytest.fixture
def finish_when() -> Iterator[Callable[..., None]]:
    """Finish an emulator job from a thread once ``ready()`` holds: the sensor is then already waiting on it."""
    threads: list[threading.Thread] = []

    def start(em: Any, job_id: int, ready: Callable[[], bool], success: bool = True) -> None:
        def run() -> None:
            deadline = time.monotonic() + 60
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            em.finish_job(job_id, success)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(timeout=60)


def test_job_sensor_in_reschedule_mode(edgeimpulse_emulator, finish_when):
    from tests.dags.sensors_dags import job_reschedule_dag

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    finish_when(em, job_id, lambda: route_count(em, STATUS_ROUTE) >= 3)  # two pokes and a reschedule at least
    dag_run = job_reschedule_dag.test(run_conf={"id": job_id})
    assert str(dag_run.state) == "success"
    assert reschedules(dag_run, "wait_job") >= 1, "the sensor gave its slot back between pokes"
    outcome = xcom(dag_run, "wait_job")
    assert outcome["job_id"] == job_id and outcome["success"] is True


def test_job_sensor_deferred(edgeimpulse_emulator, finish_when):
    from tests.dags.sensors_dags import job_deferred_dag

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    # The worker's check and then the trigger's own: the trigger is waiting.
    finish_when(em, job_id, lambda: route_count(em, STATUS_ROUTE) >= 2 and em.sockets() >= 1)
    dag_run = job_deferred_dag.test(run_conf={"id": job_id})
    assert str(dag_run.state) == "success"
    outcome = xcom(dag_run, "wait_job")
    assert outcome["job_id"] == job_id and outcome["success"] is True and outcome["log_tail"]


def test_job_sensor_deferred_fails_for_a_failed_job(edgeimpulse_emulator, finish_when):
    from tests.dags.sensors_dags import job_deferred_dag

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    job_id = start_job(em)
    finish_when(em, job_id, lambda: em.sockets() >= 1, success=False)
    dag_run = job_deferred_dag.test(run_conf={"id": job_id})
    assert str(dag_run.state) == "failed"
    assert str(task_instance(dag_run, "wait_job").state) == "failed"
    assert xcom(dag_run, "wait_job") is None


def test_tuner_sensor_deferred_pushes_the_summary(edgeimpulse_emulator, finish_when):
    from tests.dags.sensors_dags import tuner_deferred_dag

    em = edgeimpulse_emulator
    em.configure(job_duration=None)
    run_id = start_tuner(em, trials=3)
    finish_when(em, run_id, lambda: em.sockets() >= 1)
    started = time.monotonic()
    dag_run = tuner_deferred_dag.test(run_conf={"id": run_id})
    assert str(dag_run.state) == "success"
    assert time.monotonic() - started < 60, "woken by the job-finished event, not the 300 s state poll"
    summary = xcom(dag_run, "wait_tuner")
    assert summary["tuner_coordinator_job_id"] == run_id
    assert summary["trial_counts"]["completed"] == 3
    assert summary["best_trial"]["metric"] == "test.accuracy" and summary["best_trial"]["mode"] == "max"


def test_tuner_sensor_in_reschedule_mode_fails_when_every_trial_failed(edgeimpulse_emulator, finish_when):
    from tests.dags.sensors_dags import tuner_reschedule_dag

    em = edgeimpulse_emulator
    em.configure(job_duration=None, tuner_trial_failures=3)
    run_id = start_tuner(em, trials=3)
    finish_when(em, run_id, lambda: route_count(em, STATE_ROUTE) >= 2)
    dag_run = tuner_reschedule_dag.test(run_conf={"id": run_id})
    assert str(dag_run.state) == "failed"
    assert reschedules(dag_run, "wait_tuner") >= 1
