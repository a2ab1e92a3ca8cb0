"""
Event-driven retraining on a real Airflow 3: samples uploaded to the project make Airflow start
``edgeimpulse_retrain_on_new_data`` by itself, through the asset watcher running in the triggerer.

Nobody triggers a run here: the test only turns the DAG on, uploads through the emulator's ingestion endpoint,
and watches. The watcher polls every ``WATCHER_POLL_INTERVAL_S`` (an Airflow Variable the stack sets).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_edgeimpulse.emulator.sample_files import acquisition_sample
from tests.e2e.runs import runs_of, task_states, unpause, wait_for_run_end, xcom
from tests.e2e.stack import WATCHER_POLL_INTERVAL_S, AirflowStack, wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "edgeimpulse_retrain_on_new_data"
WATERMARK_PREFIX = "edgeimpulse_new_samples__watcher__"
EXPECTED_STATES = {
    "new_samples": "success",
    "retrain_test_gate_build.retrain": "success",
    "retrain_test_gate_build.test": "success",
    "retrain_test_gate_build.quality_gate": "success",
    "retrain_test_gate_build.version": "success",
    "retrain_test_gate_build.build": "success",
}


def upload(stack: AirflowStack, count: int) -> list[int]:
    """``count`` new training samples through the ingestion endpoint; their sample ids."""
    files = []
    for n in range(count):
        body = acquisition_sample([[0.01 * n * i, 0.0, 9.81] for i in range(40)], device_type="AIRFLOW_E2E")
        files.append(("data", (f"wave.new{n}.{time.time_ns()}.json", json.dumps(body), "application/json")))
    response = requests.post(
        f"{stack.emulator_url}/api/training/files",
        files=files,
        headers={"x-api-key": stack.settings.credentials.api_key},
        timeout=30,
    )
    response.raise_for_status()
    answers = response.json()["files"]
    assert all(a["success"] for a in answers), answers
    return sorted(int(a["sampleId"]) for a in answers)


def watermark(stack: AirflowStack) -> int | None:
    """The watcher's stored watermark: it exists once the watcher has run in the triggerer."""
    variables = stack.api("GET", "/variables", params={"limit": 100})["variables"]
    values = [json.loads(v["value"])["last_sample_id"] for v in variables if v["key"].startswith(WATERMARK_PREFIX)]
    return max(values) if values else None


def asset_runs(stack: AirflowStack) -> list[dict[str, Any]]:
    return [r for r in runs_of(stack, DAG_ID) if r["run_type"] == "asset_triggered"]


@pytest.fixture
def watching(airflow_stack: AirflowStack) -> Iterator[None]:
    """The DAG turned on for the test only: later tests upload samples too, and must not start runs of it."""
    airflow_stack.wait_for_dag(DAG_ID)
    try:
        yield
    finally:
        airflow_stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": True})


def test_an_upload_makes_airflow_start_the_retraining_dag_by_itself(
    airflow_stack: AirflowStack, watching: None
) -> None:
    stack = airflow_stack
    # Longer than the workers' 1 s heartbeat: see the deferral race in stack.py.
    stack.emulator("POST", "/config", json={"job_duration": 3.0})
    assert runs_of(stack, DAG_ID) == [], "the DAG starts paused: nothing ran before it was turned on"
    unpause(stack, DAG_ID)
    before = wait_until(lambda: watermark(stack), timeout=120, what="the new-data watcher's first watermark")

    new_ids = upload(stack, 3)
    assert min(new_ids) > before

    (run,) = wait_until(lambda: asset_runs(stack) or None, timeout=120, what="an asset-triggered run")
    run_id = str(run["dag_run_id"])
    assert wait_for_run_end(stack, DAG_ID, run_id) == "success", task_states(stack, DAG_ID, run_id)
    assert task_states(stack, DAG_ID, run_id) == EXPECTED_STATES
    reported = xcom(stack, DAG_ID, run_id, "new_samples")
    assert reported == {"new_sample_count": 3, "sample_ids": new_ids}
    assert watermark(stack) == max(new_ids)

    # The same samples never start a second run: several more polls, still one run.
    time.sleep(4 * WATCHER_POLL_INTERVAL_S)
    assert [r["dag_run_id"] for r in asset_runs(stack)] == [run_id]
    assert len(runs_of(stack, DAG_ID)) == 1
