"""
What a hostile or broken server can make the two transports do, against real loopback servers.

Both the sync hook (requests) and the async client (aiohttp) are driven through the same scenarios: redirects
(credentials stay with their origin, ``/api-login`` is never redirected, chains are bounded, downloads follow a
signed URL elsewhere), secrets echoed back in error bodies, ``Retry-After`` values that are not sane numbers,
and answers larger than the connection allows.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks._session import EdgeImpulseSession
from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials, credentials_from_fields
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.hooks.policy import RetryPolicy
from airflow_provider_edgeimpulse.wire import MIB
from tests.hooks.loopback import LoopbackServer, Seen, json_response, loopback_server

API_KEY = "ei_transport_key_5f3a9c0d"
USERNAME = "ops@example.com"
PASSWORD = "pw-Transport-77q-x"
JWT = "jwt-issued-by-login-8d1e44"
SECRETS = (API_KEY, PASSWORD, JWT)
AUTH_TYPES = ("api_key", "jwt", "jwt_cookie")
REDIRECTS = (301, 302, 303, 307, 308)
STATUS_PATH = "/v1/api/1/jobs/5/status"
JOB = {"success": True, "job": {"id": 5, "created": "2026-01-01T00:00:00Z", "finished": None}}
QUICK = RetryPolicy(
    max_attempts=3, base_delay=0.01, max_delay=0.02, retry_after_cap=0.05, retry_after_floor=0.01, max_total_sleep=1
)
BOUND_S = 30.0

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def connection(url: str, auth_type: str = "api_key", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"conn_type": "edgeimpulse", "host": url, "extra": {"project_id": 1, **extra}}
    if auth_type == "api_key":
        fields["password"] = API_KEY
    else:
        fields.update(login=USERNAME, password=PASSWORD)
        fields["extra"]["auth_type"] = auth_type
    return fields


def credentials(url: str, auth_type: str = "api_key", **extra: Any) -> EdgeImpulseCredentials:
    conn = connection(url, auth_type, **extra)
    return credentials_from_fields(
        host=conn["host"], login=conn.get("login"), password=conn["password"], extra=conn["extra"], conn_id="t"
    )


def credentials_in(seen: Seen) -> list[str]:
    """Every credential a request carried: our auth headers, the jwt cookie, any secret anywhere in it."""
    found = [name for name in ("x-api-key", "x-jwt-token") if name in seen.headers]
    found += ["jwt cookie"] if "jwt" in seen.cookies else []
    everything = json.dumps(seen.headers) + seen.body.decode("utf-8", "replace") + seen.query
    return found + [f"secret {s[:6]}..." for s in SECRETS if s in everything]


def studio(route: Handler) -> Handler:
    """A Studio that logs principals in (setting the token as a cookie too) and answers the rest with ``route``."""

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        if request.path == "/v1/api-login":
            response = json_response({"success": True, "token": JWT})
            response.set_cookie("jwt", JWT, path="/")
            return response
        return await route(request, body)

    return handle


def redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


@pytest.fixture
def servers() -> Iterator[Callable[[Handler], LoopbackServer]]:
    started: list[LoopbackServer] = []

    def start(handler: Handler) -> LoopbackServer:
        server = LoopbackServer(handler).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def sync_status(monkeypatch: pytest.MonkeyPatch, url: str, auth_type: str, **extra: Any) -> dict[str, Any]:
    monkeypatch.setenv("AIRFLOW_CONN_EI_T", json.dumps(connection(url, auth_type, **extra)))
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_t", retry_policy=QUICK)
    try:
        return hook.get_job_status(5)
    finally:
        hook.close()


def async_status(url: str, auth_type: str, **extra: Any) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with AsyncEdgeImpulseClient(credentials(url, auth_type, **extra), retry_policy=QUICK) as client:
            return await client.get_job_status(1, 5)

    return asyncio.run(read())


def read_status(transport: str, monkeypatch: pytest.MonkeyPatch, url: str, auth_type: str, **extra: Any) -> Any:
    if transport == "sync":
        return sync_status(monkeypatch, url, auth_type, **extra)
    return async_status(url, auth_type, **extra)


TRANSPORTS = ("sync", "async")


# -- redirects ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("auth_type", AUTH_TYPES)
@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_to_another_origin_is_followed_without_any_credential(
    servers, monkeypatch, transport: str, auth_type: str, status: int
) -> None:
    async def answer(request: web.Request, body: bytes) -> web.Response:
        return json_response(JOB)

    elsewhere = servers(answer)

    async def route(request: web.Request, body: bytes) -> web.Response:
        return redirect(status, f"{elsewhere.url}/signed/status?sig=abc")

    home = servers(studio(route))

    job = read_status(transport, monkeypatch, home.url, auth_type)

    assert job["id"] == 5
    assert elsewhere.paths() == ["/signed/status"]
    assert credentials_in(elsewhere.seen[0]) == []
    # The request to Studio itself did carry them (the test would prove nothing otherwise).
    assert credentials_in(next(s for s in home.seen if s.path == STATUS_PATH))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_a_redirect_within_studio_keeps_the_credentials(servers, monkeypatch, transport: str, auth_type: str) -> None:
    async def route(request: web.Request, body: bytes) -> web.Response:
        if request.path == STATUS_PATH:
            return redirect(307, "/v1/moved/status")
        return json_response(JOB)

    home = servers(studio(route))

    assert read_status(transport, monkeypatch, home.url, auth_type)["id"] == 5
    moved = [s for s in home.seen if s.path == "/v1/moved/status"]
    assert len(moved) == 1 and credentials_in(moved[0])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_credentials_once_dropped_do_not_come_back_when_redirected_home(servers, monkeypatch, transport: str) -> None:
    home_url: list[str] = []

    async def bounce(request: web.Request, body: bytes) -> web.Response:
        return redirect(302, f"{home_url[0]}/v1/back")

    elsewhere = servers(bounce)

    async def route(request: web.Request, body: bytes) -> web.Response:
        if request.path == STATUS_PATH:
            return redirect(302, f"{elsewhere.url}/hop")
        return json_response(JOB)

    home = servers(studio(route))
    home_url.append(home.url)

    assert read_status(transport, monkeypatch, home.url, "api_key")["id"] == 5
    back = [s for s in home.seen if s.path == "/v1/back"]
    assert len(back) == 1 and credentials_in(back[0]) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_login_is_never_redirected(servers, monkeypatch, transport: str) -> None:
    async def answer(request: web.Request, body: bytes) -> web.Response:
        return json_response({"success": True, "token": "stolen"})

    elsewhere = servers(answer)

    async def handle(request: web.Request, body: bytes) -> web.Response:
        return redirect(307, f"{elsewhere.url}/v1/api-login")

    home = servers(handle)

    with pytest.raises(EdgeImpulseAPIError) as info:
        read_status(transport, monkeypatch, home.url, "jwt")

    assert elsewhere.seen == []
    assert "/api-login" in str(info.value) and "never redirected" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert home.paths() == ["/v1/api-login"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirect_loop_is_bounded(servers, monkeypatch, transport: str) -> None:
    async def route(request: web.Request, body: bytes) -> web.Response:
        return redirect(302, f"{STATUS_PATH}?n={len(home.seen)}")

    home = servers(route)

    with pytest.raises(EdgeImpulseAPIError, match="more than 5 redirects"):
        read_status(transport, monkeypatch, home.url, "api_key")
    assert len(home.seen) == 6


def firmware_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.tflite", b"\x00tflite" * 1000)
    return buffer.getvalue()


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_a_download_follows_a_signed_url_on_another_server_without_credentials(
    servers, monkeypatch, tmp_path: Path, auth_type: str
) -> None:
    artefact = firmware_zip()

    async def storage(request: web.Request, body: bytes) -> web.Response:
        return web.Response(
            body=artefact,
            content_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="firmware.zip"'},
        )

    bucket = servers(storage)

    async def route(request: web.Request, body: bytes) -> web.Response:
        if request.path == "/v1/api/1/deployment/download":
            return redirect(302, f"{bucket.url}/artefacts/firmware.zip?X-Signature=0a1b2c")
        return json_response({"success": False, "error": "unexpected"}, status=404)

    home = servers(studio(route))
    monkeypatch.setenv("AIRFLOW_CONN_EI_T", json.dumps(connection(home.url, auth_type)))
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_t", retry_policy=QUICK)
    try:
        result = hook.download_deployment(tmp_path, "zip", "tflite")
    finally:
        hook.close()

    assert Path(result["path"]).read_bytes() == artefact
    assert result["size"] == len(artefact)
    assert bucket.paths() == ["/artefacts/firmware.zip"]
    assert credentials_in(bucket.seen[0]) == []


# -- echoed secrets ----------------------------------------------------------------------------------------------


async def echo(request: web.Request, body: bytes) -> web.Response:
    """What a debugging proxy might answer: the whole request, headers and body, in the error text."""
    text = f"rejected {request.method} {request.path_qs}; headers {dict(request.headers)}; body {body.decode()}"
    return json_response({"success": False, "error": text}, status=400)


def echoing_studio(echo_login: bool) -> Handler:
    async def handle(request: web.Request, body: bytes) -> web.Response:
        if request.path == "/v1/api-login" and not echo_login:
            return json_response({"success": True, "token": JWT})
        return await echo(request, body)

    return handle


@pytest.mark.parametrize(
    ("auth_type", "echo_login"), [("api_key", False), ("jwt", False), ("jwt_cookie", False), ("jwt", True)]
)
async def test_a_secret_echoed_to_a_trigger_never_reaches_its_event(
    servers, monkeypatch, auth_type: str, echo_login: bool
) -> None:
    from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger

    home = servers(echoing_studio(echo_login))
    monkeypatch.setenv("AIRFLOW_CONN_EI_T", json.dumps(connection(home.url, auth_type)))
    trigger = EdgeImpulseJobTrigger(job_id=5, project_id=1, edgeimpulse_conn_id="ei_t", deadline=time.time() + 20)

    gen = trigger.run()
    try:
        async with asyncio.timeout(BOUND_S):
            event = await anext(gen)
    finally:
        await gen.aclose()

    payload = json.dumps(event.payload)
    assert event.payload["status"] == "error", payload[:2000]
    assert "rejected" in payload  # the echo did reach the event, scrubbed
    for secret in SECRETS:
        assert secret not in payload
    # The server really was sent the secrets it echoed.
    assert any(credentials_in(s) for s in home.seen)


@pytest.mark.parametrize("auth_type", ["api_key", "jwt"])
def test_a_secret_echoed_to_the_blocking_path_never_reaches_the_error(servers, monkeypatch, auth_type: str) -> None:
    home = servers(echoing_studio(echo_login=auth_type == "jwt"))
    with pytest.raises(EdgeImpulseAPIError) as info:
        sync_status(monkeypatch, home.url, auth_type)
    assert "rejected" in str(info.value)
    for secret in SECRETS:
        assert secret not in str(info.value)


def test_a_secret_echoed_in_per_file_ingestion_errors_never_reaches_the_upload_result(
    servers, monkeypatch, tmp_path: Path
) -> None:
    async def ingestion(request: web.Request, body: bytes) -> web.Response:
        key = request.headers.get("x-api-key", "")
        return json_response({"success": True, "files": [{"success": False, "error": f"duplicate for key {key}"}]})

    service = servers(ingestion)
    monkeypatch.setenv("AIRFLOW_CONN_EI_T", json.dumps(connection(service.url, ingestion_host=service.url)))
    sample = tmp_path / "idle.01.json"
    sample.write_text('{"payload": {"values": [[1]]}}')
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_t", retry_policy=QUICK)
    try:
        result = hook.upload_files([sample])
    finally:
        hook.close()

    assert result["failed"] == 1
    assert "duplicate for key ***" in str(result["files"][0]["error"])
    assert API_KEY not in json.dumps(result)
    assert service.seen[0].headers["x-api-key"] == API_KEY


# -- Retry-After -------------------------------------------------------------------------------------------------


WILD_RETRY_AFTERS = ("nan", "inf", "-inf", "-5", "0", "1e308", "9" * 400, "Wed, 21 Oct 2105 07:28:00 GMT")


def overloaded_then_ok(retry_after: str, times: int = 2) -> Handler:
    calls = {"n": 0}

    async def route(request: web.Request, body: bytes) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= times:
            return json_response({"success": False, "error": "slow down"}, status=429, **{"Retry-After": retry_after})
        return json_response(JOB)

    return route


@pytest.mark.parametrize("retry_after", WILD_RETRY_AFTERS)
def test_sync_retry_after_is_clamped_to_a_finite_sleep_with_a_floor(servers, retry_after: str) -> None:
    home = servers(overloaded_then_ok(retry_after))
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, retry_after_cap=2.0, max_total_sleep=10)
    slept: list[float] = []
    session = EdgeImpulseSession(
        credentials(home.url), retry_policy=policy, timeout=5, log=logging.getLogger("t"), sleep=slept.append
    )
    try:
        response = session.request("GET", f"{home.url}{STATUS_PATH}", display_path=STATUS_PATH)
        assert session.decode(response, "GET", STATUS_PATH)["job"]["id"] == 5
    finally:
        session.close()

    assert len(slept) == 2
    for seconds in slept:
        assert math.isfinite(seconds)
        assert policy.retry_after_floor <= seconds <= policy.retry_after_cap


def test_sync_retry_after_nan_is_retried_not_a_raw_value_error(servers, monkeypatch) -> None:
    home = servers(studio(overloaded_then_ok("nan", times=1)))
    assert sync_status(monkeypatch, home.url, "api_key")["id"] == 5


def test_retry_policy_never_hands_out_a_wild_delay() -> None:
    policy = RetryPolicy()
    for wish in (math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308):
        delay = policy.delay(1, wish)
        assert math.isfinite(delay) and policy.retry_after_floor <= delay <= policy.retry_after_cap


def run_in_own_loop(scenario: Callable[[], Awaitable[Any]], seconds: float) -> Any:
    """Run ``scenario`` on a fresh event loop in a thread, watched from outside: a stalled loop cannot hide."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(scenario())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="own-loop", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the event loop was still busy after {seconds:g} s: it stalled")
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_async_retry_after_nan_neither_stalls_the_loop_nor_the_wait(servers) -> None:
    from airflow_provider_edgeimpulse.jobs.waiter import wait_for_job

    async def overloaded(request: web.Request, body: bytes) -> web.Response:
        return json_response({"success": False, "error": "overloaded"}, status=503, **{"Retry-After": "nan"})

    home = servers(overloaded)
    creds = credentials(home.url)
    ticks_wanted = 30

    async def scenario() -> tuple[int, Any]:
        loop = asyncio.get_running_loop()
        # What a triggerer holds besides: other triggers' deadlines, hours away. A NaN timer among them breaks
        # the order of the loop's timer heap, and the loop then sleeps towards one of these.
        far = [loop.call_later(3600 + i, lambda: None) for i in range(3)]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            for _ in range(ticks_wanted):
                await asyncio.sleep(0.01)
                ticks += 1

        async def overloaded_reads() -> None:
            async with AsyncEdgeImpulseClient(creds, retry_policy=QUICK) as client:
                for _ in range(5):
                    with pytest.raises(EdgeImpulseAPIError, match="HTTP 503"):
                        await client.get_job_status(1, 5)

        async def wait() -> Any:
            try:
                return await wait_for_job(creds, 1, 5, deadline=time.time() + 2)
            except EdgeImpulseAPIError as err:
                return err

        try:
            async with asyncio.timeout(BOUND_S / 2):
                _, _, outcome = await asyncio.gather(ticker(), overloaded_reads(), wait())
        except TimeoutError:
            outcome = None
        finally:
            for handle in far:
                handle.cancel()
        return ticks, outcome

    ticks, outcome = run_in_own_loop(scenario, BOUND_S)
    assert ticks == ticks_wanted, f"another coroutine on the loop ticked {ticks} of {ticks_wanted} times"
    assert outcome is not None, "the wait did not end by its deadline"
    assert isinstance(outcome, EdgeImpulseAPIError) or outcome.status == "timeout", outcome
    assert len(home.seen) >= 15


# -- bounded answers ---------------------------------------------------------------------------------------------


def streaming(total_bytes: int) -> Handler:
    """A 200 answer of ``total_bytes`` sent in chunks without a Content-Length (nothing to refuse up front)."""

    async def route(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * (64 * 1024)
        try:
            for _ in range(total_bytes // len(chunk)):
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading, as it should
        return response

    return route


def declared(total_bytes: int) -> Handler:
    async def route(request: web.Request, body: bytes) -> web.Response:
        return web.Response(body=b" " * total_bytes, content_type="application/json")

    return route


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_over_the_limit_is_refused_and_read_only_up_to_it(servers, monkeypatch, transport: str) -> None:
    home = servers(studio(streaming(48 * MIB)))
    tracemalloc.start()
    try:
        with pytest.raises(EdgeImpulseAPIError) as info:
            read_status(transport, monkeypatch, home.url, "api_key", max_response_mib=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    message = str(info.value)
    assert "too large" in message and f"limit of {MIB} bytes" in message and "max_response_mib" in message
    assert "read before stopping" in message
    # Read in pieces and stopped at the limit: nowhere near the 48 MiB the server was ready to send.
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_announced_over_the_limit_is_refused_with_its_size(servers, monkeypatch, transport: str) -> None:
    home = servers(studio(declared(3 * MIB)))
    with pytest.raises(EdgeImpulseAPIError) as info:
        read_status(transport, monkeypatch, home.url, "api_key", max_response_mib="2")
    assert f"announced {3 * MIB} bytes" in str(info.value) and f"limit of {2 * MIB} bytes" in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_within_a_raised_limit_is_read(servers, monkeypatch, transport: str) -> None:
    padding = " " * (2 * MIB)

    async def route(request: web.Request, body: bytes) -> web.Response:
        return web.Response(text=json.dumps(JOB)[:-1] + f', "pad": "{padding}"}}', content_type="application/json")

    home = servers(studio(route))
    assert read_status(transport, monkeypatch, home.url, "api_key", max_response_mib=3)["id"] == 5


def test_loopback_server_helper_records_requests() -> None:
    async def ok(request: web.Request, body: bytes) -> web.Response:
        return json_response({"ok": True})

    with loopback_server(ok) as server:
        import requests

        assert requests.post(f"{server.url}/x?y=1", data=b"abc", timeout=5).json() == {"ok": True}
    assert [(s.method, s.path, s.query, s.body) for s in server.seen] == [("POST", "/x", "y=1", b"abc")]


@pytest.mark.parametrize("status", [307, 308])
def test_an_upload_redirected_away_from_the_ingestion_service_goes_without_the_key(
    servers, monkeypatch, tmp_path: Path, status: int
) -> None:
    async def other(request: web.Request, body: bytes) -> web.Response:
        return json_response({"success": True, "files": [{"success": True, "sampleId": 77}]})

    elsewhere = servers(other)

    async def ingestion(request: web.Request, body: bytes) -> web.Response:
        return redirect(status, f"{elsewhere.url}/api/training/files")

    service = servers(ingestion)
    monkeypatch.setenv("AIRFLOW_CONN_EI_T", json.dumps(connection(service.url, ingestion_host=service.url)))
    sample = tmp_path / "idle.01.json"
    sample.write_text('{"payload": {"values": [[1]]}}')
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_t", retry_policy=QUICK)
    try:
        result = hook.upload_files([sample], label="idle")
    finally:
        hook.close()

    assert result["succeeded"] == 1 and result["files"][0]["sample_id"] == 77
    assert service.seen[0].headers["x-api-key"] == API_KEY
    [moved] = elsewhere.seen
    assert moved.method == "POST" and b'filename="idle.01.json"' in moved.body  # the same body, replayed
    assert moved.headers["x-label"] == "idle"
    assert credentials_in(moved) == []
