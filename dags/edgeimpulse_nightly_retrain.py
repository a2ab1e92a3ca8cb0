"""
Nightly retraining: upload the day's new samples (optional), retrain, test, gate, version, build and download the
deployment.

The gate (``retrain_test_gate_build.quality_gate``) holds the model to the params ``accuracy_threshold``, no
regression against the last project version (``baseline_version``, ``max_accuracy_drop``) and a device budget
(``target_device``, ``max_latency_ms``, ``max_ram_bytes``, ``max_rom_bytes``). A model that misses one fails the
gate without retries: no version is made, nothing is built, and the task log names the check that failed and how
to roll the project back to the last good version in Studio. A model that passes becomes a project version, and
the build is announced as an event of the Asset ``edgeimpulse://<studio host>/project/<id>/deployment/<format>``
whose extra says which build it is (sha256, size, deployment and project version): ``edgeimpulse_firmware_release``
is scheduled on it.
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
    DEFAULT_CONN_ID,
    deployment_asset_of_settings,
    pipeline_params,
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
    description="Nightly: upload new samples, retrain, test, gate, version, build and download the deployment",
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "samples_dir": Param(
            str(setting("samples_dir", "")), type="string", description="upload the samples found here first"
        ),
        # Training by default: a test set that stays as it was keeps the gate's regression check comparing like
        # with like (new test samples move the accuracy of every model, better or worse).
        "samples_category": Param(
            "training",
            enum=["training", "testing", "split"],
            description="where the uploaded samples go ('split': 80/20 between training and testing)",
        ),
        **pipeline_params(),
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
            deferrable=DEFERRABLE,
            retrain_trigger_rule="none_failed",
            build_outlets=[deployment],
        )
    )
