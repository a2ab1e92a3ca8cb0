"""pytest fixtures for a local Edge Impulse Studio, registered through the ``pytest11`` entry point.

pytest imports this module on every run of every project that has the provider installed, so it imports
nothing heavy at module level: the server (aiohttp) and the handle (requests) load inside the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

    from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle
    from airflow_provider_edgeimpulse.emulator.server import EmulatorThread

CONN_ENV = "AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"


@pytest.fixture(scope="session")
def edgeimpulse_emulator_middlewares() -> Sequence[Middleware]:
    """aiohttp middlewares wrapped around every request of the session's emulator; override it to watch traffic."""
    return ()


@pytest.fixture(scope="session")
def edgeimpulse_emulator_server(edgeimpulse_emulator_middlewares: Sequence[Middleware]) -> Iterator[EmulatorThread]:
    """One emulator for the whole session, on a free loopback port, in a background thread."""
    from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
    from airflow_provider_edgeimpulse.emulator.server import EmulatorThread

    server = EmulatorThread(EmulatorConfig(port=0), edgeimpulse_emulator_middlewares)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def edgeimpulse_emulator(
    edgeimpulse_emulator_server: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorHandle]:
    """A freshly reset emulator, with ``edgeimpulse_default`` (via its env variable) pointing at it."""
    from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle

    handle = EmulatorHandle.of(edgeimpulse_emulator_server)
    handle.reset()
    monkeypatch.setenv(CONN_ENV, handle.connection_json())
    try:
        yield handle
    finally:
        handle.close()
