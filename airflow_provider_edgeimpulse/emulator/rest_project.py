"""Login, project listing and info, socket tokens and the impulse."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.auth import issue_jwt
from airflow_provider_edgeimpulse.emulator.clock import iso, utcnow
from airflow_provider_edgeimpulse.emulator.errors import ApiError, bad_request, not_found
from airflow_provider_edgeimpulse.emulator.project import ProjectData
from airflow_provider_edgeimpulse.emulator.web_util import json_body, ok, project_id_of, query_int, state_of

JOB_LIMIT_M = 60
COMPUTE_BUDGET_MS = 20 * 60 * 1000


async def login(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    if body.get("username") != state.config.username or body.get("password") != state.config.password:
        raise ApiError(401, "Username or password incorrect")
    return ok({"token": issue_jwt(state, state.config.username)})


async def list_projects(request: web.Request) -> web.Response:
    return ok({"projects": [state_of(request).project.info_project()]})


def _project_info(project: ProjectData, base_url: str) -> dict[str, Any]:
    now = utcnow()
    period_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    per_category = {c: project.summary(c) for c in ("training", "testing")}
    return {
        "project": project.info_project(),
        "developmentKeys": {},
        "impulse": {
            "created": project.impulse is not None,
            "configured": project.impulse is not None,
            "complete": project.impulse is not None and project.impulse_complete,
        },
        "devices": [],
        "dataSummary": project.summary(),
        "dataSummaryPerCategory": {
            "training": per_category["training"],
            "testing": per_category["testing"],
            "validation": project.summary("validation"),
            "postProcessing": project.summary("post-processing"),
        },
        "computeTime": {
            "periodStartDate": iso(period_start),
            "periodEndDate": iso(period_start + timedelta(days=31)),
            "timeUsedMs": project.compute_ms,
            "timeLeftMs": max(0, COMPUTE_BUDGET_MS - project.compute_ms),
        },
        "acquisitionSettings": {
            "intervalMs": 16.0,
            "lengthMs": 2000,
            "segmentShift": False,
            "defaultPageSize": 50,
            "viewType": "list",
            "gridColumnCount": 6,
            "gridColumnCountDetailed": 3,
            "showExactSampleLength": False,
            "inlineEditBoundingBoxes": False,
        },
        "collaborators": [],
        "deploySettings": {
            "eonCompiler": True,
            "sensor": "accelerometer",
            "arduinoLibraryName": "emulated_gestures_inferencing",
            "tinkergenLibraryName": "emulated_gestures_inferencing",
            "particleLibraryName": "emulated_gestures_inferencing",
        },
        "experiments": [],
        "latencyDevices": [],
        "urls": {},
        "showCreateFirstImpulse": project.impulse is None,
        "showGettingStartedWizard": {"showWizard": False, "step": 0},
        "performance": {
            "gpu": False,
            "jobLimitM": JOB_LIMIT_M,
            "dspFileSizeMb": 100,
            "enterprisePerformance": False,
            "trainJobRamMb": 4096,
        },
        "trainJobNotificationUids": [],
        "dspJobNotificationUids": [],
        "modelTestingJobNotificationUids": [],
        "exportJobNotificationUids": [],
        "hasNewTrainingData": False,
        "studioUrl": f"{base_url}/studio/{project.id}",
        "inPretrainedModelFlow": False,
        "showSensorDataInAcquisitionGraph": True,
        "notifications": [],
    }


async def project_info(request: web.Request) -> web.Response:
    state = state_of(request)
    check_impulse_id(request)
    base = f"{request.scheme}://{request.host}"
    return ok(_project_info(state.project, base))


async def socket_token(request: web.Request) -> web.Response:
    state = state_of(request)
    token, entry = state.issue_socket_token(project_id_of(request))
    return ok({"token": {"socketToken": token, "expires": iso(entry.expires)}})


def check_impulse_id(request: web.Request) -> None:
    """Studio scopes many calls to ``?impulseId``; the emulator has one impulse, so only its id is valid."""
    impulse_id = query_int(request, "impulseId")
    if impulse_id is None:
        return
    impulse = state_of(request).project.impulse
    if impulse is None or impulse["id"] != impulse_id:
        raise not_found(f"Impulse {impulse_id} not found")


async def get_impulse(request: web.Request) -> web.Response:
    check_impulse_id(request)
    impulse = state_of(request).project.impulse
    return ok({} if impulse is None else {"impulse": copy.deepcopy(impulse)})


async def create_impulse(request: web.Request) -> web.Response:
    project = state_of(request).project
    body = await json_body(request, required=True)
    for key in ("inputBlocks", "dspBlocks", "learnBlocks"):
        if not isinstance(body.get(key), list):
            raise bad_request(f"Missing or invalid '{key}': expected a list of blocks")
    _validate_blocks(body)
    impulse_id = project.new_impulse_id()
    project.impulse = {
        "id": impulse_id,
        "name": str(body.get("name") or f"Impulse #{impulse_id}"),
        "type": "default",
        "inputBlocks": copy.deepcopy(body["inputBlocks"]),
        "dspBlocks": copy.deepcopy(body["dspBlocks"]),
        "learnBlocks": copy.deepcopy(body["learnBlocks"]),
        "postProcessingBlocks": copy.deepcopy(body.get("postProcessingBlocks") or []),
    }
    project.impulse_complete = False
    return ok({"id": impulse_id})


def _validate_blocks(body: dict[str, Any]) -> None:
    for key in ("inputBlocks", "dspBlocks", "learnBlocks"):
        for block in body[key]:
            if not isinstance(block, dict) or not isinstance(block.get("id"), int) or not block.get("type"):
                raise bad_request(f"Every entry of '{key}' needs an integer 'id' and a 'type'")
    dsp_ids = {b["id"] for b in body["dspBlocks"]}
    for block in body["learnBlocks"]:
        missing = [d for d in block.get("dsp", []) if d not in dsp_ids]
        if missing:
            raise bad_request(f"Learn block {block['id']} refers to unknown DSP block(s) {missing}")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/api-login", login)
    app.router.add_get("/v1/api/projects", list_projects)
    app.router.add_get(r"/v1/api/{projectId:\d+}", project_info)
    app.router.add_get(r"/v1/api/{projectId:\d+}/socket-token", socket_token)
    app.router.add_get(r"/v1/api/{projectId:\d+}/impulse", get_impulse)
    app.router.add_post(r"/v1/api/{projectId:\d+}/impulse", create_impulse)
