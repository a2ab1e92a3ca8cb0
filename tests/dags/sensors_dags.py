"""DAGs for the sensors' dag.test() runs (tests/sensors/test_sensor_dag_runs.py). Cheap to parse: no I/O."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False, params={"id": 0})


with _dag("sensors_job_reschedule") as job_reschedule_dag:
    EdgeImpulseJobSensor(task_id="wait_job", job_id="{{ params.id }}", mode="reschedule", poke_interval=0.2, timeout=60)

with _dag("sensors_job_deferred") as job_deferred_dag:
    EdgeImpulseJobSensor(task_id="wait_job", job_id="{{ params.id }}", deferrable=True, timeout=60)

with _dag("sensors_tuner_deferred") as tuner_deferred_dag:
    EONTunerStateSensor(
        task_id="wait_tuner",
        tuner_coordinator_job_id="{{ params.id }}",
        metric="test.accuracy",
        deferrable=True,
        state_poll_interval=300,  # long: the coordinator's job-finished event has to wake it
        timeout=60,
    )

with _dag("sensors_tuner_reschedule") as tuner_reschedule_dag:
    EONTunerStateSensor(
        task_id="wait_tuner",
        tuner_coordinator_job_id="{{ params.id }}",
        mode="reschedule",
        poke_interval=0.2,
        timeout=60,
    )
