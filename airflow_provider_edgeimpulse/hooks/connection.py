"""Resolve an Airflow connection into credentials, on the worker (sync) or on the triggerer (async)."""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials, credentials_from_connection
from airflow_provider_edgeimpulse.hooks.masking import amask_secrets, mask_secrets

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


def resolve_credentials(conn_id: str) -> EdgeImpulseCredentials:
    from airflow.providers.common.compat.sdk import BaseHook

    credentials = credentials_from_connection(BaseHook.get_connection(conn_id))
    mask_secrets(credentials.secrets())
    return credentials


# Triggers that start together (a triggerer picking up its share, or taking over from a dead one) ask for the same
# connection at once. They share one lookup in flight: the secrets backend sees one read per connection instead of
# one per trigger, and a triggerer starting thousands of waits does not queue thousands of thread-pool hops.
# Nothing is kept once the lookup ends, so a rotated key reaches every trigger that starts afterwards.
_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[EdgeImpulseCredentials]]]
_in_flight = weakref.WeakKeyDictionary()
# Keyed by the credentials' values, not by the credentials, so that an entry goes when its last user lets go.
_one_of_equal: weakref.WeakValueDictionary[tuple[Any, ...], EdgeImpulseCredentials] = weakref.WeakValueDictionary()


async def aresolve_credentials(conn_id: str) -> EdgeImpulseCredentials:
    """The triggerer's path: never the sync lookup, which blocks or deadlocks its event loop on Airflow 3."""
    loop = asyncio.get_running_loop()
    lookups = _in_flight.setdefault(loop, {})
    lookup = lookups.get(conn_id)
    if lookup is None:
        lookup = lookups[conn_id] = loop.create_task(_alookup(conn_id), name=f"edgeimpulse-connection-{conn_id}")
        lookup.add_done_callback(lambda done: _settled(lookups, conn_id, done))
    # One waiter's cancellation must not cancel the lookup the others wait for.
    return await asyncio.shield(lookup)


def _settled(lookups: dict[str, asyncio.Task[EdgeImpulseCredentials]], conn_id: str, done: asyncio.Task[Any]) -> None:
    if lookups.get(conn_id) is done:
        del lookups[conn_id]
    if not done.cancelled():
        done.exception()  # retrieved here, so a lookup whose waiters all left logs no "never retrieved"


async def _alookup(conn_id: str) -> EdgeImpulseCredentials:
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

    conn = await get_async_connection(conn_id)
    extra = await get_async_extra_dejson(conn)
    credentials = credentials_from_connection(conn, extra)
    await amask_secrets(credentials.secrets())
    # Equal credentials are one object: a triggerer's thousands of waits hold a handful of connections' worth,
    # and every full garbage collection scans each object they hold.
    return _one_of_equal.setdefault(dataclasses.astuple(credentials), credentials)


def hook_for_task(conn_id: str, project_id: Any) -> EdgeImpulseHook:
    """The hook an operator or sensor uses: its connection, and its (rendered) ``project_id`` validated."""
    from airflow_provider_edgeimpulse.hooks.credentials import parse_project_id
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

    try:
        parsed = parse_project_id(project_id)
    except Exception as err:
        # The parser's text already names project_id and the value.
        raise ValueError(str(err)) from None
    return EdgeImpulseHook(edgeimpulse_conn_id=conn_id, project_id=parsed)
