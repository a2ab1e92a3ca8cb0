"""Project versions: the version job, the list (with ``nextVersion``), update and delete (``openapi.yaml``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.auth import authenticate
from airflow_provider_edgeimpulse.emulator.errors import ApiError, bad_request, not_found
from airflow_provider_edgeimpulse.emulator.jobs import Step, lines
from airflow_provider_edgeimpulse.emulator.project import ProjectData, Version
from airflow_provider_edgeimpulse.emulator.rest_data import classify_result
from airflow_provider_edgeimpulse.emulator.rest_jobs import start_job, started
from airflow_provider_edgeimpulse.emulator.web_util import json_body, ok, path_int, state_of

PUBLIC_PROJECT_ID_OFFSET = 100_000  # a public version is served as a project of its own


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"'{key}' must be a boolean")
    return value


def _version_request(request: web.Request, body: dict[str, Any]) -> tuple[str, bool, int | None, bool | None]:
    """A checked ``ProjectVersionRequest``: description, makePublic, bucketId, runModelTestingWhileVersioning."""
    description = body.get("description")
    if not isinstance(description, str):
        raise bad_request("Missing or invalid 'description' (string)")
    make_public = body.get("makePublic")
    if not isinstance(make_public, bool):
        raise bad_request("Missing or invalid 'makePublic' (boolean)")
    bucket_id = body.get("bucketId")
    if bucket_id is not None:
        if isinstance(bucket_id, bool) or not isinstance(bucket_id, int):
            raise bad_request("'bucketId' must be an integer")
        # The middleware has let the caller in already; asked again, the answer says how it signed in.
        if authenticate(state_of(request), request).kind != "jwt":
            raise bad_request("Storing a version in your own bucket ('bucketId') requires JWT token authentication")
    return description, make_public, bucket_id, _optional_bool(body, "runModelTestingWhileVersioning")


def _bucket(project: ProjectData, bucket_id: int | None) -> dict[str, Any]:
    path = f"projects/{project.id}/versions/{project.next_version}"
    if bucket_id is None:
        return {"path": path}
    return {"id": bucket_id, "name": f"bucket-{bucket_id}", "bucket": f"ei-bucket-{bucket_id}", "path": path}


def _figures(project: ProjectData) -> dict[str, Any]:
    """
    Accuracy as the project stands: the int8 model's validation figure (what the Keras block's metadata reports),
    and the model-testing result when model testing has run.
    """
    if project.impulse is None or not project.impulse_complete:
        return {}
    accuracy = classify_result(project)["accuracy"]["accuracyScore"]
    figures: dict[str, Any] = {"training_accuracy": project.model.variant_accuracy(accuracy, "int8")}
    if project.classified:
        figures["test_accuracy"] = accuracy
    return figures


async def start_version(request: web.Request) -> web.Response:
    body = await json_body(request, required=True)
    description, make_public, bucket_id, run_testing = _version_request(request, body)
    project = state_of(request).project
    if run_testing is not None:
        project.run_model_testing_while_versioning = run_testing
    run_testing = project.run_model_testing_while_versioning
    number = project.next_version
    public_url = f"{request.scheme}://{request.host}/public"

    def made() -> None:
        if run_testing and project.impulse is not None and project.impulse_complete:
            project.classified = True
        version = project.add_version(description, _bucket(project, bucket_id), **_figures(project))
        if make_public:
            version.public_project_id = PUBLIC_PROJECT_ID_OFFSET + version.id
            version.public_project_url = f"{public_url}/{version.public_project_id}/latest"

    steps: list[Step] = [lines("Scheduling job in cluster...", f"Creating version {number} of the project...")]
    if run_testing:
        steps.append(lines("Running model testing while versioning...", "Classifying all samples OK"))
    steps.append(lines(f"Storing data and configuration ({len(project.samples)} samples)..."))
    if make_public:
        steps.append(lines("Making the version public..."))
    steps.append(lines(f"Version {number} created"))
    job = start_job(
        request,
        category="Versioning project",
        category_key="version",
        key=f"version-{number}",
        steps=steps,
        failure_reason="Versioning failed: the data could not be copied to the storage bucket",
        on_success=made,
    )
    return started(job)


async def list_versions(request: web.Request) -> web.Response:
    project = state_of(request).project
    newest_first = sorted(project.versions.values(), key=lambda v: -v.version)
    return ok(
        {
            "nextVersion": project.next_version,
            "versions": [v.to_json() for v in newest_first],
            "customLearnBlocks": [],
            "runModelTestingWhileVersioning": project.run_model_testing_while_versioning,
        }
    )


def _version(request: web.Request) -> Version:
    version_id = path_int(request, "versionId")
    version = state_of(request).project.versions.get(version_id)
    if version is None:
        raise not_found(f"Version {version_id} not found")
    return version


async def update_version(request: web.Request) -> web.Response:
    version = _version(request)
    body = await json_body(request, required=True)
    description = body.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise bad_request("'description' must be a string")
        version.description = description
    return ok()


async def delete_version(request: web.Request) -> web.Response:
    version = _version(request)
    del state_of(request).project.versions[version.id]
    return ok()


async def make_private(request: web.Request) -> web.Response:
    version = _version(request)
    if version.public_project_id is None:
        raise ApiError(400, f"Version {version.id} is not public")
    version.public_project_id = version.public_project_url = None
    return ok()


def add_routes(app: web.Application) -> None:
    base = r"/v1/api/{projectId:\d+}"
    app.router.add_post(f"{base}/jobs/version", start_version)
    app.router.add_get(f"{base}/versions", list_versions)
    app.router.add_post(base + r"/versions/{versionId:\d+}", update_version)
    app.router.add_delete(base + r"/versions/{versionId:\d+}", delete_version)
    app.router.add_post(base + r"/versions/{versionId:\d+}/make-private", make_private)
