"""The EON Tuner: configuration, trial progression over the coordinator job, runs and adopting a trial."""

from __future__ import annotations

import time

import pytest

from tests.emulator.conftest import Studio

CONFIG = {"targetLatency": 50, "targetDevice": {"name": "cortex-m4f-80mhz", "ram": 65536}, "tuningMaxTrials": 3}


@pytest.mark.off_spec("tuner configurations without required fields, which the emulator must refuse")
def test_config_roundtrip_and_validation(studio: Studio, validate) -> None:
    default = validate("OptimizeConfigResponse", studio.get("optimize/config"))
    assert default.target_latency > 0
    validate("GenericApiResponse", studio.post("optimize/config", json=CONFIG))
    stored = validate("OptimizeConfigResponse", studio.get("optimize/config"))
    assert stored.target_latency == 50 and stored.tuning_max_trials == 3
    missing = studio.post("optimize/config", json={"targetDevice": {"name": "x"}})
    assert missing.status_code == 400 and "targetLatency" in missing.json()["error"]
    no_name = studio.post("optimize/config", json={"targetLatency": 5, "targetDevice": {}})
    assert no_name.status_code == 400 and "targetDevice" in no_name.json()["error"]


def test_trials_progress_while_the_coordinator_runs(emulator, studio: Studio, validate) -> None:
    emulator.configure(job_duration=1.5)
    studio.ok("POST", "optimize/config", json=CONFIG)
    job_id = studio.start("jobs/optimize")
    snapshots = []
    while True:
        state = validate("OptimizeStateResponse", studio.get(f"optimize/{job_id}/state"))
        snapshots.append(state)
        if not state.tuner_job_is_running:
            break
        time.sleep(0.1)
    first, last = snapshots[0], snapshots[-1]
    assert first.tuner_job_is_running and first.status.num_completed_trials < 3
    assert any(s.status.num_running_trials == 1 for s in snapshots)
    assert last.status.num_completed_trials == 3 and last.status.num_pending_trials == 0
    assert last.status.status == "completed"
    assert last.tuner_coordinator_job_id == job_id
    completed = last.trials[0]
    assert completed.status == "completed"
    assert completed.metrics.validation.float32.accuracy > 0.5
    assert completed.metrics.test.float32.on_device_performance[0].latency > 0
    # tunerJobIsRunning turns false no later than the coordinator job's finish.
    assert studio.wait(job_id)["finishedSuccessful"] is True


def test_trial_failures_are_configurable(emulator, studio: Studio, validate) -> None:
    emulator.configure(tuner_trial_failures=2, tuner_trials=5)
    job_id = studio.start("jobs/optimize")
    studio.wait(job_id)
    state = validate("OptimizeStateResponse", studio.get(f"optimize/{job_id}/state"))
    assert [t.status for t in state.trials] == ["completed"] * 3 + ["failed"] * 2
    assert state.status.num_failed_trials == 2
    assert any("failed" in line for line in studio.stdout(job_id))


def test_cancelled_tuner_stops(emulator, studio: Studio) -> None:
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/optimize")
    assert studio.ok("GET", f"optimize/{job_id}/state")["tunerJobIsRunning"] is True
    studio.ok("POST", f"jobs/{job_id}/cancel")
    state = studio.ok("GET", f"optimize/{job_id}/state")
    assert state["tunerJobIsRunning"] is False
    assert studio.ok("GET", "optimize/runs")["runs"][0]["jobStatus"] == "cancelled"


def test_runs_list(studio: Studio, validate) -> None:
    first = studio.start("jobs/optimize")
    studio.wait(first)
    second = studio.start("jobs/optimize")
    runs = validate("ListTunerRunsResponse", studio.get("optimize/runs")).runs
    assert [r.tuner_coordinator_job_id for r in runs] == [second, first]
    assert [r.job_status.value for r in runs] == ["running", "success"]


def test_unknown_tuner_run(studio: Studio) -> None:
    response = studio.get("optimize/12345/state")
    assert response.status_code == 404


def test_set_tuner_primary_job_adopts_the_trial(studio: Studio) -> None:
    job_id = studio.start("jobs/optimize")
    studio.wait(job_id)
    trial = studio.ok("GET", f"optimize/{job_id}/state")["trials"][1]
    adopt = studio.start("jobs/set-tuner-primary-job", params={"trialId": trial["id"]}, json={"name": "Best"})
    assert studio.wait(adopt)["finishedSuccessful"] is True
    impulse = studio.ok("GET", "impulse")["impulse"]
    assert impulse["name"] == "Best"
    assert impulse["id"] != 1
    assert impulse["learnBlocks"][0]["title"] == trial["impulse"]["learnBlocks"][0]["title"]


@pytest.mark.off_spec("adopting a trial without its id, which the emulator must refuse")
def test_set_tuner_primary_job_validates_the_trial(emulator, studio: Studio) -> None:
    unknown = studio.post("jobs/set-tuner-primary-job", params={"trialId": "nope"})
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"]
    assert studio.post("jobs/set-tuner-primary-job").status_code == 400
    emulator.configure(job_duration=None)
    job_id = studio.start("jobs/optimize")
    pending = studio.ok("GET", f"optimize/{job_id}/state")["trials"][-1]["id"]
    not_done = studio.post("jobs/set-tuner-primary-job", params={"trialId": pending})
    assert not_done.status_code == 400 and "not completed" in not_done.json()["error"]


@pytest.mark.off_spec("a precision Studio does not know, which the emulator must refuse")
def test_trials_report_the_precision_the_run_optimises_for(emulator, studio: Studio, validate) -> None:
    studio.ok("POST", "optimize/config", json={**CONFIG, "optimizationPrecision": "int8"})
    job_id = studio.start("jobs/optimize")
    studio.wait(job_id)
    state = validate("OptimizeStateResponse", studio.get(f"optimize/{job_id}/state"))
    completed = state.trials[0]
    assert completed.metrics.validation.float32 is None and completed.metrics.test.float32 is None
    assert completed.metrics.validation.int8.type.value == "int8"
    assert completed.metrics.test.int8.accuracy < completed.metrics.validation.int8.accuracy
    bad = studio.post("optimize/config", json={**CONFIG, "optimizationPrecision": "int4"})
    assert bad.status_code == 400 and "optimizationPrecision" in bad.json()["error"]
