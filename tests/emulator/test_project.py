"""Project info, socket tokens, the impulse and the samples, each validated against edgeimpulse_api's models."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.emulator.conftest import Studio


def test_project_info(studio: Studio, validate) -> None:
    info = validate("ProjectInfoResponse", studio.get(""))
    assert info.project.id == studio.handle.project_id
    assert info.impulse.created and info.impulse.configured and info.impulse.complete
    assert info.performance.job_limit_m > 0
    assert info.compute_time.time_left_ms > 0
    assert info.studio_url.endswith(f"/studio/{studio.handle.project_id}")
    assert info.data_summary.data_count == 18
    assert info.data_summary.labels == ["idle", "updown", "wave"]


def test_project_info_rejects_unknown_impulse_id(studio: Studio) -> None:
    response = studio.get("", params={"impulseId": 99})
    assert response.status_code == 404
    assert "Impulse 99" in response.json()["error"]


def test_socket_token_is_fresh_and_expires_in_an_hour(studio: Studio, validate) -> None:
    first = validate("SocketTokenResponse", studio.get("socket-token")).token
    second = validate("SocketTokenResponse", studio.get("socket-token")).token
    assert first.socket_token != second.socket_token
    minutes = (first.expires - datetime.now(timezone.utc)).total_seconds() / 60
    assert 55 < minutes <= 60
    state = studio.handle.state
    assert state.project_for_socket_token(first.socket_token) == studio.handle.project_id
    assert state.project_for_socket_token("unknown") is None


def test_refuse_socket_tokens_fault_counts_down(studio: Studio) -> None:
    token = studio.ok("GET", "socket-token")["token"]["socketToken"]
    studio.handle.fault(refuse_socket_tokens=2)
    state = studio.handle.state
    assert state.project_for_socket_token(token) is None
    assert state.project_for_socket_token(token) is None
    assert state.project_for_socket_token(token) == studio.handle.project_id


def test_seeded_impulse(studio: Studio, validate) -> None:
    impulse = validate("GetImpulseResponse", studio.get("impulse")).impulse
    assert impulse.id == 1
    assert [b.id for b in impulse.dsp_blocks] == [3]
    assert impulse.dsp_blocks[0].type == "spectral-analysis"
    assert [(b.id, b.type.value) for b in impulse.learn_blocks] == [(4, "keras"), (5, "anomaly")]


def test_create_impulse_replaces_it(studio: Studio, validate) -> None:
    body = {
        "name": "Second",
        "inputBlocks": [{"id": 2, "type": "time-series", "name": "Time series", "title": "Time series data"}],
        "dspBlocks": [
            {"id": 7, "type": "raw", "name": "Raw", "axes": ["accX"], "title": "Raw data", "implementationVersion": 1}
        ],
        "learnBlocks": [{"id": 8, "type": "keras", "name": "NN", "dsp": [7], "title": "Classification"}],
    }
    created = validate("CreateImpulseResponse", studio.post("impulse", json=body))
    impulse = validate("GetImpulseResponse", studio.get("impulse")).impulse
    assert impulse.id == created.id != 1
    assert impulse.name == "Second"
    assert [b.id for b in impulse.learn_blocks] == [8]
    assert studio.ok("GET", "")["impulse"]["complete"] is False
    # The seeded learn block is gone with the old impulse.
    assert studio.post("jobs/train/keras/4", json={}).status_code == 404
    assert studio.post("jobs/train/keras/8", json={}).status_code == 200


@pytest.mark.off_spec("impulses without their blocks, which the emulator must refuse")
def test_create_impulse_validates(studio: Studio) -> None:
    response = studio.post("impulse", json={"inputBlocks": [], "dspBlocks": []})
    assert response.status_code == 400
    assert "learnBlocks" in response.json()["error"]
    dangling = {
        "inputBlocks": [],
        "dspBlocks": [],
        "learnBlocks": [{"id": 8, "type": "keras", "name": "NN", "dsp": [3], "title": "C"}],
    }
    assert "unknown DSP block" in studio.post("impulse", json=dangling).json()["error"]


def test_list_samples_filters_and_pages(studio: Studio, validate) -> None:
    listing = validate("ListSamplesResponse", studio.get("raw-data", params={"category": "training"}))
    assert listing.total_count == 12
    assert {s.category.value for s in listing.samples} == {"training"}
    ids = [s.id for s in listing.samples]
    assert ids == sorted(ids, reverse=True)  # newest first
    page = studio.ok("GET", "raw-data", params={"category": "training", "limit": 5, "offset": 10})
    assert page["totalCount"] == 12
    assert [s["id"] for s in page["samples"]] == ids[10:]
    waves = studio.ok("GET", "raw-data", params={"category": "testing", "labels": '["wave"]'})
    assert waves["totalCount"] == 2
    assert {s["label"] for s in waves["samples"]} == {"wave"}
    by_name = studio.ok("GET", "raw-data", params={"category": "training", "filename": "idle.train1"})
    assert [s["filename"] for s in by_name["samples"]] == ["idle.train1"]
    searched = studio.ok("GET", "raw-data", params={"category": "training", "search": "updown"})
    assert searched["totalCount"] == 4


@pytest.mark.off_spec("listings without or with an unknown category, which the emulator must refuse")
def test_list_samples_needs_a_valid_category_and_filters(studio: Studio) -> None:
    assert studio.get("raw-data").status_code == 400
    assert studio.get("raw-data", params={"category": "bogus"}).status_code == 400
    bad = studio.get("raw-data", params={"category": "training", "labels": "idle"})
    assert bad.status_code == 400
    assert "labels" in bad.json()["error"]


def test_count_get_and_delete_sample(studio: Studio, validate) -> None:
    count = validate("CountSamplesResponse", studio.get("raw-data/count", params={"category": "testing"}))
    assert count.count == 6
    sample = validate("GetSampleResponse", studio.get("raw-data/13"))
    assert sample.sample.id == 13
    assert sample.payload.values
    validate("GenericApiResponse", studio.request("DELETE", "raw-data/13"))
    assert studio.get("raw-data/13").status_code == 404
    assert studio.ok("GET", "raw-data/count", params={"category": "testing"})["count"] == 5


def test_data_summary(studio: Studio, validate) -> None:
    summary = validate("ProjectTrainingDataSummaryResponse", studio.get("data-summary")).data_summary
    assert summary.data_count == 12
    assert summary.labels == ["idle", "updown", "wave"]
