"""
DAGs for the production-shaped stack (tests/e2e/test_production_stack.py): many deferred job tasks at once.

Each task trains the emulator's impulse; the tests control how long a job runs through the emulator.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator

PROJECT_ID = 1
MANY_DEFERRED = 20
# Long on purpose: a job seen finished well before this passed was seen by the live socket or the check a trigger
# makes when it starts (after an adoption too), not by the periodic safety check.
SAFETY_INTERVAL_S = 600.0

with DAG(
    dag_id="e2e_many_deferred",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_tasks=MANY_DEFERRED,
    tags=["e2e"],
):
    for number in range(MANY_DEFERRED):
        EdgeImpulseRetrainOperator(
            task_id=f"retrain_{number:02d}",
            project_id=PROJECT_ID,
            deferrable=True,
            retries=0,
            safety_interval=SAFETY_INTERVAL_S,
        )
