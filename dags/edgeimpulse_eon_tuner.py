"""
EON Tuner: configure and start a search, wait for it in the triggerer, adopt the best trial, retrain, build.

Tasks use the connection named by the Airflow Variable ``edgeimpulse_conn_id`` (default ``edgeimpulse_default``);
``edgeimpulse_deferrable`` (default true) picks the waiting mode. Settings are DAG params (override them per run);
the defaults work against the provider's emulator.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param
from edgeimpulse_common import DEFAULT_CONN_ID, setting

from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator
from airflow_provider_edgeimpulse.operators.tuner import (
    EdgeImpulseSetTunerPrimaryOperator,
    EdgeImpulseStartEONTunerOperator,
)
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor

CONN_ID = str(setting("conn_id", DEFAULT_CONN_ID))
DEFERRABLE = str(setting("deferrable", "true")).strip().lower() in ("true", "1", "yes", "on")
# How often a non-deferred sensor reads the tuner state; deferred, it also wakes when the run's job finishes.
TUNER_POKE_INTERVAL_S = float(setting("tuner_poke_interval", 60))

with DAG(
    dag_id="edgeimpulse_eon_tuner",
    description="EON Tuner search, adopt the best trial, retrain and build",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["edgeimpulse", "example"],
    params={
        "target_device": Param("cortex-m4f-80mhz", type="string"),
        "target_latency_ms": Param(100, type="integer", minimum=1),
        "max_trials": Param(4, type="integer", minimum=1),
        "metric": Param("accuracy", type="string", description="what the best trial maximises (or minimises)"),
        "deployment_format": Param("zip", type="string"),
        "deployment_engine": Param("tflite-eon", type="string"),
        "output_dir": Param("/tmp/edgeimpulse-artifacts/", type="string"),
    },
    render_template_as_native_obj=True,
) as dag:
    start_tuner = EdgeImpulseStartEONTunerOperator(
        task_id="start_tuner",
        edgeimpulse_conn_id=CONN_ID,
        target_device="{{ params.target_device }}",
        target_latency="{{ params.target_latency_ms }}",
        tuning_max_trials="{{ params.max_trials }}",
    )
    wait_for_tuner = EONTunerStateSensor(
        task_id="wait_for_tuner",
        edgeimpulse_conn_id=CONN_ID,
        tuner_coordinator_job_id=start_tuner.output,
        metric="{{ params.metric }}",
        deferrable=DEFERRABLE,
        poke_interval=TUNER_POKE_INTERVAL_S,
        state_poll_interval=TUNER_POKE_INTERVAL_S,
        mode="poke" if TUNER_POKE_INTERVAL_S < 60 else "reschedule",
        timeout=6 * 3600,
    )
    adopt_best = EdgeImpulseSetTunerPrimaryOperator(
        task_id="adopt_best_trial",
        edgeimpulse_conn_id=CONN_ID,
        trial_id="best",
        tuner_coordinator_job_id=start_tuner.output,
        metric="{{ params.metric }}",
        deferrable=DEFERRABLE,
    )
    retrain = EdgeImpulseRetrainOperator(task_id="retrain", edgeimpulse_conn_id=CONN_ID, deferrable=DEFERRABLE)
    build = EdgeImpulseBuildDeploymentOperator(
        task_id="build_deployment",
        edgeimpulse_conn_id=CONN_ID,
        deployment_format="{{ params.deployment_format }}",
        engine="{{ params.deployment_engine }}",
        output_path="{{ params.output_dir }}",
        deferrable=DEFERRABLE,
    )
    start_tuner >> wait_for_tuner >> adopt_best >> retrain >> build
