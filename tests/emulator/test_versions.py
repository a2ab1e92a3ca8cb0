"""Project versions: the version job, the list with nextVersion, update, delete, the public flag."""

from __future__ import annotations

import pytest
import requests

from tests.emulator.conftest import Studio


def _version(studio: Studio, description: str, **extra: object) -> int:
    job = studio.wait(studio.start("jobs/version", json={"description": description, "makePublic": False, **extra}))
    assert job["finishedSuccessful"] is True, studio.stdout(job["id"])
    return job["id"]


def _jwt_studio(studio: Studio) -> Studio:
    login = requests.post(
        f"{studio.handle.url}/v1/api-login", json={"username": "emulator", "password": "emulator"}, timeout=10
    )
    return Studio(studio.handle, {"x-jwt-token": login.json()["token"]})


def test_a_version_job_adds_a_version_and_advances_next_version(studio: Studio, validate) -> None:
    empty = validate("ListVersionsResponse", studio.get("versions"))
    assert (empty.next_version, empty.versions, empty.run_model_testing_while_versioning) == (1, [], False)
    job_id = _version(studio, "first")
    assert "Version 1 created" in studio.stdout(job_id)
    _version(studio, "second")
    listed = validate("ListVersionsResponse", studio.get("versions"))
    assert listed.next_version == 3
    assert [(v.version, v.description) for v in listed.versions] == [(2, "second"), (1, "first")]
    assert all(v.public_project_id is None and v.bucket.path for v in listed.versions)
    assert listed.versions[0].created >= listed.versions[1].created


def test_accuracy_figures_match_the_model_testing_results(studio: Studio, validate) -> None:
    _version(studio, "untested")
    studio.wait(studio.start("jobs/classify", json={}))
    tested = studio.ok("GET", "classify/all/result")["accuracy"]["accuracyScore"]
    _version(studio, "tested")
    untested_v, tested_v = sorted(validate("ListVersionsResponse", studio.get("versions")).versions, key=lambda v: v.id)
    assert untested_v.test_accuracy is None
    assert tested_v.test_accuracy == tested
    assert 0 < tested_v.training_accuracy <= 1


def test_the_training_accuracy_is_the_validation_figure_of_the_trained_model(studio: Studio) -> None:
    studio.wait(studio.start("jobs/retrain"))
    metadata = studio.ok("GET", "training/keras/4/metadata")["modelValidationMetrics"]
    int8 = next(m["accuracy"] for m in metadata if m["type"] == "int8")
    _version(studio, "trained")
    assert studio.ok("GET", "versions")["versions"][0]["trainingAccuracy"] == int8


def test_run_model_testing_while_versioning_tests_and_is_remembered(studio: Studio, validate) -> None:
    assert studio.get("classify/all/result").status_code == 404
    job_id = _version(studio, "with testing", runModelTestingWhileVersioning=True)
    assert "Running model testing while versioning..." in studio.stdout(job_id)
    tested = studio.ok("GET", "classify/all/result")["accuracy"]["accuracyScore"]
    listed = validate("ListVersionsResponse", studio.get("versions"))
    assert listed.run_model_testing_while_versioning is True
    assert listed.versions[0].test_accuracy == tested
    # Omitted, the remembered checkbox applies.
    assert "Running model testing while versioning..." in studio.stdout(_version(studio, "again"))


def test_a_public_version_has_a_public_project(studio: Studio, validate) -> None:
    studio.wait(studio.start("jobs/version", json={"description": "shared", "makePublic": True}))
    version = validate("ListVersionsResponse", studio.get("versions")).versions[0]
    assert version.public_project_id and version.public_project_url.endswith(f"/{version.public_project_id}/latest")
    assert studio.ok("GET", "")["project"]["hasPublicVersion"] is True
    validate("GenericApiResponse", studio.post(f"versions/{version.id}/make-private"))
    assert validate("ListVersionsResponse", studio.get("versions")).versions[0].public_project_id is None


def test_update_and_delete_a_version(studio: Studio, validate) -> None:
    _version(studio, "one")
    _version(studio, "two")
    first, second = sorted(studio.ok("GET", "versions")["versions"], key=lambda v: v["id"])
    validate("GenericApiResponse", studio.post(f"versions/{first['id']}", json={"description": "renamed"}))
    validate("GenericApiResponse", studio.request("DELETE", f"versions/{second['id']}"))
    listed = validate("ListVersionsResponse", studio.get("versions"))
    assert [(v.id, v.description) for v in listed.versions] == [(first["id"], "renamed")]
    assert listed.next_version == 3  # numbers are not reused
    assert studio.request("DELETE", f"versions/{second['id']}").status_code == 404
    assert studio.post("versions/999", json={"description": "x"}).status_code == 404


@pytest.mark.off_spec("version requests without required fields, which the emulator must refuse")
def test_the_version_request_is_checked(studio: Studio) -> None:
    assert studio.post("jobs/version", json={"makePublic": False}).status_code == 400
    assert studio.post("jobs/version", json={"description": "x"}).status_code == 400
    assert studio.post("jobs/version", json={"description": "x", "makePublic": "no"}).status_code == 400
    refused = studio.post("jobs/version", json={"description": "x", "makePublic": False, "bucketId": 3})
    assert refused.status_code == 400
    assert "JWT" in refused.json()["error"]
    assert studio.ok("GET", "versions")["nextVersion"] == 1


def test_a_bucket_needs_jwt_authentication(studio: Studio, validate) -> None:
    jwt = _jwt_studio(studio)
    _version(jwt, "in my bucket", bucketId=3)
    version = validate("ListVersionsResponse", jwt.get("versions")).versions[0]
    assert (version.bucket.id, version.description) == (3, "in my bucket")


def test_a_failing_version_job_makes_no_version(emulator, studio: Studio) -> None:
    emulator.configure(job_outcome="failure")
    job = studio.wait(studio.start("jobs/version", json={"description": "x", "makePublic": False}))
    assert job["finishedSuccessful"] is False
    assert studio.ok("GET", "versions") == {
        "success": True,
        "nextVersion": 1,
        "versions": [],
        "customLearnBlocks": [],
        "runModelTestingWhileVersioning": False,
    }
