"""Authentication exactly as Studio: x-api-key, x-jwt-token, the jwt cookie; and project ownership."""

from __future__ import annotations

import time

import pytest
import requests

from tests.emulator.conftest import Studio


def _login(url: str, username: str = "emulator", password: str = "emulator") -> requests.Response:
    return requests.post(f"{url}/v1/api-login", json={"username": username, "password": password}, timeout=10)


def test_api_key_lists_its_project(studio: Studio, validate) -> None:
    response = studio.get(f"{studio.handle.url}/v1/api/projects")
    body = validate("ListProjectsResponse", response)
    assert [p.id for p in body.projects] == [studio.handle.project_id]


@pytest.mark.off_spec("a request without credentials")
def test_missing_credentials_is_401_with_studio_error_shape(emulator) -> None:
    response = requests.get(f"{emulator.url}/v1/api/{emulator.project_id}", timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert "x-api-key" in body["error"]


def test_wrong_api_key_is_401(emulator) -> None:
    client = Studio(emulator, {"x-api-key": "ei_wrong"})
    response = client.get("")
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Invalid API key"}


def test_login_returns_a_jwt_usable_as_header_and_cookie(emulator, validate) -> None:
    response = _login(emulator.url)
    token = validate("GetJWTResponse", response).token
    assert token and token.count(".") == 2  # header.payload.signature
    header_client = Studio(emulator, {"x-jwt-token": token})
    assert header_client.ok("GET", "")["project"]["id"] == emulator.project_id
    cookie_client = Studio(emulator, {})
    cookie_client.session.cookies.set("jwt", token)
    assert cookie_client.ok("GET", "impulse")["impulse"]["id"] == 1


def test_wrong_password_is_rejected(emulator) -> None:
    response = _login(emulator.url, password="nope")
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert "token" not in response.json()


def test_unknown_jwt_is_401(emulator) -> None:
    response = Studio(emulator, {"x-jwt-token": "a.b.c"}).get("")
    assert response.status_code == 401


def test_jwt_expires_after_ttl(emulator) -> None:
    emulator.configure(jwt_ttl_s=0.3)
    token = _login(emulator.url).json()["token"]
    client = Studio(emulator, {"x-jwt-token": token})
    assert client.get("").status_code == 200
    time.sleep(0.4)
    expired = client.get("")
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]
    fresh = _login(emulator.url).json()["token"]
    assert Studio(emulator, {"x-jwt-token": fresh}).get("").status_code == 200


def test_jwt_ttl_fault_expires_tokens_already_issued(emulator) -> None:
    token = _login(emulator.url).json()["token"]
    client = Studio(emulator, {"x-jwt-token": token})
    assert client.get("").status_code == 200
    emulator.fault(jwt_ttl_s=0)
    assert client.get("").status_code == 401


def test_revoked_api_key_fails_but_jwt_still_works(emulator) -> None:
    key_client = Studio(emulator)
    assert key_client.get("").status_code == 200
    emulator.fault(revoke_api_key=True)
    assert key_client.get("").status_code == 401
    token = _login(emulator.url).json()["token"]
    assert Studio(emulator, {"x-jwt-token": token}).get("").status_code == 200
    emulator.fault(revoke_api_key=False)
    assert key_client.get("").status_code == 200


def test_other_projects_are_not_found(emulator) -> None:
    client = Studio(emulator)
    response = client.get(f"{emulator.url}/v1/api/{emulator.project_id + 1}/jobs/1/status")
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert str(emulator.project_id + 1) in response.json()["error"]


@pytest.mark.off_spec("an endpoint Studio does not have")
def test_unknown_route_is_a_json_404(studio: Studio) -> None:
    response = studio.get("no-such-endpoint")
    assert response.status_code == 404
    assert response.json()["success"] is False
