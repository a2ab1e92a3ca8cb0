"""
The emulator's Socket.IO endpoint.

Two layers: the endpoint alone on a tiny aiohttp app with a fake state (every protocol corner, deterministic), and
the real emulator over loopback (python-socketio's client, a hand-driven EIO3 client, the control API's faults).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestServer

from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle
from airflow_provider_edgeimpulse.emulator.sockets import SocketRegistry, add_socket_routes
from airflow_provider_edgeimpulse.socketio_codec import (
    EngineType,
    Frame,
    SocketType,
    decode_frame,
    encode_connect,
    encode_event,
    encode_ping,
    encode_pong,
)
from tests.emulator.conftest import Studio

TOKEN = "tok-secret-123"
OTHER_TOKEN = "tok-other-456"
STEP_S = 2.0  # generous bound for "should arrive now" on loopback
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


class FakeState:
    """The slice of EmulatorState the endpoint relies on (see SocketState)."""

    def __init__(self) -> None:
        self.sockets = SocketRegistry()
        self.websockets_blocked = False
        self.ping_interval_ms = 25000
        self.ping_timeout_ms = 20000
        self.tokens = {TOKEN: 1, OTHER_TOKEN: 2}
        self.token_lookups = 0
        self.logs: dict[tuple[int, int], list[str]] = {(1, 7): ["line one", "line two ✓"]}
        self.cancelled: list[tuple[int, int]] = []

    def project_for_socket_token(self, token: str) -> int | None:
        self.token_lookups += 1
        return self.tokens.get(token)

    def job_log(self, project_id: int, job_id: int) -> list[str] | None:
        return self.logs.get((project_id, job_id))

    def cancel_job(self, project_id: int, job_id: int) -> bool:
        if (project_id, job_id) not in self.logs:
            return False
        self.cancelled.append((project_id, job_id))
        return True


class Server:
    def __init__(self, state: FakeState, server: TestServer) -> None:
        self.state = state
        self._server = server

    def url(self, *, token: str | None = TOKEN, eio: str = "3", transport: str = "websocket") -> str:
        query = {"EIO": eio, "transport": transport}
        if token is not None:
            query["token"] = token
        return str(self._server.make_url("/socket.io/").with_query(query))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = FakeState()
    app = web.Application()
    add_socket_routes(app, state)
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield Server(state, test_server)
    finally:
        await state.sockets.close_all()
        await test_server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class RawClient:
    """A hand-driven Engine.IO client: every frame is visible to the test."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def text(self, timeout: float = STEP_S) -> str:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is WSMsgType.TEXT, f"expected a text frame, got {msg.type!r} {msg.data!r}"
        return str(msg.data)

    async def frame(self, timeout: float = STEP_S) -> Frame:
        return decode_frame(await self.text(timeout))

    async def event(self, timeout: float = STEP_S) -> Frame:
        """The next Socket.IO event, skipping heartbeats."""
        while True:
            frame = await self.frame(timeout)
            if frame.engine is EngineType.PING:
                await self.send(encode_pong(frame.data))
                continue
            if frame.engine is EngineType.PONG:
                continue
            assert frame.socket is SocketType.EVENT, frame
            return frame

    async def nothing(self, within: float = 0.2) -> None:
        try:
            msg = await self.ws.receive(timeout=within)
        except asyncio.TimeoutError:
            return
        pytest.fail(f"unexpected frame {msg!r}")

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def handshake(self, eio: str) -> Frame:
        """Open + namespace connect + hello; returns the open frame."""
        opened = await self.frame()
        assert opened.engine is EngineType.OPEN
        if eio == "4":
            await self.send(encode_connect())
        connected = await self.frame()
        assert connected.socket is SocketType.CONNECT
        hello = await self.frame()
        assert (hello.event, hello.args) == ("hello", ({"hello": {"version": 1}},))
        return opened


async def connect_raw(session: aiohttp.ClientSession, url: str, *, handshake: str | None = None) -> RawClient:
    client = RawClient(await session.ws_connect(url, autoping=True))
    if handshake is not None:
        await client.handshake(handshake)
    return client


async def wait_for(predicate: Any, timeout: float = STEP_S) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------------- handshake


async def test_eio3_handshake_sends_open_connect_and_hello_unprompted(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.state.ping_interval_ms, server.state.ping_timeout_ms = 1234, 5678
    client = await connect_raw(session, server.url(eio="3"))
    opened = await client.frame()
    assert opened.engine is EngineType.OPEN
    assert opened.open is not None
    assert (opened.open["pingInterval"], opened.open["pingTimeout"]) == (1234, 5678)
    assert isinstance(opened.open["sid"], str)
    assert opened.open["sid"]
    assert await client.text() == "40"
    assert await client.text() == '42["hello",{"hello":{"version":1}}]'
    await wait_for(lambda: server.state.sockets.count() == 1)


async def test_eio4_handshake_waits_for_client_connect(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="4"))
    assert (await client.frame()).engine is EngineType.OPEN
    await client.nothing()
    assert server.state.sockets.count() == 0
    await client.send("40")
    connected = await client.frame()
    assert connected.socket is SocketType.CONNECT
    assert isinstance(connected.payload, dict)
    assert isinstance(connected.payload["sid"], str)
    hello = await client.frame()
    assert hello.event == "hello"
    assert server.state.sockets.count() == 1


async def test_eio4_events_before_connect_are_ignored(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="4"))
    await client.frame()
    await client.send(encode_event("job-cancel", 7))
    await client.send(encode_connect())
    await client.frame()
    await client.frame()
    assert server.state.cancelled == []


async def test_connect_to_another_namespace_is_refused(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="4"), handshake="4")
    await client.send(encode_connect("/admin"))
    refused = await client.frame()
    assert refused.socket is SocketType.CONNECT_ERROR
    assert refused.namespace == "/admin"
    assert refused.payload == {"message": "Invalid namespace"}


async def test_python_socketio_async_client_connects(server: Server) -> None:
    client = socketio.AsyncClient(reconnection=False)
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def on_any(event: str, data: Any) -> None:
        await events.put((event, data))

    client.on("*", on_any)
    base = server.url().split("/socket.io/")[0]
    await client.connect(f"{base}?token={TOKEN}", transports=["websocket"], socketio_path="socket.io")
    try:
        assert await asyncio.wait_for(events.get(), STEP_S) == ("hello", {"hello": {"version": 1}})
        assert server.state.sockets.count() == 1
        server.state.sockets.broadcast(1, "job-finished", {"jobId": 7, "success": True})
        got = await asyncio.wait_for(events.get(), STEP_S)
        assert got == ("job-finished", {"jobId": 7, "success": True})
    finally:
        await client.disconnect()
    await wait_for(lambda: server.state.sockets.count() == 0)


# ---------------------------------------------------------------------------------------------------- refusals


async def _handshake_status(session: aiohttp.ClientSession, url: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(url)
    return info.value.status


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"token": None}, 401),
        ({"token": "nope"}, 401),
        ({"eio": "5"}, 400),
        ({"eio": "abc"}, 400),
        ({"transport": "polling"}, 400),
    ],
)
async def test_refused_without_upgrade(
    server: Server, session: aiohttp.ClientSession, kwargs: dict[str, Any], status: int
) -> None:
    assert await _handshake_status(session, server.url(**kwargs)) == status
    async with session.get(server.url(**kwargs), headers=UPGRADE_HEADERS) as resp:
        assert resp.status == status
        body = await resp.json()
        assert body["success"] is False
        assert body["error"]
    assert server.state.sockets.count() == 0


async def test_plain_get_without_upgrade_is_refused(server: Server, session: aiohttp.ClientSession) -> None:
    async with session.get(server.url()) as resp:
        assert resp.status == 400


async def test_blocked_websockets_answer_403_without_spending_a_token_lookup(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.state.websockets_blocked = True
    assert await _handshake_status(session, server.url()) == 403
    assert server.state.token_lookups == 0
    server.state.websockets_blocked = False
    await connect_raw(session, server.url(), handshake="3")


# ---------------------------------------------------------------------------------------------------- events


async def test_broadcast_reaches_only_that_projects_sockets_in_order(
    server: Server, session: aiohttp.ClientSession
) -> None:
    first = await connect_raw(session, server.url(eio="3"), handshake="3")
    second = await connect_raw(session, server.url(eio="4"), handshake="4")
    other = await connect_raw(session, server.url(eio="3", token=OTHER_TOKEN), handshake="3")
    for i in range(200):
        server.state.sockets.broadcast(1, "job-data-7", {"data": f"line {i}"})
    server.state.sockets.broadcast(2, "job-data-9", {"data": "other project"})
    for client in (first, second):
        got = [(await client.event()).payload["data"] for _ in range(200)]
        assert got == [f"line {i}" for i in range(200)]
    assert (await other.event()).args == ({"data": "other project"},)
    await first.nothing()


async def test_broadcast_from_another_thread_is_delivered(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(), handshake="3")
    thread = threading.Thread(target=server.state.sockets.broadcast, args=(1, "job-finished-7", {"success": True}))
    thread.start()
    thread.join()
    frame = await client.event()
    assert (frame.event, frame.args) == ("job-finished-7", ({"success": True},))


def test_broadcast_with_no_socket_ever_connected_is_a_no_op() -> None:
    SocketRegistry().broadcast(1, "job-finished", {"jobId": 1})


async def test_start_log_stream_replays_to_the_asking_socket_only(
    server: Server, session: aiohttp.ClientSession
) -> None:
    asking = await connect_raw(session, server.url(), handshake="3")
    bystander = await connect_raw(session, server.url(), handshake="3")
    await asking.send(encode_event("start-log-stream", {"jobId": 7}))
    replay = [await asking.event(), await asking.event()]
    assert [(f.event, f.payload) for f in replay] == [
        ("job-data-7", {"data": "line one"}),
        ("job-data-7", {"data": "line two ✓"}),
    ]
    await bystander.nothing()
    await asking.send(encode_event("start-log-stream", {"jobId": 999}))
    await asking.nothing()


@pytest.mark.parametrize("payload", [7, "7", {"jobId": 7}, {"jobId": "7"}])
async def test_job_cancel_accepts_every_id_shape(
    server: Server, session: aiohttp.ClientSession, payload: object
) -> None:
    client = await connect_raw(session, server.url(), handshake="3")
    await client.send(encode_event("job-cancel", payload))
    await wait_for(lambda: server.state.cancelled == [(1, 7)])


async def test_job_cancel_with_ack_id_is_answered(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="4"), handshake="4")
    await client.send(encode_event("job-cancel", {"jobId": 7}, ack_id=5))
    assert await client.text() == "435[true]"
    await client.send(encode_event("job-cancel", {"jobId": 8}, ack_id=6))
    assert await client.text() == "436[false]"
    await client.send(encode_event("job-cancel", {"nothing": 1}, ack_id=7))
    assert await client.text() == "437[false]"
    await client.send(encode_event("job-cancel", "9" * 5000, ack_id=8))
    assert await client.text() == "438[false]"
    assert server.state.cancelled == [(1, 7)]


async def test_malformed_binary_and_unknown_frames_are_skipped(
    server: Server, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_provider_edgeimpulse")
    client = await connect_raw(session, server.url(), handshake="3")
    for junk in ["", "9", '42["unterminated', "42[1]", "b4AAAA", '451-["x",{"_placeholder":true,"num":0}]']:
        await client.send(junk)
    await client.ws.send_bytes(b"\x04binary")
    await client.send(encode_event("no-such-event", {"x": 1}))
    await client.send("6")  # noop
    await client.send(encode_ping("still-there"))
    assert await client.text() == "3still-there"
    warnings = [r for r in caplog.records if r.name == "airflow_provider_edgeimpulse.emulator.sockets"]
    assert sum("malformed" in r.getMessage() for r in warnings) == 6
    assert any("binary frame" in r.getMessage() for r in warnings)
    assert not any(TOKEN in r.getMessage() for r in caplog.records if r.name.startswith("airflow_provider"))


# ---------------------------------------------------------------------------------------------------- heartbeats


async def test_eio3_server_answers_pings_with_the_same_data(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="3"), handshake="3")
    await client.send("2")
    assert await client.text() == "3"
    await client.send("2probe")
    assert await client.text() == "3probe"


async def test_eio3_client_that_keeps_pinging_stays_and_a_silent_one_is_closed(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.state.ping_interval_ms, server.state.ping_timeout_ms = 150, 100
    pinger = await connect_raw(session, server.url(eio="3"), handshake="3")
    silent = await connect_raw(session, server.url(eio="3"), handshake="3")
    started = asyncio.get_running_loop().time()
    for _ in range(6):  # 6 x 100 ms: well past interval + timeout
        await asyncio.sleep(0.1)
        await pinger.send("2")
        assert await pinger.text() == "3"
    msg = await silent.ws.receive(timeout=STEP_S)
    assert msg.type is WSMsgType.CLOSE
    assert msg.data == WSCloseCode.GOING_AWAY
    assert msg.extra == "ping timeout"
    assert asyncio.get_running_loop().time() - started >= 0.2
    assert server.state.sockets.count() == 1


async def test_eio4_server_pings_and_closes_a_client_that_never_pongs(
    server: Server, session: aiohttp.ClientSession
) -> None:
    server.state.ping_interval_ms, server.state.ping_timeout_ms = 100, 150
    ponger = await connect_raw(session, server.url(eio="4"), handshake="4")
    mute = await connect_raw(session, server.url(eio="4"), handshake="4")
    for _ in range(4):
        assert await ponger.text() == "2"
        await ponger.send("3")
    assert await mute.text() == "2"
    msg = await mute.ws.receive(timeout=STEP_S)
    assert msg.type is WSMsgType.CLOSE
    assert msg.data == WSCloseCode.GOING_AWAY
    await wait_for(lambda: server.state.sockets.count() == 1)


# ---------------------------------------------------------------------------------------------------- closing


async def test_drop_all_cuts_connections_without_a_close_frame(server: Server, session: aiohttp.ClientSession) -> None:
    clients = [await connect_raw(session, server.url(eio=eio), handshake=eio) for eio in ("3", "4")]
    assert server.state.sockets.count() == 2
    await server.state.sockets.drop_all()
    assert server.state.sockets.count() == 0
    for client in clients:
        msg = await client.ws.receive(timeout=STEP_S)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR), msg
        assert client.ws.close_code != WSCloseCode.GOING_AWAY
    # A new connection still works after the cut.
    await connect_raw(session, server.url(), handshake="3")
    assert server.state.sockets.count() == 1


async def test_close_all_sends_a_going_away_close_frame(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(), handshake="3")
    started = time.monotonic()
    await server.state.sockets.close_all()
    # The handler finishes its cleanup even though aiohttp cancels it when the transport closes; a close_all
    # that waits out its whole time limit means a handler never marked itself done.
    assert time.monotonic() - started < 0.9
    msg = await client.ws.receive(timeout=STEP_S)
    assert msg.type is WSMsgType.CLOSE
    assert msg.data == WSCloseCode.GOING_AWAY
    assert server.state.sockets.count() == 0


async def test_client_close_packet_closes_the_socket(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="4"), handshake="4")
    await client.send("1")
    msg = await client.ws.receive(timeout=STEP_S)
    assert msg.type is WSMsgType.CLOSE
    assert msg.data == WSCloseCode.OK
    await wait_for(lambda: server.state.sockets.count() == 0)


async def test_client_namespace_disconnect_stops_events(server: Server, session: aiohttp.ClientSession) -> None:
    client = await connect_raw(session, server.url(eio="4"), handshake="4")
    await client.send("41")
    await wait_for(lambda: server.state.sockets.count() == 0)
    server.state.sockets.broadcast(1, "job-finished", {"jobId": 7})
    await client.nothing()


# ---------------------------------------------------------------------------------------------------- real emulator


def socket_token(studio: Studio) -> str:
    body = studio.ok("GET", "socket-token")
    return str(body["token"]["socketToken"])


def job_log(handle: EmulatorHandle, job_id: int) -> list[str]:
    lines = handle.state.job_log(handle.project_id, job_id)
    assert lines is not None
    return list(lines)


def raw_url(handle: EmulatorHandle, token: str, eio: str) -> str:
    ws_base = handle.url.replace("http://", "ws://", 1)
    return f"{ws_base}/socket.io/?token={token}&EIO={eio}&transport=websocket"


@pytest.fixture
def manual_jobs(emulator: EmulatorHandle) -> EmulatorHandle:
    """Jobs that run until the test finishes or cancels them."""
    emulator.configure(job_duration=None)
    return emulator


def test_python_socketio_client_receives_hello_and_job_events(manual_jobs: EmulatorHandle, studio: Studio) -> None:
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on("*", lambda event, data: events.put((event, data)))
    client.connect(
        f"{manual_jobs.url}?token={socket_token(studio)}", transports=["websocket"], socketio_path="socket.io"
    )
    try:
        assert events.get(timeout=STEP_S) == ("hello", {"hello": {"version": 1}})
        assert manual_jobs.sockets() == 1
        job_id = studio.start("jobs/retrain")
        first, data = events.get(timeout=STEP_S)
        assert first == f"job-data-{job_id}"
        assert data["data"]
        manual_jobs.finish_job(job_id, success=True)
        received = [events.get(timeout=STEP_S)]
        while received[-1][0] != "job-finished":
            received.append(events.get(timeout=STEP_S))
        names = [name for name, _ in received]
        assert names[-2:] == [f"job-finished-{job_id}", "job-finished"]
        assert set(names[:-2]) == {f"job-data-{job_id}"}
        assert received[-2][1] == {"success": True}
        assert received[-1][1] == {"jobId": job_id, "success": True}
        # The event follows the REST status, never precedes it.
        status = studio.status(job_id)
        assert status["finished"]
        assert status["finishedSuccessful"] is True
        # Every line of the job's log came over the socket, in order.
        streamed = [data["data"] for _, data in [(first, data), *received[:-2]]]
        assert streamed == job_log(manual_jobs, job_id)
    finally:
        client.disconnect()
    deadline = time.monotonic() + STEP_S
    while manual_jobs.sockets() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert manual_jobs.sockets() == 0


def test_python_socketio_client_answers_server_pings(manual_jobs: EmulatorHandle, studio: Studio) -> None:
    manual_jobs.configure(ping_interval_ms=100, ping_timeout_ms=200)
    client = socketio.Client(reconnection=False)
    client.connect(
        f"{manual_jobs.url}?token={socket_token(studio)}", transports=["websocket"], socketio_path="socket.io"
    )
    try:
        time.sleep(0.8)  # several ping rounds
        assert client.connected
        assert manual_jobs.sockets() == 1
    finally:
        client.disconnect()


async def test_raw_eio3_client_drives_the_framing(
    manual_jobs: EmulatorHandle, studio: Studio, session: aiohttp.ClientSession
) -> None:
    client = await connect_raw(session, raw_url(manual_jobs, socket_token(studio), "3"))
    opened = await client.frame()
    assert opened.open is not None
    assert (opened.open["pingInterval"], opened.open["pingTimeout"]) == (25000, 20000)
    assert await client.text() == "40"
    assert await client.text() == '42["hello",{"hello":{"version":1}}]'
    await client.send("2")
    assert await client.text() == "3"

    job_id = studio.start("jobs/retrain")
    live = await client.event()
    assert live.event == f"job-data-{job_id}"

    # The replay goes to this socket and repeats the lines so far, in order.
    await client.send(encode_event("start-log-stream", {"jobId": job_id}))
    so_far = job_log(manual_jobs, job_id)
    assert so_far
    replay = [(await client.event()).payload["data"] for _ in so_far]
    assert replay == so_far
    await client.nothing()

    await client.send(encode_event("job-cancel", {"jobId": job_id}))
    tail = [await client.event()]
    while tail[-1].event != "job-finished":
        tail.append(await client.event())
    assert [f.event for f in tail[-2:]] == [f"job-finished-{job_id}", "job-finished"]
    assert tail[-2].payload == {"success": False}
    assert tail[-1].payload == {"jobId": job_id, "success": False}
    status = studio.status(job_id)
    assert status["finished"]
    assert status["finishedSuccessful"] is False
    assert [j["cancelled"] for j in manual_jobs.jobs() if j["id"] == job_id] == [True]

    # A bare id works too.
    second = studio.start("jobs/retrain")
    await client.send(encode_event("job-cancel", second))
    while (await client.event()).event != "job-finished":
        pass
    assert studio.status(second)["finishedSuccessful"] is False


async def test_bad_and_expired_tokens_are_refused(
    emulator: EmulatorHandle, studio: Studio, session: aiohttp.ClientSession
) -> None:
    assert await _handshake_status(session, raw_url(emulator, "not-a-token", "4")) == 401
    emulator.configure(socket_token_ttl_s=0.05)
    stale = socket_token(studio)
    await asyncio.sleep(0.2)
    assert await _handshake_status(session, raw_url(emulator, stale, "4")) == 401
    assert emulator.sockets() == 0


async def test_refuse_socket_tokens_fault(
    emulator: EmulatorHandle, studio: Studio, session: aiohttp.ClientSession
) -> None:
    emulator.fault(refuse_socket_tokens=2)
    for _ in range(2):
        assert await _handshake_status(session, raw_url(emulator, socket_token(studio), "3")) == 401
    await connect_raw(session, raw_url(emulator, socket_token(studio), "3"), handshake="3")
    assert emulator.sockets() == 1


async def test_block_websockets_fault_answers_403(
    emulator: EmulatorHandle, studio: Studio, session: aiohttp.ClientSession
) -> None:
    emulator.fault(block_websockets=True)
    token = socket_token(studio)
    assert await _handshake_status(session, raw_url(emulator, token, "4")) == 403
    emulator.fault(block_websockets=False)
    await connect_raw(session, raw_url(emulator, token, "4"), handshake="4")


async def test_drop_sockets_fault_cuts_every_connection(
    emulator: EmulatorHandle, studio: Studio, session: aiohttp.ClientSession
) -> None:
    clients = [
        await connect_raw(session, raw_url(emulator, socket_token(studio), eio), handshake=eio) for eio in ("3", "4")
    ]
    assert emulator.sockets() == 2
    emulator.fault(drop_sockets=True)
    for client in clients:
        msg = await client.ws.receive(timeout=STEP_S)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR), msg  # no CLOSE: the stream just ended
    assert emulator.sockets() == 0


async def test_eio4_client_that_never_pongs_is_closed(
    emulator: EmulatorHandle, studio: Studio, session: aiohttp.ClientSession
) -> None:
    emulator.configure(ping_interval_ms=100, ping_timeout_ms=150)
    client = await connect_raw(session, raw_url(emulator, socket_token(studio), "4"))
    opened = await client.frame()
    assert opened.open is not None
    assert (opened.open["pingInterval"], opened.open["pingTimeout"]) == (100, 150)
    await client.send("40")
    assert (await client.frame()).socket is SocketType.CONNECT
    assert (await client.frame()).event == "hello"
    assert await client.text() == "2"
    msg = await client.ws.receive(timeout=STEP_S)
    assert msg.type is WSMsgType.CLOSE
    assert msg.data == WSCloseCode.GOING_AWAY
    assert emulator.sockets() == 0
