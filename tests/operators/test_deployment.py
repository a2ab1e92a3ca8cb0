"""Build a deployment and stream it to disk: checked against the targets first, downloaded on the worker."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from tests.operators.fakes import DictStateStore, make_context
from tests.operators.helpers import MODES, defer, defer_and_resume, fire, job_starts, run_dag, states, xcom


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_model_testing_then_build_in_a_dag_run(em, mode, tmp_path):
    dag_run = run_dag(f"ei_ops_test_deploy_{mode}", {"output_dir": str(tmp_path), "format": "arduino"})
    assert str(dag_run.state) == "success", states(dag_run)
    testing = xcom(dag_run, "model_testing")
    assert testing["accuracy"] > 0.1
    assert testing["job_id"] == xcom(dag_run, "model_testing", "job_id")
    build = xcom(dag_run, "build")
    path = Path(build["path"])
    assert path == tmp_path / "arduino" / "model.zip", "the rendered output path, its parent made"
    assert zipfile.is_zipfile(path)
    assert (build["size"], build["sha256"]) == (path.stat().st_size, sha256(path))
    assert (build["format"], build["engine"]) == ("arduino", "tflite-eon"), "the target's preferred engine"
    assert build["deploymentVersion"] == 1
    assert build["job_id"] == xcom(dag_run, "build", "job_id")
    assert xcom(dag_run, "build", "studio_url").endswith(f"/jobs/{build['job_id']}")


def test_a_deferred_build_downloads_on_resume_into_a_directory(em, tmp_path):
    em.configure(deployment_size_bytes=3 * 1024 * 1024)
    op = EdgeImpulseBuildDeploymentOperator(
        task_id="build", deployment_format="wasm", engine="tflite", model_type="float32", output_path=str(tmp_path)
    )
    op.deferrable = True
    result = defer_and_resume(op, make_context())
    path = Path(result["path"])
    assert path.parent == tmp_path
    assert path.name == "emulated-gestures-wasm-v1.zip", "Studio's file name when the destination is a directory"
    assert result["size"] == path.stat().st_size >= 3 * 1024 * 1024
    assert result["model_type"] == "float32"
    assert "modelType: float32" in zipfile.ZipFile(path).read("README.txt").decode()


def test_a_failing_build_fails_with_its_log_tail_and_writes_nothing(em, tmp_path):
    em.configure(job_outcome="failure")
    context = make_context()
    op = EdgeImpulseBuildDeploymentOperator(
        task_id="build", deployment_format="zip", output_path=str(tmp_path / "lib.zip"), deferrable=True
    )
    event = fire(defer(op, context))
    with pytest.raises(EdgeImpulseJobFailed, match="toolchain exited with code 1"):
        op.execute_complete(context, event.payload)
    assert list(tmp_path.iterdir()) == []


def test_a_retry_after_a_finished_build_downloads_without_building_again(em, tmp_path):
    em.configure(job_duration=None)
    store = DictStateStore()

    def build(**kwargs: Any) -> Any:
        return EdgeImpulseBuildDeploymentOperator(
            task_id="build", deployment_format="zip", output_path=str(tmp_path / "lib.zip"), **kwargs
        ).execute(make_context(store=store))

    started = build(wait_for_completion=False)
    em.finish_job(started["job_id"], True)
    result = build()
    assert result["job_id"] == started["job_id"]
    assert Path(result["path"]).is_file()
    assert len(em.jobs()) == 1


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"deployment_format": "floppy"}, "deployment_format 'floppy' is not a deployment target"),
        ({"deployment_format": "wasm", "engine": "tflite-eon-ram-optimized"}, "allowed: \\['tflite', 'tflite-eon'\\]"),
        ({"deployment_format": "zip", "model_type": "akida"}, "model_type 'akida' is not supported"),
        ({"deployment_format": "zip", "model_type": "int4"}, "model_type must be one of"),
        ({"deployment_format": ""}, "deployment_format must be a non-empty string"),
        ({"deployment_format": "zip", "impulse_id": "x"}, "impulse_id must be an integer"),
        ({"deployment_format": "zip", "download_timeout": "soon"}, "download_timeout must be a positive"),
    ],
)
def test_bad_arguments_fail_before_any_build(em, tmp_path, kwargs, named):
    with pytest.raises(ValueError, match=named):
        EdgeImpulseBuildDeploymentOperator(task_id="build", output_path=str(tmp_path), **kwargs).execute(make_context())
    assert job_starts(em) == 0


def test_a_download_timeout_that_is_no_duration_fails_when_the_task_is_built(tmp_path):
    with pytest.raises(ValueError, match="download_timeout must be a positive, finite number of seconds, got 0"):
        EdgeImpulseBuildDeploymentOperator(
            task_id="build", deployment_format="zip", output_path=str(tmp_path), download_timeout=0
        )


@pytest.mark.off_spec("a sign-in page instead of the artefact")
def test_a_sign_in_page_instead_of_the_artefact_fails_the_task_and_writes_nothing(em, tmp_path):
    em.fault(status=200, body="<html><title>Sign in</title></html>", path="/download")
    op = EdgeImpulseBuildDeploymentOperator(
        task_id="build", deployment_format="zip", output_path=str(tmp_path), download_timeout="120"
    )
    with pytest.raises(EdgeImpulseAPIError, match="HTML page"):
        op.execute(make_context())
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_lists_the_allowed_ones(em, tmp_path):
    with pytest.raises(ValueError, match="allowed: arduino, brainchip-akida, cubemx") as err:
        EdgeImpulseBuildDeploymentOperator(
            task_id="build", deployment_format="floppy", output_path=str(tmp_path)
        ).execute(make_context())
    assert "zip" in str(err.value)


def test_an_output_path_that_cannot_be_made_fails_before_the_build(em, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="output_path"):
        EdgeImpulseBuildDeploymentOperator(
            task_id="build", deployment_format="zip", output_path=str(blocker / "sub" / "lib.zip")
        ).execute(make_context())
    assert job_starts(em) == 0


def test_templated_fields_render(em, tmp_path):
    op = EdgeImpulseBuildDeploymentOperator(
        task_id="build",
        deployment_format="{{ params.fmt }}",
        engine="{{ params.engine }}",
        model_type="{{ params.model_type }}",
        impulse_id="{{ params.impulse }}",
        output_path="{{ params.out }}/{{ params.fmt }}.zip",
    )
    op.render_template_fields(
        {"params": {"fmt": "zip", "engine": "tflite", "model_type": "int8", "impulse": 1, "out": str(tmp_path)}}
    )
    result = op.execute(make_context())
    assert result["path"] == str(tmp_path / "zip.zip")
    assert (result["engine"], result["model_type"]) == ("tflite", "int8")
