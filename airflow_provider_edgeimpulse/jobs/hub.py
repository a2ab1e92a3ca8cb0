"""
One live Socket.IO connection per (event loop, Studio host, principal, project), shared by every wait.

A triggerer holds hundreds of waits in one event loop; giving each its own socket would cost a token
request, a TLS handshake and a server-side session per wait. The hub fans events out by job id and
closes its socket when the last subscriber leaves.

Everything the server sends is bounded: one frame by ``WireLimits.max_frame_bytes`` (a bigger one ends that
socket), the events a wait has not read yet by ``WireLimits.max_queued_events``, the heartbeat by
:func:`heartbeat`, and what it can make us log by a rate limit. The handshake goes to the Studio
origin only: a redirect is refused, never followed, so the socket token cannot be carried to another host.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin

import aiohttp

from airflow_provider_edgeimpulse import socketio_codec as sio
from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.hooks.job_log import bound_line
from airflow_provider_edgeimpulse.hooks.policy import USER_AGENT
from airflow_provider_edgeimpulse.hooks.redirects import shown_origin
from airflow_provider_edgeimpulse.jobs.shared_read import job_list_reads
from airflow_provider_edgeimpulse.wire import RateLimitedLog, clamp_seconds

log = logging.getLogger(__name__)

EventKind = Literal["connected", "disconnected", "finished"]
_STATE_KINDS = ("connected", "disconnected")
_CLOSE_BOUND_S = 5.0
# How long one socket's reader decodes and hands out frames before it lets the event loop run others: aiohttp
# answers ``receive()`` without a pause while frames are buffered, so a burst of job events could otherwise hold
# the loop (and every other trigger of a triggerer) for as long as the burst takes to read.
_READ_SLICE_S = 0.00025
_HANDSHAKE_BOUND_S = 15.0
# What a handshake may set the heartbeat to, in seconds: Engine.IO's defaults are 25 s and 20 s. The floor keeps a
# zero or negative value from becoming a busy ping loop or a socket declared dead at once; the ceiling keeps a
# huge or infinite one from hiding a dead socket for hours.
PING_BOUNDS_S = (0.1, 120.0)
_DEFAULT_PING_INTERVAL_S = 25.0
_DEFAULT_PING_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class HubEvent:
    """What a wait hears of its socket besides its job's log: the socket (dis)connected, or the job finished."""

    kind: EventKind
    success: bool | None = None
    failures: int = 0
    reason: str | None = None


# A line of the job's log is its text alone: a burst of log events is then nothing for the garbage collector to
# track while it waits in the queues, where an event object per line made the collector's heap grow with it.
News = HubEvent | str


@dataclass(frozen=True)
class Heartbeat:
    """The server's heartbeat from its handshake, in seconds, finite and within :data:`PING_BOUNDS_S`."""

    interval: float
    timeout: float

    @property
    def silence_bound(self) -> float:
        """How long the server may stay silent before its socket counts as dead."""
        return self.interval + self.timeout


_CONNECTED = HubEvent("connected")
# asyncio runs a timer this much before its time (its ``_clock_resolution``).
_CLOCK_RESOLUTION_S = time.get_clock_info("monotonic").resolution


def heartbeat(handshake: dict[str, Any] | None) -> Heartbeat:
    """
    ``pingInterval`` and ``pingTimeout`` of an Engine.IO handshake (milliseconds) as a :class:`Heartbeat`.

    The one place where the handshake's numbers become durations: the codec passes on whatever number JSON
    holds, and JSON admits ``1e999`` (infinity), negative and huge numbers; ``1e999 + -1e999`` is NaN, which
    would break the event loop's timer order.
    """
    info = handshake or {}
    low, high = PING_BOUNDS_S

    def seconds(key: str, default: float) -> float:
        # Clamped while still in milliseconds: dividing an int too large for a float first would raise.
        return clamp_seconds(info.get(key), low=low * 1000, high=high * 1000, default=default * 1000) / 1000

    return Heartbeat(
        interval=seconds("pingInterval", _DEFAULT_PING_INTERVAL_S),
        timeout=seconds("pingTimeout", _DEFAULT_PING_TIMEOUT_S),
    )


@dataclass(frozen=True)
class ReconnectPolicy:
    first_delay: float = 0.05
    max_delay: float = 30.0

    def delay(self, failures: int) -> float:
        """Jittered so a Studio restart is not met by every triggerer at the same instant."""
        ceiling = min(self.max_delay, self.first_delay * 4 * (2 ** max(failures - 1, 0)))
        return random.uniform(self.first_delay, max(ceiling, self.first_delay))


class EventQueue:
    """
    One wait's unread events, bounded: a server that floods a job's events costs at most ``limit`` of them.

    What can be coalesced is: one finish is enough (REST decides the outcome), and a connection change replaces
    one queued right before it (only the newest state matters to a wait). What cannot, a log line, is dropped
    past ``limit`` and counted in ``dropped``. Finishes and connection changes are never dropped, so the
    queue may hold a few events more than ``limit``.

    It has one reader (its wait), so it holds a deque and at most one waiting future, which is handed the next
    event directly: an ``asyncio.Queue`` costs four deques and an ``Event`` more, and a triggerer holds one
    queue per wait, all scanned by every full garbage collection.
    """

    __slots__ = ("_finish_queued", "_items", "_waiter", "coalesced", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self.coalesced = 0
        self._finish_queued = False
        # No deque until an event has to wait for its reader: most are handed to a waiting future directly.
        self._items: deque[News] | None = None
        self._waiter: asyncio.Future[News | None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: News) -> None:
        waiter = self._waiter
        if waiter is not None:
            # A waiting reader means nothing is queued: hand the event over.
            self._waiter = None
            if not waiter.done():
                waiter.set_result(item)
                return
        items = self._items
        if items is None:
            items = self._items = deque()
        if isinstance(item, str):
            if len(items) >= self.limit:
                self.dropped += 1
                return
        elif item.kind == "finished":
            if self._finish_queued:
                self.coalesced += 1
                return
            self._finish_queued = True
        elif items and isinstance(last := items[-1], HubEvent) and last.kind in _STATE_KINDS:
            items[-1] = item  # a connection change replaces the one before it
            self.coalesced += 1
            return
        items.append(item)

    def get_nowait(self) -> News:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        if isinstance(item, HubEvent) and item.kind == "finished":
            self._finish_queued = False
        return item

    def _wait(self) -> asyncio.Future[News | None]:
        """A future for the next event: done at once when one is queued."""
        waiter = asyncio.get_running_loop().create_future()
        if self._items:
            waiter.set_result(self.get_nowait())
        else:
            self._waiter = waiter
        return waiter


def _each(held: Subscription | set[Subscription] | None) -> Iterable[Subscription]:
    """The subscriptions of one job's entry in a hub."""
    if held is None:
        return ()
    return held if isinstance(held, set) else (held,)


class Subscription(EventQueue):
    """
    One wait's view of the hub: a bounded queue of events for one job id (it is its own ``queue``).

    Waiting for an event costs a future and, with a timeout, an entry in the hub's :class:`Deadlines`: no
    coroutine, ``asyncio.timeout`` or timer of its own, which a triggerer holding thousands of waits would
    otherwise keep for each of them.
    """

    __slots__ = ("_armed", "_deadline", "_noted_drops", "closed", "hub", "job_id")

    def __init__(self, hub: JobEventHub, job_id: int) -> None:
        super().__init__(hub.credentials.limits.max_queued_events)
        self.hub = hub
        self.job_id = job_id
        self.closed = False
        self._noted_drops = 0
        self._deadline: float | None = None
        # The time of this subscription's earliest entry in the hub's deadlines, if it has one.
        self._armed: float | None = None

    @property
    def queue(self) -> EventQueue:
        return self

    def next(self, timeout: float | None) -> Awaitable[News | None]:
        """The next event, or ``None`` when ``timeout`` seconds pass without one."""
        self._note_drops()
        waiter = self._wait()
        if waiter.done() or timeout is None:
            self._deadline = None
        else:
            self._deadline = waiter.get_loop().time() + timeout
            self.hub.deadlines.arm(self, self._deadline)
        return waiter

    def _deadline_passed(self, now: float) -> None:
        """Called by the hub's deadlines at (or after) a time this subscription asked for."""
        waiter, deadline = self._waiter, self._deadline
        if waiter is None or waiter.done() or deadline is None:
            return
        if deadline > now:
            self.hub.deadlines.arm(self, deadline)  # the wait looked again since: a later deadline
            return
        self._waiter = None
        waiter.set_result(None)

    def _note_drops(self) -> None:
        """Say in the log how many lines were dropped since the last note, if any were."""
        dropped = self.dropped - self._noted_drops
        if not dropped:
            return
        self._noted_drops = self.dropped
        self.hub.rate_limited.log(
            logging.WARNING,
            "dropped",
            "Edge Impulse job %s: %d socket log lines were dropped because more than %d were waiting to be read; "
            "the job's whole log stays in Studio",
            self.job_id,
            dropped,
            self.limit,
        )

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._note_drops()  # a wait that ended without reading again still says what it missed
            self._deadline = None
            await self.hub.unsubscribe(self)


class Deadlines:
    """
    The quiet-interval deadlines of one hub's waits, kept in one heap under one event-loop timer.

    A wait re-arms its deadline after every event; rather than move its entry, a later deadline is noted on the
    subscription and its entry, when due, re-queues it (``Subscription._deadline_passed``). So a subscription
    holds at most one live entry, and an entry superseded by an earlier one is skipped when it comes up.
    """

    __slots__ = ("_entries", "_handle", "_heap", "_seq")

    def __init__(self) -> None:
        # Entries hold numbers only, and the subscriptions stay in a dict by entry number: a tuple of numbers is
        # no object for the garbage collector to scan, one that holds a subscription is, one per wait.
        self._heap: list[tuple[float, int]] = []
        self._entries: dict[int, Subscription] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._seq = 0

    def arm(self, sub: Subscription, when: float) -> None:
        if sub._armed is not None and sub._armed <= when:
            return  # its earlier entry re-queues it when due
        sub._armed = when
        self._seq += 1
        self._entries[self._seq] = sub
        heapq.heappush(self._heap, (when, self._seq))
        handle = self._handle
        if handle is None or when < handle.when():
            if handle is not None:
                handle.cancel()
            self._handle = asyncio.get_running_loop().call_at(when, self._due)

    def _due(self) -> None:
        self._handle = None
        heap = self._heap
        # The loop runs a timer up to its clock resolution early; so does this, as asyncio.timeout would.
        now = asyncio.get_running_loop().time() + _CLOCK_RESOLUTION_S
        while heap and heap[0][0] <= now:
            when, seq = heapq.heappop(heap)
            sub = self._entries.pop(seq)
            if sub._armed == when:
                sub._armed = None
                sub._deadline_passed(now)
        # Re-arming above may have set the timer for a later entry than the earliest left.
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if heap:
            self._handle = asyncio.get_running_loop().call_at(heap[0][0], self._due)

    def clear(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for sub in self._entries.values():
            sub._armed = None
        self._entries.clear()
        self._heap.clear()


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
        self.running_jobs, self.finished_jobs = job_list_reads(self.client, project_id)
        self.reconnect = reconnect or ReconnectPolicy()
        self.eio = sio.EIOVersion(eio)
        # A job's one subscription itself, or a set when several waits watch the same job: a triggerer holds one
        # entry per wait, and a set per entry would be one more object for every full garbage collection to scan.
        self._subs: dict[int, Subscription | set[Subscription]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        # The socket's own session: no cookie of the REST session rides along, and its handshake refuses redirects.
        self._socket_session: aiohttp.ClientSession | None = None
        self.rate_limited = RateLimitedLog(log)
        self.deadlines = Deadlines()
        self._task: asyncio.Task[None] | None = None
        self._on_empty = on_empty
        self.connected = False
        self.failures = 0
        self.connections = 0

    def subscribe(self, job_id: int) -> Subscription:
        sub = Subscription(self, job_id)
        held = self._subs.get(job_id)
        if held is None:
            self._subs[job_id] = sub
        elif isinstance(held, set):
            held.add(sub)
        else:
            self._subs[job_id] = {held, sub}
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"edgeimpulse-socket-{job_id}")
        elif self.connected:
            sub.put_nowait(_CONNECTED)
            self._send_nowait(sio.encode_event("start-log-stream", {"jobId": job_id}))
        elif self.failures:
            sub.put_nowait(HubEvent("disconnected", failures=self.failures))
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        held = self._subs.get(sub.job_id)
        if held is sub:
            del self._subs[sub.job_id]
        elif isinstance(held, set):
            held.discard(sub)
            if len(held) == 1:
                self._subs[sub.job_id] = held.pop()
        if not self._subs:
            if self._on_empty is not None:
                self._on_empty(self)
            await self.aclose()

    async def aclose(self) -> None:
        self.deadlines.clear()
        self.running_jobs.close()
        self.finished_jobs.close()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # Bounded: a cancellation swallowed around ws_connect must not hang the caller.
            await asyncio.wait({task}, timeout=_CLOSE_BOUND_S)
        await self._close_ws()
        session, self._socket_session = self._socket_session, None
        if session is not None and not session.closed:
            await session.close()
        await self.client.close()

    def _send_nowait(self, frame: str) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            asyncio.get_running_loop().create_task(_send_quietly(ws, frame))

    def _emit(self, event: News, job_ids: Iterable[int] | None = None) -> None:
        targets = self._subs.keys() if job_ids is None else job_ids
        for job_id in list(targets):
            for sub in _each(self._subs.get(job_id)):
                sub.put_nowait(event)

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions of every job this hub watches."""
        return [sub for held in list(self._subs.values()) for sub in _each(held)]

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
                ws = await self._session().ws_connect(
                    self.credentials.socket_url,
                    params=params,
                    autoping=False,
                    max_msg_size=self.credentials.limits.max_frame_bytes,
                )
            self._ws = ws
            return await self._read(ws)
        except asyncio.CancelledError:
            raise
        except HandshakeRedirected as err:
            reason = str(err)
            self.rate_limited.log(
                logging.WARNING, "redirect", "Edge Impulse socket for project %s: %s", self.project_id, reason
            )
            return reason
        except aiohttp.WSServerHandshakeError as err:
            return f"socket refused with HTTP {err.status}"
        except TimeoutError:
            return "socket handshake timed out"
        except Exception as err:  # any failure here means "no socket now"; the waits poll meanwhile
            return f"socket unavailable ({type(err).__name__}: {_safe_text(err)})"
        finally:
            await self._close_ws()

    def _session(self) -> aiohttp.ClientSession:
        session = self._socket_session
        if session is None or session.closed:
            refuse = aiohttp.TraceConfig()
            refuse.on_request_redirect.append(_refuse_redirect)
            session = self._socket_session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT}, trace_configs=[refuse], timeout=aiohttp.ClientTimeout(total=None)
            )
        return session

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
        loop = asyncio.get_running_loop()
        pause_at = loop.time() + _READ_SLICE_S
        while True:
            if loop.time() >= pause_at:
                await asyncio.sleep(0)
                pause_at = loop.time() + _READ_SLICE_S
            msg = await ws.receive()
            silence.heard()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return "socket closed"
            if msg.type is aiohttp.WSMsgType.ERROR:
                return self._error_reason(msg.data)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                frame = sio.decode_frame(msg.data)
            except sio.MalformedFrame as err:
                self.rate_limited.log(
                    logging.WARNING, "malformed", "Skipping a malformed Socket.IO frame from Edge Impulse: %s", err
                )
                continue
            if frame.engine is sio.EngineType.OPEN:
                beat = heartbeat(frame.open)
                silence.set_bound(beat.silence_bound)
                if self.eio is sio.EIOVersion.V4:
                    await ws.send_str(sio.encode_connect())
                else:
                    self._start_pinger(ws, beat.interval)
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
        self._emit(_CONNECTED)

    def _error_reason(self, error: Any) -> str:
        """Why the socket ended with an error frame; an oversized frame is said in the log, at a bounded rate."""
        if isinstance(error, aiohttp.WebSocketError) and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            reason = f"a socket frame was larger than the limit of {self.credentials.limits.max_frame_bytes} bytes"
            self.rate_limited.log(
                logging.WARNING,
                "oversized",
                "Edge Impulse socket for project %s closed: %s; the waits check REST until it is back",
                self.project_id,
                reason,
            )
            return reason
        return f"socket error ({type(error).__name__})"

    def _start_pinger(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        """Engine.IO 3 clients ping the server every ``interval`` seconds; the reader sees the pongs."""

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
                        self._emit(bound_line(line), [job_id])
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


class HandshakeRedirected(aiohttp.ClientError):
    """The socket handshake was answered with a redirect, which is never followed."""


async def _refuse_redirect(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestRedirectParams
) -> None:
    """
    Stop the handshake at its first redirect, before aiohttp follows it.

    A Socket.IO server does not redirect its handshake; a proxy that does may echo the query (the socket token)
    into the new location, to another host or from wss to ws. Stricter than the REST rule (``hooks.redirects``):
    a handshake is not followed even to its own origin, since its token would not travel along anyway.
    """
    resp = params.response
    target = shown_origin(urljoin(str(resp.url), resp.headers.get("Location", "")))
    resp.close()
    raise HandshakeRedirected(f"socket handshake redirected (HTTP {resp.status}) to {target}; not followed")


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
