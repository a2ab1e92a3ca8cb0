"""
One watch, as the sensor and both triggers share it: settings, project, watermark key, first watermark, result.

Kept free of Airflow's task and trigger classes so the same steps run on a worker and in the triggerer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.new_samples import watermark as wm
from airflow_provider_edgeimpulse.new_samples.probe import NewSamples, RequestClient, newest_sample_id
from airflow_provider_edgeimpulse.new_samples.query import SampleFilter, default_watermark_key


@dataclass(frozen=True)
class WatchSpec:
    """
    What to watch and when it counts as "new data".

    ``start_after_sample_id`` seeds the watermark when none is stored yet: ``None`` means "from the newest
    sample now" (only what lands after the first check counts), ``0`` means every sample counts. Once a
    watermark is stored it wins; to start over, delete the Variable.
    """

    conn_id: str
    project_id: int | None
    sample_filter: SampleFilter
    min_new_samples: int = 1
    max_sample_ids: int = 1000
    start_after_sample_id: int | None = None
    watermark_key: str | None = None
    scope: str = "watcher"

    def key(self, project_id: int | None) -> str:
        if self.watermark_key:
            return self.watermark_key
        return default_watermark_key(self.scope, self.conn_id, project_id, self.sample_filter)

    def is_enough(self, found: NewSamples) -> bool:
        return found.count >= self.min_new_samples


async def resolve_project_id(client: Any, spec: WatchSpec, credentials: EdgeImpulseCredentials) -> int:
    """The task's project, else the connection's, else (API key) the key's only project."""
    if spec.project_id is not None:
        return spec.project_id
    if credentials.project_id is not None:
        return credentials.project_id
    return int(await client.project_id())


async def first_watermark(
    client: RequestClient, spec: WatchSpec, project_id: int, store: wm.WatermarkStore, key: str, note: str
) -> int:
    """The stored watermark; without one, the seed, stored at once so a restart does not pick a new one."""
    stored = await wm.aget(store, key)
    if stored is not None:
        return stored
    seed = spec.start_after_sample_id
    if seed is None:
        seed = await newest_sample_id(client, project_id, spec.sample_filter)
    return await wm.aadvance(store, key, seed, f"{note} (first watermark)")


def result_payload(spec: WatchSpec, project_id: int, key: str, found: NewSamples) -> dict[str, Any]:
    """The XCom / event payload: plain JSON, no secret."""
    sf = spec.sample_filter
    return {
        "project_id": project_id,
        "category": sf.category,
        "filters": {
            "labels": list(sf.labels) if sf.labels is not None else None,
            "filename": sf.filename,
            "search": sf.search,
        },
        "new_sample_count": found.count,
        "sample_ids": list(found.sample_ids),
        "truncated": found.truncated,
        "watermark": {"key": key, "previous": found.after_id, "current": found.watermark},
    }
