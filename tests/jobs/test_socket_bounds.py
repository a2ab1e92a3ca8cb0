"""
What a hostile Socket.IO server can do to a wait, against a real loopback server that does it: heartbeat numbers
no timer should take, garbage and oversized frames, event floods, and a handshake redirected to another host.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials
from airflow_provider_edgeimpulse.jobs.waiter import JobOutcome, WaitSettings, wait_for_job
from airflow_provider_edgeimpulse.socketio_codec import decode_frame
from airflow_provider_edgeimpulse.wire import WireLimits
from tests.jobs.rogue_studio import API_KEY, SOCKET_TOKEN, RogueStudio

PROJECT_ID = 1
JOB_ID = 7
HUB_LOGGER = "airflow_provider_edgeimpulse.jobs.hub"


def _credentials(url: str, limits: WireLimits | None = None) -> EdgeImpulseCredentials:
    return EdgeImpulseCredentials(
        studio_url=url,
        auth_type=AuthType.API_KEY,
        api_key=API_KEY,
        project_id=PROJECT_ID,
        timeout=10,
        limits=limits or WireLimits(),
    )


@pytest.fixture
def rogue_factory() -> Iterator[Callable[..., RogueStudio]]:
    started: list[RogueStudio] = []

    def make(**kwargs: Any) -> RogueStudio:
        studio = RogueStudio(**kwargs).start()
        started.append(studio)
        return studio

    yield make
    for studio in started:
        studio.stop()


class _Ticker:
    """Another coroutine on the wait's event loop: it counts its 10 ms sleeps, which a stalled loop stops."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    async def __aenter__(self) -> _Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def advanced(self, ticks: int, within: float) -> bool:
        """Whether the ticker makes ``ticks`` more ticks within ``within`` s (watched from a thread: no loop timer)."""
        target = self.ticks + ticks

        def watch() -> bool:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                if self.ticks >= target:
                    return True
                time.sleep(0.01)
            return False

        return await asyncio.to_thread(watch)


def _until(predicate: Callable[[], bool], within: float = 20.0) -> bool:
    """Poll ``predicate`` from a thread until it holds or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


async def _outcome(task: asyncio.Task[JobOutcome], within: float = 30.0) -> JobOutcome:
    """The wait's outcome, guarded by a thread: a loop whose timers are broken cannot hang the test."""
    done = threading.Event()
    task.add_done_callback(lambda _: done.set())
    assert await asyncio.to_thread(done.wait, within), "the wait did not end"
    return task.result()


@pytest.fixture
async def waits() -> AsyncIterator[list[asyncio.Task[JobOutcome]]]:
    tasks: list[asyncio.Task[JobOutcome]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=10)


def _start_wait(
    tasks: list[asyncio.Task[JobOutcome]], credentials: EdgeImpulseCredentials, **settings: Any
) -> asyncio.Task[JobOutcome]:
    task = asyncio.create_task(
        wait_for_job(credentials, PROJECT_ID, JOB_ID, deadline=time.time() + 60, settings=WaitSettings(**settings))
    )
    tasks.append(task)
    return task


# ------------------------------------------------------------------------------------------- heartbeat numbers


@pytest.mark.parametrize(
    ("text", "interval", "timeout"),
    [
        ('0{"sid":"s","pingInterval":25000,"pingTimeout":20000}', 25.0, 20.0),
        ('0{"sid":"s","pingInterval":1e999,"pingTimeout":-1e999}', 120.0, 0.1),
        ('0{"sid":"s","pingInterval":-5,"pingTimeout":0}', 0.1, 0.1),
        ('0{"sid":"s","pingInterval":1e300,"pingTimeout":1' + "0" * 400 + "}", 120.0, 120.0),
    ],
)
def test_the_handshake_heartbeat_is_finite_and_bounded(text, interval, timeout):
    from airflow_provider_edgeimpulse.jobs.hub import heartbeat

    beat = heartbeat(decode_frame(text).open)
    assert (beat.interval, beat.timeout) == (interval, timeout)
    assert math.isfinite(beat.silence_bound)


def test_a_handshake_without_numbers_gets_engine_io_defaults():
    from airflow_provider_edgeimpulse.jobs.hub import heartbeat

    assert heartbeat(None) == heartbeat({"pingInterval": "x", "pingTimeout": True})
    assert (heartbeat(None).interval, heartbeat(None).timeout) == (25.0, 20.0)


@pytest.mark.parametrize(
    ("interval", "timeout"),
    [
        ("1e999", "-1e999"),  # infinity plus minus infinity: a NaN silence bound
        ("1e999", "1e999"),
        ("-5000", "-5000"),
        ("0", "0"),
        ("1e300", "20000"),
        ("1" + "0" * 400, "20000"),  # an integer no float can hold
    ],
    ids=["inf-minus-inf", "infinite", "negative", "zero", "huge", "huge-int"],
)
@pytest.mark.parametrize("eio", [3, 4])
async def test_hostile_heartbeat_neither_stalls_the_loop_nor_the_wait(rogue_factory, waits, interval, timeout, eio):
    open_frame = f'0{{"sid":"s","upgrades":[],"pingInterval":{interval},"pingTimeout":{timeout}}}'
    studio = rogue_factory(open_frame=open_frame)
    from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop

    credentials = _credentials(studio.url)
    registry_for_running_loop().hub_for(credentials, PROJECT_ID, eio=eio)
    async with _Ticker() as ticker:
        wait = _start_wait(waits, credentials)
        assert await asyncio.to_thread(studio.subscribed.wait, 10), "the wait never subscribed"
        assert await ticker.advanced(20, within=10), "the event loop stalled after the handshake"
        await asyncio.to_thread(studio.finish, JOB_ID)
        outcome = await _outcome(wait)
        assert await ticker.advanced(20, within=10), "the event loop stalled"
    assert outcome.status == "success"


# ------------------------------------------------------------------------------------------------ what it sends


def _hub_records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == HUB_LOGGER and r.levelno >= level]


async def test_a_garbage_flood_is_logged_at_a_bounded_rate(rogue_factory, waits, caplog):
    frames = 20_000
    sent = threading.Event()

    async def flood(studio: RogueStudio, ws: web.WebSocketResponse) -> None:
        for index in range(frames):
            await ws.send_str(("9zzz", '42{"not":"a list"}', "4", '0{"sid":1}')[index % 4])
        sent.set()

    studio = rogue_factory(after_connect=flood)
    caplog.set_level(logging.WARNING, logger=HUB_LOGGER)
    wait = _start_wait(waits, _credentials(studio.url))
    assert await asyncio.to_thread(sent.wait, 30), "the flood was not sent"
    await asyncio.to_thread(studio.finish, JOB_ID)
    outcome = await _outcome(wait)
    assert outcome.status == "success"
    malformed = [r for r in _hub_records(caplog) if "malformed" in r.getMessage().lower()]
    assert malformed, "garbage is still reported"
    assert len(malformed) <= 10, f"{len(malformed)} log records for {frames} garbage frames"


async def test_an_oversized_frame_ends_that_socket_and_the_wait_goes_on(rogue_factory, waits, caplog):
    limit = 64 * 1024
    sockets = 0

    async def huge_first(studio: RogueStudio, ws: web.WebSocketResponse) -> None:
        nonlocal sockets
        sockets += 1
        if sockets == 1:
            await ws.send_str('42["job-data-7",{"data":"' + "x" * (4 * 1024 * 1024) + '"}]')

    studio = rogue_factory(after_connect=huge_first)
    caplog.set_level(logging.WARNING, logger=HUB_LOGGER)
    lines: list[str] = []
    credentials = _credentials(studio.url, WireLimits(max_frame_bytes=limit))
    wait = asyncio.create_task(
        wait_for_job(credentials, PROJECT_ID, JOB_ID, deadline=time.time() + 60, on_log=lines.append)
    )
    waits.append(wait)

    assert await asyncio.to_thread(_until, lambda: len(studio.seen.subscribed) >= 2), (
        "the wait did not get a new socket after the oversized frame"
    )
    await asyncio.to_thread(studio.finish, JOB_ID)
    outcome = await _outcome(wait)
    assert outcome.status == "success"
    assert not any(len(line) > limit for line in lines)
    said = [r.getMessage() for r in _hub_records(caplog)]
    assert any(f"larger than the limit of {limit} bytes" in message for message in said), said


async def test_an_event_flood_stays_within_the_queue_bound_and_one_finish_is_kept(rogue_factory, waits, caplog):
    limit = 100
    events = 5_000
    sent = threading.Event()

    async def flood(studio: RogueStudio, ws: web.WebSocketResponse) -> None:
        for index in range(events):
            await ws.send_str(f'42["job-finished",{{"jobId":{JOB_ID},"success":true}}]')
            await ws.send_str(f'42["job-data-{JOB_ID}",{{"data":"line {index}"}}]')
        await asyncio.sleep(0.5)  # time for the client to read what was sent
        sent.set()

    studio = rogue_factory(after_connect=flood)
    # The wait's REST reads answer only once the flood is out: the events pile up unread meanwhile, on any machine.
    studio.hold_running_status = sent
    caplog.set_level(logging.WARNING, logger=HUB_LOGGER)
    credentials = _credentials(studio.url, WireLimits(max_queued_events=limit))
    from airflow_provider_edgeimpulse.jobs.hub import registry_for_running_loop

    hub = registry_for_running_loop().hub_for(credentials, PROJECT_ID)
    wait = _start_wait(waits, credentials)
    peak = 0
    most_tracked = 0

    async def sample() -> None:
        nonlocal peak, most_tracked
        while True:
            for sub in hub.subscriptions():
                peak = max(peak, sub.queue.qsize())
                # What each full garbage collection would scan of it: its log lines are plain text, not objects.
                most_tracked = max(most_tracked, sum(1 for item in sub._items or () if gc.is_tracked(item)))
            await asyncio.sleep(0)

    sampler = asyncio.create_task(sample())
    try:
        # The job is still running: the wait sits in a REST read while the flood comes, so unread events pile up.
        assert await asyncio.to_thread(sent.wait, 60), "the flood was not sent"
        await asyncio.to_thread(studio.finish, JOB_ID)
        outcome = await _outcome(wait)
    finally:
        sampler.cancel()
    assert outcome.status == "success"
    assert 0 < peak <= limit + 3, f"{peak} unread events held for a bound of {limit}"
    assert most_tracked <= 3, f"{most_tracked} of the unread events are objects the garbage collector tracks"
    notes = [r.getMessage() for r in _hub_records(caplog) if "dropped" in r.getMessage()]
    assert notes and len(notes) <= 5, notes


async def test_a_buffered_flood_is_read_in_short_slices_that_let_the_loop_run_others(rogue_factory, waits, monkeypatch):
    from airflow_provider_edgeimpulse import socketio_codec

    frames = 20_000
    flooding = threading.Event()

    async def flood(studio: RogueStudio, ws: web.WebSocketResponse) -> None:
        flooding.set()
        for index in range(frames):  # another job's lines: read and decoded, then dropped by the hub
            await ws.send_str(f'42["job-data-{JOB_ID + 1}",{{"data":"line {index}"}}]')

    decoded = 0
    decode = socketio_codec.decode_frame

    def counted(text: str) -> socketio_codec.Frame:
        nonlocal decoded
        decoded += 1
        return decode(text)

    monkeypatch.setattr(socketio_codec, "decode_frame", counted)
    studio = rogue_factory(after_connect=flood)
    _start_wait(waits, _credentials(studio.url))
    assert await asyncio.to_thread(flooding.wait, 20), "the flood did not start"
    # The loop is busy elsewhere (blocked on purpose): the flood piles up in the socket's buffers, unread.
    time.sleep(0.5)  # noqa: ASYNC251
    most_per_turn = 0
    seen = decoded
    deadline = time.monotonic() + 30
    while decoded < frames:
        assert time.monotonic() < deadline, f"{decoded} of {frames} frames were read"
        await asyncio.sleep(0)  # one turn of the loop: what the reader decoded since the last one
        most_per_turn = max(most_per_turn, decoded - seen)
        seen = decoded
    # Thousands of frames arrive with each read of the socket; one turn of the loop reads a few dozen.
    assert most_per_turn <= 500, f"one turn of the event loop decoded {most_per_turn} frames"


# ------------------------------------------------------------------------------------------------- credentials


async def test_a_redirected_handshake_is_not_followed_and_the_token_stays_home(rogue_factory, waits, caplog):
    elsewhere = rogue_factory()
    studio = rogue_factory()
    studio.redirect_socket_to = elsewhere.url  # the whole path and query, token included, as a proxy echoes it
    caplog.set_level(logging.WARNING, logger=HUB_LOGGER)
    wait = _start_wait(waits, _credentials(studio.url), poll_interval=0.2)

    # Either the redirect was followed (the other host sees a handshake) or the wait retries its own Studio.
    assert await asyncio.to_thread(_until, lambda: elsewhere.seen.handshakes or len(studio.seen.handshakes) >= 2), (
        "the socket was neither followed nor retried"
    )
    assert SOCKET_TOKEN in studio.seen.handshakes[0]
    assert not any(SOCKET_TOKEN in query for query in elsewhere.seen.handshakes), "the token went to another host"
    assert elsewhere.seen.handshakes == [], "the handshake was followed to another origin"
    await asyncio.to_thread(studio.finish, JOB_ID)
    outcome = await _outcome(wait)
    assert outcome.status == "success", "the wait falls back to REST"
    assert elsewhere.seen.api_keys == []
    said = [r.getMessage() for r in _hub_records(caplog)]
    assert any("redirected (HTTP 302)" in message and "not followed" in message for message in said), said
    assert not any(SOCKET_TOKEN in message for message in said)
