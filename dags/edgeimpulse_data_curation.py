"""
Data curation: relabel samples in bulk, (re)create the impulse from a JSON definition, generate features.

Tasks use the connection named by the Airflow Variable ``edgeimpulse_conn_id`` (default ``edgeimpulse_default``);
``edgeimpulse_deferrable`` (default true) picks the waiting mode. Settings are DAG params (override them per run in
the trigger form or with ``--conf``); their defaults work against the provider's emulator. Point the
``edgeimpulse_default`` connection at a real project to run it there unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param
from edgeimpulse_common import DEFAULT_CONN_ID, setting

from airflow_provider_edgeimpulse.operators.data import EdgeImpulseBatchEditLabelsOperator
from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
from airflow_provider_edgeimpulse.operators.training import EdgeImpulseGenerateFeaturesOperator

IMPULSE_FILE = Path(__file__).parent / "impulses" / "gestures.json"

CONN_ID = str(setting("conn_id", DEFAULT_CONN_ID))
DEFERRABLE = str(setting("deferrable", "true")).strip().lower() in ("true", "1", "yes", "on")

with DAG(
    dag_id="edgeimpulse_data_curation",
    description="Bulk relabel, create an impulse from JSON, generate features",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["edgeimpulse", "example"],
    params={
        "category": Param("training", enum=["training", "testing", "anomaly"]),
        "relabel_from": Param(["updown"], type="array", description="labels of the samples to relabel"),
        "relabel_to": Param("up-down", type="string", minLength=1),
        "filename_filter": Param("", type="string", description="only samples whose file name contains this"),
        "impulse_file": Param(str(IMPULSE_FILE), type="string"),
        "dsp_block": Param("Spectral features", type="string"),
    },
    render_template_as_native_obj=True,
) as dag:
    relabel = EdgeImpulseBatchEditLabelsOperator(
        task_id="relabel",
        edgeimpulse_conn_id=CONN_ID,
        category="{{ params.category }}",
        labels="{{ params.relabel_from }}",
        filename="{{ params.filename_filter or None }}",
        label="{{ params.relabel_to }}",
        deferrable=DEFERRABLE,
    )
    create_impulse = EdgeImpulseCreateImpulseOperator(
        task_id="create_impulse",
        edgeimpulse_conn_id=CONN_ID,
        definition="{{ params.impulse_file }}",
    )
    generate_features = EdgeImpulseGenerateFeaturesOperator(
        task_id="generate_features",
        edgeimpulse_conn_id=CONN_ID,
        dsp_block="{{ params.dsp_block }}",
        deferrable=DEFERRABLE,
    )
    relabel >> create_impulse >> generate_features
