"""Every EdgeImpulseHook method against the emulator, over loopback HTTP (nothing of our HTTP layer is mocked)."""

from __future__ import annotations

import hashlib
import json
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError, EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.hooks.policy import RetryPolicy
from tests.hooks.conftest import FAST_POLICY, route_count, set_connection

P = "/v1/api/{projectId}"
INGEST = "POST /api/{category}/files"
LOGIN = "POST /v1/api-login"
# Seeded by the emulator on every reset.
IMPULSE_ID, DSP_ID, KERAS_ID, ANOMALY_ID = 1, 3, 4, 5


def _finish(ei: Any, job_id: int, success: bool = True) -> None:
    ei.finish_job(job_id, success=success)


# -- projects -------------------------------------------------------------------------------------------------


def test_list_projects(hook: EdgeImpulseHook, ei: Any) -> None:
    projects = hook.list_projects()
    assert [p["id"] for p in projects] == [ei.project_id]


def test_get_project_info(hook: EdgeImpulseHook, ei: Any) -> None:
    info = hook.get_project_info()
    assert info["success"] is True
    assert info["project"]["id"] == ei.project_id
    assert {"impulse", "dataSummary", "computeTime", "performance"} <= set(info)


def test_project_id_is_found_from_the_api_key_once(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "ei_noproj", {"conn_type": "edgeimpulse", "host": ei.url, "password": ei.api_key})
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_noproj", retry_policy=FAST_POLICY)
    assert hook.project_id == ei.project_id
    hook.get_project_info()
    hook.get_impulse()
    assert route_count(ei, "GET /v1/api/projects") == 1


def test_project_id_argument_wins_over_the_connection(ei: Any) -> None:
    hook = EdgeImpulseHook(project_id=str(ei.project_id + 100), retry_policy=FAST_POLICY)
    assert hook.project_id == ei.project_id + 100
    assert route_count(ei, "GET /v1/api/projects") == 0


def test_jwt_without_project_id_asks_for_one(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(ei.connection_json(auth_type="jwt"))
    conn.get("extra", {}).pop("project_id", None)
    set_connection(monkeypatch, "ei_jwt_noproj", conn)
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_jwt_noproj", retry_policy=FAST_POLICY)
    with pytest.raises(EdgeImpulseConnectionError, match="set project_id"):
        hook.get_project_info()
    # It still lists the user's projects (test_connection relies on that).
    assert [p["id"] for p in hook.list_projects()] == [ei.project_id]


def test_get_socket_token(hook: EdgeImpulseHook) -> None:
    from airflow.providers.common.compat.sdk import redact

    token = hook.get_socket_token()
    assert isinstance(token["socketToken"], str) and token["socketToken"]
    assert "expires" in token
    assert token["socketToken"] not in redact(f"ws://x/socket.io/?token={token['socketToken']}")


def test_studio_url(hook: EdgeImpulseHook, ei: Any) -> None:
    assert hook.studio_url == ei.url.rstrip("/")


# -- jobs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "key"),
    [
        (lambda h: h.start_retrain(), "retrain"),
        (lambda h: h.start_retrain(impulse_id=IMPULSE_ID), "retrain"),
        (lambda h: h.start_train_keras(KERAS_ID), f"keras-{KERAS_ID}"),
        (lambda h: h.start_train_keras(KERAS_ID, {"trainingCycles": 5, "learningRate": 0.01}), f"keras-{KERAS_ID}"),
        (
            lambda h: h.start_train_anomaly(ANOMALY_ID, {"axes": [0, 1], "minimumConfidenceRating": 0.3}),
            f"anomaly-{ANOMALY_ID}",
        ),
        (lambda h: h.start_generate_features(DSP_ID), f"dsp-{DSP_ID}"),
        (lambda h: h.start_generate_features(DSP_ID, True, True), f"dsp-{DSP_ID}"),
        (lambda h: h.start_classify(), "classify-testing"),
        (lambda h: h.start_classify(IMPULSE_ID, "testing", ["int8", "float32"]), "classify-testing"),
        (lambda h: h.start_evaluate(impulse_id=IMPULSE_ID), "evaluate"),
        (lambda h: h.start_job("jobs/retrain", {"impulseId": IMPULSE_ID}), "retrain"),
    ],
)
def test_start_jobs(hook: EdgeImpulseHook, ei: Any, start: Any, key: str) -> None:
    job_id = start(hook)
    assert isinstance(job_id, int)
    jobs = {j["id"]: j for j in ei.jobs()}
    assert jobs[job_id]["key"].startswith(key)
    assert len(jobs) == 1


def test_job_lifecycle_status_stdout_history(hook: EdgeImpulseHook, ei: Any) -> None:
    job_id = hook.start_train_keras(KERAS_ID, {"trainingCycles": 3})
    status = hook.get_job_status(job_id)
    assert status["id"] == job_id and "finished" not in status
    assert [j["id"] for j in hook.list_active_jobs()] == [job_id]

    _finish(ei, job_id)
    status = hook.get_job_status(job_id)
    assert status["finished"] and status["finishedSuccessful"] is True
    assert hook.list_active_jobs() == []

    stdout = hook.get_job_stdout(job_id)
    assert stdout["success"] is True and stdout["stdout"]
    assert any("Job completed" in e["data"] for e in stdout["stdout"])
    lines = hook.get_job_stdout_lines(job_id, limit=2)
    assert len(lines) <= 2 and lines[-1] == "Job completed"

    history = hook.list_job_history(limit=10)
    assert [j["id"] for j in history["jobs"]] == [job_id]


def test_failed_job_reports_unsuccessful(hook: EdgeImpulseHook, ei: Any) -> None:
    job_id = hook.start_retrain()
    _finish(ei, job_id, success=False)
    assert hook.get_job_status(job_id)["finishedSuccessful"] is False


def test_cancel_job(hook: EdgeImpulseHook, ei: Any) -> None:
    job_id = hook.start_retrain()
    assert hook.cancel_job(job_id)["success"] is True
    (job,) = ei.jobs()
    assert job["cancelled"] is True
    assert hook.get_job_status(job_id)["finishedSuccessful"] is False
    hook.cancel_job(hook.start_retrain(), force=False)


def test_cancel_finished_job_is_an_api_error(hook: EdgeImpulseHook, ei: Any) -> None:
    job_id = hook.start_retrain()
    _finish(ei, job_id)
    with pytest.raises(EdgeImpulseAPIError):
        hook.cancel_job(job_id)


# -- impulse --------------------------------------------------------------------------------------------------


def test_get_and_create_impulse(hook: EdgeImpulseHook) -> None:
    impulse = hook.get_impulse()
    assert impulse is not None
    assert [b["id"] for b in impulse["learnBlocks"]] == [KERAS_ID, ANOMALY_ID]
    definition = {
        "name": "Replaced",
        "inputBlocks": impulse["inputBlocks"],
        "dspBlocks": impulse["dspBlocks"],
        "learnBlocks": impulse["learnBlocks"][:1],
    }
    created = hook.create_impulse(definition)
    assert isinstance(created["id"], int)
    again = hook.get_impulse()
    assert again is not None and again["name"] == "Replaced" and len(again["learnBlocks"]) == 1


@pytest.mark.off_spec("an impulse without its blocks, to see that a 400 is not retried")
def test_create_impulse_rejects_a_bad_definition(hook: EdgeImpulseHook, ei: Any) -> None:
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.create_impulse({"inputBlocks": []})
    assert info.value.status == 400
    assert route_count(ei, f"POST {P}/impulse") == 1  # a 400 is not retried


# -- samples --------------------------------------------------------------------------------------------------


def test_list_and_count_samples(hook: EdgeImpulseHook) -> None:
    listed = hook.list_samples("training", limit=5, offset=0)
    assert len(listed["samples"]) == 5
    total = hook.count_samples("training")
    assert listed["totalCount"] == total > 5
    idle = hook.count_samples("training", labels=["idle"])
    assert 0 < idle < total
    only_idle = hook.list_samples("training", labels=["idle"], exclude_sensors=True)
    assert {s["label"] for s in only_idle["samples"]} == {"idle"}
    assert hook.count_samples("testing", labels=["idle", "wave"]) > 0


def test_count_by_ids_is_made_from_the_listing(hook: EdgeImpulseHook, ei: Any) -> None:
    # GET raw-data/count takes no ids/excludeIds (Studio counts the whole category): they must not go there.
    testing = [s["id"] for s in hook.list_samples("testing")["samples"]]
    assert hook.count_samples("testing", ids=[testing[0], testing[1], 10**9], exclude_ids=[testing[1]]) == 1
    assert hook.count_samples("testing", exclude_ids=testing[:2]) == len(testing) - 2
    assert route_count(ei, f"GET {P}/raw-data/count") == 0


def test_batch_edit_labels_inline(hook: EdgeImpulseHook) -> None:
    before = hook.count_samples("training", labels=["idle"])
    result = hook.batch_edit_labels("resting", "training", labels=["idle"])
    assert result == {"job_id": None, "done": True}
    assert hook.count_samples("training", labels=["resting"]) == before
    assert hook.count_samples("training", labels=["idle"]) == 0


def test_batch_edit_labels_by_ids_and_exclusions(hook: EdgeImpulseHook) -> None:
    samples = hook.list_samples("training", limit=3)["samples"]
    ids = [s["id"] for s in samples]
    result = hook.batch_edit_labels("picked", "training", ids=ids, exclude_ids=ids[:1])
    assert result["done"] is True
    assert hook.count_samples("training", labels=["picked"]) == 2


def test_batch_edit_labels_as_a_job(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.configure(batch_sync_limit=1)
    result = hook.batch_edit_labels("everything", "training", allow_all=True)
    assert result["done"] is False and isinstance(result["job_id"], int)
    _finish(ei, result["job_id"])
    assert hook.count_samples("training", labels=["everything"]) == hook.count_samples("training")


# -- ingestion ------------------------------------------------------------------------------------------------


def _files(tmp_path: Path, count: int, prefix: str = "wave") -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"{prefix}.{i:05d}.json"
        path.write_bytes(json.dumps({"i": i, "prefix": prefix}).encode())
        paths.append(path)
    return paths


def test_upload_files_with_label_and_metadata(hook: EdgeImpulseHook, tmp_path: Path) -> None:
    before = hook.count_samples("testing")
    paths = _files(tmp_path, 3)
    result = hook.upload_files(paths, category="testing", label="wave/über 1", metadata={"site": "lab ü"})
    assert (result["succeeded"], result["failed"], result["requests"]) == (3, 0, 1)
    assert [f["path"] for f in result["files"]] == [str(p) for p in paths]
    assert all(isinstance(f["sample_id"], int) for f in result["files"])
    assert hook.count_samples("testing") == before + 3
    assert hook.count_samples("testing", labels=["wave/über 1"]) == 3


def test_upload_files_label_from_name_or_none(hook: EdgeImpulseHook, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    hook.upload_files(_files(tmp_path / "a", 2, prefix="knock"), category="training")
    assert hook.count_samples("training", labels=["knock"]) == 2
    result = hook.upload_files(_files(tmp_path / "b", 2, prefix="unlabelled"), category="training", no_label=True)
    assert result["succeeded"] == 2
    assert hook.count_samples("training", labels=["unlabelled"]) == 0


def test_upload_files_reports_per_file_failures(hook: EdgeImpulseHook, tmp_path: Path) -> None:
    paths = _files(tmp_path, 2)
    hook.upload_files(paths[:1], category="training", label="x")
    result = hook.upload_files(paths, category="training", label="x", disallow_duplicates=True, add_date_id=True)
    assert (result["succeeded"], result["failed"]) == (1, 1)
    failed = result["files"][0]
    assert failed["success"] is False and failed["sample_id"] is None and "already exists" in str(failed["error"])


def test_upload_2500_files_takes_3_requests(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    paths = _files(tmp_path, 2500)
    result = hook.upload_files(paths, category="split", label="bulk")
    assert result["requests"] == 3
    assert result["succeeded"] == 2500
    assert route_count(ei, INGEST) == 3
    ids = [f["sample_id"] for f in result["files"]]
    assert len(set(ids)) == 2500


def test_upload_stops_after_a_failed_request(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    ei.fault(status=500, count=1, path="/api/training/files")
    result = hook.upload_files(_files(tmp_path, 3), category="training")
    assert result["succeeded"] == 0 and result["failed"] == 3 and result["requests"] == 1
    assert "HTTP 500" in str(result["files"][0]["error"])
    assert route_count(ei, INGEST) == 1  # a 500 after sending files is not repeated: it could duplicate them


def test_upload_retries_a_429(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    ei.fault(status=429, count=1, retry_after=0, path="/api/training/files")
    result = hook.upload_files(_files(tmp_path, 2), category="training")
    assert result["succeeded"] == 2
    assert route_count(ei, INGEST) == 2


def test_upload_with_a_jwt_connection(jwt_hook: EdgeImpulseHook, tmp_path: Path) -> None:
    result = jwt_hook.upload_files(_files(tmp_path, 2), category="anomaly", label="odd")
    assert result["succeeded"] == 2


# -- deployment -----------------------------------------------------------------------------------------------


def _build(hook: EdgeImpulseHook, ei: Any, fmt: str = "zip", engine: str = "tflite-eon") -> dict[str, Any]:
    started = hook.start_build_deployment(fmt, engine, model_type="int8", impulse_id=IMPULSE_ID)
    _finish(ei, started["job_id"])
    return dict(started)


def test_get_deployment_targets(hook: EdgeImpulseHook) -> None:
    targets = hook.get_deployment_targets()
    assert targets and all("format" in t for t in targets)


def test_build_and_download_deployment(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    fmt = hook.get_deployment_targets()[0]["format"]
    engine = hook.get_deployment_targets()[0].get("preferredEngine", "tflite")
    started = _build(hook, ei, fmt, engine)
    assert isinstance(started["job_id"], int) and isinstance(started["deployment_version"], int)

    by_format = hook.download_deployment(tmp_path / "model.zip", fmt, engine, model_type="int8")
    assert by_format["path"] == str(tmp_path / "model.zip")
    data = Path(by_format["path"]).read_bytes()
    assert by_format["size"] == len(data)
    assert by_format["sha256"] == hashlib.sha256(data).hexdigest()
    assert by_format["filename"] and by_format["filename"].endswith(".zip")
    assert zipfile.ZipFile(by_format["path"]).testzip() is None

    by_version = hook.download_deployment(tmp_path, fmt, engine, deployment_version=started["deployment_version"])
    assert Path(by_version["path"]).parent == tmp_path
    assert Path(by_version["path"]).name == by_format["filename"]
    assert by_version["sha256"] == by_format["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.zip", by_format["filename"]])


def test_download_failure_leaves_nothing(hook: EdgeImpulseHook, tmp_path: Path) -> None:
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.download_deployment(tmp_path / "never.zip", "zip", "tflite")
    assert info.value.status == 404
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_large_artifact_streams_in_flat_memory(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    ei.configure(deployment_size_bytes=size)
    started = _build(hook, ei)
    hook.download_deployment(tmp_path / "warm.zip", "zip", "tflite-eon")  # the emulator writes its file once
    (tmp_path / "warm.zip").unlink()

    tracemalloc.start()
    try:
        result = hook.download_deployment(
            tmp_path / "big.zip", "zip", "tflite-eon", deployment_version=started["deployment_version"]
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["size"] >= size
    assert peak < 30 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while downloading {size / 2**20:.0f} MiB"
    digest = hashlib.sha256()
    with open(result["path"], "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    assert result["sha256"] == digest.hexdigest()


def test_model_testing_and_evaluation_results(hook: EdgeImpulseHook, ei: Any) -> None:
    _finish(ei, hook.start_classify(model_variants=["int8"]))
    results = hook.get_model_testing_results()
    assert results["success"] is True
    _finish(ei, hook.start_evaluate())
    evaluation = hook.get_deployment_evaluation(impulse_id=IMPULSE_ID)
    assert evaluation["success"] is True


def test_model_variant_metrics_and_keras_metadata(hook: EdgeImpulseHook, ei: Any) -> None:
    _finish(ei, hook.start_classify(model_variants=["int8", "float32"]))
    metrics = hook.get_model_variant_metrics(impulse_id=IMPULSE_ID)
    assert [m["variant"] for m in metrics] == ["int8", "float32"]
    assert all(0 < m["accuracy"] <= 1 for m in metrics)
    metadata = hook.get_keras_metadata(KERAS_ID)
    assert metadata["labels"] == []  # excludeLabels=true by default
    assert hook.get_keras_metadata(KERAS_ID, exclude_labels=False)["labels"] == ["idle", "updown", "wave"]
    devices = metadata["modelValidationMetrics"][0]["onDevicePerformance"]
    assert {"mcu", "latency", "eon", "tflite"} <= set(devices[0])
    with pytest.raises(EdgeImpulseAPIError, match="not found"):
        hook.get_keras_metadata(99)


# -- EON Tuner ------------------------------------------------------------------------------------------------


def test_eon_tuner_flow(hook: EdgeImpulseHook, ei: Any) -> None:
    config = {"targetLatency": 100, "targetDevice": {"name": "cortex-m4f-80mhz", "ram": 131072, "rom": 1048576}}
    assert hook.set_optimize_config({**config, "tuningMaxTrials": 3})["success"] is True
    assert hook.get_optimize_config()["targetLatency"] == 100

    coordinator = hook.start_optimize()
    _finish(ei, coordinator)
    state = hook.get_tuner_state(coordinator)
    assert state["tunerJobIsRunning"] is False
    completed = [t for t in state["trials"] if t["status"] == "completed"]
    assert completed

    runs = hook.list_optimize_runs()
    assert [r["tunerCoordinatorJobId"] for r in runs] == [coordinator]

    extended = hook.start_optimize(extended_from_job_id=coordinator)
    assert extended != coordinator
    hook.cancel_job(extended)

    adopt = hook.start_set_tuner_primary(completed[0]["id"], name="Best trial")
    _finish(ei, adopt)
    assert hook.get_job_status(adopt)["finishedSuccessful"] is True
    impulse = hook.get_impulse()
    assert impulse is not None and impulse["name"] == "Best trial"


def test_tuner_state_of_unknown_run_is_404(hook: EdgeImpulseHook) -> None:
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_tuner_state(424242)
    assert info.value.status == 404


# -- test_connection ------------------------------------------------------------------------------------------


def test_test_connection_with_api_key(hook: EdgeImpulseHook, ei: Any) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert f"project {ei.project_id}" in message and ei.api_key not in message


def test_test_connection_with_jwt_and_no_project(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(ei.connection_json(auth_type="jwt"))
    conn.get("extra", {}).pop("project_id", None)
    set_connection(monkeypatch, "ei_jwt_tc", conn)
    ok, message = EdgeImpulseHook(edgeimpulse_conn_id="ei_jwt_tc").test_connection()
    assert ok, message
    assert "1 project(s) visible" in message and ei.password not in message


def test_test_connection_with_a_wrong_key(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch,
        "ei_wrong",
        {"conn_type": "edgeimpulse", "host": ei.url, "password": "ei_wrong_secret_key", "extra": {"project_id": 1}},
    )
    ok, message = EdgeImpulseHook(edgeimpulse_conn_id="ei_wrong").test_connection()
    assert not ok
    assert "401" in message and "ei_wrong_secret_key" not in message


def test_airflow_connection_test_path(ei: Any) -> None:
    """What the UI's "Test" button runs: Connection.test_connection() -> get_hook() -> hook.test_connection()."""
    from airflow.models.connection import Connection

    conn = Connection(conn_id="edgeimpulse_default", uri=f"edgeimpulse://:{ei.api_key}@{ei.url.split('://')[1]}")
    conn.conn_type = "edgeimpulse"
    ok, message = conn.test_connection()
    assert ok, message


# -- errors ---------------------------------------------------------------------------------------------------


def test_401_with_a_wrong_api_key_is_not_retried(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch,
        "ei_401",
        {"conn_type": "edgeimpulse", "host": ei.url, "password": "ei_not_the_key", "extra": {"project_id": 1}},
    )
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_401", retry_policy=FAST_POLICY)
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_project_info()
    assert info.value.status == 401 and info.value.is_unauthorized
    assert "HTTP 401" in str(info.value) and "ei_not_the_key" not in str(info.value)
    assert ei.requests()["total"] == 1


def test_revoked_api_key(hook: EdgeImpulseHook, ei: Any) -> None:
    hook.get_project_info()
    ei.fault(revoke_api_key=True)
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_project_info()
    assert info.value.status == 401


def test_404_for_an_unknown_project(ei: Any) -> None:
    hook = EdgeImpulseHook(project_id=999, retry_policy=FAST_POLICY)
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_project_info()
    assert info.value.status == 404
    assert "GET /api/999" in str(info.value) and "not found" in str(info.value)
    assert ei.requests()["total"] == 1


def test_404_for_an_unknown_job(hook: EdgeImpulseHook, ei: Any) -> None:
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_job_status(987654)
    assert info.value.status == 404
    assert info.value.error and "No job with this ID found" in info.value.error
    assert ei.requests()["total"] == 1


def test_success_false_on_http_200(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=200, body=json.dumps({"success": False, "error": "Project is locked"}), path="/impulse")
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_impulse()
    assert info.value.status == 200 and info.value.error == "Project is locked"
    assert "Project is locked" in str(info.value)
    assert route_count(ei, f"GET {P}/impulse") == 1  # a definite answer: not retried


@pytest.mark.off_spec("an HTML error page from a proxy")
def test_html_502_page(hook: EdgeImpulseHook, ei: Any) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    ei.fault(status=502, body=page, count=50, path="/impulse")
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_impulse()
    message = str(info.value)
    assert info.value.status == 502
    assert "HTTP 502" in message and "not JSON" in message and "502 Bad Gateway" in message
    assert f"gave up after {FAST_POLICY.max_attempts} attempts" in message
    assert route_count(ei, f"GET {P}/impulse") == FAST_POLICY.max_attempts


@pytest.mark.off_spec("an HTML error page from a proxy")
def test_html_502_then_recovery(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=502, body="<html>Bad Gateway</html>", count=2, path="/impulse")
    assert hook.get_impulse() is not None
    assert route_count(ei, f"GET {P}/impulse") == 3


@pytest.mark.off_spec("an empty answer")
def test_empty_body(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=200, body="", path="/impulse")
    with pytest.raises(EdgeImpulseAPIError, match=r"HTTP 200 with a body that is not JSON: '<empty body>'"):
        hook.get_impulse()


@pytest.mark.off_spec("an answer that is not JSON")
def test_invalid_json(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=200, body='{"success": tru', content_type="application/json", path="/impulse")
    with pytest.raises(EdgeImpulseAPIError, match=r"not JSON: '\{\"success\": tru'"):
        hook.get_impulse()


@pytest.mark.off_spec("a JSON list where Studio answers an object")
def test_json_that_is_not_an_object(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=200, body="[1, 2]", path="/impulse")
    with pytest.raises(EdgeImpulseAPIError, match=r"JSON that is not an object \(list\): '\[1, 2\]'"):
        hook.get_impulse()


def test_429_storm_longer_than_the_budget_is_bounded(ei: Any) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.02, retry_after_cap=0.05, max_total_sleep=5)
    hook = EdgeImpulseHook(retry_policy=policy)
    ei.fault(status=429, count=1000, retry_after=0.01, path="/impulse")
    started = time.monotonic()
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_impulse()
    assert time.monotonic() - started < 3
    assert info.value.status == 429
    assert "gave up after 5 attempts" in str(info.value)
    assert route_count(ei, f"GET {P}/impulse") == 5


def test_429_retry_after_beyond_the_sleep_budget_stops_early(ei: Any) -> None:
    policy = RetryPolicy(max_attempts=10, retry_after_cap=30, max_total_sleep=1.0)
    hook = EdgeImpulseHook(retry_policy=policy)
    ei.fault(status=429, count=1000, retry_after=20, path="/impulse")
    started = time.monotonic()
    with pytest.raises(EdgeImpulseAPIError, match="gave up after 1 attempt"):
        hook.get_impulse()
    assert time.monotonic() - started < 1.0  # it did not sleep 20 s to fail anyway
    assert route_count(ei, f"GET {P}/impulse") == 1


def test_429_retry_after_is_honoured(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=429, count=1, retry_after=0.3, path="/impulse")
    started = time.monotonic()
    assert hook.get_impulse() is not None
    assert time.monotonic() - started >= 0.29
    assert route_count(ei, f"GET {P}/impulse") == 2


def test_5xx_on_a_job_start_is_not_repeated(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=500, count=5, path="/jobs/retrain")
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.start_retrain()
    assert info.value.status == 500
    assert route_count(ei, f"POST {P}/jobs/retrain") == 1  # the server may have started it: never twice


def test_503_and_429_on_a_job_start_are_retried(hook: EdgeImpulseHook, ei: Any) -> None:
    ei.fault(status=503, count=1, path="/jobs/retrain")
    ei.fault(status=429, count=1, retry_after=0, path="/jobs/retrain")
    job_id = hook.start_retrain()
    assert [j["id"] for j in ei.jobs()] == [job_id]
    assert route_count(ei, f"POST {P}/jobs/retrain") == 3


def test_a_slow_server_times_out_and_is_named(ei: Any) -> None:
    ei.fault(latency_ms=1500, path="/impulse")
    hook = EdgeImpulseHook(retry_policy=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01), timeout=0.3)
    with pytest.raises(
        EdgeImpulseAPIError, match=r"no answer from http://127\.0\.0\.1:\d+ within 0\.3 s, 2 attempts made"
    ):
        hook.get_impulse()


def test_a_slow_job_start_is_not_repeated(ei: Any) -> None:
    ei.fault(latency_ms=1000, path="/jobs/retrain")
    hook = EdgeImpulseHook(retry_policy=FAST_POLICY, timeout=0.3)
    with pytest.raises(EdgeImpulseAPIError, match="not retried because the server may already have acted on it"):
        hook.start_retrain()
    assert route_count(ei, f"POST {P}/jobs/retrain") == 1


# -- JWT ------------------------------------------------------------------------------------------------------


def test_jwt_logs_in_lazily_once(jwt_hook: EdgeImpulseHook, ei: Any) -> None:
    assert route_count(ei, LOGIN) == 0
    jwt_hook.get_project_info()
    jwt_hook.get_impulse()
    jwt_hook.list_samples("training", limit=1)
    assert route_count(ei, LOGIN) == 1


def test_jwt_401_logs_in_again_once_and_repeats(jwt_hook: EdgeImpulseHook, ei: Any) -> None:
    jwt_hook.get_project_info()
    ei.fault(jwt_ttl_s=0.3)  # checked at use: the token we hold expires too
    time.sleep(0.4)
    assert jwt_hook.get_impulse() is not None
    assert route_count(ei, LOGIN) == 2
    assert route_count(ei, f"GET {P}/impulse") == 2


def test_jwt_persistent_401_relogs_only_once(jwt_hook: EdgeImpulseHook, ei: Any) -> None:
    jwt_hook.get_project_info()
    ei.fault(status=401, count=10, path="/impulse")
    with pytest.raises(EdgeImpulseAPIError) as info:
        jwt_hook.get_impulse()
    assert info.value.status == 401
    assert route_count(ei, LOGIN) == 2
    assert route_count(ei, f"GET {P}/impulse") == 2


def test_jwt_wrong_password(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(ei.connection_json(auth_type="jwt"))
    conn["password"] = "not-the-password-123"
    set_connection(monkeypatch, "ei_badpw", conn)
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_badpw", project_id=ei.project_id, retry_policy=FAST_POLICY)
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_project_info()
    assert info.value.status == 401 and "/api-login" in str(info.value)
    assert "not-the-password-123" not in str(info.value)
    assert route_count(ei, LOGIN) == 1


def _capture_requests(hook: EdgeImpulseHook) -> list[Any]:
    sent: list[Any] = []
    hook.session.http.hooks["response"].append(lambda response, **kwargs: sent.append(response.request))
    return sent


def test_jwt_header_mode(jwt_hook: EdgeImpulseHook) -> None:
    sent = _capture_requests(jwt_hook)
    jwt_hook.get_impulse()
    request = sent[-1]
    assert request.headers.get("x-jwt-token") and "x-api-key" not in request.headers
    assert "jwt=" not in request.headers.get("Cookie", "")


def test_jwt_cookie_mode(ei: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "ei_cookie", ei.connection_json(auth_type="jwt_cookie"))
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_cookie", project_id=ei.project_id, retry_policy=FAST_POLICY)
    sent = _capture_requests(hook)
    assert hook.get_impulse() is not None
    request = sent[-1]
    assert request.headers.get("Cookie", "").startswith("jwt=")
    assert "x-jwt-token" not in request.headers and "x-api-key" not in request.headers
    assert route_count(ei, LOGIN) == 1


def test_api_key_header_and_user_agent(hook: EdgeImpulseHook, ei: Any) -> None:
    from airflow_provider_edgeimpulse.hooks.policy import USER_AGENT

    sent = _capture_requests(hook)
    hook.get_impulse()
    assert sent[-1].headers["x-api-key"] == ei.api_key
    assert sent[-1].headers["User-Agent"] == USER_AGENT


# -- redaction ------------------------------------------------------------------------------------------------


@pytest.fixture
def distinct_emulator(edgeimpulse_emulator_middlewares: tuple[Any, ...]) -> Iterator[Any]:
    """An emulator whose secrets are distinctive strings (the shared one uses "emulator" as name and password)."""
    from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
    from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle
    from airflow_provider_edgeimpulse.emulator.server import EmulatorThread

    config = EmulatorConfig(port=0, api_key="ei_redaction_Key_7f3a9c", username="alice", password="pw-Secr3t-91xq")
    server = EmulatorThread(config, edgeimpulse_emulator_middlewares)
    url = server.start()
    handle = EmulatorHandle(
        url, api_key=config.api_key, project_id=config.project_id, username="alice", password=config.password
    )
    try:
        yield handle
    finally:
        handle.close()
        server.stop()


@pytest.mark.off_spec("plain-text error answers")
def test_secrets_never_in_errors_logs_or_reprs(
    distinct_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow.providers.common.compat.sdk import redact

    ei = distinct_emulator
    caplog.set_level("DEBUG")
    texts: list[str] = []

    # API key: retried 503s, then a 401 once the key is revoked.
    set_connection(monkeypatch, "ei_redact_key", ei.connection_json())
    api = EdgeImpulseHook(edgeimpulse_conn_id="ei_redact_key", retry_policy=FAST_POLICY)
    ei.fault(status=503, count=2, path="/impulse")
    api.get_impulse()
    ei.fault(revoke_api_key=True)
    with pytest.raises(EdgeImpulseAPIError) as revoked:
        api.get_impulse()
    texts += [str(revoked.value), repr(api), repr(api.credentials), repr(api.session), str(api.credentials)]
    assert redact(f"key {ei.api_key}") == "key ***"

    # JWT: login, an expired token, re-login; then a server that echoes the secrets back in an error page.
    set_connection(monkeypatch, "ei_redact_jwt", ei.connection_json(auth_type="jwt"))
    jwt = EdgeImpulseHook(edgeimpulse_conn_id="ei_redact_jwt", project_id=ei.project_id, retry_policy=FAST_POLICY)
    jwt.get_project_info()
    ei.fault(jwt_ttl_s=0.2)
    time.sleep(0.3)
    jwt.get_impulse()
    token = jwt.session._jwt
    assert token
    ei.fault(jwt_ttl_s=None)
    ei.fault(status=500, count=10, path="/impulse", body=f"echo {token} {ei.password}")
    with pytest.raises(EdgeImpulseAPIError) as echoed:
        jwt.get_impulse()
    texts += [str(echoed.value), repr(echoed.value), repr(jwt), repr(jwt.credentials), repr(jwt.session)]
    assert "echo *** ***" in str(echoed.value)  # scrubbed before the preview was cut, so no fragment is left
    assert redact(f"token={token}") == "token=***"
    assert redact(f"pw {ei.password}") == "pw ***"

    # A wrong password: the login error names the user, never the password.
    conn = json.loads(ei.connection_json(auth_type="jwt"))
    conn["password"] = "wrong-Pa55word-zz"
    set_connection(monkeypatch, "ei_redact_bad", conn)
    with pytest.raises(EdgeImpulseAPIError) as bad_login:
        EdgeImpulseHook(edgeimpulse_conn_id="ei_redact_bad", project_id=1, retry_policy=FAST_POLICY).get_impulse()
    texts += [str(bad_login.value)]

    captured = capsys.readouterr()
    texts += [r.getMessage() for r in caplog.records] + [captured.out, captured.err]
    joined = "\n".join(texts)
    assert "retrying in" in joined and "logging in again" in joined  # the hook's own log lines were captured
    for secret in (ei.api_key, ei.password, token, "wrong-Pa55word-zz", token.split(".")[-1]):
        assert secret not in joined
