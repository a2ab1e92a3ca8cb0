"""DAGs for the sensor's dag.test() runs (tests/sensors/test_new_samples_dag_runs.py). Cheap to parse: no I/O."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor

POKE_WATERMARK_KEY = "new_samples_test_poke_watermark"
DEFERRED_WATERMARK_KEY = "new_samples_test_deferred_watermark"


def _dag(dag_id: str, *, deferrable: bool, watermark_key: str) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params={"min_new_samples": 2},
    ) as dag:
        EdgeImpulseNewSamplesSensor(
            task_id="wait_for_data",
            min_new_samples="{{ params.min_new_samples }}",
            watermark_key=watermark_key,
            poke_interval=0.2,
            timeout=60,
            deferrable=deferrable,
        )
    return dag


poke_dag = _dag("new_samples_sensor_poke", deferrable=False, watermark_key=POKE_WATERMARK_KEY)
deferred_dag = _dag("new_samples_sensor_deferred", deferrable=True, watermark_key=DEFERRED_WATERMARK_KEY)
