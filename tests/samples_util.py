"""Put samples into the emulator and take them out again, the way a data pipeline would (over HTTP)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import requests

_counter = itertools.count(1)


def upload(em: Any, count: int = 1, *, label: str = "knock", category: str = "training") -> list[int]:
    """Upload ``count`` distinct files through the ingestion endpoint; return their new sample ids."""
    files = []
    for _ in range(count):
        n = next(_counter)
        body = json.dumps({"payload": {"values": [[n, 0, 9.81]]}, "n": n}).encode()
        files.append(("data", (f"{label}.{n}.json", body, "application/json")))
    resp = requests.post(
        f"{em.url}/api/{category}/files",
        headers={"x-api-key": em.api_key, "x-label": label},
        files=files,
        timeout=10,
    )
    resp.raise_for_status()
    answers = resp.json()["files"]
    assert all(a["success"] for a in answers), answers
    return [int(a["sampleId"]) for a in answers]


def delete(em: Any, *sample_ids: int) -> None:
    for sample_id in sample_ids:
        resp = requests.delete(
            f"{em.url}/v1/api/{em.project_id}/raw-data/{sample_id}", headers={"x-api-key": em.api_key}, timeout=10
        )
        resp.raise_for_status()


def sample_ids(em: Any, category: str = "training") -> list[int]:
    resp = requests.get(
        f"{em.url}/v1/api/{em.project_id}/raw-data",
        params={"category": category},
        headers={"x-api-key": em.api_key},
        timeout=10,
    )
    resp.raise_for_status()
    return sorted(s["id"] for s in resp.json()["samples"])
