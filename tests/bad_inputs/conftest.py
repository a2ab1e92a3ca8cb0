"""An emulator whose secrets are unmistakable, so a leak into a message or a log line cannot hide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle
from airflow_provider_edgeimpulse.emulator.server import EmulatorThread
from tests.bad_inputs.cases import Env

# Distinct from every word the provider or the emulator prints ("emulator" is both the default password and a
# module name, so a leak check against the default connection would prove nothing).
API_KEY = "ei_BadInputKey_5e9d0c7a1f3b"
USERNAME = "bad-input-user"
PASSWORD = "pw-BadInput-Zq81xW4v"


@pytest.fixture(scope="session")
def secret_emulator_server(edgeimpulse_emulator_middlewares: tuple[Any, ...]) -> Iterator[EmulatorThread]:
    config = EmulatorConfig(port=0, api_key=API_KEY, username=USERNAME, password=PASSWORD)
    server = EmulatorThread(config, edgeimpulse_emulator_middlewares)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(secret_emulator_server: EmulatorThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Env]:
    """A reset emulator; ``edgeimpulse_default`` (API key) and ``ei_jwt`` (username, password) point at it."""
    handle = EmulatorHandle.of(secret_emulator_server)
    handle.reset()
    environment = Env(handle, tmp_path, monkeypatch)
    environment.set_connection()
    environment.set_connection("ei_jwt", auth_type="jwt")
    try:
        yield environment
    finally:
        handle.close()
