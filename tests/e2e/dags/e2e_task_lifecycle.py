"""
DAGs for the real-Airflow lifecycle tests (tests/e2e/test_task_lifecycle.py): what happens to the remote Edge
Impulse job when the worker running a task dies, a user marks a waiting task failed or clears it, or the triggerer
holding its wait stalls and another one takes the wait over, or dies and a new one starts (the same DAG).

Each task trains the emulator's impulse; the tests control how long a job runs through the emulator.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator

PROJECT_ID = 1

with DAG(
    dag_id="e2e_worker_death",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["e2e"],
):
    # Blocking on purpose: the task process itself waits, so killing it is a worker death mid-wait.
    EdgeImpulseRetrainOperator(
        task_id="retrain_blocking",
        project_id=PROJECT_ID,
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

with DAG(
    dag_id="e2e_kill_and_clear",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["e2e"],
):
    # One task per (mode, user action); they run side by side so one DAG run covers every combination.
    for mode in ("blocking", "deferred"):
        for action in ("mark_failed", "clear"):
            EdgeImpulseRetrainOperator(
                task_id=f"{mode}_{action}",
                project_id=PROJECT_ID,
                deferrable=mode == "deferred",
                retries=0,
            )

with DAG(
    dag_id="e2e_triggerer_handover",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["e2e"],
):
    # Deferred: its wait is the trigger that moves from a stalled triggerer to another one.
    EdgeImpulseRetrainOperator(task_id="retrain_deferred", project_id=PROJECT_ID, deferrable=True, retries=0)
