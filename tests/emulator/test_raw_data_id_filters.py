"""The raw-data id range filters (minId, maxId) and category "all" of edgeimpulse-api 1.96, in the emulator."""

from __future__ import annotations

import requests

from tests.samples_util import sample_ids, upload


def get(em, path: str, **params) -> dict:
    resp = requests.get(
        f"{em.url}/v1/api/{em.project_id}/{path}", params=params, headers={"x-api-key": em.api_key}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_min_and_max_id_bound_listing_and_count_and_uploads_show_up(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    before = max(sample_ids(em, "all"))  # ids are per project, across categories
    new = upload(em, 3)
    assert new == [before + 1, before + 2, before + 3], "ids keep growing"
    listed = get(em, "raw-data", category="training", minId=before + 1)["samples"]
    assert [s["id"] for s in listed] == sorted(new, reverse=True), "newest first"
    assert get(em, "raw-data/count", category="training", minId=before + 1)["count"] == 3
    assert get(em, "raw-data/count", category="training", minId=before + 1, maxId=before + 3)["count"] == 2
    assert get(em, "data-summary")["dataSummary"]["dataCount"] == len(sample_ids(em))


def test_category_all_and_bad_ids(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    total = len(sample_ids(em, "training")) + len(sample_ids(em, "testing"))
    assert get(em, "raw-data/count", category="all")["count"] == total
    resp = requests.get(
        f"{em.url}/v1/api/{em.project_id}/raw-data/count",
        params={"category": "training", "minId": "x"},
        headers={"x-api-key": em.api_key},
        timeout=10,
    )
    assert resp.status_code == 400 and "minId" in resp.json()["error"]


def test_deleted_ids_are_never_reused(edgeimpulse_emulator):
    em = edgeimpulse_emulator
    (first,) = upload(em, 1)
    requests.delete(
        f"{em.url}/v1/api/{em.project_id}/raw-data/{first}", headers={"x-api-key": em.api_key}, timeout=10
    ).raise_for_status()
    (second,) = upload(em, 1)
    assert second > first
