"""
The asynchronous Edge Impulse client: the few REST calls that waits and triggers make, over aiohttp.

Shares the sync hook's request policy (retries, error decoding, User-Agent), its redirect rule
(``redirects.RedirectChain``), its bounds on what is read and its scrubbing of echoed secrets, so both transports
fail the same way. Safe to share between many concurrent waits of one (host, principal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

import aiohttp

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError, EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials
from airflow_provider_edgeimpulse.hooks.job_log import stdout_lines
from airflow_provider_edgeimpulse.hooks.masking import amask_secrets
from airflow_provider_edgeimpulse.hooks.policy import (
    DEFAULT_RETRY_POLICY,
    ERROR_BODY_LIMIT,
    READ_CHUNK_BYTES,
    RETRYABLE_STATUSES,
    USER_AGENT,
    RetryPolicy,
    clean_query,
    declared_length,
    decode_scrubbed,
    error_of_body,
    parse_retry_after,
    too_large,
)
from airflow_provider_edgeimpulse.hooks.redirects import Outgoing, RedirectChain

log = logging.getLogger(__name__)

# Connections of one event loop, over all its clients: aiohttp's default for one session, now for the whole loop.
POOL_LIMIT = 100


class _LoopPool:
    """
    One TCP connection pool per event loop, shared by every client's session and closed with its last one.

    A triggerer holds waits of many principals; a pool per client kept up to 100 idle keep-alive connections each
    (5000 waits over 50 API keys held about one open connection per wait). Sharing connections is safe: what
    makes a request a principal's (its key, token or cookie) travels with each request, never with a connection,
    and every session keeps its own (disabled) cookie jar and redirect rule.
    """

    def __init__(self) -> None:
        self.connector = aiohttp.TCPConnector(limit=POOL_LIMIT)
        # Requests beyond the pool's connections wait here, before aiohttp builds them: a burst of thousands of
        # status reads queued inside aiohttp holds a hundred-odd objects each for the garbage collector to scan.
        self.slots = asyncio.Semaphore(POOL_LIMIT)
        self.users = 0


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = weakref.WeakKeyDictionary()


def _lease_pool() -> _LoopPool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None or pool.connector.closed:
        pool = _pools[loop] = _LoopPool()
    pool.users += 1
    return pool


async def _release_pool(pool: _LoopPool) -> None:
    pool.users -= 1
    if pool.users == 0:
        loop = asyncio.get_running_loop()
        if _pools.get(loop) is pool:
            del _pools[loop]
        await pool.connector.close()


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
        self._pool: _LoopPool | None = None
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
            if self._pool is None:
                self._pool = _lease_pool()
            # No cookie jar: a cookie a server sets (a ``jwt`` at login) would otherwise travel past the redirect
            # rule; our own cookie is passed per request.
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=self._pool.connector,
                connector_owner=False,
            )
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await _release_pool(pool)

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
            data = await self._send("POST", "/api-login", json=body, headers={}, cookies={}, follow_redirects=False)
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
        follow_redirects: bool = True,
    ) -> dict[str, Any]:
        url = f"{self.credentials.api_base}{path}"
        query = clean_query(params)
        policy = self.retry_policy
        slept = 0.0
        for attempt in range(1, policy.max_attempts + 1):
            last = attempt == policy.max_attempts
            try:
                async with self._slot():
                    status, retry_after, raw, charset = await self._exchange(
                        method,
                        url,
                        display_path=path,
                        params=query,
                        json=json,
                        headers=headers,
                        cookies=cookies,
                        follow_redirects=follow_redirects,
                    )
                if 200 <= status < 300:
                    text = raw.decode(charset or "utf-8", errors="replace")
                    return decode_scrubbed(status=status, method=method, path=path, text=text, secrets=self._secrets())
                error = error_of_body(
                    status=status, method=method, path=path, raw=raw, encoding=charset, secrets=self._secrets()
                )
                if status not in RETRYABLE_STATUSES or last:
                    raise error
                delay = policy.delay(attempt, parse_retry_after(retry_after))
                reason = f"HTTP {status}"
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

    def _slot(self) -> asyncio.Semaphore | contextlib.nullcontext[None]:
        """A place among the requests in flight on the loop's pool (a client with its own session has no bound)."""
        self.session  # noqa: B018 -- leases the pool
        return self._pool.slots if self._pool is not None else contextlib.nullcontext()

    def _secrets(self) -> list[str]:
        return [v for v in (*self.credentials.secrets(), self._jwt) if v]

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        display_path: str,
        params: dict[str, str],
        json: Any,
        headers: dict[str, str],
        cookies: dict[str, str],
        follow_redirects: bool,
    ) -> tuple[int, str | None, bytes, str | None]:
        """
        One request and its redirects (followed by ``RedirectChain``'s rule), read within bounds.

        Returns the final status, its ``Retry-After``, the body (a 2xx one up to ``max_response_bytes``, else an
        error body's first ``ERROR_BODY_LIMIT`` bytes) and its charset.
        """
        limits = self.credentials.limits
        chain = RedirectChain(
            Outgoing(method, url, params, json, None, headers, cookies),
            display_path=display_path,
            max_redirects=limits.max_redirects,
            follow=follow_redirects,
        )
        while True:
            sent = chain.request
            async with self.session.request(
                sent.method,
                sent.url,
                params=sent.params,
                json=sent.json,
                headers=sent.headers,
                cookies=sent.cookies or None,
                allow_redirects=False,
            ) as resp:
                if chain.follow(resp.status, resp.headers.get("Location"), str(resp.url)):
                    continue
                ok = 200 <= resp.status < 300
                raw = await _read_bounded(
                    resp,
                    limits.max_response_bytes if ok else ERROR_BODY_LIMIT,
                    method=sent.method,
                    path=display_path,
                    strict=ok,
                )
                return resp.status, resp.headers.get("Retry-After"), raw, resp.charset

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

    async def list_active_jobs(self, project_id: int) -> list[Any]:
        """The project's running jobs, child jobs included (``listActiveJobs``)."""
        return _jobs_of(await self.request("GET", f"/api/{project_id}/jobs", params={"rootOnly": False}))

    async def list_finished_jobs(self, project_id: int, *, limit: int) -> list[Any]:
        """The project's newest ``limit`` finished jobs, child jobs included (``listFinishedJobs``)."""
        params = {"limit": limit, "rootOnly": False}
        return _jobs_of(await self.request("GET", f"/api/{project_id}/jobs/history", params=params))

    async def get_job_stdout(self, project_id: int, job_id: int, *, limit: int = 50) -> list[str]:
        data = await self.request("GET", f"/api/{project_id}/jobs/{job_id}/stdout", params={"limit": limit})
        return stdout_lines(data)

    async def cancel_job(self, project_id: int, job_id: int) -> None:
        await self.request("POST", f"/api/{project_id}/jobs/{job_id}/cancel", params={"forceCancel": "true"})

    async def get_tuner_state(self, project_id: int, coordinator_job_id: int) -> dict[str, Any]:
        return await self.request("GET", f"/api/{project_id}/optimize/{coordinator_job_id}/state")


def _jobs_of(data: dict[str, Any]) -> list[Any]:
    jobs = data.get("jobs")
    return jobs if isinstance(jobs, list) else []


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int, *, method: str, path: str, strict: bool) -> bytes:
    """
    At most ``limit`` bytes of a body, read in pieces. ``strict``: more is an error (a result must be whole);
    otherwise (an error body, of which only the start is shown) the rest is left unread.
    """
    declared = declared_length(resp.headers.get("Content-Length"))
    if strict and declared is not None and declared > limit:
        raise too_large(method=method, path=path, status=resp.status, limit=limit, seen=0, declared=declared)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
        body += chunk
        if len(body) >= limit:
            break
    if strict and len(body) >= limit and not resp.content.at_eof():
        # Exactly ``limit`` bytes may be the whole body: only a byte more makes it too large.
        extra = await resp.content.read(1)
        if extra:
            raise too_large(
                method=method, path=path, status=resp.status, limit=limit, seen=len(body) + 1, declared=None
            )
    return bytes(body)
