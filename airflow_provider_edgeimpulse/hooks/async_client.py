"""
The asynchronous Edge Impulse client: the few REST calls that waits and triggers make, over aiohttp.

Shares the sync hook's request policy (retries, error decoding, User-Agent) so both transports fail
the same way. Safe to share between many concurrent waits of one (host, principal).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError, EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials
from airflow_provider_edgeimpulse.hooks.job_log import stdout_lines
from airflow_provider_edgeimpulse.hooks.masking import amask_secrets
from airflow_provider_edgeimpulse.hooks.policy import (
    DEFAULT_RETRY_POLICY,
    RETRYABLE_STATUSES,
    USER_AGENT,
    RetryPolicy,
    decode_response,
    parse_retry_after,
)

log = logging.getLogger(__name__)


class AsyncEdgeImpulseClient:
    """A thin aiohttp client. Use as ``async with AsyncEdgeImpulseClient(creds) as client: ...``."""

    def __init__(
        self,
        credentials: EdgeImpulseCredentials,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.credentials = credentials
        self.retry_policy = retry_policy
        self._session = session
        self._owns_session = session is None
        self._jwt: str | None = None
        self._login_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncEdgeImpulseClient:
        self.session  # noqa: B018 -- create the session inside the running loop
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.credentials.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT})
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and cookies for one request, logging in first on a JWT connection."""
        creds = self.credentials
        if creds.auth_type is AuthType.API_KEY:
            return {"x-api-key": creds.api_key or ""}, {}
        token = await self._login()
        if creds.auth_type is AuthType.JWT:
            return {"x-jwt-token": token}, {}
        return {}, {"jwt": token}

    async def _login(self, *, force: bool = False) -> str:
        stale = self._jwt
        async with self._login_lock:
            if self._jwt and not (force and self._jwt == stale):
                return self._jwt
            body = {"username": self.credentials.username, "password": self.credentials.password}
            data = await self._send("POST", "/api-login", json=body, headers={}, cookies={})
            token = data.get("token")
            if not isinstance(token, str) or not token:
                raise EdgeImpulseAPIError(
                    "Edge Impulse POST /api-login answered without a token", method="POST", path="/api-login"
                )
            await amask_secrets([token])
            self._jwt = token
            return token

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        """One REST call under ``/v1``; a 401 on a JWT connection logs in again once and repeats once."""
        headers, cookies = await self._auth()
        try:
            return await self._send(method, path, params=params, json=json, headers=headers, cookies=cookies)
        except EdgeImpulseAPIError as err:
            if not err.is_unauthorized or self.credentials.auth_type is AuthType.API_KEY:
                raise
        log.info("Edge Impulse JWT was refused (expired?); logging in again once")
        await self._login(force=True)
        headers, cookies = await self._auth()
        return await self._send(method, path, params=params, json=json, headers=headers, cookies=cookies)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        cookies: dict[str, str],
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        url = f"{self.credentials.api_base}{path}"
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        policy = self.retry_policy
        slept = 0.0
        for attempt in range(1, policy.max_attempts + 1):
            last = attempt == policy.max_attempts
            try:
                async with self.session.request(
                    method, url, params=query, json=json, headers=headers, cookies=cookies or None
                ) as resp:
                    text = await resp.text(errors="replace")
                    if resp.status not in RETRYABLE_STATUSES or last:
                        return decode_response(status=resp.status, method=method, path=path, text=text)
                    delay = policy.delay(attempt, parse_retry_after(resp.headers.get("Retry-After")))
                    reason = f"HTTP {resp.status}"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as err:
                if last:
                    raise EdgeImpulseAPIError(
                        f"Edge Impulse {method} {path}: could not reach {self.credentials.studio_url} after "
                        f"{attempt} attempts ({type(err).__name__})",
                        method=method,
                        path=path,
                    ) from None
                delay = policy.delay(attempt)
                reason = type(err).__name__
            if slept + delay > policy.max_total_sleep:
                raise EdgeImpulseAPIError(
                    f"Edge Impulse {method} {path}: gave up after {attempt} attempts ({reason}); "
                    f"the retry budget of {policy.max_total_sleep:.0f} s is spent",
                    method=method,
                    path=path,
                )
            log.debug("Edge Impulse %s %s: %s, retrying in %.2f s", method, path, reason, delay)
            slept += delay
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def project_id(self) -> int:
        """The connection's project id, or the one project an API key belongs to."""
        if self.credentials.project_id is not None:
            return self.credentials.project_id
        if self.credentials.auth_type is not AuthType.API_KEY:
            raise EdgeImpulseConnectionError("A JWT connection needs a project_id (in the extras or the task)")
        projects = (await self.request("GET", "/api/projects")).get("projects") or []
        if len(projects) != 1:
            raise EdgeImpulseConnectionError(
                f"Could not tell the project from the API key: it lists {len(projects)} projects; set project_id"
            )
        return int(projects[0]["id"])

    async def get_socket_token(self, project_id: int) -> str:
        data = await self.request("GET", f"/api/{project_id}/socket-token")
        token = (data.get("token") or {}).get("socketToken")
        if not isinstance(token, str) or not token:
            raise EdgeImpulseAPIError(
                "Edge Impulse socket-token answer has no socketToken", method="GET", path="/api/{id}/socket-token"
            )
        return token

    async def get_job_status(self, project_id: int, job_id: int) -> dict[str, Any]:
        data = await self.request("GET", f"/api/{project_id}/jobs/{job_id}/status")
        job = data.get("job")
        if not isinstance(job, dict):
            raise EdgeImpulseAPIError(
                f"Edge Impulse job {job_id} status answer has no job object",
                method="GET",
                path=f"/api/{project_id}/jobs/{job_id}/status",
            )
        return job

    async def get_job_stdout(self, project_id: int, job_id: int, *, limit: int = 50) -> list[str]:
        data = await self.request("GET", f"/api/{project_id}/jobs/{job_id}/stdout", params={"limit": limit})
        return stdout_lines(data)

    async def cancel_job(self, project_id: int, job_id: int) -> None:
        await self.request("POST", f"/api/{project_id}/jobs/{job_id}/cancel", params={"forceCancel": "true"})

    async def get_tuner_state(self, project_id: int, coordinator_job_id: int) -> dict[str, Any]:
        return await self.request("GET", f"/api/{project_id}/optimize/{coordinator_job_id}/state")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
