"""
DAGs for bench/task_latency.py: a deferred job task, and Airflow's own ``DateTimeTrigger`` firing at an instant the
run's conf names (the floor), each ending in the triggerer.

Each task trains the emulator's impulse; the benchmark controls how long a job runs through the emulator.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator

PROJECT_ID = 1

with DAG(
    dag_id="e2e_latency_job",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["e2e", "bench"],
):
    # Ends in the triggerer on success, like the floor below: both measure trigger -> task state, no worker.
    EdgeImpulseRetrainOperator(task_id="retrain_deferred", project_id=PROJECT_ID, deferrable=True, retries=0)

with DAG(
    dag_id="e2e_latency_floor",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["e2e", "bench"],
):
    # Airflow's own trigger firing at a known instant (the run's conf): the floor of trigger -> task success.
    DateTimeSensorAsync(
        task_id="wait_until", target_time="{{ dag_run.conf['moment'] }}", end_from_trigger=True, retries=0
    )
