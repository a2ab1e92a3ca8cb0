"""Deployment targets, build jobs and streamed zip downloads."""

from __future__ import annotations

import io
import os
import re
import zipfile

import pytest
import requests

from airflow_provider_edgeimpulse.emulator.deploy import write_artifact
from tests.emulator.conftest import Studio


def test_targets(studio: Studio, validate) -> None:
    targets = validate("ProjectDeploymentTargetsResponse", studio.get("deployment/targets")).targets
    formats = {t.format: t for t in targets}
    assert {"zip", "arduino", "cubemx", "wasm", "tflite"} <= set(formats)
    assert formats["zip"].preferred_engine.value == "tflite-eon"
    assert "tflite-eon" in [e.value for e in formats["arduino"].supported_engines]


def _build(studio: Studio, fmt: str = "zip", engine: str = "tflite-eon", **body) -> tuple[int, int]:
    response = studio.ok("POST", "jobs/build-ondevice-model", params={"type": fmt}, json={"engine": engine, **body})
    return response["id"], response["deploymentVersion"]


def test_build_then_download_a_real_zip(studio: Studio, validate) -> None:
    response = studio.post("jobs/build-ondevice-model", params={"type": "arduino"}, json={"engine": "tflite-eon"})
    started = validate("BuildOnDeviceModelResponse", response)
    job_id, version = started.id, started.deployment_version
    assert version == 1
    assert studio.status(job_id)["metadata"] == {"deploymentVersion": version}
    assert studio.wait(job_id)["finishedSuccessful"] is True
    response = studio.get("deployment/download", params={"type": "arduino", "engine": "tflite-eon"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    disposition = response.headers["Content-Disposition"]
    match = re.fullmatch(r'attachment; filename="(.+)"', disposition)
    assert match and match.group(1).endswith(f"arduino-v{version}.zip")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert "engine: tflite-eon" in archive.read("README.txt").decode()
    assert abs(len(response.content) - 64 * 1024) < 64


def test_history_download_by_version(studio: Studio) -> None:
    first_job, first = _build(studio, "zip")
    second_job, second = _build(studio, "zip", "tflite")
    assert second == first + 1
    studio.wait(first_job)
    studio.wait(second_job)
    old = studio.get(f"deployment/history/{first}/download")
    assert "engine: tflite-eon" in zipfile.ZipFile(io.BytesIO(old.content)).read("README.txt").decode()
    latest = studio.get("deployment/download", params={"type": "zip"})
    assert "engine: tflite\n" in zipfile.ZipFile(io.BytesIO(latest.content)).read("README.txt").decode()
    assert studio.get("deployment/history/99/download").status_code == 404


def test_download_before_build_is_an_error(emulator, studio: Studio) -> None:
    assert studio.get("deployment/download", params={"type": "wasm"}).status_code == 404
    emulator.configure(job_duration=None)
    job_id, version = _build(studio, "wasm", "tflite")
    pending = studio.get(f"deployment/history/{version}/download")
    assert pending.status_code == 404
    assert str(job_id) in pending.json()["error"]


def test_failed_build_has_no_artifact(emulator, studio: Studio) -> None:
    emulator.configure(job_outcome="failure")
    job_id, version = _build(studio)
    assert studio.wait(job_id)["finishedSuccessful"] is False
    assert studio.get(f"deployment/history/{version}/download").status_code == 404


@pytest.mark.off_spec("builds without a type or an engine, which the emulator must refuse")
def test_build_validates_type_and_engine(studio: Studio) -> None:
    unknown = studio.post("jobs/build-ondevice-model", params={"type": "nope"}, json={"engine": "tflite"})
    assert unknown.status_code == 400 and "'nope'" in unknown.json()["error"]
    engine = studio.post("jobs/build-ondevice-model", params={"type": "zip"}, json={"engine": "akida"})
    assert engine.status_code == 400 and "'akida'" in engine.json()["error"]
    missing = studio.post("jobs/build-ondevice-model", json={"engine": "tflite"})
    assert missing.status_code == 400 and "type" in missing.json()["error"]
    no_engine = studio.post("jobs/build-ondevice-model", params={"type": "zip"}, json={})
    assert no_engine.status_code == 400 and "engine" in no_engine.json()["error"]


def test_large_artifact_streams(emulator, studio: Studio) -> None:
    emulator.configure(deployment_size_bytes=32 * 1024 * 1024)
    job_id, version = _build(studio)
    studio.wait(job_id)
    with studio.get(f"deployment/history/{version}/download", stream=True) as response:
        assert int(response.headers["Content-Length"]) == 32 * 1024 * 1024
        received = sum(len(chunk) for chunk in response.iter_content(1 << 20))
    assert received == 32 * 1024 * 1024


@pytest.mark.parametrize("size", [0, 1000, 200_000, 3 * 1024 * 1024 + 17])
def test_write_artifact_hits_the_requested_size(tmp_path, size: int) -> None:
    path = tmp_path / "a.zip"
    write_artifact(str(path), size, "readme")
    assert zipfile.ZipFile(path).testzip() is None
    if size > 1000:
        assert os.path.getsize(path) == size


@pytest.mark.off_spec("a request without credentials")
def test_download_needs_auth(emulator) -> None:
    response = requests.get(f"{emulator.url}/v1/api/{emulator.project_id}/deployment/download?type=zip", timeout=10)
    assert response.status_code == 401
