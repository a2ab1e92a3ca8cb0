"""
The one probe for "are there new samples?", over the async client (the sensor runs it with ``asyncio.run``).

Per check it costs one ``GET raw-data/count`` while too little has landed, and a few pages of ``GET raw-data``
once enough has. ``minId``/``maxId`` narrow both on the server (they are in edgeimpulse-api 1.96, not in the
older OpenAPI file), but nothing here depends on the server honouring them: the listing is read newest first
(Studio's default order, ``id-desc``) and every id is checked on this side too. A server that ignored
``minId`` would only cost more pages, never a wrong answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.new_samples.query import SampleFilter

PAGE_SIZE = 500
DEFAULT_MAX_SAMPLE_IDS = 1000


class RequestClient(Protocol):
    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NewSamples:
    """
    What one probe found above ``after_id`` (and at or below ``through_id`` when given).

    ``sample_ids`` are ascending and, past ``max_sample_ids``, only the newest ones (``truncated``).
    ``watermark`` is the highest id found, or ``after_id`` when nothing was.
    """

    after_id: int
    watermark: int
    count: int
    sample_ids: list[int] = field(default_factory=list)
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def newest_sample_id(client: RequestClient, project_id: int, sample_filter: SampleFilter) -> int:
    """The highest sample id matching the filter, or 0 for none: the watermark of "nothing new yet"."""
    page = await _list(client, project_id, sample_filter, limit=1, offset=0, after_id=None, through_id=None)
    return max(page, default=0)


async def probe_new_samples(
    client: RequestClient,
    project_id: int,
    sample_filter: SampleFilter,
    after_id: int,
    *,
    want: int = 1,
    max_sample_ids: int = DEFAULT_MAX_SAMPLE_IDS,
    through_id: int | None = None,
) -> NewSamples:
    """
    Samples matching the filter with ``after_id < id [<= through_id]``; lists them only if ``want`` may be met.

    The count is exact while the listing is read to its end. Past ``max(want, max_sample_ids)`` ids the
    listing stops and the server's count stands in for the rest.
    """
    counted = await _count(client, project_id, sample_filter, after_id, through_id)
    if counted < want:
        return NewSamples(after_id=after_id, watermark=after_id, count=counted)
    scan_limit = max(want, max_sample_ids)
    found: set[int] = set()
    listed: set[int] = set()
    offset = 0
    complete = False
    while len(found) < scan_limit:
        page = await _list(
            client, project_id, sample_filter, limit=PAGE_SIZE, offset=offset, after_id=after_id, through_id=through_id
        )
        if offset and page and listed.issuperset(page):
            # A page of ids listed before: the server ignores ``offset``, and reading on would never end.
            path = f"/api/{project_id}/raw-data"
            raise EdgeImpulseAPIError(
                f"Edge Impulse GET {path} answered offset {offset} with the same samples as an earlier page: "
                "the server ignores 'offset', so the listing cannot be read to its end",
                method="GET",
                path=path,
            )
        listed.update(page)
        offset += len(page)
        fresh = [i for i in page if i > after_id and (through_id is None or i <= through_id)]
        found.update(fresh)
        # Newest first: an id at or below the watermark means the rest of the listing is older still.
        if len(page) < PAGE_SIZE or any(i <= after_id for i in page):
            complete = True
            break
    newest = sorted(found)[-max_sample_ids:] if max_sample_ids else []
    count = len(found) if complete else max(counted, len(found))
    return NewSamples(
        after_id=after_id,
        watermark=max(found, default=after_id),
        count=count,
        sample_ids=newest,
        truncated=count > len(newest),
    )


def _range_params(after_id: int | None, through_id: int | None) -> dict[str, Any]:
    return {
        "minId": after_id + 1 if after_id is not None else None,
        "maxId": through_id + 1 if through_id is not None else None,
    }


async def _count(
    client: RequestClient, project_id: int, sample_filter: SampleFilter, after_id: int, through_id: int | None
) -> int:
    path = f"/api/{project_id}/raw-data/count"
    params = {**sample_filter.params(), **_range_params(after_id, through_id)}
    count = (await client.request("GET", path, params=params)).get("count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise EdgeImpulseAPIError(f"Edge Impulse GET {path} answered without a count", method="GET", path=path)
    return count


async def _list(
    client: RequestClient,
    project_id: int,
    sample_filter: SampleFilter,
    *,
    limit: int,
    offset: int,
    after_id: int | None,
    through_id: int | None,
) -> list[int]:
    path = f"/api/{project_id}/raw-data"
    params = {
        **sample_filter.params(),
        **_range_params(after_id, through_id),
        "limit": limit,
        "offset": offset,
        "excludeSensors": True,  # the sensor lists are most of a page's weight and nothing here reads them
    }
    samples = (await client.request("GET", path, params=params)).get("samples")
    if not isinstance(samples, list):
        raise EdgeImpulseAPIError(f"Edge Impulse GET {path} answered without samples", method="GET", path=path)
    ids: list[int] = []
    for sample in samples:
        sample_id = sample.get("id") if isinstance(sample, dict) else None
        if isinstance(sample_id, int) and not isinstance(sample_id, bool):
            ids.append(sample_id)
    return ids
