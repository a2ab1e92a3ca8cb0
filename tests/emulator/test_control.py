"""The control API: settings, faults, request counting, job listing and reset."""

from __future__ import annotations

import time

import pytest
import requests

from tests.emulator.conftest import Studio


def test_status_burst_with_retry_after_then_recovery(emulator, studio: Studio) -> None:
    emulator.fault(status=429, count=2, retry_after=3)
    for _ in range(2):
        response = studio.get("")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json() == {"success": False, "error": "Emulated fault: HTTP 429"}
    assert studio.get("").status_code == 200


def test_an_outage_of_a_given_length_answers_every_request_in_it(emulator, studio: Studio) -> None:
    # Two phases at once: 429 (Retry-After 0) for its length, then 503 for the rest of the longer one.
    emulator.fault(status=429, duration_s=0.4, retry_after=0)
    emulator.fault(status=503, duration_s=0.8)
    seen = []
    began = time.monotonic()
    while time.monotonic() - began < 1.5:
        seen.append(studio.get("").status_code)
        time.sleep(0.02)
    phases = [code for i, code in enumerate(seen) if i == 0 or code != seen[i - 1]]
    assert phases == [429, 503, 200], seen
    assert seen.count(429) > 3 and seen.count(503) > 3, "every request of a phase is answered by it, not a count"
    assert emulator.fault()["responses"] == [], "expired outages are not listed"
    with pytest.raises(RuntimeError, match="duration_s"):
        emulator.fault(status=503, duration_s=0)


def test_fault_path_filter(emulator, studio: Studio) -> None:
    job_id = studio.start("jobs/evaluate")
    emulator.fault(status=503, count=1, path="/status")
    assert studio.get("impulse").status_code == 200
    assert studio.get(f"jobs/{job_id}/status").status_code == 503
    assert studio.get(f"jobs/{job_id}/status").status_code == 200


@pytest.mark.off_spec("injected answers that are not Studio's")
def test_raw_bodies(emulator, studio: Studio) -> None:
    emulator.fault(status=502, body="<html><body>502 Bad Gateway</body></html>")
    html = studio.get("")
    assert html.status_code == 502 and html.headers["Content-Type"].startswith("text/html")
    assert "Bad Gateway" in html.text
    emulator.fault(status=200, body="")
    empty = studio.get("")
    assert empty.status_code == 200 and empty.content == b""
    emulator.fault(body="{not json")
    assert studio.get("").text == "{not json"
    emulator.fault(body='{"success": false, "error": "Job is still running"}')
    soft = studio.get("")
    assert soft.status_code == 200 and soft.json() == {"success": False, "error": "Job is still running"}
    assert studio.get("").json()["success"] is True


def test_faults_apply_to_ingestion_too(emulator) -> None:
    emulator.fault(status=500, path="/api/training/files")
    response = requests.post(
        f"{emulator.url}/api/training/files",
        files=[("data", ("a.json", b"1"))],
        headers={"x-api-key": emulator.api_key},
        timeout=10,
    )
    assert response.status_code == 500


def test_latency(emulator, studio: Studio) -> None:
    emulator.fault(latency_ms=300)
    began = time.monotonic()
    studio.get("")
    assert time.monotonic() - began >= 0.3
    emulator.fault(latency_ms=0)
    began = time.monotonic()
    studio.get("")
    assert time.monotonic() - began < 0.25


def test_control_api_is_not_slowed_or_faulted(emulator) -> None:
    emulator.fault(status=500, count=5)
    emulator.fault(latency_ms=1000)
    began = time.monotonic()
    assert emulator.jobs() == []
    assert time.monotonic() - began < 0.5


def test_bad_fault_specs_are_rejected(emulator) -> None:
    with pytest.raises(RuntimeError, match="unknown fault"):
        emulator.fault(explode=True)
    with pytest.raises(RuntimeError, match="status"):
        emulator.fault(status=42)


def test_clear_faults(emulator, studio: Studio) -> None:
    emulator.fault(status=500, count=10)
    emulator.fault(revoke_api_key=True)
    emulator.clear_faults()
    assert studio.get("").status_code == 200


def test_request_counts_by_route_template(emulator, studio: Studio) -> None:
    job_id = studio.start("jobs/evaluate")
    for _ in range(3):
        studio.get(f"jobs/{job_id}/status")
    studio.get(f"{emulator.url}/v1/api/projects")
    requests.post(
        f"{emulator.url}/api/training/files",
        files=[("data", ("a.json", b"1"))],
        headers={"x-api-key": emulator.api_key},
        timeout=10,
    )
    emulator.jobs()  # control calls are not counted
    seen = emulator.requests()
    assert seen["by_route"] == {
        "POST /v1/api/{projectId}/jobs/evaluate": 1,
        "GET /v1/api/{projectId}/jobs/{jobId}/status": 3,
        "GET /v1/api/projects": 1,
        "POST /api/{category}/files": 1,
    }
    assert seen["total"] == 6


@pytest.mark.off_spec("a request without credentials")
def test_faulted_and_unauthenticated_requests_are_counted(emulator, studio: Studio) -> None:
    emulator.fault(status=503)
    studio.get("impulse")
    requests.get(f"{emulator.url}/v1/api/{emulator.project_id}/impulse", timeout=10)
    assert emulator.requests()["by_route"] == {"GET /v1/api/{projectId}/impulse": 2}


def test_config_validation(emulator) -> None:
    with pytest.raises(RuntimeError, match="unknown setting"):
        emulator.configure(colour="blue")
    with pytest.raises(RuntimeError, match="job_outcome"):
        emulator.configure(job_outcome="maybe")
    with pytest.raises(RuntimeError, match="cannot be null"):
        emulator.configure(deployment_size_bytes=None)
    settings = emulator.configure(ping_interval_ms=1000, ping_timeout_ms=500)
    assert settings["ping_interval_ms"] == 1000
    assert emulator.state.ping_interval_ms == 1000 and emulator.state.ping_timeout_ms == 500


def test_websocket_block_flag(emulator) -> None:
    emulator.fault(block_websockets=True)
    assert emulator.state.websockets_blocked is True
    emulator.fault(block_websockets=False)
    assert emulator.state.websockets_blocked is False


def test_jobs_listing(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/train/keras/4", json={})
    [job] = emulator.jobs()
    assert job["id"] == job_id and job["project_id"] == emulator.project_id
    assert job["finished"] is None and job["cancelled"] is False
    assert job["key"] == "keras-4"
    with pytest.raises(RuntimeError, match="404"):
        emulator.finish_job(job_id + 100)


def test_reset_restores_everything(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=None, job_outcome="failure")
    job_id = studio.start("jobs/evaluate")
    studio.ok("POST", "raw-data/batch/edit-labels", params={"category": "training"}, json={"label": "z"})
    studio.request("DELETE", "raw-data/1")
    token = requests.post(
        f"{emulator.url}/v1/api-login", json={"username": "emulator", "password": "emulator"}, timeout=10
    ).json()["token"]
    socket_token = studio.ok("GET", "socket-token")["token"]["socketToken"]
    emulator.fault(status=500, count=100, path="/never-matches")
    emulator.fault(revoke_api_key=True, refuse_socket_tokens=3, block_websockets=True)
    emulator.reset()
    state = emulator.state
    assert emulator.jobs() == []
    assert emulator.requests() == {"total": 0, "by_route": {}}
    assert state.faults.responses == [] and not state.websockets_blocked and state.refuse_socket_tokens == 0
    assert state.settings.job_duration == emulator.state.config.job_duration
    assert state.settings.job_outcome == "success"
    assert studio.get("").status_code == 200
    assert studio.ok("GET", "raw-data/count", params={"category": "training", "labels": '["idle"]'})["count"] == 4
    assert studio.get("raw-data/1").status_code == 200
    assert studio.get(f"jobs/{job_id}/status").status_code == 404
    assert Studio(emulator, {"x-jwt-token": token}).get("").status_code == 401
    assert state.project_for_socket_token(socket_token) is None
    # Ids keep counting up, so stale clients cannot confuse a new job with an old one.
    assert studio.start("jobs/evaluate") > job_id


def test_sockets_count(emulator) -> None:
    assert emulator.sockets() == 0


def test_issued_tokens_lists_every_jwt_and_socket_token_until_reset(emulator, studio: Studio) -> None:
    assert emulator.issued_tokens() == {"jwts": [], "socket_tokens": []}
    emulator.configure(jwt_ttl_s=0)
    jwts = [
        requests.post(
            f"{emulator.url}/v1/api-login", json={"username": "emulator", "password": "emulator"}, timeout=10
        ).json()["token"]
        for _ in range(2)
    ]
    socket_token = studio.ok("GET", "socket-token")["token"]["socketToken"]
    # Expired tokens stay listed: a client may have logged one before it expired.
    assert emulator.issued_tokens() == {"jwts": jwts, "socket_tokens": [socket_token]}
    emulator.reset()
    assert emulator.issued_tokens() == {"jwts": [], "socket_tokens": []}


def test_a_test_can_write_a_long_line_into_a_running_jobs_log(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/evaluate")
    emulator.write_job_log(job_id, "ab", repeat=50_000, level="warn")
    assert studio.stdout(job_id, limit=1) == ["ab" * 50_000]
    for bad in ({"data": 1}, {"data": "x", "repeat": 0}, {"data": "x", "level": "loud"}):
        response = requests.post(f"{emulator.url}/_emulator/jobs/{job_id}/log", json=bad, timeout=10)
        assert response.status_code == 400, bad
    emulator.finish_job(job_id)
    with pytest.raises(RuntimeError, match="409"):
        emulator.write_job_log(job_id, "late")
    with pytest.raises(RuntimeError, match="404"):
        emulator.write_job_log(job_id + 100, "nobody")


def test_an_added_principal_opens_its_own_project_only(emulator, studio: Studio) -> None:
    emulator.add_principal("ei_second_key", 2)
    second = {"x-api-key": "ei_second_key"}
    started = requests.post(f"{emulator.url}/v1/api/2/jobs/retrain", headers=second, json={}, timeout=10)
    assert started.status_code == 200, started.text
    job_id = started.json()["id"]
    status = requests.get(f"{emulator.url}/v1/api/2/jobs/{job_id}/status", headers=second, timeout=10)
    assert status.status_code == 200 and status.json()["job"]["id"] == job_id
    token = requests.get(f"{emulator.url}/v1/api/2/socket-token", headers=second, timeout=10)
    assert token.status_code == 200 and token.json()["token"]["socketToken"]
    assert requests.get(f"{emulator.url}/v1/api/1/jobs", headers=second, timeout=10).status_code == 404
    assert studio.get(f"jobs/{job_id}/status").status_code == 404, "project 1's key does not open project 2"
    emulator.reset()
    assert requests.get(f"{emulator.url}/v1/api/2/jobs", headers=second, timeout=10).status_code == 401


def test_a_principal_needs_a_new_key_and_a_project_id(emulator) -> None:
    for body in ({"api_key": "", "project_id": 2}, {"api_key": emulator.api_key, "project_id": 2}, {"api_key": "k"}):
        answer = requests.post(f"{emulator.url}/_emulator/principals", json=body, timeout=10)
        assert answer.status_code == 400, body
