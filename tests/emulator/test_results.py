"""Model testing and evaluation results, and bulk relabelling (inline and as a job)."""

from __future__ import annotations

from tests.emulator.conftest import Studio


def test_classify_results_after_model_testing(studio: Studio, validate) -> None:
    assert studio.get("classify/all/result").status_code == 404
    studio.wait(studio.start("jobs/classify", params={"category": "testing"}, json={}))
    result = validate("ClassifyJobResponse", studio.get("classify/all/result"))
    summary = result.accuracy.total_summary
    assert summary.good + summary.bad == 6
    assert summary.bad >= 1  # not a trivially perfect model
    assert set(result.accuracy.summary_per_class) == {"idle", "updown", "wave"}
    assert len(result.result) == 6
    assert {p.sample_id for p in result.predictions} == {r.sample_id for r in result.result}


def test_evaluate_results(studio: Studio, validate) -> None:
    assert studio.get("deployment/evaluate").status_code == 404
    studio.wait(studio.start("jobs/evaluate"))
    result = validate("EvaluateJobResponse", studio.get("deployment/evaluate")).result
    assert [r.model_type.value for r in result] == ["int8", "float32"]
    assert 0 < result[1].accuracy.raw <= 1


def test_small_batch_relabel_is_immediate(studio: Studio, validate) -> None:
    response = studio.post(
        "raw-data/batch/edit-labels", params={"category": "training", "labels": '["idle"]'}, json={"label": "rest"}
    )
    body = validate("GenericApiResponse", response)
    assert "id" not in response.json()
    assert body.success
    labels = {s["label"] for s in studio.ok("GET", "raw-data", params={"category": "training"})["samples"]}
    assert labels == {"rest", "updown", "wave"}


def test_relabel_by_ids_and_exclusions(studio: Studio) -> None:
    studio.ok(
        "POST",
        "raw-data/batch/edit-labels",
        params={"category": "training", "ids": "[1, 2, 3]", "excludeIds": "[2]"},
        json={"label": "x"},
    )
    labelled = studio.ok("GET", "raw-data", params={"category": "training", "labels": '["x"]'})["samples"]
    assert sorted(s["id"] for s in labelled) == [1, 3]


def test_large_batch_relabel_runs_as_a_job(emulator, studio: Studio, validate) -> None:
    emulator.configure(batch_sync_limit=5, job_duration=None)
    response = studio.post("raw-data/batch/edit-labels", params={"category": "training"}, json={"label": "all"})
    job_id = validate("StartJobResponse", response).id
    assert studio.ok("GET", "raw-data/count", params={"category": "training", "labels": '["all"]'})["count"] == 0
    emulator.finish_job(job_id)
    assert studio.ok("GET", "raw-data/count", params={"category": "training", "labels": '["all"]'})["count"] == 12


def test_relabel_over_a_hundred_samples_starts_a_job_by_default(studio: Studio) -> None:
    files = [("data", (f"s{i}.json", f'{{"n": {i}}}'.encode(), "application/json")) for i in range(101)]
    headers = {"x-api-key": studio.handle.api_key, "x-label": "bulk"}
    upload = studio.session.post(f"{studio.handle.url}/api/training/files", files=files, headers=headers, timeout=30)
    assert upload.status_code == 200
    body = studio.ok(
        "POST",
        "raw-data/batch/edit-labels",
        params={"category": "training", "labels": '["bulk"]'},
        json={"label": "renamed"},
    )
    assert isinstance(body["id"], int)
    studio.wait(body["id"])
    assert studio.ok("GET", "raw-data/count", params={"category": "training", "labels": '["renamed"]'})["count"] == 101


def test_relabel_needs_a_label(studio: Studio) -> None:
    response = studio.post("raw-data/batch/edit-labels", params={"category": "training"}, json={})
    assert response.status_code == 400
    assert "label" in response.json()["error"]
