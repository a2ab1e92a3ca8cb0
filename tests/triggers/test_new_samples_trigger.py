"""EdgeImpulseNewSamplesTrigger (asset watcher): one event per batch, across restarts, never repeated."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow.triggers.base import TriggerEvent

from airflow_provider_edgeimpulse.new_samples import watermark as wm
from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesTrigger
from tests.samples_util import delete, sample_ids, upload

FAST = 0.05
# Event triggers drive asset watchers, which Airflow 2 does not have: there the class is a plain BaseTrigger.
needs_asset_watchers = pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS, reason="asset watchers (BaseEventTrigger) arrived in Airflow 3.0"
)
# The triggerer's shared streams, through which ack mode commits, arrived in Airflow 3.3.
needs_shared_streams = pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="the triggerer's shared streams (ack mode) arrived in Airflow 3.3"
)


class Watch:
    """A trigger's run() in the background, its events in a queue: what the triggerer does, minus the DB."""

    def __init__(self, trigger: EdgeImpulseNewSamplesTrigger) -> None:
        self.trigger = trigger
        self.events: asyncio.Queue[TriggerEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.trigger.run():
            await self.events.put(event)

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return (await self.events.get()).payload

    async def quiet_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.events.empty(), f"unexpected event: {self.events.get_nowait()!r}"

    async def stop(self) -> None:
        """What a triggerer shutdown does: cancel the trigger's task."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def make(store: wm.MemoryWatermarkStore, **kwargs: Any) -> EdgeImpulseNewSamplesTrigger:
    kwargs.setdefault("poll_interval", FAST)
    trigger = EdgeImpulseNewSamplesTrigger(**kwargs)
    trigger.watermark_store = store
    return trigger


def rebuilt(trigger: EdgeImpulseNewSamplesTrigger) -> EdgeImpulseNewSamplesTrigger:
    """A triggerer restart: a new instance from the stored kwargs, the same (persistent) watermark store."""
    _, kwargs = trigger.serialize()
    fresh = EdgeImpulseNewSamplesTrigger(**kwargs)
    fresh.watermark_store = trigger.watermark_store
    return fresh


async def started(store: wm.MemoryWatermarkStore, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not store.values:
            await asyncio.sleep(0.01)


async def up(em: Any, count: int, **kwargs: Any) -> list[int]:
    return await asyncio.to_thread(upload, em, count, **kwargs)


def test_serialize_round_trips_exactly(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    trigger = EdgeImpulseNewSamplesTrigger(
        project_id=str(em.project_id), labels=["knock", "idle"], min_new_samples=5, poll_interval=30
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_edgeimpulse.triggers.new_samples.EdgeImpulseNewSamplesTrigger"
    again = EdgeImpulseNewSamplesTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["project_id"] == em.project_id and kwargs["poll_interval"] == 30.0
    dumped = json.dumps(kwargs)
    assert em.api_key not in dumped and em.password not in dumped


@needs_asset_watchers
def test_it_is_an_event_trigger_whose_watcher_hash_is_stable():
    from airflow.triggers.base import BaseEventTrigger

    trigger = EdgeImpulseNewSamplesTrigger(project_id=1, labels=["knock", "idle"], min_new_samples=5)
    assert isinstance(trigger, BaseEventTrigger)
    classpath, kwargs = trigger.serialize()
    again = EdgeImpulseNewSamplesTrigger(**kwargs)
    # The triggerer's identity for a watcher: the same DAG file must give the same hash on every parse.
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*again.serialize())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_new_samples": 0}, "min_new_samples must be at least 1"),
        ({"category": "trianing"}, "category must be one of"),
        ({"poll_interval": 0}, "poll_interval must be a positive"),
        ({"labels": [""]}, "labels must be a list of non-empty strings"),
        ({"start_after_sample_id": -1}, "start_after_sample_id must be at least 0"),
        ({"project_id": "abc"}, "project_id must be a positive integer"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(Exception, match=message):
        EdgeImpulseNewSamplesTrigger(**kwargs)


async def test_fires_once_per_batch_with_exactly_the_new_ids(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    watch = Watch(make(store, min_new_samples=3))
    try:
        await started(store)
        first = await up(em, 2)
        await watch.quiet_for(0.4)  # 2 of 3: not yet
        first += await up(em, 1)
        event = await watch.next()
        assert event["sample_ids"] == first
        assert event["new_sample_count"] == 3
        assert event["watermark"]["current"] == max(first)
        await watch.quiet_for(0.4)  # the same samples never fire again
        second = await up(em, 3)
        event = await watch.next()
        assert event["sample_ids"] == second
        assert event["watermark"]["previous"] == max(first)
    finally:
        await watch.stop()
    assert wm.parse_watermark("k", next(iter(store.values.values()))) == max(second)


async def test_existing_samples_are_not_new_unless_asked(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    seeded = sample_ids(em)
    store = wm.MemoryWatermarkStore()
    watch = Watch(make(store))
    try:
        await started(store)
        await watch.quiet_for(0.4)
    finally:
        await watch.stop()
    watch = Watch(make(wm.MemoryWatermarkStore(), start_after_sample_id=0))
    try:
        event = await watch.next()
        assert event["sample_ids"] == seeded
    finally:
        await watch.stop()


async def test_a_restart_neither_loses_nor_repeats(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    trigger = make(store, min_new_samples=2)
    watch = Watch(trigger)
    await started(store)
    batch = await up(em, 2)
    assert (await watch.next())["sample_ids"] == batch
    await watch.stop()

    # Samples landing while no triggerer runs are reported after the restart, and only those.
    while_down = await up(em, 2)
    watch = Watch(rebuilt(trigger))
    try:
        assert (await watch.next())["sample_ids"] == while_down
        await watch.quiet_for(0.3)
    finally:
        await watch.stop()

    # A restart with nothing new reports nothing (the first batch is not repeated).
    watch = Watch(rebuilt(trigger))
    try:
        await watch.quiet_for(0.4)
        later = await up(em, 2)
        assert (await watch.next())["sample_ids"] == later
    finally:
        await watch.stop()


async def test_deleting_samples_does_not_fire_or_hide_new_ones(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    old = sample_ids(em)
    store = wm.MemoryWatermarkStore()
    watch = Watch(make(store, min_new_samples=2))
    try:
        await started(store)
        await asyncio.to_thread(delete, em, *old[:3])
        await watch.quiet_for(0.4)
        # Net count unchanged (3 deleted, 2 added), yet both new samples are seen.
        await asyncio.to_thread(delete, em, old[3])
        new = await up(em, 2)
        assert (await watch.next())["sample_ids"] == new
        # A new sample deleted before it is seen is simply not counted.
        gone = await up(em, 1)
        await asyncio.to_thread(delete, em, *gone)
        kept = await up(em, 1)
        await watch.quiet_for(0.3)
        kept += await up(em, 1)
        assert (await watch.next())["sample_ids"] == kept
    finally:
        await watch.stop()


async def test_filters_decide_what_counts(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    watch = Watch(make(store, labels=["wave"], category="testing"))
    try:
        await started(store)
        await up(em, 2, label="knock", category="testing")
        await up(em, 2, label="wave", category="training")
        await watch.quiet_for(0.4)
        wanted = await up(em, 1, label="wave", category="testing")
        event = await watch.next()
        assert event["sample_ids"] == wanted
        assert event["category"] == "testing" and event["filters"]["labels"] == ["wave"]
    finally:
        await watch.stop()


async def test_ids_are_capped_but_the_count_is_whole(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    watch = Watch(make(store, min_new_samples=5, max_sample_ids=3))
    try:
        await started(store)
        new = await up(em, 5)
        event = await watch.next()
        assert event["new_sample_count"] == 5
        assert event["sample_ids"] == new[-3:]
        assert event["truncated"] is True
        assert event["watermark"]["current"] == max(new)
    finally:
        await watch.stop()


async def test_a_studio_outage_does_not_end_the_watcher(edgeimpulse_emulator, caplog):
    em = edgeimpulse_emulator
    store = wm.MemoryWatermarkStore()
    watch = Watch(make(store))
    try:
        await started(store)
        await asyncio.to_thread(em.fault, status=500, count=6, path="raw-data")
        new = await up(em, 1)
        # 6 failures outlast one request's 5 attempts: the watcher itself sees the outage and carries on.
        assert (await watch.next(timeout=60))["sample_ids"] == new
        assert "Could not check for new samples" in caplog.text
        assert not watch.task.done()
    finally:
        await watch.stop()


async def test_the_stored_watermark_wins_over_the_seed_and_bad_values_are_reported(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    newest = max(sample_ids(em))
    store = wm.MemoryWatermarkStore()
    trigger = make(store, start_after_sample_id=0, min_new_samples=1)
    key = trigger.spec.key(em.project_id)
    store.values[key] = str(newest)  # set by hand in the UI, as a plain number
    watch = Watch(trigger)
    try:
        new = await up(em, 1)
        assert (await watch.next())["sample_ids"] == new
    finally:
        await watch.stop()
    with pytest.raises(ValueError, match="should hold a watermark"):
        wm.parse_watermark(key, "yesterday")


# -- Airflow 3.3: the shared stream in ack mode, driven the way the triggerer's run_trigger() drives it ---------


class AckTriggerer:
    """Subscribe, filter, bind each event for the ack; persistence is confirmed only when the test says so."""

    def __init__(self, trigger: EdgeImpulseNewSamplesTrigger, trigger_id: int = 1) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager(ack_timeout=60)
        self.events: asyncio.Queue[tuple[dict[str, Any], int | None]] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(trigger, trigger_id))

    async def _run(self, trigger: EdgeImpulseNewSamplesTrigger, trigger_id: int) -> None:
        key = trigger.shared_stream_key()
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                self.events.put_nowait((event.payload, seq))
        finally:
            await self.manager.unsubscribe(trigger_id, key)

    async def next(self, timeout: float = 10) -> tuple[dict[str, Any], int | None]:
        async with asyncio.timeout(timeout):
            return await self.events.get()

    def stored(self, seq: int | None) -> None:
        """The supervisor wrote the asset event: what the next state sync reports back."""
        assert seq is not None, "the event was not bound to the shared stream's ack"
        self.manager.confirm_persisted([seq])

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.manager.stop_all()


@pytest.fixture
def shared_store(monkeypatch) -> wm.MemoryWatermarkStore:
    """The producer builds its own trigger from kwargs, so the Variable store itself is swapped for memory."""
    store = wm.MemoryWatermarkStore()
    monkeypatch.setattr(wm, "VariableWatermarkStore", lambda: store)
    return store


async def stored_watermark(store: wm.MemoryWatermarkStore, expected: int, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while [wm.parse_watermark("k", v) for v in store.values.values()] != [expected]:
            await asyncio.sleep(0.01)


def shared(**kwargs: Any) -> EdgeImpulseNewSamplesTrigger:
    return EdgeImpulseNewSamplesTrigger(poll_interval=FAST, **kwargs)


@needs_shared_streams
async def test_ack_mode_commits_only_once_the_event_is_stored(edgeimpulse_emulator, shared_store):
    em = edgeimpulse_emulator
    baseline = max(sample_ids(em))
    trigger = shared(min_new_samples=2)
    triggerer = AckTriggerer(trigger)
    try:
        await started(shared_store)
        batch = await up(em, 2)
        payload, seq = await triggerer.next()
        assert payload["sample_ids"] == batch
        await asyncio.sleep(0.3)
        await stored_watermark(shared_store, baseline)  # not stored as an asset event yet: not committed
        triggerer.stored(seq)
        await stored_watermark(shared_store, max(batch))
    finally:
        await triggerer.stop()

    triggerer = AckTriggerer(rebuilt(trigger))  # restart: the stored batch is not repeated
    try:
        await asyncio.sleep(0.4)
        assert triggerer.events.empty()
        later = await up(em, 2)
        payload, seq = await triggerer.next()
        assert payload["sample_ids"] == later
    finally:
        await triggerer.stop()


@needs_shared_streams
async def test_ack_mode_reports_again_an_event_lost_with_the_triggerer(edgeimpulse_emulator, shared_store):
    em = edgeimpulse_emulator
    trigger = shared(min_new_samples=1)
    triggerer = AckTriggerer(trigger)
    try:
        await started(shared_store)
        batch = await up(em, 3)
        payload, _ = await triggerer.next()
        assert payload["sample_ids"] == batch
    finally:
        await triggerer.stop()  # stopped before the supervisor stored the event

    triggerer = AckTriggerer(rebuilt(trigger))
    try:
        payload, seq = await triggerer.next()
        assert payload["sample_ids"] == batch, "an event that never reached the database is not lost"
        triggerer.stored(seq)
        await stored_watermark(shared_store, max(batch))
    finally:
        await triggerer.stop()


@needs_shared_streams
async def test_ack_mode_rewinds_when_an_event_was_not_confirmed(edgeimpulse_emulator):
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    from airflow_provider_edgeimpulse.triggers._new_samples_stream import NewSamplesProducer, Offset
    from airflow_provider_edgeimpulse.triggers.new_samples import BatchPoller

    store = wm.MemoryWatermarkStore()
    trigger = make(store)
    producer = NewSamplesProducer(trigger)
    poller = producer.poller = BatchPoller(trigger)
    poller.key, poller.position, producer.committed = "k", 17, 12
    lost = AdvanceItem(Offset(12, 15, 0), AdvanceOutcome(acked=0, failed=1))
    stale = AdvanceItem(Offset(15, 17, 0), AdvanceOutcome(acked=1, failed=0))
    await producer.advance([lost, stale])
    assert poller.position == 12, "everything after the last commit is handed out again"
    assert store.values == {}, "a later ack from before the rewind must not skip the lost batch"
    await producer.advance([AdvanceItem(Offset(12, 17, producer.generation), AdvanceOutcome(acked=1, failed=0))])
    assert wm.parse_watermark("k", store.values["k"]) == 17
