"""
One live Socket.IO connection per (event loop, Studio host, principal, project), shared by every wait.

A triggerer holds hundreds of waits in one event loop; giving each its own socket would cost a token
request, a TLS handshake and a server-side session per wait. The hub fans events out by job id and
closes its socket when the last subscriber leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from airflow_provider_edgeimpulse import socketio_codec as sio
from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.hooks.job_log import bound_line

log = logging.getLogger(__name__)

EventKind = Literal["connected", "disconnected", "data", "finished"]
_CLOSE_BOUND_S = 5.0
_HANDSHAKE_BOUND_S = 15.0


@dataclass(frozen=True)
class HubEvent:
    kind: EventKind
    line: str | None = None
    success: bool | None = None
    failures: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class ReconnectPolicy:
    first_delay: float = 0.05
    max_delay: float = 30.0

    def delay(self, failures: int) -> float:
        """Jittered so a Studio restart is not met by every triggerer at the same instant."""
        ceiling = min(self.max_delay, self.first_delay * 4 * (2 ** max(failures - 1, 0)))
        return random.uniform(self.first_delay, max(ceiling, self.first_delay))


class Subscription:
    """One wait's view of the hub: a queue of events for one job id."""

    def __init__(self, hub: JobEventHub, job_id: int) -> None:
        self.hub = hub
        self.job_id = job_id
        self.queue: asyncio.Queue[HubEvent] = asyncio.Queue()
        self.closed = False

    async def next(self, timeout: float | None) -> HubEvent | None:
        """The next event, or ``None`` when ``timeout`` seconds pass without one."""
        if not self.queue.empty():
            # No timer for an event that is already here: arming and cancelling one per event cost a third of
            # the triggerer's time in a burst.
            return self.queue.get_nowait()
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self.hub.unsubscribe(self)


class JobEventHub:
    def __init__(
        self,
        credentials: EdgeImpulseCredentials,
        project_id: int,
        *,
        client: AsyncEdgeImpulseClient | None = None,
        reconnect: ReconnectPolicy | None = None,
        eio: int = 4,
        on_empty: Any = None,
    ) -> None:
        self.credentials = credentials
        self.project_id = project_id
        self.client = client or AsyncEdgeImpulseClient(credentials)
        self.reconnect = reconnect or ReconnectPolicy()
        self.eio = sio.EIOVersion(eio)
        self._subs: dict[int, set[Subscription]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_empty = on_empty
        self.connected = False
        self.failures = 0
        self.connections = 0

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def subscribe(self, job_id: int) -> Subscription:
        sub = Subscription(self, job_id)
        self._subs.setdefault(job_id, set()).add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"edgeimpulse-socket-{job_id}")
        elif self.connected:
            sub.queue.put_nowait(HubEvent("connected"))
            self._send_nowait(sio.encode_event("start-log-stream", {"jobId": job_id}))
        elif self.failures:
            sub.queue.put_nowait(HubEvent("disconnected", failures=self.failures))
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]
        if not self._subs:
            if self._on_empty is not None:
                self._on_empty(self)
            await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # Bounded: a cancellation swallowed around ws_connect must not hang the caller.
            await asyncio.wait({task}, timeout=_CLOSE_BOUND_S)
        await self._close_ws()
        await self.client.close()

    def _send_nowait(self, frame: str) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            asyncio.get_running_loop().create_task(_send_quietly(ws, frame))

    def _emit(self, event: HubEvent, job_ids: Iterable[int] | None = None) -> None:
        targets = self._subs.keys() if job_ids is None else job_ids
        for job_id in list(targets):
            for sub in self._subs.get(job_id, ()):
                sub.queue.put_nowait(event)

    async def _run(self) -> None:
        while self._subs:
            reason = await self._connect_once()
            self.connected = False
            if not self._subs:
                return
            self.failures += 1
            self._emit(HubEvent("disconnected", failures=self.failures, reason=reason))
            delay = self.reconnect.delay(self.failures)
            log.debug("Edge Impulse socket for project %s: %s; reconnecting in %.2f s", self.project_id, reason, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> str:
        """Connect, hand-shake and read until the socket ends; return why it ended."""
        try:
            token = await self.client.get_socket_token(self.project_id)
            params = {"token": token, "EIO": str(int(self.eio)), "transport": "websocket"}
            async with asyncio.timeout(_HANDSHAKE_BOUND_S):
                ws = await self.client.session.ws_connect(
                    self.credentials.socket_url, params=params, autoping=False, max_msg_size=0
                )
            self._ws = ws
            return await self._read(ws)
        except asyncio.CancelledError:
            raise
        except aiohttp.WSServerHandshakeError as err:
            return f"socket refused with HTTP {err.status}"
        except TimeoutError:
            return "socket handshake timed out"
        except Exception as err:  # any failure here means "no socket now"; the waits poll meanwhile
            return f"socket unavailable ({type(err).__name__}: {_safe_text(err)})"
        finally:
            await self._close_ws()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        silence = _SilenceWatch(_HANDSHAKE_BOUND_S)
        try:
            return await self._read_frames(ws, silence)
        except asyncio.CancelledError:
            # Our own cancellation (the socket went silent) ends this connection; any other one is passed on.
            task = asyncio.current_task()
            if silence.tripped and task is not None and task.uncancel() == 0:
                return f"socket silent for over {silence.bound:g} s"
            raise
        finally:
            silence.stop()

    async def _read_frames(self, ws: aiohttp.ClientWebSocketResponse, silence: _SilenceWatch) -> str:
        while True:
            msg = await ws.receive()
            silence.heard()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return "socket closed"
            if msg.type is aiohttp.WSMsgType.ERROR:
                return "socket error"
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                frame = sio.decode_frame(msg.data)
            except sio.MalformedFrame as err:
                log.warning("Skipping a malformed Socket.IO frame from Edge Impulse: %s", err)
                continue
            if frame.engine is sio.EngineType.OPEN:
                silence.set_bound(_ping_bound(frame.open or {}, self.eio))
                if self.eio is sio.EIOVersion.V4:
                    await ws.send_str(sio.encode_connect())
                else:
                    self._start_pinger(ws, frame.open or {})
            elif frame.engine is sio.EngineType.PING:
                await ws.send_str(sio.encode_pong(frame.data))
            elif frame.engine is sio.EngineType.CLOSE:
                return "socket closed by the server"
            elif frame.engine is sio.EngineType.MESSAGE:
                if frame.socket is sio.SocketType.CONNECT and not self.connected:
                    await self._on_connected(ws)
                elif frame.socket is sio.SocketType.DISCONNECT:
                    return "socket disconnected by the server"
                elif frame.socket is sio.SocketType.EVENT and frame.event:
                    self._dispatch(frame.event, frame.args)

    async def _on_connected(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.connected = True
        self.failures = 0
        self.connections += 1
        for job_id in list(self._subs):
            await ws.send_str(sio.encode_event("start-log-stream", {"jobId": job_id}))
        self._emit(HubEvent("connected"))

    def _start_pinger(self, ws: aiohttp.ClientWebSocketResponse, open_info: dict[str, Any]) -> None:
        """Engine.IO 3 clients ping the server; the reader sees the pongs."""
        interval = max(float(open_info.get("pingInterval") or 25000) / 1000.0, 0.05)

        async def ping() -> None:
            while not ws.closed:
                await asyncio.sleep(interval)
                await _send_quietly(ws, sio.encode_ping())

        task = asyncio.get_running_loop().create_task(ping())
        ws._edgeimpulse_pinger = task  # type: ignore[attr-defined]

    def _dispatch(self, event: str, args: tuple[Any, ...]) -> None:
        payload = args[0] if args else None
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                payload = {"data": payload}
        if not isinstance(payload, dict):
            payload = {}
        if event.startswith("job-data-"):
            job_id = _int_or_none(event.removeprefix("job-data-"))
            if job_id is not None and job_id in self._subs:
                data = payload.get("data")
                if data is not None:
                    # Cut here, where every socket line enters: waits and triggers never hold a huge line whole.
                    for line in str(data).splitlines() or [""]:
                        self._emit(HubEvent("data", line=bound_line(line)), [job_id])
        elif event.startswith("job-finished-"):
            job_id = _int_or_none(event.removeprefix("job-finished-"))
            if job_id is not None:
                self._emit(HubEvent("finished", success=_bool_or_none(payload.get("success"))), [job_id])
        elif event == "job-finished":
            job_id = _int_or_none(payload.get("jobId"))
            if job_id is not None:
                self._emit(HubEvent("finished", success=_bool_or_none(payload.get("success"))), [job_id])

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        pinger = getattr(ws, "_edgeimpulse_pinger", None)
        if pinger is not None:
            pinger.cancel()
        if not ws.closed:
            try:
                async with asyncio.timeout(_CLOSE_BOUND_S):
                    await ws.close()
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass


class _SilenceWatch:
    """
    Cancels the reading task once the socket has been silent for ``bound`` seconds (the server's pings stopped).

    What ``receive(timeout=...)`` did, with one timer for the socket's life, re-armed only when it fires: a
    timeout per ``receive()`` arms and cancels a timer for every frame, which in a burst of job events cost the
    triggerer a large share of its loop (aiohttp's own comment puts it at up to half of ``receive()``). As with
    a receive timeout, aiohttp marks the cancelled socket closed abnormally, so closing it does not wait on the
    silent peer.
    """

    def __init__(self, bound: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.bound = bound
        self.tripped = False
        self._last = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self._last + bound, self._check)

    def heard(self) -> None:
        self._last = self._loop.time()

    def set_bound(self, bound: float) -> None:
        """The server's ping interval is known (Engine.IO open): measure silence against it from now on."""
        self.bound = bound
        if self._handle is not None:
            self._handle.cancel()
            self._handle = self._loop.call_at(self._last + bound, self._check)

    def _check(self) -> None:
        deadline = self._last + self.bound
        if self._loop.time() < deadline:
            self._handle = self._loop.call_at(deadline, self._check)
            return
        self._handle = None
        self.tripped = True
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def _send_quietly(ws: aiohttp.ClientWebSocketResponse, frame: str) -> None:
    # A failed send needs no handling here: the reader notices the dead socket and reconnects.
    with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
        await ws.send_str(frame)


def _ping_bound(open_info: dict[str, Any], eio: sio.EIOVersion) -> float:
    """How long silence may last before the socket counts as dead."""
    interval = float(open_info.get("pingInterval") or 25000)
    timeout = float(open_info.get("pingTimeout") or 20000)
    return (interval + timeout) / 1000.0


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _safe_text(err: BaseException) -> str:
    """Exception text without query strings, where a socket token would live."""
    return str(err).split("?", 1)[0][:200]


class HubRegistry:
    """Hubs of one event loop, keyed so that waits of one principal and project share a socket."""

    def __init__(self) -> None:
        self._hubs: dict[tuple[str, str, int], JobEventHub] = {}

    def hub_for(self, credentials: EdgeImpulseCredentials, project_id: int, **kwargs: Any) -> JobEventHub:
        key = (credentials.studio_url, credentials.fingerprint, project_id)
        hub = self._hubs.get(key)
        if hub is None:
            hub = JobEventHub(credentials, project_id, on_empty=lambda h: self._forget(key, h), **kwargs)
            self._hubs[key] = hub
        return hub

    def _forget(self, key: tuple[str, str, int], hub: JobEventHub) -> None:
        if self._hubs.get(key) is hub:
            del self._hubs[key]

    def __len__(self) -> int:
        return len(self._hubs)


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HubRegistry] = weakref.WeakKeyDictionary()


def registry_for_running_loop() -> HubRegistry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = HubRegistry()
    return registry
