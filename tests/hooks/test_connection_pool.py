"""
The asynchronous clients of one event loop share one TCP connection pool (a triggerer holds waits of many
principals), while each request still carries only its own client's credentials.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials, credentials_from_fields
from tests.hooks.loopback import json_response, loopback_server

KEYS = ("ei_pool_key_a_51c2", "ei_pool_key_b_9e07")
JWT = "jwt-pool-login-3f6a"
STATUS = {"success": True, "job": {"id": 5, "created": "2026-01-01T00:00:00Z", "finished": None}}


def api_key_credentials(url: str, key: str) -> EdgeImpulseCredentials:
    return credentials_from_fields(host=url, login=None, password=key, extra={"project_id": 1}, conn_id="pool")


class Recorder:
    """Answers every call; remembers for each request the client port it came from and what it carried."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, str | None, str | None, str | None]] = []

    async def handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        transport = request.transport
        port = transport.get_extra_info("peername")[1] if transport is not None else -1
        self.requests.append((port, request.headers.get("x-api-key"), request.cookies.get("jwt"), request.path))
        if request.path == "/v1/api-login":
            response = json_response({"success": True, "token": JWT})
            response.set_cookie("jwt", JWT, path="/")
            return response
        return json_response(STATUS)


def test_clients_of_different_keys_share_connections_and_keep_their_own_key() -> None:
    recorder = Recorder()
    with loopback_server(recorder.handle) as server:

        async def run() -> None:
            async with (
                AsyncEdgeImpulseClient(api_key_credentials(server.url, KEYS[0])) as first,
                AsyncEdgeImpulseClient(api_key_credentials(server.url, KEYS[1])) as second,
            ):
                for _ in range(3):
                    await first.get_job_status(1, 5)
                    await second.get_job_status(1, 5)

        asyncio.run(run())
    ports = {port for port, *_ in recorder.requests}
    # One keep-alive connection carried both principals' calls, one after the other.
    assert len(ports) == 1, recorder.requests
    assert [key for _, key, _, _ in recorder.requests] == [KEYS[0], KEYS[1]] * 3


def test_a_login_cookie_of_one_client_never_rides_with_another_clients_request() -> None:
    recorder = Recorder()
    with loopback_server(recorder.handle) as server:
        cookie_login = credentials_from_fields(
            host=server.url,
            login="ops@example.com",
            password="pw-pool-77",
            extra={"project_id": 1, "auth_type": "jwt_cookie"},
            conn_id="pool",
        )

        async def run() -> None:
            async with (
                AsyncEdgeImpulseClient(cookie_login) as jwt_client,
                AsyncEdgeImpulseClient(api_key_credentials(server.url, KEYS[0])) as key_client,
            ):
                await jwt_client.get_job_status(1, 5)
                await key_client.get_job_status(1, 5)
                await jwt_client.get_job_status(1, 5)
                await key_client.get_job_status(1, 5)

        asyncio.run(run())
    carried = [(key, cookie) for _, key, cookie, path in recorder.requests if path != "/v1/api-login"]
    assert carried == [(None, JWT), (KEYS[0], None), (None, JWT), (KEYS[0], None)]


def test_the_pool_closes_with_the_last_client_of_the_loop() -> None:
    recorder = Recorder()
    with loopback_server(recorder.handle) as server:

        async def run() -> None:
            first = AsyncEdgeImpulseClient(api_key_credentials(server.url, KEYS[0]))
            second = AsyncEdgeImpulseClient(api_key_credentials(server.url, KEYS[1]))
            await first.get_job_status(1, 5)
            await second.get_job_status(1, 5)
            await first.close()
            await second.get_job_status(1, 5)  # the pool outlives a client while another one uses it
            await second.close()
            async with AsyncEdgeImpulseClient(api_key_credentials(server.url, KEYS[0])) as third:
                await third.get_job_status(1, 5)

        asyncio.run(run())
    ports = [port for port, *_ in recorder.requests]
    assert ports[0] == ports[1] == ports[2]
    assert ports[3] != ports[0]  # the last close ended the pool's connections; a new client opens its own
