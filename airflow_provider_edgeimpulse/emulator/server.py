"""Running the emulator: inside the caller's event loop (EmulatorServer) or on its own thread (EmulatorThread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from airflow_provider_edgeimpulse.emulator.app import create_app
from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
from airflow_provider_edgeimpulse.emulator.state import EmulatorState
from airflow_provider_edgeimpulse.emulator.web_util import STATE

STOP_TIMEOUT_S = 10.0


class EmulatorServer:
    def __init__(self, config: EmulatorConfig | None = None, middlewares: Iterable[Middleware] = ()) -> None:
        self.config = config or EmulatorConfig()
        self.app = create_app(self.config, middlewares)
        self.state: EmulatorState = self.app[STATE]
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        # Short shutdown timeout: open WebSockets are closed by on_shutdown, nothing else should linger.
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        # With port 0 the kernel picks the port; the runner knows which.
        port = int(self._runner.addresses[0][1]) if self._runner.addresses else self.config.port
        host = self.config.host
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.url = f"http://{shown}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class EmulatorThread:
    """The emulator on a daemon thread with its own event loop, for synchronous tests and fixtures."""

    def __init__(self, config: EmulatorConfig | None = None, middlewares: Iterable[Middleware] = ()) -> None:
        self.config = config or EmulatorConfig()
        self._middlewares = tuple(middlewares)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: EmulatorServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""

    @property
    def state(self) -> EmulatorState:
        if self._server is None:
            raise RuntimeError("the emulator thread is not running")
        return self._server.state

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the emulator thread is not running")
        return self._loop

    def start(self, timeout: float = 30.0) -> str:
        if self._thread is not None:
            return self.url
        self._thread = threading.Thread(target=self._main, name="edgeimpulse-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the Edge Impulse emulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the Edge Impulse emulator failed to start: {self._error}") from self._error
        return self.url

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = EmulatorServer(self.config, self._middlewares)
            self.url = loop.run_until_complete(self._server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        thread, loop, server = self._thread, self._loop, self._server
        if thread is None or loop is None or server is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(server.stop(), loop)
        try:
            future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = None

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
