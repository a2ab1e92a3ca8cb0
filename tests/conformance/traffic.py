"""
Checks every Studio request reaching the emulator and every answer it gives against the OpenAPI definition.

An aiohttp middleware (wrapped around the emulator's own, so it also sees error answers and injected faults)
records violations; the test suite's fixtures fail the test during which they were recorded (tests/conftest.py).
An emulator running as a process of its own (an end-to-end stack's) is started through serve.py, which writes
what its check finds to a file as JSON lines; ``TrafficCheck.follow`` reads them into the suite's check.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.conformance.spec import STUDIO_ORIGIN, STUDIO_PREFIX, studio_api

# A violation's text is cut here: a schema error can quote a whole body.
MAX_DETAIL = 300
STREAMED = b"(streamed)"
# Answers of a structure already checked in full are checked one in this many (see TrafficCheck._due).
SAMPLE_EVERY = 10
MAX_REMEMBERED = 10_000
AUTH_NAMES = ("x-api-key", "x-jwt-token", "jwt")


@dataclass(frozen=True)
class Violation:
    direction: str
    method: str
    route: str
    status: int | None
    detail: str

    def __str__(self) -> str:
        status = "" if self.status is None else f" -> {self.status}"
        return f"{self.direction} {self.method} {self.route}{status}: {self.detail}"


@dataclass
class _Request:
    """A request as openapi-core reads it (its Request protocol)."""

    method: str
    path: str
    body: bytes | None
    content_type: str
    parameters: Any
    host_url: str = STUDIO_ORIGIN


@dataclass
class _Response:
    """An answer as openapi-core reads it (its Response protocol)."""

    status_code: int
    data: bytes
    content_type: str
    headers: Any


class TrafficCheck:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._violations: list[Violation] = []
        # Why the running test may send or cause traffic off the definition; None: it may not.
        self.exempt_reason: str | None = None
        # Exchanges by (method, route, status), and answers by their full structure.
        self.checked: Counter[tuple[str, str, int]] = Counter()
        self._shapes: Counter[tuple[Any, ...]] = Counter()
        self._failing: set[tuple[Any, ...]] = set()
        self._request_verdicts: dict[tuple[Any, ...], list[str]] = {}
        self.seconds = 0.0
        # Told of each violation as it is found instead of keeping it (serve.py writes it out).
        self.sink: Callable[[Violation], None] | None = None
        # Files that launched emulators write (serve.py), and how far each has been read.
        self._followed: dict[Path, int] = {}
        self.followed_exchanges = 0

    def drain(self) -> list[Violation]:
        self._read_followed()
        with self._lock:
            found, self._violations = self._violations, []
        return found

    def follow(self, path: Path) -> None:
        """Take in what the check of a launched emulator writes to ``path`` (see ``drain``), from its start."""
        with self._lock:
            self._followed.setdefault(path, 0)

    def _read_followed(self) -> None:
        """
        New complete lines of the followed files: violations, recorded as if found here (so under the running
        test's exemption), and the count of exchanges a launched emulator checked, which it writes as it stops.
        """
        with self._lock:
            followed = list(self._followed.items())
        for path, offset in followed:
            try:
                with path.open("rb") as stream:
                    stream.seek(offset)
                    data = stream.read()
            except FileNotFoundError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            with self._lock:
                self._followed[path] = offset + len(complete)
            for line in complete.splitlines():
                self._take_in(json.loads(line))

    def _take_in(self, entry: dict[str, Any]) -> None:
        if "violation" in entry:
            self._record([Violation(**entry["violation"])])
        for method, route, status, count in entry.get("checked", ()):
            self.checked[(method, route, status)] += count
            self.followed_exchanges += count
        self.seconds += entry.get("seconds", 0.0)

    def counts(self) -> dict[str, Any]:
        """The exchanges checked so far, as ``_take_in`` reads them."""
        return {"checked": [[*kind, count] for kind, count in self.checked.items()], "seconds": self.seconds}

    def _record(self, violations: list[Violation]) -> None:
        if self.sink is not None:
            for violation in violations:
                self.sink(violation)
        elif violations and self.exempt_reason is None:
            with self._lock:
                self._violations.extend(violations)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(STUDIO_PREFIX) or self.exempt_reason is not None:
            return await handler(request)
        body = await request.read() if request.body_exists else None
        route = _route(request)
        started = time.perf_counter()
        studio_request = _studio_request(request, body)
        found = [
            Violation("request", request.method, route, None, detail)
            for detail in self._request_errors(studio_request, route, request)
        ]
        self.seconds += time.perf_counter() - started
        response = await handler(request)
        started = time.perf_counter()
        shape = _response_shape(request.method, route, response)
        self.checked[shape[:3]] += 1
        if self._due(shape):
            errors = _response_errors(studio_request, response)
            if errors:
                self._failing.add(shape)
            found += [Violation("response", request.method, route, response.status, d) for d in errors]
        self.seconds += time.perf_counter() - started
        self._record(found)
        return response

    def _request_errors(self, studio_request: _Request, route: str, request: web.Request) -> list[str]:
        """
        Checking a request's parameters costs milliseconds and a wait polls the same request many times: an
        identical request (same route, query, body and credentials' kinds) gets the verdict of its first check.
        Path parameters may differ: the routes admit digits only, which is all the definition asks of them.
        """
        key = (
            request.method,
            route,
            request.query_string,
            studio_request.body,
            studio_request.content_type,
            tuple(sorted(name for name in AUTH_NAMES if name in request.headers or name in request.cookies)),
        )
        verdict = self._request_verdicts.get(key)
        if verdict is None:
            try:
                verdict = [_describe(error) for error in studio_api().iter_request_errors(studio_request)]
            except Exception as exc:  # a crash of the check must fail the test, not the emulator
                verdict = [f"the check failed: {exc!r}"]
            if len(self._request_verdicts) >= MAX_REMEMBERED:
                self._request_verdicts.clear()
            self._request_verdicts[key] = verdict
        return verdict

    def _due(self, shape: tuple[Any, ...]) -> bool:
        """
        The first answer of each structure is checked in full, then one in ``SAMPLE_EVERY`` of the same one, so
        that which test sees a violation never depends on the order tests ran in: a structure that broke the
        definition once is checked every time, and so is an answer that is not JSON or is an error (cheap).
        """
        seen = self._shapes[shape]
        self._shapes[shape] = seen + 1
        if shape in self._failing or shape[2] >= 400 or not isinstance(shape[4], tuple):
            return True
        return seen % SAMPLE_EVERY == 0


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _studio_request(request: web.Request, body: bytes | None) -> _Request:
    from openapi_core.datatypes import RequestParameters

    parameters = RequestParameters(query=request.query, header=request.headers, cookie=request.cookies)
    content_type = request.headers.get("Content-Type", "") if body else ""
    return _Request(request.method.lower(), request.path, body, content_type.lower(), parameters)


def _response_shape(method: str, route: str, response: web.StreamResponse) -> tuple[Any, ...]:
    """What an answer looks like: its route, status, media type and the structure (not the values) of its JSON."""
    structure: Any = None
    if isinstance(response, web.Response) and response.content_type == "application/json":
        try:
            structure = _structure(json.loads(_body_bytes(response)))
        except (ValueError, RecursionError):  # a misbehaving answer must not break the emulator
            structure = "not JSON, or too deep to read"
    return (method, route, response.status, response.content_type, structure)


def _structure(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((key, _structure(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[]", *sorted({_structure(item) for item in value}, key=repr))
    return type(value).__name__


def _response_errors(studio_request: _Request, response: web.StreamResponse) -> list[str]:
    try:
        return _response_errors_of(studio_request, response)
    except Exception as exc:  # a crash of the check must fail the test, not the emulator
        return [f"the check failed: {exc!r}"]


def _response_errors_of(studio_request: _Request, response: web.StreamResponse) -> list[str]:
    if response.status >= 400 or _says_failure(response):
        return _error_body_errors(response)
    # A streamed file's bytes are not at hand (STREAM_RULE): a stand-in lets its status and media type be checked.
    data = _body_bytes(response) if isinstance(response, web.Response) else STREAMED
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip() or response.content_type or ""
    studio_response = _Response(response.status, data, content_type, response.headers)
    return [_describe(e) for e in studio_api().iter_response_errors(studio_request, studio_response)]


def _says_failure(response: web.StreamResponse) -> bool:
    """Studio's other error form: HTTP 200 with ``{success: false, error}`` (exceptions.ERROR_RULE)."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return False
    try:
        body = json.loads(_body_bytes(response))
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and body.get("success") is False


def _body_bytes(response: web.Response) -> bytes:
    body = response.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return bytes(body._value) if hasattr(body, "_value") else b""


def _error_body_errors(response: web.StreamResponse) -> list[str]:
    if not isinstance(response, web.Response):
        return ["an error answer must be a JSON body, not a stream"]
    if response.content_type != "application/json":
        return [f"an error answer must be application/json, not {response.content_type!r}"]
    try:
        body = json.loads(_body_bytes(response))
    except ValueError:
        return ["an error answer's body is not JSON"]
    if not isinstance(body, dict) or body.get("success") is not False or not isinstance(body.get("error"), str):
        return [f"an error answer must be {{success: false, error: string}}, not {str(body)[:MAX_DETAIL]}"]
    return []


def _describe(error: BaseException) -> str:
    """The error and the schema errors under it, one line."""
    parts = [str(error)]
    cause: BaseException | None = error
    while cause is not None:
        for schema_error in getattr(cause, "schema_errors", ()) or ():
            where = "/".join(str(p) for p in schema_error.absolute_path)
            parts.append(f"{where or '(body)'}: {schema_error.message}")
        cause = cause.__cause__ or cause.__context__
    return "; ".join(part[:MAX_DETAIL] for part in parts)


TRAFFIC = TrafficCheck()
