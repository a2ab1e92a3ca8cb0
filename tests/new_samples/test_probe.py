"""The new-samples probe against a real loopback server whose raw-data listing ignores ``offset``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient
from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials
from airflow_provider_edgeimpulse.new_samples.probe import PAGE_SIZE, probe_new_samples
from airflow_provider_edgeimpulse.new_samples.query import SampleFilter

PROJECT_ID = 7
API_KEY = "ei_offset_ignoring_server_key"
SAMPLES = 3 * PAGE_SIZE  # more than one page, so the probe must page
# Enough to notice a repeated page; a probe that keeps reading is stopped by the test's own bound.
GIVE_UP_AFTER_S = 10.0


@dataclass
class OffsetBlindStudio:
    url: str
    hits: Counter[str]


@pytest.fixture
async def offset_blind_studio() -> AsyncIterator[OffsetBlindStudio]:
    """Lists the newest page of samples (newest first) whatever ``offset`` asks for; counts every request."""
    hits: Counter[str] = Counter()
    newest_page = [{"id": SAMPLES - i, "filename": f"s{SAMPLES - i}.json"} for i in range(PAGE_SIZE)]

    async def count(request: web.Request) -> web.Response:
        hits["count"] += 1
        return web.json_response({"success": True, "count": SAMPLES})

    async def listing(request: web.Request) -> web.Response:
        hits["list"] += 1
        hits[f"offset={request.query.get('offset')}"] += 1
        return web.json_response({"success": True, "samples": newest_page, "totalCount": SAMPLES})

    app = web.Application()
    app.router.add_get(f"/v1/api/{PROJECT_ID}/raw-data/count", count)
    app.router.add_get(f"/v1/api/{PROJECT_ID}/raw-data", listing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield OffsetBlindStudio(str(server.make_url("")).rstrip("/"), hits)
    finally:
        await server.close()


async def test_a_listing_that_ignores_offset_stops_the_probe_with_a_clear_error(offset_blind_studio):
    studio = offset_blind_studio
    credentials = EdgeImpulseCredentials(
        studio_url=studio.url, auth_type=AuthType.API_KEY, api_key=API_KEY, project_id=PROJECT_ID
    )
    async with AsyncEdgeImpulseClient(credentials) as client:
        with pytest.raises(EdgeImpulseAPIError, match=r"ignores 'offset'") as info:
            async with asyncio.timeout(GIVE_UP_AFTER_S):
                await probe_new_samples(client, PROJECT_ID, SampleFilter(), after_id=0, want=1, max_sample_ids=1000)
    assert f"/api/{PROJECT_ID}/raw-data" in str(info.value)
    assert API_KEY not in str(info.value)
    # The second page repeats the first: noticed there, not after hundreds of requests.
    assert studio.hits["list"] == 2, studio.hits
    assert studio.hits[f"offset={PAGE_SIZE}"] == 1, studio.hits
