"""
The ack-mode producer of ``EdgeImpulseNewSamplesTrigger`` (Airflow 3.3+ shared streams).

Like a Kafka consumer with manual commits: the poll position runs ahead of the committed watermark, and
the triggerer calls :meth:`NewSamplesProducer.advance` only once the events it fanned out are stored as
asset events. Only then is the watermark (the Variable) moved. Imported lazily: the module it builds on
exists from Airflow 3.3 only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from airflow_provider_edgeimpulse.new_samples.poller import BatchPoller, PollSource

log = logging.getLogger(__name__)


class Offset(NamedTuple):
    """What an event covers, ``(previous, current]``, and the rewind generation it was handed out in."""

    previous: int
    current: int
    generation: int


class NewSamplesProducer(SharedStreamProducer):
    def __init__(self, trigger: PollSource) -> None:
        self.trigger = trigger
        self.poller: BatchPoller | None = None
        self.committed: int | None = None
        # Bumped by a rewind: events handed out before it are found again, so their acks no longer count.
        self.generation = 0

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        async with BatchPoller(self.trigger) as poller:
            self.poller = poller
            self.committed = poller.position
            while True:
                batch = await poller.next_batch()
                yield poller.payload(batch), Offset(batch.after_id, batch.watermark, self.generation)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        # Never raise: a raise ends the whole stream and fails the watcher; the worst case here is a repeat.
        poller = self.poller
        for item in batch:
            offset: Offset = item.broker_payload
            if poller is None or offset.generation != self.generation:
                continue
            if item.outcome.is_clean:
                await poller.commit(offset.current)
                self.committed = offset.current
                continue
            # Not stored (ack timeout, no subscriber): hand these samples out again, from the last commit.
            rewind_to = self.committed if self.committed is not None else offset.previous
            log.warning(
                "Edge Impulse samples after id %d were not confirmed as an asset event (%s); reporting them again",
                rewind_to,
                item.outcome,
            )
            poller.rewind(rewind_to)
            self.generation += 1
