"""Injected faults for REST and ingestion requests: error bursts, raw bodies and latency."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from airflow_provider_edgeimpulse.emulator.errors import bad_request


@dataclass
class ResponseFault:
    """
    Answers the next ``remaining`` matching requests itself instead of the real handler.

    With ``until`` (a ``time.monotonic()`` moment) it stops answering then, however many remain: an outage
    of a given length rather than a given number of requests.
    """

    status: int
    remaining: int
    path: str | None = None
    retry_after: float | None = None
    body: str | None = None
    content_type: str | None = None
    until: float | None = None

    @property
    def active(self) -> bool:
        return self.remaining > 0 and (self.until is None or time.monotonic() < self.until)

    def matches(self, path: str) -> bool:
        return self.active and (self.path is None or self.path in path)

    def render(self) -> tuple[int, dict[str, str], str]:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            value = self.retry_after
            headers["Retry-After"] = str(int(value)) if float(value).is_integer() else str(value)
        if self.body is None:
            body = json.dumps({"success": False, "error": f"Emulated fault: HTTP {self.status}"})
            headers["Content-Type"] = "application/json"
        else:
            body = self.body
            headers["Content-Type"] = self.content_type or _sniff(body)
        return self.status, headers, body

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "count": self.remaining,
            "path": self.path,
            "retry_after": self.retry_after,
            "body": self.body,
            "duration_s": None if self.until is None else max(self.until - time.monotonic(), 0.0),
        }


def _sniff(body: str) -> str:
    stripped = body.lstrip()
    if stripped.startswith("<"):
        return "text/html"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain"
    return "application/json"


@dataclass
class LatencyFault:
    seconds: float
    path: str | None = None

    def matches(self, path: str) -> bool:
        return self.path is None or self.path in path


class FaultBook:
    def __init__(self) -> None:
        self.responses: list[ResponseFault] = []
        self.latency: LatencyFault | None = None

    def clear(self) -> None:
        self.responses.clear()
        self.latency = None

    def add_response(self, spec: dict[str, Any]) -> ResponseFault:
        status = spec.get("status", 200 if "body" in spec else None)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise bad_request("a response fault needs an HTTP 'status' (or a 'body')")
        duration = spec.get("duration_s")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
        ):
            raise bad_request("'duration_s' must be a positive number of seconds")
        # An outage of a given length answers every request in it unless a count is given too.
        count = spec.get("count", 1 if duration is None else sys.maxsize)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise bad_request("'count' must be a positive integer")
        retry_after = spec.get("retry_after")
        if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int | float)):
            raise bad_request("'retry_after' must be a number of seconds")
        body = spec.get("body")
        if body is not None and not isinstance(body, str):
            raise bad_request("'body' must be a string (sent as is)")
        fault = ResponseFault(
            status=status,
            remaining=count,
            path=_path(spec),
            retry_after=retry_after,
            body=body,
            content_type=spec.get("content_type"),
            until=None if duration is None else time.monotonic() + duration,
        )
        self.responses.append(fault)
        return fault

    def set_latency(self, spec: dict[str, Any]) -> None:
        value = spec["latency_ms"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise bad_request("'latency_ms' must be a non-negative number")
        self.latency = LatencyFault(value / 1000.0, _path(spec)) if value else None

    def take_response(self, path: str) -> ResponseFault | None:
        for fault in self.responses:
            if fault.matches(path):
                fault.remaining -= 1
                return fault
        return None

    def delay_for(self, path: str) -> float:
        return self.latency.seconds if self.latency is not None and self.latency.matches(path) else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "responses": [f.to_json() for f in self.responses if f.active],
            "latency_ms": (self.latency.seconds * 1000.0) if self.latency else 0,
            "latency_path": self.latency.path if self.latency else None,
        }


def _path(spec: dict[str, Any]) -> str | None:
    path = spec.get("path")
    if path is not None and not isinstance(path, str):
        raise bad_request("'path' must be a string")
    return path or None
