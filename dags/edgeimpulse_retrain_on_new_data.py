"""
Retrain when new training data lands in an Edge Impulse project: retrain -> test -> quality gate -> build.

Airflow 3: the DAG is scheduled on the asset ``edgeimpulse://<project>/training-data``, whose watcher
(``EdgeImpulseNewSamplesTrigger``, run by the triggerer) emits an asset event per batch of new samples.
No worker waits; the first task reports which samples started the run.

Airflow 2.11 (no asset watchers): an hourly schedule with ``EdgeImpulseNewSamplesSensor`` at the head; a
run without new data within the hour is skipped.

Parse-time settings (Airflow Variables, defaults for the local emulator): ``edgeimpulse_conn_id``
(``edgeimpulse_default``), ``edgeimpulse_project_id`` (1), ``edgeimpulse_min_new_samples`` (1),
``edgeimpulse_poll_interval`` (60 s), ``edgeimpulse_deferrable`` (true). Run-time settings are DAG params.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS, DAG, Asset, Param, task
from edgeimpulse_common import (
    DEFAULT_ACCURACY_THRESHOLD,
    DEFAULT_CONN_ID,
    DEFAULT_DEPLOYMENT_ENGINE,
    DEFAULT_DEPLOYMENT_FORMAT,
    DEFAULT_OUTPUT_DIR,
    retrain_test_gate_build,
    setting,
)

CONN_ID = str(setting("conn_id", DEFAULT_CONN_ID))
PROJECT_ID = int(setting("project_id", 1))
MIN_NEW_SAMPLES = int(setting("min_new_samples", 1))
POLL_INTERVAL_S = float(setting("poll_interval", 60))
DEFERRABLE = str(setting("deferrable", "true")).strip().lower() in ("true", "1", "yes", "on")
TRAINING_DATA_URI = f"edgeimpulse://{PROJECT_ID}/training-data"
FALLBACK_SCHEDULE = timedelta(hours=1)  # Airflow 2.11: how often the sensor at the head looks

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import AssetWatcher

    from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesTrigger

    training_data = Asset(
        TRAINING_DATA_URI,
        watchers=[
            AssetWatcher(
                name="edgeimpulse_new_training_data",
                trigger=EdgeImpulseNewSamplesTrigger(
                    edgeimpulse_conn_id=CONN_ID,
                    project_id=PROJECT_ID,
                    category="training",
                    min_new_samples=MIN_NEW_SAMPLES,
                    poll_interval=POLL_INTERVAL_S,
                ),
            )
        ],
    )
    schedule: Any = [training_data]
else:
    schedule = FALLBACK_SCHEDULE


with DAG(
    dag_id="edgeimpulse_retrain_on_new_data",
    description="Retrain, test, gate and build an Edge Impulse model when new training data lands",
    schedule=schedule,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # one retrain at a time; batches that land meanwhile start the next run
    # Off until someone turns it on: only then does the watcher start polling Studio (and a parse by a
    # test run leaves no watcher trigger behind).
    is_paused_upon_creation=True,
    params={
        "accuracy_threshold": Param(
            float(setting("accuracy_threshold", DEFAULT_ACCURACY_THRESHOLD)),
            type="number",
            minimum=0,
            maximum=1,
            description="Stop before the build when the test accuracy (0..1) is below this",
        ),
        "deployment_format": Param(setting("deployment_format", DEFAULT_DEPLOYMENT_FORMAT), type="string"),
        "deployment_engine": Param(setting("deployment_engine", DEFAULT_DEPLOYMENT_ENGINE), type="string"),
        "output_dir": Param(setting("output_dir", DEFAULT_OUTPUT_DIR), type="string"),
    },
    tags=["edgeimpulse", "example"],
) as dag:
    if AIRFLOW_V_3_0_PLUS:

        @task(task_id="new_samples")
        def new_samples(triggering_asset_events: Any = None) -> dict[str, Any]:
            """Which samples started this run (nothing for a manual run)."""
            ids: list[int] = []
            count = 0
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    payload = (event.extra or {}).get("payload") or {}
                    ids.extend(payload.get("sample_ids") or [])
                    count += int(payload.get("new_sample_count") or 0)
            print(f"{count} new sample(s) started this run: {sorted(ids)}")
            return {"new_sample_count": count, "sample_ids": sorted(ids)}

        head: Any = new_samples()
    else:
        from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor

        head = EdgeImpulseNewSamplesSensor(
            task_id="new_samples",
            edgeimpulse_conn_id=CONN_ID,
            project_id=PROJECT_ID,
            category="training",
            min_new_samples=MIN_NEW_SAMPLES,
            poke_interval=POLL_INTERVAL_S,
            mode="reschedule",
            timeout=FALLBACK_SCHEDULE.total_seconds() - 60,
            soft_fail=True,  # no new data this hour: skip the run, the next one looks again
        )

    head >> retrain_test_gate_build(
        conn_id=CONN_ID,
        accuracy_threshold="{{ params.accuracy_threshold }}",
        deployment_format="{{ params.deployment_format }}",
        deployment_engine="{{ params.deployment_engine }}",
        output_dir="{{ params.output_dir }}",
        deferrable=DEFERRABLE,
    )
