"""
The nightly pipeline's hand-over on a distributed Airflow (tests/e2e/test_production_stack.py): retrain, build the
deployment into object storage (the run's ``output_dir``, e.g. ``s3://conn_id@bucket/nightly``) on one Celery
worker, and check the firmware's sha256 on the other one, which has only the store to read it from.

Each task's ``queue`` is one only that worker serves (tests/e2e/stack.py names them ``celery-worker-N``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator

PROJECT_ID = 1
BUILD_QUEUE = "celery-worker-1"
CHECK_QUEUE = "celery-worker-2"
CHUNK = 1024 * 1024

with DAG(
    dag_id="e2e_nightly_s3",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    params={"output_dir": Param("", type="string", description="where builds go: a URL of object storage")},
    tags=["e2e"],
):
    retrain = EdgeImpulseRetrainOperator(task_id="retrain", project_id=PROJECT_ID, deferrable=True, retries=0)
    build = EdgeImpulseBuildDeploymentOperator(
        task_id="build",
        project_id=PROJECT_ID,
        deployment_format="zip",
        output_path="{{ params.output_dir }}/{{ run_id }}/",  # a trailing separator: keep Studio's file name
        deferrable=True,
        retries=0,
        queue=BUILD_QUEUE,
    )

    @task(queue=CHECK_QUEUE, retries=0)
    def check_firmware(built: dict[str, Any]) -> dict[str, Any]:
        """The artefact as the store holds it is the one the build reported: same size, same sha256."""
        from airflow_provider_edgeimpulse.compat import object_storage_path_class

        digest, size = hashlib.sha256(), 0
        with object_storage_path_class()(built["path"]).open("rb") as artefact:
            while chunk := artefact.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        if (size, digest.hexdigest()) != (int(built["size"]), built["sha256"]):
            raise ValueError(f"{built['path']}: {size} bytes, sha256 {digest.hexdigest()}; built {built!r}")
        print(f"{built['path']}: {size} bytes, sha256 {built['sha256']} as built")
        return {"path": built["path"], "size": size, "sha256": digest.hexdigest()}

    retrain >> build
    check_firmware(build.output)
