"""
A misbehaving Studio on loopback for socket tests: the few REST calls a wait makes, and a Socket.IO endpoint whose
frames each test scripts (hostile handshakes, garbage, huge frames, floods, redirects).

It runs in a thread with its own event loop, so a client that stalls its loop cannot stall the server, and the test
can tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from airflow_provider_edgeimpulse.socketio_codec import EngineType, SocketType, decode_frame, encode_connect

API_KEY = "ei_rogue_key"
SOCKET_TOKEN = "rogue-socket-token"

SocketScript = Callable[["RogueStudio", web.WebSocketResponse], Awaitable[None]]


@dataclass
class Seen:
    """What the server was sent: socket handshakes (their query strings) and any credential header."""

    handshakes: list[str] = field(default_factory=list)
    subscribed: list[int] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)


class RogueStudio:
    def __init__(self, *, open_frame: str | None = None, after_connect: SocketScript | None = None) -> None:
        self.open_frame = open_frame or '0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
        self.after_connect = after_connect
        self.finished: set[int] = set()
        self.seen = Seen()
        self.redirect_socket_to: str | None = None
        # When set: the status of a running job is answered only once this is set (a Studio slow to answer REST).
        self.hold_running_status: threading.Event | None = None
        self.subscribed = threading.Event()
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle

    def start(self) -> RogueStudio:
        self._thread = threading.Thread(target=self._main, name="rogue-studio", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the rogue Studio did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get(r"/v1/api/{pid:\d+}/socket-token", self._socket_token)
        app.router.add_get(r"/v1/api/{pid:\d+}/jobs/{jid:\d+}/status", self._status)
        app.router.add_get(r"/v1/api/{pid:\d+}/jobs/{jid:\d+}/stdout", self._stdout)
        app.router.add_get("/socket.io/", self._socket)
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.close()

    # -- driving it from the test's thread

    def call(self, fn: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def finish(self, job_id: int) -> None:
        """Mark the job finished over REST, then say so on every open socket."""

        async def go() -> None:
            self.finished.add(job_id)
            await self.send_all(f'42["job-finished",{{"jobId":{job_id},"success":true}}]')

        self.call(go)

    async def send_all(self, text: str) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(text)

    # -- the server

    async def _socket_token(self, request: web.Request) -> web.Response:
        self.seen.api_keys.append(request.headers.get("x-api-key", ""))
        return web.json_response({"success": True, "token": {"socketToken": SOCKET_TOKEN, "expires": "2099-01-01"}})

    async def _status(self, request: web.Request) -> web.Response:
        job_id = int(request.match_info["jid"])
        hold = self.hold_running_status
        if hold is not None and job_id not in self.finished:
            await asyncio.to_thread(hold.wait, 30)
        done = job_id in self.finished
        job = {"id": job_id, "finished": "2026-01-01T00:00:00Z" if done else None, "finishedSuccessful": done}
        return web.json_response({"success": True, "job": job})

    async def _stdout(self, request: web.Request) -> web.Response:
        return web.json_response({"success": True, "stdout": [], "totalCount": 0})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        self.seen.handshakes.append(request.query_string)
        if self.redirect_socket_to is not None:
            raise web.HTTPFound(f"{self.redirect_socket_to}{request.path_qs}")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_str(self.open_frame)
            if request.query.get("EIO") == "3":
                await ws.send_str(encode_connect())  # Socket.IO v2 joins the default namespace unasked
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                with contextlib.suppress(ValueError):
                    frame = decode_frame(msg.data)
                    if frame.engine is EngineType.PING:
                        await ws.send_str("3" + frame.data)
                    elif frame.socket is SocketType.CONNECT:
                        await ws.send_str(encode_connect(payload={"sid": "n"}))
                    elif frame.event == "start-log-stream":
                        self.seen.subscribed.append(int(frame.payload["jobId"]))
                        self.subscribed.set()
                        if self.after_connect is not None:
                            await self.after_connect(self, ws)
        finally:
            self._sockets.discard(ws)
        return ws
