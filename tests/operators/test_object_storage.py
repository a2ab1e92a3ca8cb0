"""
Files in and out through Airflow's object storage: a real S3-compatible server (moto's, in its own process,
reached through the Amazon provider's connection and s3fs), ``memory://`` and ``file://``.

The artefact lands at its key only when complete and checked, the temporary key beside it is gone either way,
uploads stream from the store in the same batched requests as local files, and no store secret shows anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.compat import object_storage_path_class
from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.operators.data import EdgeImpulseUploadSamplesOperator
from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
from tests.object_store import SECRET_KEY, S3Server, s3_server
from tests.operators.fakes import make_context
from tests.operators.helpers import MODES, defer_and_resume, job_starts, run_dag, states, xcom

GESTURES = Path(__file__).resolve().parents[2] / "dags" / "impulses" / "gestures.json"
TEMP_MARK = ".edgeimpulse-download-"


@pytest.fixture(scope="module")
def s3_server_running() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def s3(s3_server_running: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    monkeypatch.setenv(f"AIRFLOW_CONN_{s3_server_running.conn_id.upper()}", s3_server_running.connection_json())
    return s3_server_running


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture
def memory_root() -> str:
    """A fresh ``memory://`` prefix; the in-memory filesystem attached the way a DAG author attaches one."""
    from fsspec.implementations.memory import MemoryFileSystem

    try:
        from airflow.sdk.io import attach
    except ImportError:
        from airflow.io.store import attach  # type: ignore[no-redef]
    attach("memory", fs=MemoryFileSystem())
    return f"memory://ei-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def build(output_path: Any, **kwargs: Any) -> EdgeImpulseBuildDeploymentOperator:
    return EdgeImpulseBuildDeploymentOperator(
        task_id="build", deployment_format="zip", output_path=output_path, **kwargs
    )


def object_bytes(s3: S3Server, bucket: str, key: str) -> bytes:
    return bytes(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())


# -- the build's download --------------------------------------------------------------------------------------


def test_a_blocking_build_streams_to_s3_and_reports_the_url_size_and_sha256(em, s3, bucket, caplog):
    em.configure(deployment_size_bytes=12 * 1024 * 1024)  # several 5 MiB parts: a real multipart upload
    url = f"s3://{s3.conn_id}@{bucket}/firmware/lib.zip"
    result = build(url).execute(make_context())
    assert s3.keys(bucket) == ["firmware/lib.zip"], "the artefact alone: no temporary key left beside it"
    data = object_bytes(s3, bucket, "firmware/lib.zip")
    assert result["path"] == url
    assert (result["size"], result["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert len(data) >= 12 * 1024 * 1024
    assert zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert SECRET_KEY not in json.dumps(result) + caplog.text


def test_a_deferred_build_downloads_on_resume_into_an_s3_prefix_with_studios_name(em, s3, bucket):
    url = f"s3://{s3.conn_id}@{bucket}/nightly/"
    op = build(url, engine="tflite", model_type="float32")
    op.deployment_format = "wasm"
    op.deferrable = True
    result = defer_and_resume(op, make_context())
    assert s3.keys(bucket) == ["nightly/emulated-gestures-wasm-v1.zip"]
    assert result["path"] == f"{url}emulated-gestures-wasm-v1.zip"
    data = object_bytes(s3, bucket, "nightly/emulated-gestures-wasm-v1.zip")
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert "modelType: float32" in zipfile.ZipFile(io.BytesIO(data)).read("README.txt").decode()


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_a_dag_run_builds_into_s3_from_a_rendered_url(em, s3, bucket, mode):
    output_dir = f"s3://{s3.conn_id}@{bucket}/nightly"
    dag_run = run_dag(f"ei_ops_test_deploy_{mode}", {"output_dir": output_dir, "format": "arduino"})
    assert str(dag_run.state) == "success", states(dag_run)
    result = xcom(dag_run, "build")
    assert result["path"] == f"{output_dir}/arduino/model.zip"
    assert s3.keys(bucket) == ["nightly/arduino/model.zip"]
    data = object_bytes(s3, bucket, "nightly/arduino/model.zip")
    assert (result["size"], result["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    # What a downstream task on another worker does: open the URL it was handed, through the same connection.
    assert object_storage_path_class()(result["path"]).read_bytes() == data


def test_an_object_storage_path_with_its_conn_id_is_accepted(em, s3, bucket):
    path = object_storage_path_class()(f"s3://{bucket}/builds/model.zip", conn_id=s3.conn_id)
    result = build(path).execute(make_context())
    assert s3.keys(bucket) == ["builds/model.zip"]
    assert result["size"] == len(object_bytes(s3, bucket, "builds/model.zip"))


def test_a_corrupt_artefact_leaves_nothing_in_s3_and_the_retry_lands_alone(em, s3, bucket):
    em.fault(status=200, body="PK\x03\x04" + "not a zip " * 1000, content_type="application/zip", path="/download")
    url = f"s3://{s3.conn_id}@{bucket}/firmware/lib.zip"
    with pytest.raises(EdgeImpulseAPIError, match="not a readable zip"):
        build(url).execute(make_context())
    assert s3.keys(bucket) == [], "nothing at the final key, and the temporary key removed"
    em.clear_faults()
    result = build(url).execute(make_context())
    assert s3.keys(bucket) == ["firmware/lib.zip"]
    assert result["sha256"] == hashlib.sha256(object_bytes(s3, bucket, "firmware/lib.zip")).hexdigest()


def test_a_corrupt_artefact_leaves_nothing_in_memory_storage(em, memory_root):
    em.fault(status=200, body="PK\x03\x04" + "x" * 5000, content_type="application/zip", path="/download")
    root = object_storage_path_class()(f"{memory_root}/out/")
    with pytest.raises(EdgeImpulseAPIError, match="not a readable zip"):
        build(f"{memory_root}/out/lib.zip").execute(make_context())
    assert not root.exists() or list(root.iterdir()) == []
    em.clear_faults()
    build(f"{memory_root}/out/lib.zip").execute(make_context())
    assert [p.name for p in root.iterdir()] == ["lib.zip"]


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferred"])
def test_memory_and_file_urls_receive_the_artefact(em, memory_root, tmp_path, deferrable):
    for url in (f"{memory_root}/out/lib.zip", f"file://{tmp_path}/out/lib.zip"):
        op = build(url, deferrable=deferrable)
        result = defer_and_resume(op, make_context()) if deferrable else op.execute(make_context())
        stored = object_storage_path_class()(url)
        data = stored.read_bytes()
        assert (result["path"], result["size"]) == (str(stored), len(data)), "Airflow's own URL of the final key"
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert [p.name for p in stored.parent.iterdir()] == ["lib.zip"], "no temporary key left"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("nosuchscheme://bucket/lib.zip", "nosuchscheme"), ("gs://bucket/lib.zip", "gs")],
    ids=["unknown-scheme", "provider-not-installed"],
)
def test_a_store_airflow_cannot_reach_fails_naming_output_path_before_any_build(em, url, scheme):
    with pytest.raises(ValueError, match=f"output_path '{scheme}://.*no object storage for the scheme '{scheme}'"):
        build(url).execute(make_context())
    assert job_starts(em) == 0


# -- uploads and impulse definitions from object storage --------------------------------------------------------


def test_an_s3_glob_is_uploaded_in_one_batched_request(em, s3, bucket):
    client = s3.client()
    for key in ("in/idle.0.json", "in/deep/idle.1.json", "in/deep/.hidden.json", "in/notes.txt", "other/idle.2.json"):
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"payload": {"values": [[1, 2, 3]]}, "k": key}))
    result = EdgeImpulseUploadSamplesOperator(
        task_id="upload", paths=[f"s3://{s3.conn_id}@{bucket}/in/**/*.json"], label="idle"
    ).execute(make_context())
    assert (result["uploaded"], result["failed"], result["requests"]) == (2, [], 1)
    samples = [em.state.project.samples[i] for i in result["sample_ids"]]
    assert sorted(s.label for s in samples) == ["idle", "idle"]
    assert SECRET_KEY not in json.dumps(result)


def test_memory_file_and_object_storage_path_entries_upload_together(em, memory_root, tmp_path):
    path_class = object_storage_path_class()
    (path_class(f"{memory_root}/a.0.json")).write_text(json.dumps({"payload": {"values": [[1]]}}))
    (tmp_path / "b.0.json").write_text(json.dumps({"payload": {"values": [[2]]}}))
    (tmp_path / "c.0.json").write_text(json.dumps({"payload": {"values": [[3]]}}))
    result = EdgeImpulseUploadSamplesOperator(
        task_id="upload",
        paths=[path_class(f"{memory_root}/*.json"), f"file://{tmp_path}/b.0.json", str(tmp_path / "c.0.json")],
    ).execute(make_context())
    assert (result["uploaded"], result["requests"]) == (3, 1)
    assert sorted(em.state.project.samples[i].label for i in result["sample_ids"]) == ["a", "b", "c"]


def test_object_storage_upload_problems_are_listed_before_anything_is_sent(em, s3, bucket):
    with pytest.raises(ValueError, match=r"paths: 's3://.*/none/\*\.wav' matches no file; 's3://.*/missing.wav': no"):
        EdgeImpulseUploadSamplesOperator(
            task_id="upload",
            paths=[f"s3://{s3.conn_id}@{bucket}/none/*.wav", f"s3://{s3.conn_id}@{bucket}/missing.wav"],
        ).execute(make_context())
    with pytest.raises(ValueError, match=r"paths .nosuchscheme://b/x\.wav.: Airflow has no object storage"):
        EdgeImpulseUploadSamplesOperator(task_id="upload", paths="nosuchscheme://b/x.wav").execute(make_context())
    assert em.requests()["by_route"].get("POST /api/training/files", 0) == 0


def test_an_impulse_definition_is_read_from_s3(em, s3, bucket):
    s3.client().put_object(Bucket=bucket, Key="impulses/gestures.json", Body=GESTURES.read_bytes())
    impulse_id = EdgeImpulseCreateImpulseOperator(
        task_id="impulse", definition=f"s3://{s3.conn_id}@{bucket}/impulses/gestures.json"
    ).execute(make_context())
    assert impulse_id >= 1
    with pytest.raises(ValueError, match=r"definition .s3://.*/impulses/missing\.json.: no such object"):
        EdgeImpulseCreateImpulseOperator(
            task_id="impulse", definition=f"s3://{s3.conn_id}@{bucket}/impulses/missing.json"
        ).execute(make_context())
