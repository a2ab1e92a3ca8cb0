"""Small helpers every route module shares: the state key, JSON bodies and query parsing."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.errors import bad_request
from airflow_provider_edgeimpulse.emulator.state import EmulatorState

STATE = web.AppKey("ei_emulator_state", EmulatorState)


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE]


def ok(body: dict[str, Any] | None = None, status: int = 200) -> web.Response:
    return web.json_response({"success": True, **(body or {})}, status=status)


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "error": message}, status=status)


async def json_body(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object; an absent body counts as ``{}`` unless ``required``."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("Missing request body")
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad_request("Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("Request body must be a JSON object")
    return value


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"Invalid '{name}' parameter, expected an integer: {raw}") from None


def path_int(request: web.Request, name: str) -> int:
    # Routes constrain these to digits, so int() cannot fail here.
    return int(request.match_info[name])


def project_id_of(request: web.Request) -> int:
    """The path's project (the middleware has checked the caller owns it), else the emulated project."""
    raw = request.match_info.get("projectId")
    return int(raw) if raw is not None else state_of(request).project.id
