"""Connection -> credentials, through Airflow's own Connection parsing (URI form and JSON form)."""

from __future__ import annotations

import json

import pytest
from airflow.models.connection import Connection

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.hooks.credentials import (
    DEFAULT_INGESTION_URL,
    DEFAULT_STUDIO_URL,
    AuthType,
    EdgeImpulseCredentials,
    credentials_from_connection,
    credentials_from_fields,
)
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


def test_uri_form_with_api_key_and_project_id() -> None:
    conn = Connection(conn_id="ei", uri="edgeimpulse://:ei_xxx@/?project_id=1")
    creds = credentials_from_connection(conn)
    assert creds.auth_type is AuthType.API_KEY
    assert creds.api_key == "ei_xxx"
    assert creds.project_id == 1
    assert creds.studio_url == DEFAULT_STUDIO_URL
    assert creds.ingestion_url == DEFAULT_INGESTION_URL
    assert creds.api_base == f"{DEFAULT_STUDIO_URL}/v1"


def test_uri_form_with_emulator_host_port_and_jwt() -> None:
    conn = Connection(
        conn_id="ei",
        uri="edgeimpulse://me:s3cret-pw@127.0.0.1:4810/?auth_type=jwt&project_id=5&ingestion_host=127.0.0.1%3A4810",
    )
    creds = credentials_from_connection(conn)
    assert creds.auth_type is AuthType.JWT
    assert (creds.username, creds.password) == ("me", "s3cret-pw")
    assert creds.studio_url == "http://127.0.0.1:4810"  # loopback without a scheme gets http
    assert creds.ingestion_url == "http://127.0.0.1:4810"
    assert "s3cret-pw" not in repr(creds)


def test_json_form_through_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_EI_JSON",
        json.dumps(
            {
                "conn_type": "edgeimpulse",
                "host": "https://studio.example.com",
                "password": "ei_json_key",
                "extra": {"project_id": "42", "timeout": 12.5, "ingestion_host": "https://ingest.example.com"},
            }
        ),
    )
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_json")
    creds = hook.credentials
    assert creds.api_key == "ei_json_key"
    assert creds.project_id == 42
    assert creds.timeout == 12.5
    assert creds.studio_url == "https://studio.example.com"
    assert creds.ingestion_url == "https://ingest.example.com"
    assert hook.project_id == 42  # from the extra, no call needed


def test_api_key_may_come_from_the_api_key_extra() -> None:
    conn = Connection(conn_id="ei", conn_type="edgeimpulse", extra=json.dumps({"api_key": "ei_from_extra"}))
    assert credentials_from_connection(conn).api_key == "ei_from_extra"


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EI_NOKEY", json.dumps({"conn_type": "edgeimpulse", "extra": {"project_id": 1}}))
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_nokey")  # lazy: nothing is read yet
    with pytest.raises(EdgeImpulseConnectionError, match=r"'ei_nokey'.*no API key.*password field"):
        hook.get_project_info()


def test_non_integer_project_id_in_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_EI_BADPID",
        json.dumps({"conn_type": "edgeimpulse", "password": "ei_k", "extra": {"project_id": "twelve"}}),
    )
    with pytest.raises(EdgeImpulseConnectionError, match=r"'ei_badpid'.*project_id must be a positive integer.*twelve"):
        _ = EdgeImpulseHook(edgeimpulse_conn_id="ei_badpid").credentials


@pytest.mark.parametrize("bad", ["abc", "1.5", 0, -3, True])
def test_non_integer_project_id_on_the_hook(bad: object) -> None:
    with pytest.raises(EdgeImpulseConnectionError, match="project_id must be a positive integer"):
        EdgeImpulseHook(project_id=bad)  # type: ignore[arg-type]


def test_unknown_auth_type() -> None:
    conn = Connection(conn_id="ei", uri="edgeimpulse://:ei_xxx@/?auth_type=oauth")
    with pytest.raises(EdgeImpulseConnectionError, match=r"unknown auth_type 'oauth'.*api_key, jwt, jwt_cookie"):
        credentials_from_connection(conn)


def test_jwt_without_username() -> None:
    # Not a two-letter password: Airflow 2 masks every connection password, however short, in all later output.
    conn = Connection(conn_id="ei", uri="edgeimpulse://:No-user-Pw-62@/?auth_type=jwt_cookie")
    with pytest.raises(EdgeImpulseConnectionError, match="needs a username"):
        credentials_from_connection(conn)


def test_bad_timeout() -> None:
    conn = Connection(conn_id="ei", uri="edgeimpulse://:ei_x@/?timeout=soon")
    with pytest.raises(EdgeImpulseConnectionError, match="timeout must be a positive number"):
        credentials_from_connection(conn)
    with pytest.raises(EdgeImpulseConnectionError, match="timeout must be a positive number"):
        EdgeImpulseHook(timeout=0)
    with pytest.raises(EdgeImpulseConnectionError, match="timeout must be a positive number"):
        EdgeImpulseHook(timeout="soon")  # type: ignore[arg-type]


def _fields(host: str | None, **extra: object) -> EdgeImpulseCredentials:
    return credentials_from_fields(host=host, login=None, password="ei_key", extra=dict(extra), conn_id="ei")


@pytest.mark.parametrize(
    "host", ["http://localhost:4810", "http://127.0.0.5:4810", "http://[::1]:4810", "127.0.0.2:4810", "LOCALHOST"]
)
def test_plain_http_to_this_machine_needs_no_opt_in(host: str) -> None:
    assert _fields(host, ingestion_host=host).studio_url.startswith("http://")


@pytest.mark.parametrize("field", ["host", "ingestion_host"])
def test_plain_http_elsewhere_needs_the_opt_in(field: str) -> None:
    url = "http://studio.internal:8080"
    settings = {"host": url} if field == "host" else {"host": None, "ingestion_host": url}
    host = settings.pop("host")
    with pytest.raises(EdgeImpulseConnectionError, match=f"{field} 'http://studio.internal:8080' is plain http"):
        _fields(host, **settings)
    for opt_in in (True, "true", "1"):
        creds = _fields(host, allow_insecure_http=opt_in, **settings)
        assert url in (creds.studio_url, creds.ingestion_url)
    with pytest.raises(EdgeImpulseConnectionError, match="plain http"):
        _fields(host, allow_insecure_http="false", **settings)


@pytest.mark.parametrize("field", ["host", "ingestion_host"])
@pytest.mark.parametrize(
    "url",
    ["https://ops:pw-URL-9z@studio.example", "ops:pw-URL-9z@studio.example", "https://ops:pw/URL-9z@studio.example"],
)
def test_credentials_in_a_host_url_are_refused_without_showing_them(field: str, url: str) -> None:
    host, extra = (url, {}) if field == "host" else (None, {"ingestion_host": url})
    with pytest.raises(EdgeImpulseConnectionError) as info:
        _fields(host, **extra)
    message = str(info.value)
    assert f"{field} holds a user name or password" in message
    assert "pw" not in message.replace("password", "") and "URL-9z" not in message and "ops" not in message


def test_max_response_mib_sets_the_response_limit() -> None:
    assert _fields(None).limits.max_response_bytes == 64 * 1024 * 1024
    assert _fields(None, max_response_mib="0.5").limits.max_response_bytes == 512 * 1024
    assert _fields(None, max_response_mib=256).limits.max_response_bytes == 256 * 1024 * 1024
    for bad in ("0", "-1", "nan", "inf", True, "lots"):
        with pytest.raises(EdgeImpulseConnectionError, match="max_response_mib must be a positive number"):
            _fields(None, max_response_mib=bad)


def test_socket_bounds_are_set_by_their_extras() -> None:
    limits = _fields(None, max_socket_frame_mib="2", max_queued_events=500).limits
    assert (limits.max_frame_bytes, limits.max_queued_events) == (2 * 1024 * 1024, 500)
    assert limits.max_response_bytes == 64 * 1024 * 1024
    for name, unit in (("max_socket_frame_mib", "MiB"), ("max_queued_events", "events")):
        with pytest.raises(EdgeImpulseConnectionError, match=f"{name} must be a positive number of {unit}"):
            _fields(None, **{name: "-5"})
