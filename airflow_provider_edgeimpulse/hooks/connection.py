"""Resolve an Airflow connection into credentials, on the worker (sync) or on the triggerer (async)."""

from __future__ import annotations

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials, credentials_from_connection
from airflow_provider_edgeimpulse.hooks.masking import amask_secrets, mask_secrets


def resolve_credentials(conn_id: str) -> EdgeImpulseCredentials:
    from airflow.providers.common.compat.sdk import BaseHook

    credentials = credentials_from_connection(BaseHook.get_connection(conn_id))
    mask_secrets(credentials.secrets())
    return credentials


async def aresolve_credentials(conn_id: str) -> EdgeImpulseCredentials:
    """The triggerer's path: never the sync lookup, which blocks or deadlocks its event loop on Airflow 3."""
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

    conn = await get_async_connection(conn_id)
    extra = await get_async_extra_dejson(conn)
    credentials = credentials_from_connection(conn, extra)
    await amask_secrets(credentials.secrets())
    return credentials
