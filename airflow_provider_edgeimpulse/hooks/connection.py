"""Resolve an Airflow connection into credentials, on the worker (sync) or on the triggerer (async)."""

from __future__ import annotations

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


async def aresolve_credentials(conn_id: str) -> EdgeImpulseCredentials:
    """The triggerer's path: never the sync lookup, which blocks or deadlocks its event loop on Airflow 3."""
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

    conn = await get_async_connection(conn_id)
    extra = await get_async_extra_dejson(conn)
    credentials = credentials_from_connection(conn, extra)
    await amask_secrets(credentials.secrets())
    return credentials


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
