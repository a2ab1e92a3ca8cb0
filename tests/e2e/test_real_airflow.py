"""
The nightly DAG on a real Airflow 3 (scheduler, dag-processor, triggerer, api-server as separate processes),
driven and inspected only through Airflow's REST API, the emulator's control API and the files Airflow writes.

One DAG run serves every test here (module fixture ``nightly_run``); while it runs, the training task's state,
its trigger, the default pool and the emulator's jobs are sampled, so the tests can tell that the task waited
deferred (no worker slot) while its Edge Impulse job ran, and that the wait ran in the triggerer.
Nothing may be retried: every task must succeed on its first try (only the model gate has retries, for Studio
errors while it reads figures) and a failed run fails the tests (see the deferral race in stack.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_edgeimpulse.emulator.sample_files import write_wave_samples
from tests.e2e import runs
from tests.e2e.stack import EMULATOR_PROJECT_ID, AirflowStack, StackError, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.versions]

# The DAG under test and its training task (EdgeImpulseRetrainOperator, deferrable).
DAG_ID = "edgeimpulse_nightly_retrain"
TRAINING_TASK_ID = "retrain_test_gate_build.retrain"
EXPECTED_STATES = {
    "new_sample_files": "success",
    "upload_samples": "success",
    "retrain_test_gate_build.retrain": "success",
    "retrain_test_gate_build.test": "success",
    "retrain_test_gate_build.quality_gate": "success",
    "retrain_test_gate_build.version": "success",
    "retrain_test_gate_build.build": "success",
}
# Scheduled on the Asset the nightly build announces to; on for this module only.
FIRMWARE_DAG_ID = "edgeimpulse_firmware_release"
DEPLOYMENT_ASSET = f"edgeimpulse://studio.edgeimpulse.com/project/{EMULATOR_PROJECT_ID}/deployment/zip"
TRIGGER_CLASSPATH = "airflow_provider_edgeimpulse.triggers.job.EdgeImpulseJobTrigger"
JOB_DURATION_S = 5.0  # long enough to watch the task sit deferred while its job runs
RUN_TIMEOUT_S = 300.0
SAMPLE_INTERVAL_S = 0.2


@dataclass(frozen=True)
class Sample:
    """What the training task, its trigger, the default pool and the emulator looked like at one moment."""

    at: float
    ti_state: str | None
    trigger_classpath: str | None
    triggerer_id: int | None
    running_slots: int
    deferred_slots: int
    running_jobs: frozenset[int]


@dataclass(frozen=True)
class NightlyRun:
    run_id: str
    state: str
    samples: tuple[Sample, ...]
    duration_s: float

    def ti_path(self, task_id: str = TRAINING_TASK_ID) -> str:
        return f"/dags/{DAG_ID}/dagRuns/{quote(self.run_id, safe='')}/taskInstances/{task_id}"


def take_sample(stack: AirflowStack, run_path: str, started: float) -> tuple[Sample, str]:
    run = stack.api("GET", run_path)
    ti = stack.api("GET", f"{run_path}/taskInstances/{TRAINING_TASK_ID}", expect=(200, 404)) or {}
    pool = stack.api("GET", "/pools/default_pool")
    jobs = stack.emulator("GET", "/jobs")["jobs"]
    trigger = ti.get("trigger") or {}
    sample = Sample(
        at=time.monotonic() - started,
        ti_state=ti.get("state"),
        trigger_classpath=trigger.get("classpath"),
        triggerer_id=trigger.get("triggerer_id"),
        running_slots=int(pool.get("running_slots") or 0),
        deferred_slots=int(pool.get("deferred_slots") or 0),
        running_jobs=frozenset(int(job["id"]) for job in jobs if not job["finished"]),
    )
    return sample, str(run["state"])


@pytest.fixture(scope="module")
def nightly_run(airflow_stack: AirflowStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightlyRun]:
    stack = airflow_stack
    stack.wait_for_dag(DAG_ID)
    # On before the build announces: a paused DAG gets no run queued for an asset event.
    runs.unpause(stack, FIRMWARE_DAG_ID)
    try:
        yield _nightly_run(stack, tmp_path_factory)
    finally:
        stack.api("PATCH", f"/dags/{FIRMWARE_DAG_ID}", json={"is_paused": True})


def _nightly_run(stack: AirflowStack, tmp_path_factory: pytest.TempPathFactory) -> NightlyRun:
    stack.emulator("POST", "/config", json={"job_duration": JOB_DURATION_S})
    stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    work = tmp_path_factory.mktemp("nightly")
    write_wave_samples(work / "samples", 3, tag="e2e", device_type="AIRFLOW_E2E")
    conf = {"samples_dir": str(work / "samples"), "output_dir": str(work / "deployments")}
    run = stack.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    run_id = str(run["dag_run_id"])
    run_path = f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"

    started = time.monotonic()
    samples: list[Sample] = []
    state = str(run["state"])
    while state not in ("success", "failed"):
        if time.monotonic() - started > RUN_TIMEOUT_S:
            raise StackError(f"run {run_id} still {state} after {RUN_TIMEOUT_S:.0f} s\n{stack.log_tails()}")
        sample, state = take_sample(stack, run_path, started)
        samples.append(sample)
        time.sleep(SAMPLE_INTERVAL_S)
    result = NightlyRun(run_id, state, tuple(samples), time.monotonic() - started)
    (stack.settings.artifacts / "nightly-run-samples.json").write_text(
        json.dumps([{**s.__dict__, "running_jobs": sorted(s.running_jobs)} for s in samples], indent=1)
    )
    return result


def task_states(stack: AirflowStack, run: NightlyRun) -> dict[str, tuple[str | None, int]]:
    answer = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{quote(run.run_id, safe='')}/taskInstances")
    return {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in answer["task_instances"]}


def xcom(stack: AirflowStack, run: NightlyRun, key: str) -> Any:
    # deserialize=true: the value as the task pushed it, not its stored JSON text.
    return stack.api("GET", f"{run.ti_path()}/xcomEntries/{key}", params={"deserialize": "true"})["value"]


def training_job_id(stack: AirflowStack, run: NightlyRun) -> int:
    return int(xcom(stack, run, "job_id"))


def test_the_nightly_run_succeeds_on_the_first_try(airflow_stack: AirflowStack, nightly_run: NightlyRun) -> None:
    states = task_states(airflow_stack, nightly_run)
    if nightly_run.state != "success":
        scheduler = next(c for c in airflow_stack.components if c.name == "scheduler")
        mismatches = [line for line in scheduler.log.read_text().splitlines() if "mismatch" in line.lower()]
        pytest.fail(
            f"run {nightly_run.run_id} ended {nightly_run.state}; task states {states}; "
            f"scheduler 'mismatch' lines (the 3.2/3.3 deferral race): {mismatches[-5:]}"
        )
    assert {task: state for task, (state, _) in states.items()} == EXPECTED_STATES
    # One try each: no retry anywhere that could hide a failure.
    assert {task: tries for task, (_, tries) in states.items()} == dict.fromkeys(EXPECTED_STATES, 1)
    tries = airflow_stack.api("GET", f"{nightly_run.ti_path()}/tries")["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "success")]


def test_the_training_task_waited_deferred_without_a_worker_slot(
    airflow_stack: AirflowStack, nightly_run: NightlyRun
) -> None:
    job_id = training_job_id(airflow_stack, nightly_run)
    while_job_ran = [s for s in nightly_run.samples if job_id in s.running_jobs]
    assert while_job_ran, f"never saw Edge Impulse job {job_id} running; samples: {nightly_run.samples}"
    deferred = [s for s in while_job_ran if s.ti_state == "deferred"]
    on_worker = [s for s in while_job_ran if s.ti_state in ("running", "queued", "scheduled")]
    assert deferred, f"the task was never deferred while job {job_id} ran: {while_job_ran}"
    # Most of the job's run time was spent deferred; only the start (submit, then defer) was on a worker.
    assert deferred[-1].at - deferred[0].at >= JOB_DURATION_S / 2, deferred
    if on_worker:
        assert on_worker[-1].at - on_worker[0].at < JOB_DURATION_S / 2, on_worker
    # While deferred, the default pool counted the task as deferred, not as running (no slot held).
    assert all(s.running_slots == 0 and s.deferred_slots >= 1 for s in deferred), deferred


def test_the_wait_ran_in_the_triggerer(airflow_stack: AirflowStack, nightly_run: NightlyRun) -> None:
    job_id = training_job_id(airflow_stack, nightly_run)
    deferred = [s for s in nightly_run.samples if s.ti_state == "deferred"]
    assert {s.trigger_classpath for s in deferred} == {TRIGGER_CLASSPATH}
    triggerers = airflow_stack.api("GET", "/jobs", params={"job_type": "TriggererJob"})["jobs"]
    triggerer_ids = {int(job["id"]) for job in triggerers}
    assert len(triggerer_ids) == 1, f"expected the stack's one triggerer process, got {triggerers}"
    claimed = {s.triggerer_id for s in deferred if s.triggerer_id is not None}
    assert claimed <= triggerer_ids, f"trigger claimed by {claimed}, triggerers are {triggerer_ids}"

    # The triggerer process writes the trigger's log next to the task's, named after its own job id.
    task_logs = airflow_stack.settings.artifacts / "task-logs" / f"dag_id={DAG_ID}" / f"run_id={nightly_run.run_id}"
    (triggerer_id,) = triggerer_ids
    trigger_log = task_logs / f"task_id={TRAINING_TASK_ID}" / f"attempt=1.log.trigger.{triggerer_id}.log"
    assert trigger_log.is_file(), sorted(p.name for p in task_logs.rglob("*"))
    trigger_text = trigger_log.read_text()
    assert f"[job {job_id}] " in trigger_text, "the job's own log lines were relayed by the trigger"
    assert "Trigger fired event" in trigger_text

    # ... and the task log that the UI shows (REST) carries those lines too.
    log = airflow_stack.api(
        "GET",
        f"{nightly_run.ti_path()}/logs/1",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    events = " ".join(str(part.get("event", "")) for part in log["content"] if isinstance(part, dict))
    assert f"[job {job_id}] " in events
    assert "Pausing task as DEFERRED" in events


def test_no_task_or_trigger_log_holds_the_api_key(airflow_stack: AirflowStack, nightly_run: NightlyRun) -> None:
    run_logs = airflow_stack.settings.artifacts / "task-logs" / f"dag_id={DAG_ID}" / f"run_id={nightly_run.run_id}"
    files = [p for p in run_logs.rglob("*.log*") if p.is_file()]
    assert len(files) >= len(EXPECTED_STATES), files
    api_key = airflow_stack.settings.credentials.api_key
    leaking = [str(p.relative_to(run_logs)) for p in files if api_key in p.read_text(errors="replace")]
    assert not leaking


def test_xcoms_and_the_studio_link(airflow_stack: AirflowStack, nightly_run: NightlyRun) -> None:
    job_id = training_job_id(airflow_stack, nightly_run)
    studio_url = f"{airflow_stack.emulator_url}/studio/{EMULATOR_PROJECT_ID}/jobs/{job_id}"
    assert xcom(airflow_stack, nightly_run, "studio_url") == studio_url
    result = xcom(airflow_stack, nightly_run, "return_value")
    assert isinstance(result, dict), result
    assert (result.get("job_id"), result.get("success"), result.get("status")) == (job_id, True, "success")
    links = airflow_stack.api("GET", f"{nightly_run.ti_path()}/links")
    assert links["extra_links"] == {"Edge Impulse Studio": studio_url}
    # The job really ran on the emulator: started once, finished successfully.
    (job,) = [j for j in airflow_stack.emulator("GET", "/jobs")["jobs"] if int(j["id"]) == job_id]
    assert (job["finished"] is not None, job["finishedSuccessful"]) == (True, True), job


def test_the_build_is_announced_and_the_firmware_dag_runs_on_it(
    airflow_stack: AirflowStack, nightly_run: NightlyRun
) -> None:
    stack = airflow_stack
    build = runs.xcom(stack, DAG_ID, nightly_run.run_id, "retrain_test_gate_build.build")
    # The model passed the gate and became a project version before it was built: the announcement names it.
    assert runs.xcom(stack, DAG_ID, nightly_run.run_id, "retrain_test_gate_build.quality_gate")["passed"] is True
    version = runs.xcom(stack, DAG_ID, nightly_run.run_id, "retrain_test_gate_build.version")
    listed = requests.get(
        f"{stack.emulator_url}/v1/api/{EMULATOR_PROJECT_ID}/versions",
        headers={"x-api-key": stack.settings.credentials.api_key},
        timeout=30,
    )
    listed.raise_for_status()
    assert version["version"] in [v["version"] for v in listed.json()["versions"]], "Studio lists the version"
    announced = {
        "project_id": EMULATOR_PROJECT_ID,
        "project_version": version["version"],
        "deployment_version": build["deploymentVersion"],
        "format": "zip",
        "engine": "tflite-eon",
        "model_type": None,
        "sha256": build["sha256"],
        "size": build["size"],
        "filename": build["filename"],
        "path": build["path"],
        "job_id": build["job_id"],
    }

    def firmware_run() -> dict[str, Any] | None:
        triggered = [r for r in runs.runs_of(stack, FIRMWARE_DAG_ID) if r["run_type"] == "asset_triggered"]
        return triggered[0] if triggered else None

    run = wait_until(firmware_run, timeout=120, what="a firmware_release run started by the asset event")
    run_id = str(run["dag_run_id"])
    assert runs.wait_for_run_end(stack, FIRMWARE_DAG_ID, run_id) == "success", runs.task_states(
        stack, FIRMWARE_DAG_ID, run_id
    )
    # Read the event only once the run it created has started: Airflow 3.3 answers 500 on /assets/events while a
    # created run is still queued without a start date (apache/airflow#71360).
    events = stack.api("GET", "/assets/events", params={"source_dag_id": DAG_ID, "source_run_id": nightly_run.run_id})[
        "asset_events"
    ]
    (event,) = events
    assert event["uri"] == DEPLOYMENT_ASSET
    assert event["source_task_id"] == "retrain_test_gate_build.build"
    assert event["extra"] == announced
    assert runs.xcom(stack, FIRMWARE_DAG_ID, run_id, "announced_build") == announced, "the run saw the event's extra"
    assert runs.xcom(stack, FIRMWARE_DAG_ID, run_id, "release")["sha256"] == build["sha256"]
