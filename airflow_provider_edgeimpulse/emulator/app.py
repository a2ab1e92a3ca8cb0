"""The aiohttp application: routes plus one middleware that counts, injects faults and authenticates."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from airflow_provider_edgeimpulse.emulator import (
    control,
    deploy,
    ingestion,
    rest_data,
    rest_jobs,
    rest_model,
    rest_project,
    rest_tuner,
    rest_versions,
)
from airflow_provider_edgeimpulse.emulator.auth import authenticate, check_project
from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
from airflow_provider_edgeimpulse.emulator.errors import ApiError
from airflow_provider_edgeimpulse.emulator.sockets import add_socket_routes
from airflow_provider_edgeimpulse.emulator.state import EmulatorState
from airflow_provider_edgeimpulse.emulator.web_util import STATE, error_response

# Large enough for any JSON body Studio accepts; uploads stream through ingestion without this limit.
MAX_BODY_BYTES = 16 * 1024 * 1024


def _is_studio(path: str) -> bool:
    return path.startswith(("/v1/", "/api/"))


def _needs_auth(path: str) -> bool:
    return path.startswith(("/v1/api/", "/api/"))


@web.middleware
async def studio_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path
    try:
        if not _is_studio(path):
            return await handler(request)
        match = request.match_info
        resource = match.route.resource
        template = resource.canonical if resource is not None and match.http_exception is None else path
        state.requests[f"{request.method} {template}"] += 1
        delay = state.faults.delay_for(path)
        if delay:
            await asyncio.sleep(delay)
        fault = state.faults.take_response(path)
        if fault is not None:
            status, headers, body = fault.render()
            return web.Response(status=status, headers=headers, text=body)
        if match.http_exception is not None:
            raise ApiError(match.http_exception.status, f"{request.method} {path}: {match.http_exception.reason}")
        if _needs_auth(path):
            principal = authenticate(state, request)
            raw_project = match.get("projectId")
            if raw_project is not None:
                check_project(principal, raw_project)
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if not _is_studio(path) and not path.startswith("/_emulator/"):
            raise
        return error_response(exc.status, exc.reason)


def create_app(config: EmulatorConfig | None = None, middlewares: Iterable[Middleware] = ()) -> web.Application:
    """
    The emulator's application. ``middlewares`` wrap every request before the emulator's own middleware sees it
    (so they also see its error answers and injected faults): the test suite checks all traffic against the
    OpenAPI definition this way.
    """
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[*middlewares, studio_middleware], client_max_size=MAX_BODY_BYTES)
    state = EmulatorState(config)
    app[STATE] = state
    with warnings.catch_warnings():
        # The contract promises app["state"]; aiohttp prefers typed keys and warns about plain strings.
        warnings.simplefilter("ignore")
        app["state"] = state
    for module in (
        rest_project,
        rest_jobs,
        rest_data,
        rest_model,
        rest_versions,
        deploy,
        rest_tuner,
        ingestion,
        control,
    ):
        module.add_routes(app)
    add_socket_routes(app, state)

    async def on_shutdown(_: web.Application) -> None:
        await state.shutdown()

    app.on_shutdown.append(on_shutdown)
    return app
