"""
Triggers that fire when new samples land in an Edge Impulse project.

- :class:`EdgeImpulseNewSamplesTrigger`: an event trigger for Airflow 3 ``AssetWatcher`` s: a DAG scheduled on
  the asset runs once per batch of new samples.
- :class:`EdgeImpulseNewSamplesSensorTrigger`: the one-shot wait of the deferrable
  :class:`~airflow_provider_edgeimpulse.sensors.new_samples.EdgeImpulseNewSamplesSensor`.

Both poll REST (``GET raw-data/count``, then the listing): Edge Impulse documents no socket event for new or
ingested samples (only job events, ``job-data-{id}`` and ``job-finished``), so there is nothing to wake on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_edgeimpulse.hooks.credentials import parse_project_id
from airflow_provider_edgeimpulse.new_samples import watermark as wm
from airflow_provider_edgeimpulse.new_samples.poller import BatchPoller
from airflow_provider_edgeimpulse.new_samples.probe import DEFAULT_MAX_SAMPLE_IDS, NewSamples, probe_new_samples
from airflow_provider_edgeimpulse.new_samples.query import (
    SampleFilter,
    parse_max_sample_ids,
    parse_min_new_samples,
    parse_start_after,
)
from airflow_provider_edgeimpulse.new_samples.watch import WatchSpec, result_payload
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID

DEFAULT_POLL_INTERVAL_S = 60.0


def _poll_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"poll_interval must be a positive number of seconds, got {value!r}")
    return float(value)


class EdgeImpulseNewSamplesTrigger(BaseEventTrigger):
    """
    Emit an event each time at least ``min_new_samples`` new samples matching the filters have landed.

    Use it in an ``AssetWatcher``; the event (also the asset event's ``extra["payload"]``) is
    ``{"project_id", "category", "filters", "new_sample_count", "sample_ids", "truncated", "watermark":
    {"key", "previous", "current"}}`` with at most ``max_sample_ids`` ids (the newest).

    **The watermark** is the highest sample id already reported. It starts from ``start_after_sample_id``
    (kwargs, fixed at DAG parse; ``None``: the newest sample at the first check) and is then kept in the
    Airflow Variable ``watermark_key`` (default: derived from connection, project and filters), because
    Airflow recreates a watcher trigger from its DAG-file kwargs (their hash is its identity), so nothing
    learnt at run time can live in them. A triggerer restart, a redeploy, or a change of ``poll_interval``
    (a new trigger row) all resume from the Variable. (Why a Variable rather than the asset state store or
    the last asset event: see ``airflow_provider_edgeimpulse/new_samples/watermark.py``.)

    **When it advances** decides "neither lost nor repeated":

    - Airflow 3.3+: the trigger runs as a shared stream in ack mode. The triggerer confirms each event once
      it is stored as an asset event; only then is the watermark committed. An event lost with a stopping
      triggerer is found again after the restart; an event already stored is not. The one window left is a
      crash between the confirmation and the Variable write (about a second): that batch is reported again
      (at least once, never lost).
    - Airflow 3.0-3.2 (plain ``run()``): the trigger cannot learn when its event is stored, so it commits
      the watermark just before handing the event over; a triggerer that stops before its next sync (about
      a second) drops that one event (at most once). A restart never repeats one.

    Within one triggerer's life a batch is never reported twice, whatever the timing: the position moves
    past a batch the moment it is handed out.

    :param edgeimpulse_conn_id: the Airflow connection; credentials are resolved in the triggerer.
    :param project_id: the project; default: the connection's, or the API key's only project.
    :param category: ``training``, ``testing``, ``validation``, ``post-processing`` or ``all``.
    :param labels: only samples with one of these labels.
    :param filename: only samples whose file name contains this.
    :param search: Studio's sample search text.
    :param min_new_samples: how many new samples make an event (at least 1).
    :param poll_interval: seconds between checks (one ``raw-data/count`` call each).
    :param start_after_sample_id: the first watermark when none is stored.
    :param watermark_key: the Variable holding the watermark; give one per watcher if two watchers share
        connection, project and filters but differ otherwise.
    :param max_sample_ids: the most sample ids an event carries (0: counts only).
    """

    def __init__(
        self,
        *,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | None = None,
        category: str = "training",
        labels: list[str] | None = None,
        filename: str | None = None,
        search: str | None = None,
        min_new_samples: int = 1,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        start_after_sample_id: int | None = None,
        watermark_key: str | None = None,
        max_sample_ids: int = DEFAULT_MAX_SAMPLE_IDS,
    ) -> None:
        super().__init__()
        # Checked here: a watcher is built when the DAG file is parsed, and that is where a mistake should show.
        sample_filter = SampleFilter.parse(category, labels, filename, search)
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.project_id = parse_project_id(project_id)
        self.category = sample_filter.category
        self.labels = list(sample_filter.labels) if sample_filter.labels is not None else None
        self.filename = sample_filter.filename
        self.search = sample_filter.search
        self.min_new_samples = parse_min_new_samples(min_new_samples)
        self.poll_interval = _poll_interval(poll_interval)
        self.start_after_sample_id = parse_start_after(start_after_sample_id)
        self.watermark_key = watermark_key or None
        self.max_sample_ids = parse_max_sample_ids(max_sample_ids)
        # Not a kwarg: where watermarks live is not part of the trigger's identity (tests swap in memory).
        self.watermark_store: wm.WatermarkStore = wm.VariableWatermarkStore()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "edgeimpulse_conn_id": self.edgeimpulse_conn_id,
                "project_id": self.project_id,
                "category": self.category,
                "labels": self.labels,
                "filename": self.filename,
                "search": self.search,
                "min_new_samples": self.min_new_samples,
                "poll_interval": self.poll_interval,
                "start_after_sample_id": self.start_after_sample_id,
                "watermark_key": self.watermark_key,
                "max_sample_ids": self.max_sample_ids,
            },
        )

    @property
    def spec(self) -> WatchSpec:
        return WatchSpec(
            conn_id=self.edgeimpulse_conn_id,
            project_id=self.project_id,
            sample_filter=SampleFilter.of(self.category, self.labels, self.filename, self.search),
            min_new_samples=self.min_new_samples,
            max_sample_ids=self.max_sample_ids,
            start_after_sample_id=self.start_after_sample_id,
            watermark_key=self.watermark_key,
            scope="watcher",
        )

    # -- Airflow 3.0-3.2 (and direct use): one poll loop per trigger ------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with BatchPoller(self) as poller:
            while True:
                batch = await poller.next_batch()
                # Commit first: with no way to learn when the event is stored, a repeat is the worse risk.
                await poller.commit(batch.watermark)
                yield TriggerEvent(poller.payload(batch))

    # -- Airflow 3.3+: a shared stream in ack mode, so the watermark moves only once the event is stored ----

    def shared_stream_key(self) -> Any:
        # One stream per trigger: siblings with other thresholds must not share (or commit) a position.
        _, kwargs = self.serialize()
        return ("edgeimpulse-new-samples", json.dumps(kwargs, sort_keys=True))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        from airflow_provider_edgeimpulse.triggers._new_samples_stream import NewSamplesProducer

        return NewSamplesProducer(cls(**kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        # The raw events are finished payloads; yielding each before pulling the next binds it for the ack.
        async for payload in shared_stream:
            yield TriggerEvent(payload)


class EdgeImpulseNewSamplesSensorTrigger(BaseTrigger):
    """
    The deferred wait of ``EdgeImpulseNewSamplesSensor``: fire once when enough samples are above ``after_id``.

    ``after_id`` is the watermark at deferral, in the kwargs: a triggerer restart re-checks from the same
    point and finds the same samples, so nothing is lost or double-counted. With ``end_task_on_success``
    (Airflow 3) the task ends here, its result as XCom ``return_value``, after the watermark in
    ``commit_watermark_key`` (if any) is moved forward; otherwise the worker resumes with
    ``{"status": "success", "result": ...}``. A deadline gives ``{"status": "timeout"}``; a failure
    ``{"status": "error", "message"}``.
    """

    def __init__(
        self,
        *,
        project_id: int,
        after_id: int,
        watermark_key: str,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        category: str = "training",
        labels: list[str] | None = None,
        filename: str | None = None,
        search: str | None = None,
        min_new_samples: int = 1,
        max_sample_ids: int = DEFAULT_MAX_SAMPLE_IDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        deadline: float | None = None,
        commit_watermark_key: str | None = None,
        end_task_on_success: bool = False,
    ) -> None:
        super().__init__()
        self.project_id = int(project_id)
        self.after_id = int(after_id)
        self.watermark_key = watermark_key
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.category = category
        self.labels = list(labels) if labels is not None else None
        self.filename = filename
        self.search = search
        self.min_new_samples = int(min_new_samples)
        self.max_sample_ids = int(max_sample_ids)
        self.poll_interval = _poll_interval(poll_interval)
        self.deadline = deadline
        self.commit_watermark_key = commit_watermark_key
        self.end_task_on_success = end_task_on_success
        self.watermark_store: wm.WatermarkStore = wm.VariableWatermarkStore()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "project_id": self.project_id,
                "after_id": self.after_id,
                "watermark_key": self.watermark_key,
                "edgeimpulse_conn_id": self.edgeimpulse_conn_id,
                "category": self.category,
                "labels": self.labels,
                "filename": self.filename,
                "search": self.search,
                "min_new_samples": self.min_new_samples,
                "max_sample_ids": self.max_sample_ids,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "commit_watermark_key": self.commit_watermark_key,
                "end_task_on_success": self.end_task_on_success,
            },
        )

    @property
    def spec(self) -> WatchSpec:
        return WatchSpec(
            conn_id=self.edgeimpulse_conn_id,
            project_id=self.project_id,
            sample_filter=SampleFilter.of(self.category, self.labels, self.filename, self.search),
            min_new_samples=self.min_new_samples,
            max_sample_ids=self.max_sample_ids,
            watermark_key=self.watermark_key,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials

        spec = self.spec
        try:
            credentials = await aresolve_credentials(self.edgeimpulse_conn_id)
            async with AsyncEdgeImpulseClient(credentials) as client:
                while True:
                    found = await probe_new_samples(
                        client,
                        self.project_id,
                        spec.sample_filter,
                        self.after_id,
                        want=self.min_new_samples,
                        max_sample_ids=self.max_sample_ids,
                    )
                    if spec.is_enough(found):
                        break
                    left = None if self.deadline is None else self.deadline - time.time()
                    if left is not None and left <= 0:
                        yield TriggerEvent(self._event("timeout", self._short_message(found)))
                        return
                    self.log.info("%s; checking again in %.0f s", self._short_message(found), self.poll_interval)
                    await asyncio.sleep(self.poll_interval if left is None else min(self.poll_interval, left))
        except asyncio.CancelledError:
            raise  # a triggerer restart: the rebuilt trigger checks again from the same watermark
        except Exception as err:
            yield TriggerEvent(self._event("error", f"Watching Edge Impulse project {self.project_id} failed: {err}"))
            return
        result = result_payload(spec, self.project_id, self.watermark_key, found)
        self.log.info("%d new Edge Impulse sample(s) up to id %d", found.count, found.watermark)
        if self.end_task_on_success:
            try:
                if self.commit_watermark_key:
                    await wm.aadvance(self.watermark_store, self.commit_watermark_key, found.watermark, "sensor")
            except Exception as err:
                # Nothing is committed yet: failing keeps the samples new for the next try.
                yield TriggerEvent(self._event("error", f"Could not store the watermark: {err}"))
                return
            from airflow.triggers.base import TaskSuccessEvent

            yield TaskSuccessEvent(xcoms={"return_value": result})
            return
        yield TriggerEvent({**self._event("success", "enough new samples"), "result": result})

    def _short_message(self, found: NewSamples) -> str:
        return (
            f"{found.count} of {self.min_new_samples} new sample(s) after id {self.after_id} "
            f"({self.spec.sample_filter.describe()})"
        )

    def _event(self, status: str, message: str) -> dict[str, Any]:
        return {"status": status, "message": message, "project_id": self.project_id, "after_id": self.after_id}
