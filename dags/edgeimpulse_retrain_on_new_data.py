"""
Retrain when new training data lands in an Edge Impulse project: retrain -> test -> gate -> version -> build.

Airflow 3: the DAG is scheduled on the asset ``edgeimpulse://<studio host>/project/<id>/samples/training``, whose
watcher (``EdgeImpulseNewSamplesTrigger``, run by the triggerer) emits an asset event per batch of new samples.
No worker waits; the first task reports which samples started the run.

The gate, the version and the build's announcement are those of ``edgeimpulse_nightly_retrain`` (same params, see
``edgeimpulse_common.retrain_test_gate_build``): a model that misses a limit is neither versioned nor built, and
the gate's log says which check failed and how to roll back.

Airflow 2.11 (no asset watchers): an hourly schedule with ``EdgeImpulseNewSamplesSensor`` at the head; a
run without new data within the hour is skipped.

Parse-time settings (Airflow Variables, defaults for the local emulator): ``edgeimpulse_conn_id``
(``edgeimpulse_default``), ``edgeimpulse_project_id`` (1), ``edgeimpulse_min_new_samples`` (1),
``edgeimpulse_poll_interval`` (60 s), ``edgeimpulse_deferrable`` (true), ``edgeimpulse_studio_url`` (the Studio
the assets name). Run-time settings are DAG params.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS, DAG, Asset, task
from edgeimpulse_common import (
    DEFAULT_CONN_ID,
    deployment_asset_of_settings,
    pipeline_params,
    retrain_test_gate_build,
    setting,
)

from airflow_provider_edgeimpulse.studio import DEFAULT_STUDIO_URL, samples_asset_uri

CONN_ID = str(setting("conn_id", DEFAULT_CONN_ID))
PROJECT_ID = int(setting("project_id", 1))
MIN_NEW_SAMPLES = int(setting("min_new_samples", 1))
POLL_INTERVAL_S = float(setting("poll_interval", 60))
DEFERRABLE = str(setting("deferrable", "true")).strip().lower() in ("true", "1", "yes", "on")
TRAINING_DATA_URI = samples_asset_uri(PROJECT_ID, "training", str(setting("studio_url", DEFAULT_STUDIO_URL)))
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
deployment = deployment_asset_of_settings()


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
    params=pipeline_params(),
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

    head >> retrain_test_gate_build(conn_id=CONN_ID, deferrable=DEFERRABLE, build_outlets=[deployment])
