"""
The emulator's Socket.IO endpoint: ``GET /socket.io/?token=..&EIO=3|4&transport=websocket``.

WebSocket transport only (no long polling, no upgrade), default namespace only, text frames only: what Studio's
clients use. Every outgoing frame of a socket goes through that socket's queue and a single sender task, so frames
keep the order in which they were produced (broadcasts, replies, pings) and ``broadcast`` never blocks its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from airflow_provider_edgeimpulse.socketio_codec import (
    EIOVersion,
    EngineType,
    Frame,
    MalformedFrame,
    SocketType,
    decode_frame,
    encode_ack,
    encode_connect,
    encode_connect_error,
    encode_event,
    encode_open,
    encode_pong,
    parse_eio_version,
)

__all__ = ["SocketRegistry", "SocketState", "add_socket_routes"]

log = logging.getLogger(__name__)

# Socket.IO's own default: a client that opens the engine session but never joins the namespace is dropped.
CONNECT_TIMEOUT_S = 45.0
# How long a clean close may wait for the peer's close frame before the transport is cut.
CLOSE_TIMEOUT_S = 1.0
HELLO_PAYLOAD: dict[str, Any] = {"hello": {"version": 1}}
_MAX_ID_DIGITS = 18  # int() of a few thousand digits raises, and no job id is that long


class SocketState(Protocol):
    """What the endpoint needs from the emulator's state (implemented by ``EmulatorState``)."""

    sockets: SocketRegistry
    websockets_blocked: bool
    ping_interval_ms: int
    ping_timeout_ms: int

    def project_for_socket_token(self, token: str) -> int | None: ...

    def job_log(self, project_id: int, job_id: int) -> list[str] | None: ...

    def cancel_job(self, project_id: int, job_id: int) -> bool: ...


class _Close:
    """Queue sentinel: close the WebSocket after the frames queued before it."""

    def __init__(self, code: int, message: bytes) -> None:
        self.code = code
        self.message = message


_Outgoing = str | _Close


class _Session:
    """One accepted WebSocket: its outgoing queue, its sender task and its Engine.IO state."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        project_id: int,
        version: EIOVersion,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.project_id = project_id
        self.version = version
        self.sid = secrets.token_urlsafe(15)
        self.connected = False  # joined the default namespace: receives events and counts as open
        self.last_ping = time.monotonic()  # EIO3: last client ping (or the open)
        self.pong = asyncio.Event()  # EIO4: set by the client's pong
        self.done = asyncio.Event()  # the handler has finished and released everything
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(), name=f"socket-send-{self.sid}")

    def send(self, text: str) -> None:
        self._queue.put_nowait(text)

    def close(self, code: int, message: bytes) -> None:
        """Close cleanly once the frames already queued are sent; later frames are dropped."""
        self.connected = False
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(_Close(code, message))

    def abort(self) -> None:
        """Cut the TCP connection: the peer sees the stream end without a WebSocket close frame."""
        if self.transport is not None:
            self.transport.abort()

    async def stop_sender(self) -> None:
        """Let a clean close finish its handshake (bounded); otherwise stop sending at once."""
        sender = self._sender
        if sender is None or sender.done():
            return
        if not self._closing:
            sender.cancel()
        # asyncio.wait neither raises the sender's outcome nor swallows a cancellation of the caller.
        await asyncio.wait({sender}, timeout=CLOSE_TIMEOUT_S + 0.5)
        if not sender.done():
            sender.cancel()
            self.abort()
        elif not sender.cancelled() and sender.exception() is not None:
            log.debug("socket %s: sender failed: %r", self.sid, sender.exception())

    def kill_sender(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            self.abort()

    async def _send_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Close):
                await self._close_ws(item)
                return
            try:
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError) as exc:
                # The peer went away; the reader notices too and cleans up.
                log.debug("socket %s: send failed: %s", self.sid, type(exc).__name__)
                self.abort()
                return

    async def _close_ws(self, item: _Close) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(code=item.code, message=item.message)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()


class SocketRegistry:
    """The emulator's open sockets, by project: broadcast to them, count them, drop or close them."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- used by the endpoint

    def _register(self, session: _Session) -> None:
        self._loop = asyncio.get_running_loop()
        self._sessions[session.sid] = session

    def _unregister(self, session: _Session) -> None:
        self._sessions.pop(session.sid, None)

    # -- public API

    def broadcast(self, project_id: int, event: str, payload: Any) -> None:
        """
        Queue ``event`` for every connected socket of ``project_id``; returns at once.

        Meant for code running on the emulator's event loop; a call from another thread is handed to that loop.
        """
        loop = self._loop
        if loop is None:
            return  # no socket ever connected
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._broadcast_now(project_id, event, payload)
            return
        with contextlib.suppress(RuntimeError):  # the loop has already closed: nobody is listening
            loop.call_soon_threadsafe(self._broadcast_now, project_id, event, payload)

    def _broadcast_now(self, project_id: int, event: str, payload: Any) -> None:
        text: str | None = None
        for session in self._sessions.values():
            if session.connected and session.project_id == project_id:
                if text is None:
                    text = encode_event(event, payload)
                session.send(text)

    def send_raw(self, project_id: int, text: str) -> None:
        """Queue one frame exactly as given (malformed ones included) to every socket of ``project_id``."""
        for session in list(self._sessions.values()):
            if session.connected and session.project_id == project_id:
                session.send(text)

    def count(self) -> int:
        """Open Socket.IO connections (the handshake is done and the default namespace joined)."""
        return sum(1 for session in self._sessions.values() if session.connected)

    async def drop_all(self) -> None:
        """Abort every socket's transport with no close frame, as a network cut would."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            session.connected = False
            session.abort()
        await _wait_done(sessions)

    async def close_all(self) -> None:
        """Close every socket cleanly (WebSocket close frame 1001, "server shutting down"), e.g. at shutdown."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.close(WSCloseCode.GOING_AWAY, b"server shutting down")
        await _wait_done(sessions, timeout=CLOSE_TIMEOUT_S + 1)
        for session in sessions:
            if not session.done.is_set():
                session.abort()
        self._sessions.clear()


async def _wait_done(sessions: list[_Session], timeout: float = CLOSE_TIMEOUT_S) -> None:
    if not sessions:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(session.done.wait() for session in sessions))


# ---------------------------------------------------------------------------------------------------- endpoint


def add_socket_routes(app: web.Application, state: SocketState) -> None:
    """Register ``GET /socket.io/`` (and the same path without the slash) on ``app``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await _handle(request, state)

    app.router.add_get("/socket.io/", handler)
    app.router.add_get("/socket.io", handler)


def _refuse(status: int, error: str) -> web.Response:
    return web.json_response({"success": False, "error": error}, status=status)


async def _handle(request: web.Request, state: SocketState) -> web.StreamResponse:
    if state.websockets_blocked:
        return _refuse(403, "WebSocket connections are blocked")
    version = parse_eio_version(request.query.get("EIO"))
    if version is None:
        return _refuse(400, "Unsupported protocol version (EIO must be 3 or 4)")
    if request.query.get("transport") != "websocket":
        return _refuse(400, "Unsupported transport (only transport=websocket)")
    ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT_S)
    if not ws.can_prepare(request).ok:
        return _refuse(400, "Expected a WebSocket upgrade")
    token = request.query.get("token")
    project_id = state.project_for_socket_token(token) if token else None
    if project_id is None:
        return _refuse(401, "Missing, unknown or expired socket token")

    await ws.prepare(request)
    session = _Session(ws, request.transport, project_id, version)
    registry = state.sockets
    registry._register(session)
    session.start()
    log.info("socket %s opened (project %s, EIO=%d)", session.sid, project_id, version)
    session.send(encode_open(session.sid, state.ping_interval_ms, state.ping_timeout_ms))
    if version is EIOVersion.V3:
        # Socket.IO v2 servers join the default namespace without being asked.
        _join(session)
    watchdog = asyncio.get_running_loop().create_task(_watchdog(session, state), name=f"socket-ping-{session.sid}")
    try:
        await _read_loop(session, state)
    finally:
        await _release(session, watchdog, registry)
    return ws


async def _release(session: _Session, watchdog: asyncio.Task[None], registry: SocketRegistry) -> None:
    """
    Stop a finished socket's tasks and mark it done.

    aiohttp cancels the handler when the peer's connection drops, possibly while this runs: everything that must
    happen comes before the first await or in the inner ``finally``.
    """
    watchdog.cancel()
    registry._unregister(session)
    session.connected = False
    try:
        await session.stop_sender()
        if not session.ws.closed:
            # The reader ended without a close handshake (error, cancellation): do not leave the TCP stream open.
            session.abort()
        await asyncio.wait({watchdog}, timeout=CLOSE_TIMEOUT_S)
    finally:
        session.kill_sender()
        session.done.set()
        log.info("socket %s closed", session.sid)


def _join(session: _Session) -> None:
    if session.version is EIOVersion.V3:
        session.send(encode_connect())
    else:
        session.send(encode_connect(payload={"sid": secrets.token_urlsafe(15)}))
    session.send(encode_event("hello", HELLO_PAYLOAD))
    session.connected = True


async def _read_loop(session: _Session, state: SocketState) -> None:
    async for msg in session.ws:
        if msg.type is WSMsgType.TEXT:
            try:
                frame = decode_frame(msg.data)
            except MalformedFrame as exc:
                log.warning("socket %s: skipping malformed frame (%d chars): %s", session.sid, len(msg.data), exc)
                continue
            _on_frame(session, state, frame)
        elif msg.type is WSMsgType.BINARY:
            log.warning("socket %s: skipping binary frame (%d bytes)", session.sid, len(msg.data))
        else:  # ERROR; CLOSE/CLOSED end the iteration
            return


def _on_frame(session: _Session, state: SocketState, frame: Frame) -> None:
    if frame.engine is EngineType.PING:
        # EIO3 heartbeat (and the "2probe" of an upgrade): the server echoes the data in a pong.
        session.last_ping = time.monotonic()
        session.send(encode_pong(frame.data))
    elif frame.engine is EngineType.PONG:
        session.pong.set()
    elif frame.engine is EngineType.CLOSE:
        session.close(WSCloseCode.OK, b"")
    elif frame.engine is EngineType.MESSAGE:
        _on_packet(session, state, frame)
    # UPGRADE, NOOP and OPEN from a client mean nothing on a websocket-only server.


def _on_packet(session: _Session, state: SocketState, frame: Frame) -> None:
    if frame.namespace != "/":
        if frame.socket is SocketType.CONNECT:
            session.send(encode_connect_error("Invalid namespace", frame.namespace, version=session.version))
        return
    if frame.socket is SocketType.CONNECT:
        if not session.connected:
            _join(session)
    elif frame.socket is SocketType.DISCONNECT:
        session.connected = False
    elif frame.socket is SocketType.EVENT and session.connected and frame.event is not None:
        handler = _EVENT_HANDLERS.get(frame.event)
        if handler is None:
            return
        try:
            result = handler(session, state, frame.payload)
        except Exception:
            # An emulator bug must show up in the log, not silently end the client's socket.
            log.exception("socket %s: handling %r failed", session.sid, frame.event)
            result = False
        if frame.ack_id is not None:
            session.send(encode_ack(frame.ack_id, result))


def _job_id(payload: Any) -> int | None:
    """A job id sent as ``N``, ``"N"`` or ``{"jobId": N}``."""
    if isinstance(payload, dict):
        payload = payload.get("jobId")
    if isinstance(payload, bool):
        return None
    if isinstance(payload, int):
        return payload
    if isinstance(payload, str) and 0 < len(payload) <= _MAX_ID_DIGITS and payload.isascii() and payload.isdigit():
        return int(payload)
    return None


def _start_log_stream(session: _Session, state: SocketState, payload: Any) -> bool:
    job_id = _job_id(payload)
    lines = None if job_id is None else state.job_log(session.project_id, job_id)
    if job_id is None or lines is None:
        log.debug("socket %s: start-log-stream for an unknown job", session.sid)
        return False
    event = f"job-data-{job_id}"
    for line in lines:
        session.send(encode_event(event, {"data": line}))
    return True


def _job_cancel(session: _Session, state: SocketState, payload: Any) -> bool:
    job_id = _job_id(payload)
    if job_id is None:
        log.debug("socket %s: job-cancel without a job id", session.sid)
        return False
    return state.cancel_job(session.project_id, job_id)


_EVENT_HANDLERS: dict[str, Callable[[_Session, SocketState, Any], bool]] = {
    "start-log-stream": _start_log_stream,
    "job-cancel": _job_cancel,
}


# ---------------------------------------------------------------------------------------------------- heartbeats


async def _watchdog(session: _Session, state: SocketState) -> None:
    interval = state.ping_interval_ms / 1000
    timeout = state.ping_timeout_ms / 1000
    beat: Callable[[_Session, float, float], Awaitable[bool]] = (
        _server_pings if session.version is EIOVersion.V4 else _client_pings
    )
    connect_deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while await beat(session, interval, timeout):
        if not session.connected and time.monotonic() > connect_deadline:
            log.info("socket %s: no namespace connect within %.0f s", session.sid, CONNECT_TIMEOUT_S)
            break
    else:
        log.info("socket %s: ping timeout", session.sid)
    session.close(WSCloseCode.GOING_AWAY, b"ping timeout")


async def _server_pings(session: _Session, interval: float, timeout: float) -> bool:
    """EIO4: wait an interval, ping, and expect the pong within the timeout."""
    await asyncio.sleep(interval)
    session.pong.clear()
    session.send("2")
    try:
        async with asyncio.timeout(timeout):
            await session.pong.wait()
    except TimeoutError:
        return False
    return True


async def _client_pings(session: _Session, interval: float, timeout: float) -> bool:
    """EIO3: the client must ping at least every interval (+ timeout of grace)."""
    deadline = session.last_ping + interval + timeout
    now = time.monotonic()
    if now < deadline:
        await asyncio.sleep(deadline - now)
    return time.monotonic() < session.last_ping + interval + timeout
