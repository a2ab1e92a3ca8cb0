"""
Nightly retraining: upload the day's new samples (optional), retrain, test, stop below an accuracy threshold,
build the deployment and download it.

The build is announced as an event of the Asset ``edgeimpulse://<studio host>/project/<id>/deployment/<format>``
whose extra says which build it is (sha256, size, versions): ``edgeimpulse_firmware_release`` is scheduled on it.
Settings: DAG params at run time (trigger form or ``--conf``), Airflow Variables ``edgeimpulse_*`` at parse time
(``edgeimpulse_nightly_schedule``: when it runs, ``@daily`` unless set); every default works against the
provider's emulator.
"""

from __future__ import annotations

import glob
import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task
from edgeimpulse_common import (
    DEFAULT_ACCURACY_THRESHOLD,
    DEFAULT_CONN_ID,
    DEFAULT_DEPLOYMENT_ENGINE,
    DEFAULT_DEPLOYMENT_FORMAT,
    DEFAULT_OUTPUT_DIR,
    deployment_asset_of_settings,
    retrain_test_gate_build,
    setting,
)

from airflow_provider_edgeimpulse.operators.data import EdgeImpulseUploadSamplesOperator

CONN_ID = str(setting("conn_id", DEFAULT_CONN_ID))
PROJECT_ID = int(setting("project_id", 1))
DEFERRABLE = str(setting("deferrable", "true")).strip().lower() in ("true", "1", "yes", "on")
# A cron expression or preset; "none" for manual and API-triggered runs only.
SCHEDULE = str(setting("nightly_schedule", "@daily")).strip()
SAMPLE_PATTERNS = ("*.wav", "*.json", "*.cbor", "*.csv", "*.jpg", "*.jpeg", "*.png")
deployment = deployment_asset_of_settings()

with DAG(
    dag_id="edgeimpulse_nightly_retrain",
    description="Nightly: upload new samples, retrain, test, gate on accuracy, build and download the deployment",
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "samples_dir": Param(
            str(setting("samples_dir", "")), type="string", description="upload the samples found here first"
        ),
        "samples_category": Param("split", enum=["training", "testing", "split"]),
        "accuracy_threshold": Param(
            float(setting("accuracy_threshold", DEFAULT_ACCURACY_THRESHOLD)), type="number", minimum=0, maximum=1
        ),
        "deployment_format": Param(setting("deployment_format", DEFAULT_DEPLOYMENT_FORMAT), type="string"),
        "deployment_engine": Param(setting("deployment_engine", DEFAULT_DEPLOYMENT_ENGINE), type="string"),
        "output_dir": Param(setting("output_dir", DEFAULT_OUTPUT_DIR), type="string"),
    },
    tags=["edgeimpulse", "example"],
) as dag:

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def new_sample_files(samples_dir: str) -> list[str]:
        """The files to upload; an empty list skips the upload (and only the upload)."""
        if not samples_dir:
            print("No samples_dir given: nothing to upload")
            return []
        if not os.path.isdir(samples_dir):
            raise FileNotFoundError(f"samples_dir {samples_dir!r} is not a directory")
        files = sorted(f for pattern in SAMPLE_PATTERNS for f in glob.glob(os.path.join(samples_dir, pattern)))
        print(f"{len(files)} sample file(s) to upload from {samples_dir}")
        return files

    files: Any = new_sample_files("{{ params.samples_dir }}")
    upload = EdgeImpulseUploadSamplesOperator(
        task_id="upload_samples",
        edgeimpulse_conn_id=CONN_ID,
        paths=files,
        category="{{ params.samples_category }}",
    )
    (
        files
        >> upload
        >> retrain_test_gate_build(
            conn_id=CONN_ID,
            accuracy_threshold="{{ params.accuracy_threshold }}",
            deployment_format="{{ params.deployment_format }}",
            deployment_engine="{{ params.deployment_engine }}",
            output_dir="{{ params.output_dir }}",
            deferrable=DEFERRABLE,
            retrain_trigger_rule="none_failed",
            build_outlets=[deployment],
        )
    )
