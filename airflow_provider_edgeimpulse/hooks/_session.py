"""
Request plumbing of the synchronous hook: one ``requests.Session``, authentication, retries, error decoding.

Private to the hook. Retries follow ``policy.RetryPolicy`` through tenacity; what counts as retryable depends on
whether repeating the request is safe (see ``_should_retry``). Redirects are followed by ``redirects.RedirectChain``,
not by requests, so credentials stay with their origin; answers are read in pieces up to the connection's
``WireLimits``. Every error leaves here as an ``EdgeImpulseAPIError`` whose text has passed through ``scrub`` so
that no secret can ride along in it.
"""

from __future__ import annotations

import http.cookiejar
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import tenacity
from urllib3.exceptions import NewConnectionError

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials
from airflow_provider_edgeimpulse.hooks.masking import mask_secrets, scrub, scrub_error
from airflow_provider_edgeimpulse.hooks.policy import (
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

# Statuses that mean "the server did not act on it", so even a request that is unsafe to repeat (starting a
# job, uploading samples) may be sent again. A 500/502/504 may come after the upstream already acted.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})


class _Log(Protocol):
    """The two methods used of a logger (Airflow hands hooks a structlog-style logger, not ``logging.Logger``)."""

    def info(self, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, *args: Any, **kwargs: Any) -> Any: ...


class _RetryableStatus(Exception):
    """An attempt answered with a status worth retrying; carries the decoded error and the server's wish."""

    def __init__(self, error: EdgeImpulseAPIError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _short_reason(exc: BaseException) -> str:
    """What went wrong at the transport level, in a few words (no URL: requests puts those in its texts)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer within the timeout"
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
    text = str(exc)
    if "Name or service not known" in text or "getaddrinfo failed" in text:
        return "host name not found"
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by the server"
    return type(exc).__name__


def _surely_not_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached the server (nothing was connected)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


class EdgeImpulseSession:
    """
    One principal talking to one Studio (and its ingestion service) over one ``requests.Session``.

    The JWT of a username/password connection is fetched lazily, kept in memory only and masked at once.
    """

    def __init__(
        self,
        credentials: EdgeImpulseCredentials,
        *,
        retry_policy: RetryPolicy,
        timeout: float,
        log: _Log,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.retry_policy = retry_policy
        self.timeout = timeout
        self.log = log
        self._sleep = sleep
        self._jwt: str | None = None
        self._login_lock = threading.Lock()
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        # Keep no cookie a server sets: a Studio that sets its ``jwt`` cookie at login would otherwise have the
        # jar send it to any port of the same host, past the redirect rule. Our own cookie is passed per request.
        self.http.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    def __repr__(self) -> str:
        creds = self.credentials
        return f"EdgeImpulseSession(studio_url={creds.studio_url!r}, auth_type={creds.auth_type.value!r})"

    def close(self) -> None:
        self.http.close()

    # -- secrets -------------------------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        return [v for v in (*self.credentials.secrets(), self._jwt) if v]

    def scrub(self, text: str) -> str:
        """Replace every secret this session knows with ``***`` (a server may echo them back)."""
        return scrub(text, self._secrets())

    # -- authentication ------------------------------------------------------------------------------------

    def _auth(self, target: str) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and cookies for one request to ``target`` ("studio" or "ingestion")."""
        creds = self.credentials
        if creds.auth_type is AuthType.API_KEY:
            return {"x-api-key": creds.api_key or ""}, {}
        token = self._login()
        # The ingestion service takes the JWT only as a header, whatever the connection uses for Studio.
        if creds.auth_type is AuthType.JWT or target == "ingestion":
            return {"x-jwt-token": token}, {}
        return {}, {"jwt": token}

    def _login(self, *, stale: str | None = None) -> str:
        with self._login_lock:
            if self._jwt and self._jwt != stale:
                return self._jwt
            creds = self.credentials
            self.log.info("Logging in to Edge Impulse at %s as %s", creds.studio_url, creds.username)
            response = self._send_with_retries(
                "POST",
                f"{creds.api_base}/api-login",
                display_path="/api-login",
                json_body={"username": creds.username, "password": creds.password},
                idempotent=True,
                follow_redirects=False,
            )
            data = self.decode(response, "POST", "/api-login")
            token = data.get("token")
            if not isinstance(token, str) or not token:
                raise EdgeImpulseAPIError(
                    "Edge Impulse POST /api-login answered without a token", method="POST", path="/api-login"
                )
            mask_secrets([token])
            self._jwt = token
            return token

    # -- requests ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        display_path: str,
        target: str = "studio",
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """
        Send one authenticated request and return its 2xx response (any other status raises).

        ``display_path`` is what errors and logs show (no host, no query). ``idempotent`` defaults to true for
        GET; a non-idempotent request is only repeated when the server cannot have acted on it. On a JWT
        connection a 401 logs in again once and repeats the request once.
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "OPTIONS")
        relogged = False
        while True:
            auth_headers, cookies = self._auth(target)
            used_token = self._jwt
            try:
                return self._send_with_retries(
                    method,
                    url,
                    display_path=display_path,
                    params=params,
                    json_body=json_body,
                    data=data,
                    headers={**(headers or {}), **auth_headers},
                    cookies=cookies,
                    stream=stream,
                    idempotent=idempotent,
                )
            except EdgeImpulseAPIError as err:
                if not err.is_unauthorized or self.credentials.auth_type is AuthType.API_KEY or relogged:
                    raise
            relogged = True
            self.log.info("Edge Impulse refused the JWT (expired?) on %s %s; logging in again", method, display_path)
            self._login(stale=used_token)

    def decode(self, response: requests.Response, method: str, display_path: str) -> dict[str, Any]:
        """The JSON object of a 2xx response, or ``EdgeImpulseAPIError`` (``success: false``, not JSON...)."""
        return decode_scrubbed(
            status=response.status_code, method=method, path=display_path, text=response.text, secrets=self._secrets()
        )

    def _scrubbed(self, err: EdgeImpulseAPIError) -> EdgeImpulseAPIError:
        return scrub_error(err, self._secrets())

    def _send_with_retries(
        self,
        method: str,
        url: str,
        *,
        display_path: str,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        stream: bool = False,
        idempotent: bool,
        follow_redirects: bool = True,
    ) -> requests.Response:
        policy = self.retry_policy
        base = _base_of(url)
        query = clean_query(params)

        def attempt() -> requests.Response:
            response = self._exchange(
                method,
                url,
                display_path=display_path,
                params=query,
                json_body=json_body,
                data=data,
                headers=headers or {},
                cookies=cookies or {},
                follow_redirects=follow_redirects,
            )
            if 200 <= response.status_code < 300:
                if not stream:
                    self._read_bounded(response, method, display_path)
                return response
            try:
                error = self._error_of(response, method, display_path)
            finally:
                response.close()
            if response.status_code in RETRYABLE_STATUSES:
                raise _RetryableStatus(error, parse_retry_after(response.headers.get("Retry-After")))
            raise error

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableStatus):
                return idempotent or exc.error.status in _NOT_PROCESSED_STATUSES
            if isinstance(exc, requests.ConnectionError | requests.Timeout):
                return idempotent or _surely_not_sent(exc)
            return False

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = exc.retry_after if isinstance(exc, _RetryableStatus) else None
            return policy.delay(state.attempt_number, retry_after)

        def stop(state: tenacity.RetryCallState) -> bool:
            return (
                state.attempt_number >= policy.max_attempts
                or state.idle_for + state.upcoming_sleep > policy.max_total_sleep
            )

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "Edge Impulse %s %s: %s; retrying in %.1f s (attempt %d of at most %d)",
                method,
                display_path,
                self._describe(exc, base),
                state.upcoming_sleep,
                state.attempt_number + 1,
                policy.max_attempts,
            )

        def give_up(state: tenacity.RetryCallState) -> requests.Response:
            exc = state.outcome.exception() if state.outcome else None
            tries = f"{state.attempt_number} attempt{'s' if state.attempt_number != 1 else ''}"
            if isinstance(exc, _RetryableStatus):
                err = exc.error
                raise EdgeImpulseAPIError(
                    f"{self.scrub(str(err))} (gave up after {tries}, {state.idle_for:.1f} s of waiting)",
                    status=err.status,
                    method=method,
                    path=display_path,
                    error=err.error,
                ) from None
            assert exc is not None
            if isinstance(exc, requests.ReadTimeout):
                raise EdgeImpulseAPIError(
                    f"Edge Impulse {method} {display_path}: no answer from {base} within {self.timeout:g} s, "
                    f"{tries} made",
                    method=method,
                    path=display_path,
                ) from None
            raise EdgeImpulseAPIError(
                f"Edge Impulse {method} {display_path}: could not reach {base} after {tries}: "
                f"{self.scrub(_short_reason(exc))}",
                method=method,
                path=display_path,
            ) from None

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(should_retry),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        try:
            return retrying(attempt)
        except _RetryableStatus as exc:
            # Not retried (a POST that may have been acted on): report it as it came.
            raise self._scrubbed(exc.error) from None
        except EdgeImpulseAPIError as err:
            raise self._scrubbed(err) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            # Only requests that are unsafe to repeat get here: the server may have acted on them.
            raise EdgeImpulseAPIError(
                f"Edge Impulse {method} {display_path}: {self.scrub(_short_reason(exc))} from {base}; not "
                "retried because the server may already have acted on it (check the project before repeating)",
                method=method,
                path=display_path,
            ) from None
        except requests.RequestException as exc:
            raise EdgeImpulseAPIError(
                f"Edge Impulse {method} {display_path}: request to {base} failed: {self.scrub(_short_reason(exc))}",
                method=method,
                path=display_path,
            ) from None

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        display_path: str,
        params: dict[str, str],
        json_body: Any,
        data: Any,
        headers: dict[str, str],
        cookies: dict[str, str],
        follow_redirects: bool,
    ) -> requests.Response:
        """One request and the redirects it is answered with, followed by ``RedirectChain``'s rule; the body unread."""
        chain = RedirectChain(
            Outgoing(method, url, params, json_body, data, headers, cookies),
            display_path=display_path,
            max_redirects=self.credentials.limits.max_redirects,
            follow=follow_redirects,
        )
        while True:
            sent = chain.request
            response = self.http.request(
                sent.method,
                sent.url,
                params=sent.params,
                json=sent.json,
                data=sent.data,
                headers=sent.headers,
                cookies=sent.cookies or None,
                stream=True,
                timeout=self.timeout,
                allow_redirects=False,
            )
            try:
                if not chain.follow(response.status_code, response.headers.get("Location"), response.url):
                    return response
            except BaseException:
                response.close()
                raise
            response.close()

    def _read_bounded(self, response: requests.Response, method: str, display_path: str) -> None:
        """Read a streamed 2xx body in pieces, at most ``max_response_bytes`` of it, into ``response.content``."""
        limit = self.credentials.limits.max_response_bytes
        declared = declared_length(response.headers.get("Content-Length"))
        body = bytearray()
        try:
            if declared is None or declared <= limit:
                for chunk in response.iter_content(chunk_size=READ_CHUNK_BYTES):
                    body += chunk
                    if len(body) > limit:
                        break
            if len(body) > limit or (declared is not None and declared > limit):
                raise too_large(
                    method=method,
                    path=display_path,
                    status=response.status_code,
                    limit=limit,
                    seen=len(body),
                    declared=declared,
                )
        finally:
            response.close()
        response._content = bytes(body)

    def _error_of(self, response: requests.Response, method: str, display_path: str) -> EdgeImpulseAPIError:
        """The error a non-2xx response stands for, read from at most the first 64 KiB of its body."""
        raw = b""
        try:
            for chunk in response.iter_content(chunk_size=READ_CHUNK_BYTES):
                raw += chunk
                if len(raw) >= ERROR_BODY_LIMIT:
                    break
        except requests.RequestException:
            pass  # a broken error body still leaves the status to report
        return error_of_body(
            status=response.status_code,
            method=method,
            path=display_path,
            raw=raw,
            encoding=response.encoding,
            secrets=self._secrets(),
        )

    def _describe(self, exc: BaseException | None, base: str) -> str:
        if isinstance(exc, _RetryableStatus):
            return f"HTTP {exc.error.status}" + (f" (Retry-After {exc.retry_after:g} s)" if exc.retry_after else "")
        if exc is None:
            return "unknown failure"
        return f"{self.scrub(_short_reason(exc))} ({base})"


def _base_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without any user info a host field may have carried."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
