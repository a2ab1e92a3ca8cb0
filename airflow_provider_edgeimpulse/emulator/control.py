"""The control API under ``/_emulator`` (no auth): settings, faults, counters, jobs and reset, for tests."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.errors import ApiError, bad_request, not_found
from airflow_provider_edgeimpulse.emulator.jobs import LOG_LEVELS
from airflow_provider_edgeimpulse.emulator.model import profile_from, profile_json
from airflow_provider_edgeimpulse.emulator.web_util import json_body, ok, path_int, state_of

_RESPONSE_KEYS = {"status", "count", "duration_s", "retry_after", "body", "content_type"}
_FAULT_KEYS = _RESPONSE_KEYS | {
    "path",
    "latency_ms",
    "drop_sockets",
    "refuse_socket_tokens",
    "block_websockets",
    "jwt_ttl_s",
    "revoke_api_key",
}


async def get_config(request: web.Request) -> web.Response:
    return ok({"config": state_of(request).settings.runtime()})


async def set_config(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request)
    try:
        state.settings = state.settings.updated(body)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return ok({"config": state.settings.runtime()})


async def finish_job(request: web.Request) -> web.Response:
    state = state_of(request)
    job = state.jobs.jobs.get(path_int(request, "jobId"))
    if job is None:
        raise not_found("No job with this ID found")
    success = _success(await json_body(request))
    if not state.jobs.finish(job, success):
        raise ApiError(409, f"Job {job.id} already finished")
    return ok({"job": job.control_json()})


async def finish_jobs(request: web.Request) -> web.Response:
    """``{"ids": [...], "success"?}``: end running jobs in one step of the loop, so their events go out together."""
    state = state_of(request)
    body = await json_body(request, required=True)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise bad_request("'ids' must be a non-empty list of job ids")
    success = _success(body)
    jobs = [state.jobs.jobs.get(job_id) for job_id in ids]
    missing = [job_id for job_id, job in zip(ids, jobs, strict=True) if job is None]
    if missing:
        raise not_found(f"No job with ID(s) {missing[:20]}")
    done = [job.id for job in jobs if job is not None and job.finished is not None]
    if done:
        raise ApiError(409, f"Job(s) {done[:20]} already finished")
    for job in jobs:
        assert job is not None
        state.jobs.finish(job, success)
    return ok({"jobs": [job.control_json() for job in jobs if job is not None]})


def _success(body: dict[str, Any]) -> bool:
    success = body.get("success", True)
    if not isinstance(success, bool):
        raise bad_request("'success' must be a boolean")
    return success


# The most one control call may write into a job's log: enough for a pathological line, not a memory hazard.
_MAX_LOG_WRITE_CHARS = 64 * 1024 * 1024


async def write_job_log(request: web.Request) -> web.Response:
    """
    Write one line into a running job's log, as its own output would: ``{"data", "repeat"?, "level"?}``.

    The line is ``data`` repeated ``repeat`` times, so a test can ask for a line of many megabytes without
    sending it. It goes to the REST log and to the job's socket subscribers alike.
    """
    state = state_of(request)
    job = state.jobs.jobs.get(path_int(request, "jobId"))
    if job is None:
        raise not_found("No job with this ID found")
    body = await json_body(request, required=True)
    data = body.get("data")
    if not isinstance(data, str):
        raise bad_request("'data' must be a string")
    repeat = body.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise bad_request("'repeat' must be a positive integer")
    if len(data) * repeat > _MAX_LOG_WRITE_CHARS:
        raise bad_request(f"a log line may have at most {_MAX_LOG_WRITE_CHARS} characters")
    level = body.get("level", "info")
    if level not in LOG_LEVELS:
        raise bad_request(f"'level' must be one of {', '.join(LOG_LEVELS)}")
    if job.finished is not None:
        raise ApiError(409, f"Job {job.id} already finished")
    state.jobs.write(job, data * repeat, level)
    return ok({"job": job.control_json()})


async def set_next_model(request: web.Request) -> web.Response:
    """
    The model the next successful training job makes: ``{"miss_every"?, "wrong_labels"?,
    "variant_accuracy_drop"?, "size_factor"?, "latency_factor"?}`` (see ``emulator/model.py``).
    """
    project = state_of(request).project
    try:
        project.next_model = profile_from(await json_body(request))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return ok({"current": profile_json(project.model), "next": profile_json(project.next_model)})


async def list_jobs(request: web.Request) -> web.Response:
    jobs = sorted(state_of(request).jobs.jobs.values(), key=lambda j: j.id)
    return web.json_response({"jobs": [j.control_json() for j in jobs]})


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise bad_request(f"'{key}' must be a boolean")
    return value


async def add_fault(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await json_body(request, required=True)
    unknown = sorted(set(body) - _FAULT_KEYS)
    if unknown:
        raise bad_request(f"unknown fault key(s) {unknown}; known: {sorted(_FAULT_KEYS)}")
    if _RESPONSE_KEYS & set(body):
        state.faults.add_response(body)
    if "latency_ms" in body:
        state.faults.set_latency(body)
    if "refuse_socket_tokens" in body:
        count = body["refuse_socket_tokens"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise bad_request("'refuse_socket_tokens' must be a non-negative integer")
        state.refuse_socket_tokens = count
    if "block_websockets" in body:
        state.websockets_blocked = _bool(body, "block_websockets")
    if "revoke_api_key" in body:
        state.api_key_revoked = _bool(body, "revoke_api_key")
    if "jwt_ttl_s" in body:
        try:
            state.settings = state.settings.updated({"jwt_ttl_s": body["jwt_ttl_s"]})
        except ValueError as exc:
            raise bad_request(str(exc)) from None
    if body.get("drop_sockets"):
        await state.sockets.drop_all()
    return ok({"faults": _faults(request)})


def _faults(request: web.Request) -> dict[str, Any]:
    state = state_of(request)
    return {
        **state.faults.to_json(),
        "refuse_socket_tokens": state.refuse_socket_tokens,
        "block_websockets": state.websockets_blocked,
        "revoke_api_key": state.api_key_revoked,
        "jwt_ttl_s": state.settings.jwt_ttl_s,
    }


async def get_faults(request: web.Request) -> web.Response:
    return ok({"faults": _faults(request)})


async def clear_faults(request: web.Request) -> web.Response:
    state = state_of(request)
    state.faults.clear()
    state.refuse_socket_tokens = 0
    state.websockets_blocked = False
    state.api_key_revoked = False
    state.settings.jwt_ttl_s = state.config.jwt_ttl_s
    return ok({"faults": _faults(request)})


async def requests_seen(request: web.Request) -> web.Response:
    counts = state_of(request).requests
    return web.json_response({"total": sum(counts.values()), "by_route": dict(sorted(counts.items()))})


async def sockets_open(request: web.Request) -> web.Response:
    return web.json_response({"open": state_of(request).sockets.count()})


async def issued_tokens(request: web.Request) -> web.Response:
    """
    Every JWT and socket token handed out since the last reset, expired ones included.

    Read-only, so a leak test can search Airflow's logs and database for the exact session tokens a client got.
    """
    state = state_of(request)
    return web.json_response({"jwts": list(state.jwt_tokens), "socket_tokens": list(state.socket_tokens)})


async def add_principal(request: web.Request) -> web.Response:
    """
    Add an API key that opens one more project: ``{"api_key", "project_id"}``.

    The project shares the seeded project's data (impulse, samples); jobs, socket tokens, sockets and their
    events are its own. Enough for many principals and projects in one emulator, as a triggerer sees them.
    """
    state = state_of(request)
    body = await json_body(request, required=True)
    api_key = body.get("api_key")
    project_id = body.get("project_id")
    if not isinstance(api_key, str) or not api_key.strip() or api_key == state.config.api_key:
        raise bad_request("'api_key' must be a new, non-empty string")
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id < 1:
        raise bad_request("'project_id' must be a positive integer")
    state.principals[api_key] = project_id
    return ok({"principals": len(state.principals)})


async def reset(request: web.Request) -> web.Response:
    await state_of(request).reset()
    return ok()


async def health(request: web.Request) -> web.Response:
    state = state_of(request)
    return web.json_response({"ok": True, "project_id": state.project.id})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", set_config)
    app.router.add_get("/_emulator/jobs", list_jobs)
    app.router.add_post(r"/_emulator/jobs/{jobId:\d+}/finish", finish_job)
    app.router.add_post("/_emulator/jobs/finish", finish_jobs)
    app.router.add_post(r"/_emulator/jobs/{jobId:\d+}/log", write_job_log)
    app.router.add_post("/_emulator/next-model", set_next_model)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_get("/_emulator/requests", requests_seen)
    app.router.add_get("/_emulator/sockets", sockets_open)
    app.router.add_get("/_emulator/tokens", issued_tokens)
    app.router.add_post("/_emulator/principals", add_principal)
    app.router.add_post("/_emulator/reset", reset)
