"""Fixtures for hook tests against the emulator over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.hooks.policy import RetryPolicy

# Quick but real: retries happen, sleeps are milliseconds.
FAST_POLICY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, retry_after_cap=0.5, max_total_sleep=2.0)


@pytest.fixture
def ei(edgeimpulse_emulator: Any) -> Any:
    """The emulator handle, with jobs that run until the test finishes them (no timing races)."""
    edgeimpulse_emulator.configure(job_duration=None)
    return edgeimpulse_emulator


@pytest.fixture
def hook(ei: Any) -> Iterator[EdgeImpulseHook]:
    hook = EdgeImpulseHook(retry_policy=FAST_POLICY)
    yield hook
    hook.close()


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any] | str) -> None:
    value = conn if isinstance(conn, str) else json.dumps(conn)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


@pytest.fixture
def jwt_hook(ei: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[EdgeImpulseHook]:
    set_connection(monkeypatch, "ei_jwt", ei.connection_json(auth_type="jwt"))
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_jwt", project_id=ei.project_id, retry_policy=FAST_POLICY)
    yield hook
    hook.close()


def route_count(ei: Any, route: str) -> int:
    return int(ei.requests()["by_route"].get(route, 0))
