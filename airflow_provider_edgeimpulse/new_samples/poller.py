"""
The asset watcher's poll loop, shared by the watcher trigger's ``run()`` and its shared-stream producer.

Airflow-free, so both trigger modules import it from here rather than from each other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_edgeimpulse.new_samples import watermark as wm
from airflow_provider_edgeimpulse.new_samples.probe import NewSamples, probe_new_samples
from airflow_provider_edgeimpulse.new_samples.watch import (
    WatchSpec,
    first_watermark,
    resolve_project_id,
    result_payload,
)

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient

log = logging.getLogger(__name__)

_MAX_ERROR_BACKOFF_S = 300.0
_COMMIT_ATTEMPTS = 3


class PollSource(Protocol):
    """What the poller reads from its trigger: what to watch, where the watermark lives, how often to look."""

    @property
    def spec(self) -> WatchSpec: ...

    watermark_store: wm.WatermarkStore
    poll_interval: float


class BatchPoller:
    """
    The watcher's poll loop: a position (the last watermark handed out) and the next batch above it.

    Errors never end it: a watcher that died on a Studio outage would stop the DAG for good, so failures are
    logged and retried with a growing pause. Use as ``async with BatchPoller(trigger) as poller``, ``trigger``
    being anything with a ``spec``, a ``watermark_store`` and a ``poll_interval`` (the watcher trigger).
    """

    def __init__(self, trigger: PollSource) -> None:
        self.trigger = trigger
        self.spec = trigger.spec
        self.store = trigger.watermark_store
        self.client: AsyncEdgeImpulseClient | None = None
        self.project_id: int | None = None
        self.key = ""
        self.position = 0
        self.failures = 0

    async def __aenter__(self) -> BatchPoller:
        await self._retrying("start watching", self._start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            await self.client.close()

    async def _start(self) -> None:
        from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials

        credentials = await aresolve_credentials(self.spec.conn_id)
        if self.client is not None:
            await self.client.close()
        self.client = AsyncEdgeImpulseClient(credentials)
        self.project_id = await resolve_project_id(self.client, self.spec, credentials)
        self.key = self.spec.key(self.project_id)
        self.position = await first_watermark(self.client, self.spec, self.project_id, self.store, self.key, "watcher")
        log.info(
            "Watching Edge Impulse project %s (%s) for %d new sample(s) after sample id %d (watermark Variable %r)",
            self.project_id,
            self.spec.sample_filter.describe(),
            self.spec.min_new_samples,
            self.position,
            self.key,
        )

    async def next_batch(self) -> NewSamples:
        """Wait until enough new samples are above the position; move the position past them."""
        while True:
            found = await self._retrying("check for new samples", self._probe)
            if self.spec.is_enough(found):
                self.position = found.watermark
                log.info("%d new Edge Impulse sample(s) up to id %d", found.count, found.watermark)
                return found
            await asyncio.sleep(self.trigger.poll_interval)

    async def _probe(self) -> NewSamples:
        assert self.client is not None
        assert self.project_id is not None
        return await probe_new_samples(
            self.client,
            self.project_id,
            self.spec.sample_filter,
            self.position,
            want=self.spec.min_new_samples,
            max_sample_ids=self.spec.max_sample_ids,
        )

    def rewind(self, position: int) -> None:
        """Hand out everything above ``position`` again (its events were not stored)."""
        self.position = min(self.position, position)

    def payload(self, batch: NewSamples) -> dict[str, Any]:
        assert self.project_id is not None
        return result_payload(self.spec, self.project_id, self.key, batch)

    async def commit(self, sample_id: int) -> None:
        """Store the watermark; a failure is logged, not raised (the batch then repeats after a restart)."""
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                await wm.aadvance(self.store, self.key, sample_id, "asset watcher")
                return
            except Exception as err:
                if attempt == _COMMIT_ATTEMPTS:
                    log.error("Could not store watermark %d in Variable %r: %s", sample_id, self.key, err)
                    return
                await asyncio.sleep(0.5 * attempt)

    async def _retrying(self, what: str, step: Any) -> Any:
        while True:
            try:
                result = await step()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.failures += 1
                delay = min(self.trigger.poll_interval * 2 ** min(self.failures - 1, 8), _MAX_ERROR_BACKOFF_S)
                delay = max(delay, min(self.trigger.poll_interval, 1.0))
                log.warning("Could not %s in Edge Impulse (%s); retrying in %.1f s", what, err, delay)
                await asyncio.sleep(delay)
                continue
            self.failures = 0
            return result
