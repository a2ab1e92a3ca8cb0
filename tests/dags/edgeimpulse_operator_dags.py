"""
DAGs for the operators' dag.test() runs (tests/operators/test_*.py), one per topic and waiting mode.

Every user-facing value comes through a template (params), so the runs also prove that the operators render
and coerce rendered text ("3", "true", "['a']"). Cheap to parse: no I/O at import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset

from airflow_provider_edgeimpulse.operators.announce import deployment_asset
from airflow_provider_edgeimpulse.operators.data import (
    EdgeImpulseBatchEditLabelsOperator,
    EdgeImpulseUploadSamplesOperator,
)
from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
from airflow_provider_edgeimpulse.operators.model_testing import EdgeImpulseModelTestingOperator
from airflow_provider_edgeimpulse.operators.training import (
    EdgeImpulseGenerateFeaturesOperator,
    EdgeImpulseRetrainOperator,
    EdgeImpulseTrainOperator,
)
from airflow_provider_edgeimpulse.operators.tuner import (
    EdgeImpulseSetTunerPrimaryOperator,
    EdgeImpulseStartEONTunerOperator,
)

MODES = {"deferred": True, "blocking": False}
# Short REST checks: the emulator's jobs last a fraction of a second.
_WAIT = {"safety_interval": 5.0, "poll_interval": 0.5}


def _dag(dag_id: str, params: dict[str, Any]) -> DAG:
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params=params,
        default_args={"retries": 0},
    )


def training_dag(mode: str) -> DAG:
    params = {
        "dsp_block_id": 3,
        "importance": True,
        "learn_block": "Classifier",
        "training_params": {"trainingCycles": 2},
        "impulse_id": 1,
    }
    with _dag(f"ei_ops_training_{mode}", params) as dag:
        features = EdgeImpulseGenerateFeaturesOperator(
            task_id="generate_features",
            dsp_block_id="{{ params.dsp_block_id }}",
            calculate_feature_importance="{{ params.importance }}",
            deferrable=MODES[mode],
            **_WAIT,
        )
        train = EdgeImpulseTrainOperator(
            task_id="train",
            learn_block="{{ params.learn_block }}",
            training_params="{{ params.training_params | tojson }}",
            deferrable=MODES[mode],
            **_WAIT,
        )
        retrain = EdgeImpulseRetrainOperator(
            task_id="retrain", impulse_id="{{ params.impulse_id }}", deferrable=MODES[mode], **_WAIT
        )
        features >> train >> retrain
    return dag


def testing_and_deployment_dag(mode: str) -> DAG:
    params = {"variants": ["int8"], "min_accuracy": 0.1, "format": "zip", "output_dir": "/nonexistent"}
    with _dag(f"ei_ops_test_deploy_{mode}", params) as dag:
        test = EdgeImpulseModelTestingOperator(
            task_id="model_testing",
            model_variants="{{ params.variants }}",
            min_accuracy="{{ params.min_accuracy }}",
            deferrable=MODES[mode],
            **_WAIT,
        )
        build = EdgeImpulseBuildDeploymentOperator(
            task_id="build",
            deployment_format="{{ params.format }}",
            output_path="{{ params.output_dir }}/{{ params.format }}/model.zip",
            deferrable=MODES[mode],
            **_WAIT,
        )
        test >> build
    return dag


# The Assets a build announces to: the provider's name for the project's Arduino builds, and one of the author's.
ANNOUNCED_DEPLOYMENT = deployment_asset(1, "arduino", "http://127.0.0.1")
ANNOUNCED_FIRMWARE = Asset("file:///firmware/releases")


def announce_dag(mode: str) -> DAG:
    params = {"output_dir": "/nonexistent", "project_version": "None"}
    with _dag(f"ei_ops_announce_{mode}", params) as dag:
        EdgeImpulseBuildDeploymentOperator(
            task_id="build",
            deployment_format="arduino",
            output_path="{{ params.output_dir }}/",
            project_version="{{ params.project_version }}",
            deferrable=MODES[mode],
            outlets=[ANNOUNCED_DEPLOYMENT, ANNOUNCED_FIRMWARE],
            **_WAIT,
        )
    return dag


def tuner_dag(mode: str) -> DAG:
    params = {"device": "cortex-m4f-80mhz", "latency": 100, "trials": 3, "metric": "latency"}
    with _dag(f"ei_ops_tuner_{mode}", params) as dag:
        start = EdgeImpulseStartEONTunerOperator(
            task_id="start_tuner",
            target_device="{{ params.device }}",
            target_latency="{{ params.latency }}",
            tuning_max_trials="{{ params.trials }}",
            wait_for_completion=True,
            deferrable=MODES[mode],
            **_WAIT,
        )
        adopt = EdgeImpulseSetTunerPrimaryOperator(
            task_id="adopt",
            trial_id="best",
            tuner_coordinator_job_id="{{ ti.xcom_pull(task_ids='start_tuner') }}",
            metric="{{ params.metric }}",
            deferrable=MODES[mode],
            **_WAIT,
        )
        start >> adopt
    return dag


def data_dag(mode: str) -> DAG:
    params = {"glob": "/nonexistent/*.json", "label": "clap", "relabel_to": "applause", "source": "test", "impulse": ""}
    with _dag(f"ei_ops_data_{mode}", params) as dag:
        upload = EdgeImpulseUploadSamplesOperator(
            task_id="upload",
            paths="{{ params.glob }}",
            label="{{ params.label }}",
            metadata={"source": "{{ params.source }}"},
        )
        relabel = EdgeImpulseBatchEditLabelsOperator(
            task_id="relabel",
            label="{{ params.relabel_to }}",
            category="training",
            labels="{{ [params.label] }}",
            deferrable=MODES[mode],
            **_WAIT,
        )
        create = EdgeImpulseCreateImpulseOperator(task_id="create_impulse", definition="{{ params.impulse }}")
        upload >> relabel >> create
    return dag


def failing_dag(mode: str) -> DAG:
    with _dag(f"ei_ops_failing_{mode}", {}) as dag:
        EdgeImpulseTrainOperator(task_id="train", learn_block_id=4, deferrable=MODES[mode], **_WAIT)
    return dag


DAGS = {
    dag.dag_id: dag
    for mode in MODES
    for dag in (
        training_dag(mode),
        testing_and_deployment_dag(mode),
        announce_dag(mode),
        tuner_dag(mode),
        data_dag(mode),
        failing_dag(mode),
    )
}
globals().update({dag_id.replace("-", "_"): dag for dag_id, dag in DAGS.items()})
