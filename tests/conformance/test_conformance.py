"""The conformance check itself: it catches requests and answers off the definition, and only those."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle
from airflow_provider_edgeimpulse.emulator.server import EmulatorThread
from tests.conformance.exceptions import AMENDMENTS
from tests.conformance.spec import load_definition
from tests.conformance.traffic import TrafficCheck


@pytest.fixture
def watched() -> Iterator[tuple[EmulatorHandle, TrafficCheck, requests.Session]]:
    """An emulator of its own whose traffic goes to a check of its own (the suite's check stays out of it)."""
    check = TrafficCheck()
    config = EmulatorConfig(port=0, job_duration=None)
    server = EmulatorThread(config, (check.middleware,))
    url = server.start()
    handle = EmulatorHandle(
        url, api_key=config.api_key, project_id=config.project_id, username=config.username, password=config.password
    )
    session = requests.Session()
    session.headers["x-api-key"] = config.api_key
    try:
        yield handle, check, session
    finally:
        session.close()
        handle.close()
        server.stop()


def _texts(check: TrafficCheck) -> list[str]:
    return [str(violation) for violation in check.drain()]


def test_the_amended_definition_is_a_valid_openapi_document() -> None:
    from openapi_spec_validator import validate

    validate(load_definition())


def test_every_amendment_gives_its_reason() -> None:
    assert AMENDMENTS
    for amendment in AMENDMENTS:
        assert len(amendment.reason) > 30, amendment.pointer


def test_conforming_traffic_records_nothing(watched) -> None:
    handle, check, session = watched
    base = f"{handle.url}/v1/api/{handle.project_id}"
    for path in ("", "/impulse", "/raw-data?category=training", "/raw-data/count?category=all", "/jobs"):
        assert session.get(base + path, timeout=30).status_code == 200
    started = session.post(f"{base}/jobs/train/keras/4", json={"trainingCycles": 3}, timeout=30).json()
    assert session.get(f"{base}/jobs/{started['id']}/status", timeout=30).status_code == 200
    assert _texts(check) == []
    assert sum(check.checked.values()) == 7


def test_a_request_off_the_definition_is_recorded(watched) -> None:
    handle, check, session = watched
    session.post(f"{handle.url}/v1/api/{handle.project_id}/jobs/train/anomaly/5", json={}, timeout=30)
    found = _texts(check)
    assert any(text.startswith("request POST") and "'axes' is a required property" in text for text in found), found


def test_an_unknown_query_value_is_recorded(watched) -> None:
    handle, check, session = watched
    session.get(f"{handle.url}/v1/api/{handle.project_id}/raw-data?category=anomaly", timeout=30)
    found = _texts(check)
    assert any("category" in text for text in found), found


def test_an_answer_off_the_definition_is_recorded(watched) -> None:
    handle, check, session = watched
    handle.fault(status=200, body='{"success": true}', path="/impulse", count=1)
    session.get(f"{handle.url}/v1/api/{handle.project_id}", timeout=30)
    assert _texts(check) == []
    session.get(f"{handle.url}/v1/api/{handle.project_id}/impulse", timeout=30)
    assert _texts(check) == []  # the impulse is optional
    handle.fault(status=200, body='{"success": true, "impulse": [1]}', path="/impulse", count=1)
    session.get(f"{handle.url}/v1/api/{handle.project_id}/impulse", timeout=30)
    found = _texts(check)
    assert len(found) == 1 and found[0].startswith("response GET /v1/api/{projectId}/impulse -> 200"), found


def test_an_error_answer_needs_the_generic_error_shape(watched) -> None:
    handle, check, session = watched
    url = f"{handle.url}/v1/api/{handle.project_id}/impulse"
    handle.fault(status=503, count=1)  # the emulator's own fault body: {success: false, error}
    assert session.get(url, timeout=30).status_code == 503
    assert _texts(check) == []
    handle.fault(status=502, body="<html>Bad gateway</html>", count=1)
    assert session.get(url, timeout=30).status_code == 502
    found = _texts(check)
    assert len(found) == 1 and "must be application/json" in found[0], found
    handle.fault(status=500, body='{"message": "boom"}', content_type="application/json", count=1)
    session.get(url, timeout=30)
    found = _texts(check)
    assert len(found) == 1 and "{success: false, error: string}" in found[0], found


def test_an_endpoint_missing_from_the_definition_is_recorded(watched) -> None:
    handle, check, session = watched
    assert session.get(f"{handle.url}/v1/api/{handle.project_id}/no-such-endpoint", timeout=30).status_code == 404
    found = _texts(check)
    assert any(text.startswith("request GET") and "Path not found" in text for text in found), found


def test_requests_without_credentials_are_recorded(watched) -> None:
    handle, check, _ = watched
    assert requests.get(f"{handle.url}/v1/api/{handle.project_id}", timeout=30).status_code == 401
    found = _texts(check)
    assert any("Security" in text for text in found), found


def test_ingestion_and_the_control_api_are_not_checked(watched) -> None:
    handle, check, session = watched
    handle.configure(job_duration=1.0)
    files = {"data": ("x.json", b"{}", "application/json")}
    session.post(f"{handle.url}/api/training/files", files=files, timeout=30)
    assert _texts(check) == []
    assert sum(check.checked.values()) == 0
