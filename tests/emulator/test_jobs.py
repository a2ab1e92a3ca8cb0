"""Job simulation: starting every kind of job, status, stdout, timing, failure, cancel and listings."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest

from tests.emulator.conftest import Studio

JOB_STARTS = [
    ("jobs/retrain", None),
    ("jobs/train/keras/4", {}),
    ("jobs/train/anomaly/5", {"axes": [0, 1, 2], "minimumConfidenceRating": 0.3}),
    ("jobs/generate-features", {"dspId": 3}),
    ("jobs/classify?category=testing", {"modelVariants": ["int8", "float32"]}),
    ("jobs/evaluate", None),
    ("jobs/build-ondevice-model?type=zip", {"engine": "tflite-eon"}),
    ("jobs/optimize", None),
]


@pytest.mark.parametrize(("path", "body"), JOB_STARTS)
def test_every_job_kind_starts_runs_and_succeeds(studio: Studio, validate, path: str, body: Any) -> None:
    started = validate("StartJobResponse", studio.post(path, json=body))
    job = validate("GetJobResponse", studio.get(f"jobs/{started.id}/status")).job
    assert job.id == started.id
    assert job.finished is None
    assert job.started is not None
    assert job.job_notification_uids == []
    studio.wait(started.id)
    job = validate("GetJobResponse", studio.get(f"jobs/{started.id}/status")).job
    assert job.finished_successful is True
    assert job.finished >= job.started >= job.created
    logs = validate("LogStdoutResponse", studio.get(f"jobs/{started.id}/stdout"))
    assert logs.total_count == len(logs.stdout) >= 2
    assert logs.stdout[0].data == "Job completed"


def test_job_ids_increase_and_keys_name_the_block(studio: Studio) -> None:
    first = studio.start("jobs/train/keras/4", json={})
    second = studio.start("jobs/generate-features", json={"dspId": 3})
    assert second == first + 1
    assert studio.status(first)["key"] == "keras-4"
    assert studio.status(first)["categoryKey"] == "learn-train-studio-wrapper"
    assert studio.status(second)["key"] == "dsp-3"


def test_job_status_dates_are_iso_8601_utc(studio: Studio) -> None:
    job = studio.wait(studio.start("jobs/evaluate"))
    for key in ("created", "started", "finished"):
        assert job[key].endswith("Z")
        datetime.fromisoformat(job[key].replace("Z", "+00:00"))


def test_training_writes_one_epoch_line_per_cycle_oldest_last(studio: Studio) -> None:
    job_id = studio.start("jobs/train/keras/4", json={"trainingCycles": 5})
    studio.wait(job_id)
    lines = studio.stdout(job_id)
    epochs = [line for line in lines if line.startswith("Epoch ")]
    # stdout is newest first, as Studio serves it.
    assert [e.split(" ")[1] for e in epochs] == ["5/5", "4/5", "3/5", "2/5", "1/5"]
    assert studio.handle.state.job_log(studio.handle.project_id, job_id)[-1] == "Job completed"


def test_stdout_limit_returns_the_newest_lines(studio: Studio) -> None:
    job_id = studio.start("jobs/train/keras/4", json={"trainingCycles": 4})
    studio.wait(job_id)
    everything = studio.stdout(job_id)
    body = studio.ok("GET", f"jobs/{job_id}/stdout", params={"limit": 2})
    assert [line["data"] for line in body["stdout"]] == everything[:2]
    assert body["totalCount"] == len(everything)


@pytest.mark.off_spec("a log level Studio does not know, which the emulator must refuse")
def test_stdout_log_level_filter(emulator, studio: Studio) -> None:
    emulator.configure(job_outcome="failure")
    job_id = studio.start("jobs/train/keras/4", json={"trainingCycles": 2})
    studio.wait(job_id)
    errors = studio.ok("GET", f"jobs/{job_id}/stdout", params={"logLevel": "error"})["stdout"]
    assert errors and {line["logLevel"] for line in errors} == {"error"}
    assert studio.get(f"jobs/{job_id}/stdout", params={"logLevel": "loud"}).status_code == 400


def test_training_cycles_are_validated(studio: Studio) -> None:
    response = studio.post("jobs/train/keras/4", json={"trainingCycles": 0})
    assert response.status_code == 400
    assert "trainingCycles" in response.json()["error"]


def test_job_takes_about_the_configured_duration(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=0.6)
    began = time.monotonic()
    job_id = studio.start("jobs/evaluate")
    time.sleep(0.3)
    assert "finished" not in studio.status(job_id)
    studio.wait(job_id)
    assert 0.5 <= time.monotonic() - began < 3.0


def test_failed_job_explains_itself_in_the_last_lines(emulator, studio: Studio) -> None:
    emulator.configure(job_outcome="failure")
    job_id = studio.start("jobs/train/keras/4", json={"trainingCycles": 2})
    job = studio.wait(job_id)
    assert job["finishedSuccessful"] is False
    newest = studio.stdout(job_id)
    assert newest[0] == "Job failed (see above)"
    assert newest[1].startswith("ERROR: Training failed") and "emulated failure" in newest[1]


def test_manual_jobs_wait_for_the_control_api(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/train/keras/4", json={"trainingCycles": 3})
    time.sleep(0.3)
    assert "finished" not in studio.status(job_id)
    assert studio.stdout(job_id)  # the first step's lines are there already
    emulator.finish_job(job_id, success=True)
    job = studio.status(job_id)
    assert job["finishedSuccessful"] is True
    assert any(line.startswith("Epoch 3/3") for line in studio.stdout(job_id))
    with pytest.raises(RuntimeError, match="409"):
        emulator.finish_job(job_id)


def test_manual_finish_with_failure(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/evaluate")
    emulator.finish_job(job_id, success=False)
    assert studio.status(job_id)["finishedSuccessful"] is False
    assert studio.stdout(job_id)[0] == "Job failed (see above)"


def test_unknown_job(studio: Studio) -> None:
    for method, path in (("GET", "jobs/999/status"), ("GET", "jobs/999/stdout"), ("POST", "jobs/999/cancel")):
        response = studio.request(method, path)
        assert response.status_code == 404
        assert response.json() == {"success": False, "error": "No job with this ID found"}


def test_cancel_running_job_then_cancel_again(emulator, studio: Studio, validate) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/train/keras/4", json={})
    validate("GenericApiResponse", studio.post(f"jobs/{job_id}/cancel", params={"forceCancel": "true"}))
    job = studio.status(job_id)
    assert job["finished"] and job["finishedSuccessful"] is False
    assert studio.stdout(job_id)[0] == "Job was cancelled"
    again = studio.post(f"jobs/{job_id}/cancel")
    assert again.status_code == 400
    assert again.json()["error"].startswith("Unknown job ID")
    assert emulator.jobs()[-1]["cancelled"] is True


def test_active_and_finished_job_lists(emulator, studio: Studio, validate) -> None:
    emulator.configure(job_duration=None)
    running = studio.start("jobs/evaluate")
    done = studio.start("jobs/train/keras/4", json={})
    emulator.finish_job(done)
    active = validate("ListJobsResponse", studio.get("jobs", params={"rootOnly": "true"}))
    assert [j.id for j in active.jobs] == [running]
    history = validate("ListJobsResponse", studio.get("jobs/history"))
    assert [j.id for j in history.jobs] == [done]
    assert history.total_job_count == 1


@pytest.mark.off_spec("job requests with missing or unknown fields, which the emulator must refuse")
def test_path_ids_are_validated(studio: Studio) -> None:
    assert "Learn block 99" in studio.post("jobs/train/keras/99", json={}).json()["error"]
    wrong_kind = studio.post("jobs/train/anomaly/4", json={})
    assert wrong_kind.status_code == 400 and "keras" in wrong_kind.json()["error"]
    missing_dsp = studio.post("jobs/generate-features", json={})
    assert missing_dsp.status_code == 400 and "dspId" in missing_dsp.json()["error"]
    assert studio.post("jobs/generate-features", json={"dspId": 42}).status_code == 404
    assert studio.post("jobs/retrain", params={"impulseId": 9}).status_code == 404
    bad_variant = studio.post("jobs/classify", json={"modelVariants": ["int4"]})
    assert bad_variant.status_code == 400 and "int4" in bad_variant.json()["error"]


def test_finish_sets_rest_status_before_socket_events(emulator, studio: Studio, monkeypatch) -> None:
    """A waiter that hears job-finished and then asks REST must already see the job finished."""
    emulator.configure(job_duration=None)
    state = emulator.state
    seen: list[tuple[str, Any, bool | None]] = []

    def record(project_id: int, event: str, payload: dict[str, Any]) -> None:
        job = state.jobs.jobs[job_id]
        seen.append((event, payload, job.finished_successful if job.finished else None))

    job_id = studio.start("jobs/evaluate")
    monkeypatch.setattr(state.sockets, "broadcast", record)
    emulator.finish_job(job_id, success=True)
    finished_events = [(e, p, s) for e, p, s in seen if e.startswith("job-finished")]
    assert finished_events == [
        (f"job-finished-{job_id}", {"success": True}, True),
        ("job-finished", {"jobId": job_id, "success": True}, True),
    ]
    data_events = [p["data"] for e, p, _ in seen if e == f"job-data-{job_id}"]
    assert data_events[-1] == "Job completed"
    assert seen[-1][0] == "job-finished"


def test_cancel_job_for_sockets(emulator, studio: Studio, edgeimpulse_emulator_server) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/evaluate")
    state = emulator.state

    def on_loop(func):
        # Job state belongs to the emulator's event loop, as it does for the socket handlers.
        async def call():
            return func()

        return asyncio.run_coroutine_threadsafe(call(), edgeimpulse_emulator_server.loop).result(10)

    assert on_loop(lambda: state.cancel_job(emulator.project_id + 1, job_id)) is False
    assert on_loop(lambda: state.cancel_job(emulator.project_id, job_id)) is True
    assert studio.status(job_id)["finishedSuccessful"] is False
    assert on_loop(lambda: state.cancel_job(emulator.project_id, job_id)) is False
    assert state.job_log(emulator.project_id, job_id)[-1] == "Job was cancelled"
    assert state.job_log(emulator.project_id, 424242) is None
