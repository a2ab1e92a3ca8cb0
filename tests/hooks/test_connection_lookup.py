"""The triggerer's connection lookup: triggers that start together share one read of their connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from airflow.secrets.environment_variables import EnvironmentVariablesBackend

from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials
from tests.hooks.conftest import set_connection

CONN_ID = "ei_lookup"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of a connection from the environment, as the secrets backend sees it."""
    seen: list[str] = []
    read = EnvironmentVariablesBackend.get_conn_value

    def counted(self: Any, conn_id: str) -> Any:
        seen.append(conn_id)
        return read(self, conn_id)

    monkeypatch.setattr(EnvironmentVariablesBackend, "get_conn_value", counted)
    return seen


def _connect(monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
    set_connection(monkeypatch, CONN_ID, {"conn_type": "edgeimpulse", "password": api_key, "extra": {"project_id": 1}})


def test_triggers_starting_together_read_their_connection_once(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    _connect(monkeypatch, "ei_key_one")

    async def start_together() -> list[Any]:
        return await asyncio.gather(*(aresolve_credentials(CONN_ID) for _ in range(200)))

    found = asyncio.run(start_together())
    assert {credentials.api_key for credentials in found} == {"ei_key_one"}
    assert reads.count(CONN_ID) == 1


def test_a_rotated_key_reaches_the_triggers_that_start_afterwards(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    async def one_then_another() -> tuple[Any, Any]:
        _connect(monkeypatch, "ei_key_before")
        before = await aresolve_credentials(CONN_ID)
        _connect(monkeypatch, "ei_key_after")
        return before, await aresolve_credentials(CONN_ID)

    before, after = asyncio.run(one_then_another())
    assert (before.api_key, after.api_key) == ("ei_key_before", "ei_key_after")
    assert reads.count(CONN_ID) == 2


def test_triggers_starting_one_after_another_hold_one_credentials_object_until_the_last_lets_go(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    import gc
    import weakref

    async def in_turn() -> tuple[Any, Any, Any]:
        _connect(monkeypatch, "ei_key_same")
        first = await aresolve_credentials(CONN_ID)
        second = await aresolve_credentials(CONN_ID)  # a lookup of its own: the first one has ended
        _connect(monkeypatch, "ei_key_rotated")
        return first, second, await aresolve_credentials(CONN_ID)

    first, second, rotated = asyncio.run(in_turn())
    assert reads.count(CONN_ID) == 3
    assert second is first, "equal credentials are one object, however many waits hold them"
    assert rotated is not first and rotated.api_key == "ei_key_rotated"
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None, "nothing but the triggers keeps their credentials"


def test_a_cancelled_trigger_leaves_the_shared_lookup_to_the_others(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    _connect(monkeypatch, "ei_key_shared")

    async def one_cancelled() -> Any:
        first = asyncio.ensure_future(aresolve_credentials(CONN_ID))
        second = asyncio.ensure_future(aresolve_credentials(CONN_ID))
        await asyncio.sleep(0)  # both wait on the one lookup now
        first.cancel()
        credentials = await second
        assert first.cancelled()
        return credentials

    assert asyncio.run(one_cancelled()).api_key == "ei_key_shared"
    assert reads.count(CONN_ID) == 1


def test_every_waiter_gets_the_lookup_error_and_the_next_trigger_reads_again(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)

    async def all_fail() -> list[Any]:
        return await asyncio.gather(*(aresolve_credentials(CONN_ID) for _ in range(3)), return_exceptions=True)

    errors = asyncio.run(all_fail())
    assert len({type(error) for error in errors}) == 1
    assert all(isinstance(error, Exception) and CONN_ID in str(error) for error in errors)
    first_reads = reads.count(CONN_ID)

    _connect(monkeypatch, "ei_key_later")
    assert asyncio.run(aresolve_credentials(CONN_ID)).api_key == "ei_key_later"
    assert reads.count(CONN_ID) == first_reads + 1
