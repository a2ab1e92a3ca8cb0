"""
A fault-injecting TCP proxy for loopback tests: resets, stalls, mid-frame cuts and latency.

Each accepted connection draws its fate from a seeded random generator, so a run is reproducible up to the
order in which the operating system hands out connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from dataclasses import dataclass

_CHUNK = 65536


@dataclass
class ProxyFaults:
    reset: float = 0.0  # chance a connection is reset after a few chunks
    stall: float = 0.0  # chance a connection stops forwarding for a while, then resumes
    cut: float = 0.0  # chance a connection is cut in the middle of a chunk (a WebSocket frame, say)
    stall_seconds: float = 1.5
    latency_ms: tuple[int, int] = (0, 0)


@dataclass
class _Fate:
    kind: str  # pass | reset | stall | cut
    at_chunk: int


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, seed: int, faults: ProxyFaults | None = None) -> None:
        self.target = (target_host, target_port)
        self.faults = faults or ProxyFaults()
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._main, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self.url

    def stop(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _fate(self) -> _Fate:
        f = self.faults
        roll = self.rng.random()
        at = self.rng.randint(0, 3)
        for kind, chance in (("reset", f.reset), ("stall", f.stall), ("cut", f.cut)):
            if roll < chance:
                return _Fate(kind, at)
            roll -= chance
        return _Fate("pass", at)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        fate = self._fate()
        self.stats["connections"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, up_writer))
        both = (client_writer, up_writer)
        upstream = asyncio.ensure_future(self._pipe(client_reader, up_writer, None, both))
        downstream = asyncio.ensure_future(self._pipe(up_reader, client_writer, fate, both))
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
        for writer in both:
            writer.transport.abort()
            self._writers.discard(writer)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        fate: _Fate | None,
        both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        chunk_no = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(_CHUNK):
                low, high = self.faults.latency_ms
                if high:
                    await asyncio.sleep(self.rng.uniform(low, high) / 1000)
                if fate is not None and chunk_no == fate.at_chunk and fate.kind != "pass":
                    self.stats[fate.kind] += 1
                    if fate.kind == "reset":
                        for w in both:
                            w.transport.abort()
                        return
                    if fate.kind == "cut":
                        writer.write(data[: max(1, len(data) // 2)])
                        await writer.drain()
                        for w in both:
                            w.transport.abort()
                        return
                    await asyncio.sleep(self.faults.stall_seconds)
                writer.write(data)
                await writer.drain()
                chunk_no += 1
