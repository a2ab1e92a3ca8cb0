"""
A firmware team's DAG: runs when a new deployment is announced, checks the artefact it was told about, releases it.

Scheduled on the Asset the retraining pipelines announce their builds to
(``edgeimpulse://<studio host>/project/<id>/deployment/<format>``, see ``deployment_asset_of_settings``). The
triggering asset event's extra says exactly which build it is: project id and version, deployment version, format,
engine, sha256, size and where the file is. The artefact is checked against the sha256 and size it was announced
with before anything is done with it. A manual run takes the same keys from the ``build`` param (e.g. to release a
known build again).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS, DAG, Param, task
from edgeimpulse_common import deployment_asset_of_settings

deployment = deployment_asset_of_settings()
# Airflow 2.11 calls the same context entry triggering_dataset_events.
TRIGGERING_EVENTS = "triggering_asset_events" if AIRFLOW_V_3_0_PLUS else "triggering_dataset_events"
CHUNK = 1024 * 1024

with DAG(
    dag_id="edgeimpulse_firmware_release",
    description="Release the firmware built from a newly announced Edge Impulse deployment",
    schedule=[deployment],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={"build": Param({}, type="object", description="a manual run: the announcement's keys")},
    tags=["edgeimpulse", "example"],
) as dag:

    @task
    def announced_build(params: Any = None, **context: Any) -> dict[str, Any]:
        """The newest announced build among the events that triggered this run, else the ``build`` param."""
        events = [event for batch in (context.get(TRIGGERING_EVENTS) or {}).values() for event in batch]
        if events:
            extra = dict(max(events, key=lambda event: event.timestamp).extra or {})
        else:
            extra = dict((params or {}).get("build") or {})
        missing = [key for key in ("path", "sha256", "size") if extra.get(key) in (None, "")]
        if missing:
            raise ValueError(f"The announcement names no {', '.join(missing)}: nothing to release ({extra!r})")
        print(
            f"Deployment v{extra.get('deployment_version')} of project {extra.get('project_id')} "
            f"(project version {extra.get('project_version')}), {extra.get('format')}/{extra.get('engine')}: "
            f"{extra['path']}"
        )
        return extra

    @task
    def verify(build: dict[str, Any]) -> dict[str, Any]:
        """The artefact is the one announced: same size, same sha256 (a local path or an object-storage URL)."""
        from airflow_provider_edgeimpulse.compat import object_storage_path_class

        path = build["path"]
        artefact_path: Any = object_storage_path_class()(path) if "://" in str(path) else Path(path)
        digest, size = hashlib.sha256(), 0
        with artefact_path.open("rb") as artefact:
            while chunk := artefact.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        if (size, digest.hexdigest()) != (int(build["size"]), build["sha256"]):
            raise ValueError(
                f"{path} is not the announced build: {size} bytes, sha256 {digest.hexdigest()}; "
                f"announced {build['size']} bytes, sha256 {build['sha256']}"
            )
        print(f"{path}: {size} bytes, sha256 {build['sha256']} as announced")
        return build

    @task
    def release(build: dict[str, Any]) -> dict[str, Any]:
        """Where a team flashes a test rig or publishes a release; here it records what was released."""
        released = {key: build.get(key) for key in ("project_version", "deployment_version", "sha256", "path")}
        print(f"Releasing {released}")
        return released

    release(verify(announced_build()))
