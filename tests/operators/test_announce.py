"""The built deployment announced downstream: an Asset event whose extra says exactly which build it is."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators.announce import DEPLOYMENT_EVENT_KEYS, deployment_asset
from airflow_provider_edgeimpulse.studio import deployment_asset_uri
from tests.airflow_compat import asset_event_extras, register_assets
from tests.dags.edgeimpulse_operator_dags import ANNOUNCED_DEPLOYMENT, ANNOUNCED_FIRMWARE
from tests.operators.helpers import MODES, run_dag, states, xcom


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


@pytest.fixture(autouse=True)
def known_assets(request: pytest.FixtureRequest) -> None:
    if "airflow_db" in request.fixturenames:
        request.getfixturevalue("airflow_db")
        register_assets(ANNOUNCED_DEPLOYMENT.uri, ANNOUNCED_FIRMWARE.uri)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_the_build_announces_which_deployment_it_made_as_an_asset_event(em, mode, tmp_path):
    before = len(asset_event_extras(ANNOUNCED_DEPLOYMENT.uri))
    dag_run = run_dag(f"ei_ops_announce_{mode}", {"output_dir": str(tmp_path), "project_version": "7"})
    assert str(dag_run.state) == "success", states(dag_run)

    build = xcom(dag_run, "build")
    path = Path(build["path"])
    expected = {
        "project_id": 1,
        "project_version": 7,
        "deployment_version": 1,
        "format": "arduino",
        "engine": "tflite-eon",
        "model_type": None,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
        "filename": path.name,
        "path": str(path),
        "job_id": build["job_id"],
    }
    assert build["project_version"] == 7
    events = asset_event_extras(ANNOUNCED_DEPLOYMENT.uri)
    assert len(events) == before + 1
    assert events[-1] == expected, "the event of the deployment asset carries the build's identity"
    assert asset_event_extras(ANNOUNCED_FIRMWARE.uri)[-1] == expected, "every Asset outlet is announced"


@pytest.mark.usefixtures("airflow_db")
def test_a_build_without_a_project_version_announces_none(em, tmp_path):
    before = len(asset_event_extras(ANNOUNCED_DEPLOYMENT.uri))
    # A pipeline without a version step renders its template to "None".
    dag_run = run_dag("ei_ops_announce_blocking", {"output_dir": str(tmp_path), "project_version": "None"})
    assert str(dag_run.state) == "success", states(dag_run)
    events = asset_event_extras(ANNOUNCED_DEPLOYMENT.uri)
    assert len(events) == before + 1, xcom(dag_run, "build")
    extra = events[-1]
    assert tuple(extra) == DEPLOYMENT_EVENT_KEYS
    assert extra["project_version"] is None
    assert extra["sha256"] == xcom(dag_run, "build")["sha256"]


@pytest.mark.usefixtures("airflow_db")
def test_a_project_version_that_is_no_number_fails_before_the_build(em, tmp_path):
    before = len(asset_event_extras(ANNOUNCED_DEPLOYMENT.uri))
    dag_run = run_dag("ei_ops_announce_blocking", {"output_dir": str(tmp_path), "project_version": "latest"})
    assert states(dag_run)["build"] == "failed"
    assert em.jobs() == [], "no build was started"
    assert len(asset_event_extras(ANNOUNCED_DEPLOYMENT.uri)) == before, "nothing announced"


def test_the_deployment_asset_is_named_by_studio_host_project_and_format():
    assert deployment_asset(12, "zip").uri == "edgeimpulse://studio.edgeimpulse.com/project/12/deployment/zip"
    assert deployment_asset("3", "arduino", "http://127.0.0.1:4800").uri == (
        "edgeimpulse://127.0.0.1:4800/project/3/deployment/arduino"
    )
    assert (
        deployment_asset_uri(3, "arduino", "http://127.0.0.1:4800")
        == deployment_asset(3, "arduino", "http://127.0.0.1:4800").uri
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((0, "zip"), "project_id"),
        (("x", "zip"), "project_id"),
        ((1, ""), "deployment_format"),
        ((1, "a/b"), "deployment_format"),
    ],
)
def test_a_bad_deployment_asset_names_its_field(args, named):
    with pytest.raises(ValueError, match=named):
        deployment_asset(*args)
