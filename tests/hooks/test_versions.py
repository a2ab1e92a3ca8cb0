"""The versions endpoints through the hook: start the version job, list, get, update and delete."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


def _made(ei: Any, hook: EdgeImpulseHook, description: str, **kwargs: Any) -> int:
    job_id = hook.start_version(description, **kwargs)
    ei.finish_job(job_id)
    return job_id


def test_versions_lifecycle(ei: Any, hook: EdgeImpulseHook) -> None:
    assert hook.list_versions() == {"next_version": 1, "versions": [], "run_model_testing_while_versioning": False}
    _made(ei, hook, "nightly", run_model_testing_while_versioning=True)
    _made(ei, hook, "release", make_public=True)
    listed = hook.list_versions()
    assert listed["next_version"] == 3
    assert listed["run_model_testing_while_versioning"] is True
    release, nightly = listed["versions"]
    assert (nightly["version"], release["version"]) == (1, 2)
    assert release["publicProjectId"] and "publicProjectId" not in nightly
    assert hook.get_version(nightly["id"])["testAccuracy"] == nightly["testAccuracy"]

    hook.update_version(nightly["id"], description="nightly, kept")
    assert hook.get_version(nightly["id"])["description"] == "nightly, kept"
    hook.delete_version(release["id"])
    assert [v["id"] for v in hook.list_versions()["versions"]] == [nightly["id"]]
    with pytest.raises(EdgeImpulseAPIError, match=f"no version with id {release['id']}") as missing:
        hook.get_version(release["id"])
    assert missing.value.status == 404
    with pytest.raises(EdgeImpulseAPIError, match="404"):
        hook.delete_version(release["id"])


def test_the_version_job_body_follows_the_request_schema(ei: Any, hook: EdgeImpulseHook) -> None:
    from edgeimpulse_api.models import ProjectVersionRequest

    from airflow_provider_edgeimpulse.hooks import job_requests

    path, query, body = job_requests.create_version("d", True, False, 7)
    assert (path, query) == ("jobs/version", None)
    parsed = ProjectVersionRequest.parse_obj(body)
    assert (parsed.description, parsed.make_public, parsed.run_model_testing_while_versioning, parsed.bucket_id) == (
        "d",
        True,
        False,
        7,
    )
    assert job_requests.create_version("d")[2] == {"description": "d", "makePublic": False}


def test_a_bucket_is_refused_for_an_api_key_and_taken_with_jwt(ei: Any, hook: EdgeImpulseHook, jwt_hook) -> None:
    with pytest.raises(EdgeImpulseAPIError, match="JWT"):
        hook.start_version("x", bucket_id=4)
    _made(ei, jwt_hook, "own bucket", bucket_id=4)
    assert jwt_hook.list_versions()["versions"][0]["bucket"]["id"] == 4
