"""Studio's three ways in: ``x-api-key``, ``x-jwt-token`` and the ``jwt`` cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.errors import ApiError
from airflow_provider_edgeimpulse.emulator.state import EmulatorState

_SECRET = secrets.token_bytes(32)


@dataclass(frozen=True)
class Principal:
    kind: str  # "api_key" | "jwt"
    project_ids: frozenset[int]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_jwt(state: EmulatorState, username: str) -> str:
    """A real HS256 JWT so clients that peek at it see the usual shape; validity is decided by the state."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": username, "iat": now, "jti": secrets.token_hex(8)}
    if state.settings.jwt_ttl_s is not None:
        claims["exp"] = now + int(state.settings.jwt_ttl_s)
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(hmac.new(_SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    token = f"{header}.{payload}.{signature}"
    state.jwt_tokens[token] = time.monotonic()
    return token


def authenticate(state: EmulatorState, request: web.Request) -> Principal:
    api_key = request.headers.get("x-api-key")
    if api_key:
        extra_project = state.principals.get(api_key)
        if extra_project is not None:
            return Principal("api_key", frozenset({extra_project}))
        if api_key != state.config.api_key or state.api_key_revoked:
            raise ApiError(401, "Invalid API key")
        return Principal("api_key", frozenset({state.project.id}))
    token = request.headers.get("x-jwt-token") or request.cookies.get("jwt")
    if token:
        if not state.jwt_valid(token):
            raise ApiError(401, "JWT token expired or invalid, please log in again")
        return Principal("jwt", frozenset({state.project.id}))
    raise ApiError(401, "Missing authentication: provide an 'x-api-key' or 'x-jwt-token' header or a 'jwt' cookie")


def check_project(principal: Principal, raw_project_id: str) -> int:
    try:
        project_id = int(raw_project_id)
    except ValueError:
        raise ApiError(404, f"Project {raw_project_id} not found") from None
    if project_id not in principal.project_ids:
        raise ApiError(404, f"Project {project_id} not found, or you do not have access to it")
    return project_id
