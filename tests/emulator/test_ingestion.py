"""The ingestion service at the root of the emulator: multipart uploads with Studio's headers and limits."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

from tests.emulator.conftest import Studio


def _upload(emulator, category: str, files: list[tuple[str, bytes]], **headers: str) -> requests.Response:
    parts = [("data", (name, content, "application/json")) for name, content in files]
    sent = {"x-api-key": emulator.api_key, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return requests.post(f"{emulator.url}/api/{category}/files", files=parts, headers=sent, timeout=60)


def _ok(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return list(body["files"])


def test_upload_with_label_and_metadata_shows_up_in_raw_data(emulator, studio: Studio, validate) -> None:
    label = "café / noise"
    files = _ok(
        _upload(
            emulator,
            "training",
            [("one.json", b'{"a": 1}'), ("two.json", b'{"a": 2}')],
            x_label=quote(label),
            x_metadata=json.dumps({"site": "lab", "run": 3}),
        )
    )
    assert [f["success"] for f in files] == [True, True]
    assert [f["fileName"] for f in files] == ["one.json", "two.json"]
    ids = [f["sampleId"] for f in files]
    assert ids[1] == ids[0] + 1 and ids[0] > 18
    listing = validate("ListSamplesResponse", studio.get("raw-data", params={"category": "training", "limit": 2}))
    newest = listing.samples
    assert [s.id for s in newest] == ids[::-1]
    assert newest[0].created > newest[1].created
    assert {s.label for s in newest} == {label}
    assert newest[0].metadata == {"site": "lab", "run": "3"}
    assert studio.ok("GET", "raw-data/count", params={"category": "training"})["count"] == 14
    assert label in studio.ok("GET", "")["dataSummary"]["labels"]


def test_label_from_file_name_and_no_label(emulator, studio: Studio) -> None:
    inferred = _ok(_upload(emulator, "testing", [("knock.01.json", b"1")]))[0]["sampleId"]
    unlabeled = _ok(_upload(emulator, "testing", [("knock.02.json", b"2")], x_no_label="1"))[0]["sampleId"]
    assert studio.ok("GET", f"raw-data/{inferred}")["sample"]["label"] == "knock"
    assert studio.ok("GET", f"raw-data/{unlabeled}")["sample"]["label"] == ""
    assert studio.ok("GET", f"raw-data/{inferred}")["sample"]["category"] == "testing"


def test_add_date_id_makes_names_unique(emulator, studio: Studio) -> None:
    first = _ok(_upload(emulator, "training", [("same.json", b"1")], x_add_date_id="1"))[0]["sampleId"]
    second = _ok(_upload(emulator, "training", [("same.json", b"2")], x_add_date_id="1"))[0]["sampleId"]
    names = {studio.ok("GET", f"raw-data/{i}")["sample"]["filename"] for i in (first, second)}
    assert len(names) == 2 and all(n.startswith("same.") for n in names)


def test_disallow_duplicates(emulator) -> None:
    _ok(_upload(emulator, "training", [("a.json", b"same bytes")]))
    again = _ok(
        _upload(emulator, "training", [("b.json", b"same bytes"), ("c.json", b"new")], x_disallow_duplicates="1")
    )
    assert again[0]["success"] is False and "hash" in again[0]["error"]
    assert again[1]["success"] is True
    allowed = _ok(_upload(emulator, "training", [("d.json", b"same bytes")]))
    assert allowed[0]["success"] is True


def test_split_and_anomaly_categories(emulator, studio: Studio) -> None:
    files = [(f"s{i}.json", str(i).encode()) for i in range(40)]
    ids = [f["sampleId"] for f in _ok(_upload(emulator, "split", files, x_label="split"))]
    categories = [studio.ok("GET", f"raw-data/{i}")["sample"]["category"] for i in ids]
    assert {"training", "testing"} == set(categories)
    anomaly = _ok(_upload(emulator, "anomaly", [("odd.json", b"x")]))[0]["sampleId"]
    assert studio.ok("GET", f"raw-data/{anomaly}")["sample"]["category"] == "post-processing"


def test_many_files_in_one_request(emulator, studio: Studio) -> None:
    files = [(f"f{i}.json", f"{i}".encode()) for i in range(1000)]
    results = _ok(_upload(emulator, "training", files, x_label="bulk"))
    assert len(results) == 1000 and all(r["success"] for r in results)
    count = studio.ok("GET", "raw-data/count", params={"category": "training", "labels": '["bulk"]'})["count"]
    assert count == 1000


def test_more_than_1000_files_is_400(emulator, studio: Studio) -> None:
    files = [(f"f{i}.json", b"x") for i in range(1001)]
    response = _upload(emulator, "training", files)
    assert response.status_code == 400
    assert "1000" in response.json()["error"]
    assert studio.ok("GET", "raw-data/count", params={"category": "training"})["count"] == 12


def test_too_large_file_is_a_per_file_error(emulator) -> None:
    emulator.configure(ingestion_max_file_bytes=1024)
    files = _ok(_upload(emulator, "training", [("big.json", b"x" * 2048), ("small.json", b"x")]))
    assert files[0]["success"] is False and "too large" in files[0]["error"]
    assert files[1]["success"] is True


def test_real_100_mb_limit(emulator) -> None:
    big = b"\0" * (100 * 1024 * 1024 + 1)
    files = _ok(_upload(emulator, "training", [("huge.bin", big)]))
    assert files[0]["success"] is False and "100 MB" in files[0]["error"]


def test_auth_and_request_errors(emulator) -> None:
    url = f"{emulator.url}/api/training/files"
    missing = requests.post(url, files=[("data", ("a.json", b"1"))], timeout=10)
    assert missing.status_code == 401 and missing.json()["success"] is False
    wrong = requests.post(url, files=[("data", ("a.json", b"1"))], headers={"x-api-key": "bad"}, timeout=10)
    assert wrong.status_code == 401
    token = requests.post(
        f"{emulator.url}/v1/api-login", json={"username": "emulator", "password": "emulator"}, timeout=10
    ).json()["token"]
    with_jwt = requests.post(url, files=[("data", ("a.json", b"1"))], headers={"x-jwt-token": token}, timeout=10)
    assert with_jwt.status_code == 200
    bad_meta = _upload(emulator, "training", [("a.json", b"1")], x_metadata="{nope")
    assert bad_meta.status_code == 400 and "x-metadata" in bad_meta.json()["error"]
    not_multipart = requests.post(url, data=b"raw", headers={"x-api-key": emulator.api_key}, timeout=10)
    assert not_multipart.status_code == 400
    no_files = requests.post(
        url, files=[("other", ("a.json", b"1"))], headers={"x-api-key": emulator.api_key}, timeout=10
    )
    assert no_files.status_code == 400
    bad_category = _upload(emulator, "validation", [("a.json", b"1")])
    assert bad_category.status_code == 404
