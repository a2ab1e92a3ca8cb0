"""Register secrets with Airflow's masker from sync code (workers) and async code (the triggerer)."""

from __future__ import annotations

from collections.abc import Iterable


def mask_secrets(values: Iterable[str | None]) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    for value in values:
        if value:
            mask_secret(value)


async def amask_secrets(values: Iterable[str | None]) -> None:
    """
    Mask without the synchronous supervisor round-trip where Airflow offers an async one.

    The sync ``mask_secret`` talks to the supervisor with a blocking call, which deadlocks when another
    async call is in flight on the triggerer's event loop.
    """
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        mask_secrets(values)
        return
    for value in values:
        if value:
            await amask_secret(value)
