"""
The provider on a real Airflow 2.11 (stack_af2.py): scheduler, triggerer and webserver as separate processes,
driven through the REST API v1, the emulator's control API and the files Airflow writes.

On Airflow 2.11 the provider takes its pre-3.3 paths: a retried task finds the job its earlier try started through
an Airflow Variable named after the task instance (no task state store); a deferred task resumes on a worker to
end (no ``TaskSuccessEvent``); a trigger is never told that a user stopped its task (no trigger ``on_kill``);
builds are announced as Dataset events, and there are no asset watchers. Each test names what it proves there.
The DAGs: the nightly example DAG, and tests/e2e/dags/e2e_task_lifecycle.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.emulator.sample_files import write_wave_samples
from airflow_provider_edgeimpulse.operators.resume import job_variable_key
from tests.e2e import runs
from tests.e2e.conftest import running_stack
from tests.e2e.secret_search import (
    Search,
    fernet_of,
    in_allowed_table,
    search_database,
    search_files,
    search_triggers_through_airflow,
)
from tests.e2e.stack import EMULATOR_PROJECT_ID, REPO, AirflowStack, StackError, StackSettings, wait_until
from tests.e2e.stack_af2 import AF2_VERSION, Airflow2Stack
from tests.e2e.versions import version_venv

pytestmark = pytest.mark.e2e

NIGHTLY = "edgeimpulse_nightly_retrain"
FIRMWARE = "edgeimpulse_firmware_release"
NEW_DATA = "edgeimpulse_retrain_on_new_data"
RETRAIN = "retrain_test_gate_build.retrain"
TRIGGER_CLASSPATH = "airflow_provider_edgeimpulse.triggers.job.EdgeImpulseJobTrigger"
DEPLOYMENT_ASSET = f"edgeimpulse://studio.edgeimpulse.com/project/{EMULATOR_PROJECT_ID}/deployment/zip"
JOB_DURATION_S = 5.0
SAMPLE_INTERVAL_S = 0.2
# A dead triggerer's triggers go to a live one once its heartbeat is this old; it beats every second.
TRIGGERER_HEARTBEAT_S = 1
TRIGGERER_HEALTH_THRESHOLD_S = 10
DAG_FILES = (
    *sorted(p for p in (REPO / "dags").iterdir() if p.name != "__pycache__"),
    REPO / "tests" / "e2e" / "dags" / "e2e_task_lifecycle.py",
)


@pytest.fixture(scope="module")
def af2_stack(e2e_artifacts: Path) -> Iterator[AirflowStack]:
    artifacts = e2e_artifacts / f"airflow-{AF2_VERSION}"
    artifacts.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    venv = version_venv(AF2_VERSION, artifacts / "provider-wheel")
    install_s = time.monotonic() - began
    (artifacts / "install-timings.json").write_text(json.dumps({"venv_and_wheel_s": install_s}) + "\n")
    settings = StackSettings(
        dag_folders=DAG_FILES,
        artifacts=artifacts,
        python=venv.python,
        python_path=(venv.provider_path,),
        triggerer_heartbeat_s=TRIGGERER_HEARTBEAT_S,
        triggerer_health_check_threshold_s=TRIGGERER_HEALTH_THRESHOLD_S,
    )
    yield from running_stack(settings, Airflow2Stack)


@pytest.fixture
def jobs_wait_for_the_test(af2_stack: AirflowStack) -> Iterator[None]:
    """Jobs run until the test finishes or cancels them, so every state looked at is held as long as needed."""
    af2_stack.emulator("POST", "/config", json={"job_duration": None})
    try:
        yield
    finally:
        af2_stack.emulator("POST", "/config", json={"job_duration": af2_stack.settings.job_duration})


def trigger(stack: AirflowStack, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Unpause ``dag_id`` and start a run over the REST API v1 (its logical date is now); the run id."""
    runs.unpause(stack, dag_id)
    return str(stack.api("POST", f"/dags/{dag_id}/dagRuns", json={"conf": conf or {}})["dag_run_id"])


def job_variable(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> str | None:
    """The Variable through which a retry re-attaches (operators/resume.py), or None when there is none."""
    return runs.variable(stack, job_variable_key(dag_id, task_id, run_id))


def triggerer_of(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> int | None:
    ti = runs.task_instance(stack, dag_id, run_id, task_id)
    return int(ti["triggerer_job"]["id"]) if ti.get("triggerer_job") else None


def rest_log(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    """The task log of one try as the UI shows it: the webserver merges the worker's and the triggerer's files."""
    path = f"{runs.ti_path(dag_id, run_id, task_id)}/logs/{try_number}"
    answer = stack.api("GET", path, params={"full_content": "true"}, headers={"Accept": "application/json"})
    return str(answer["content"])


# -- the nightly example DAG ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NightlyRun:
    run_id: str
    state: str
    # (task state, trigger classpath, triggerer job id, unfinished emulator jobs) of the retrain task, over time
    samples: tuple[tuple[str | None, str | None, int | None, frozenset[int]], ...]


@pytest.fixture(scope="module")
def nightly_run(af2_stack: AirflowStack, tmp_path_factory: pytest.TempPathFactory) -> NightlyRun:
    stack = af2_stack
    stack.emulator("POST", "/config", json={"job_duration": JOB_DURATION_S})
    runs.unpause(stack, FIRMWARE)  # before the build announces: a paused DAG gets no run for a dataset event
    work = tmp_path_factory.mktemp("nightly-af2")
    write_wave_samples(work / "samples", 3, tag="e2e", device_type="AIRFLOW_E2E")
    run_id = trigger(stack, NIGHTLY, {"samples_dir": str(work / "samples"), "output_dir": str(work / "deployments")})
    samples = []
    deadline = time.monotonic() + runs.RUN_TIMEOUT_S * 2
    state = ""
    while state not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise StackError(f"run {run_id} still {state}\n{stack.log_tails()}")
        ti = stack.api("GET", runs.ti_path(NIGHTLY, run_id, RETRAIN), expect=(200, 404)) or {}
        jobs = frozenset(int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"] if not j["finished"])
        trigger_row, triggerer = ti.get("trigger") or {}, ti.get("triggerer_job") or {}
        samples.append((ti.get("state"), trigger_row.get("classpath"), triggerer.get("id"), jobs))
        state = str(stack.api("GET", runs.run_path(NIGHTLY, run_id))["state"])
        time.sleep(SAMPLE_INTERVAL_S)
    return NightlyRun(run_id, state, tuple(samples))


def test_the_nightly_dag_triggered_over_the_rest_api_v1_succeeds(
    af2_stack: AirflowStack, nightly_run: NightlyRun
) -> None:
    stack, run_id = af2_stack, nightly_run.run_id
    answer = stack.api("GET", f"{runs.run_path(NIGHTLY, run_id)}/taskInstances")["task_instances"]
    tries = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in answer}
    evidence = "\n".join(runs.try_log_tails(stack, NIGHTLY, run_id, task, n) for task, (_, n) in tries.items())
    assert nightly_run.state == "success", f"{tries}\n{evidence}\n{stack.log_tails()}"
    assert {state for state, _ in tries.values()} == {"success"}, f"{tries}\n{evidence}"
    # One run each: no retry anywhere that could hide a failure. A try number may be 2 without a retry: Airflow
    # 2.11's follow-on schedule check (in the upstream task's process) and its scheduler can both schedule a task,
    # and each adds one to its try number ("Starting attempt 2 of 1").
    folder = stack.settings.artifacts / "task-logs" / f"dag_id={NIGHTLY}" / f"run_id={run_id}"
    attempts = {task: sorted(p.name for p in (folder / f"task_id={task}").glob("attempt=*.log")) for task in tries}
    worker_attempts = {task: [name for name in names if ".trigger." not in name] for task, names in attempts.items()}
    assert worker_attempts == {task: [f"attempt={n}.log"] for task, (_, n) in tries.items()}, attempts
    assert RETRAIN in tries


def test_the_retrain_task_was_deferred_while_its_job_ran_and_its_trigger_ran_in_the_triggerer(
    af2_stack: AirflowStack, nightly_run: NightlyRun
) -> None:
    stack, run_id = af2_stack, nightly_run.run_id
    job_id = int(runs.xcom(stack, NIGHTLY, run_id, RETRAIN, key="job_id"))
    try_number = int(runs.task_instance(stack, NIGHTLY, run_id, RETRAIN)["try_number"])
    deferred = [s for s in nightly_run.samples if s[0] == "deferred" and job_id in s[3]]
    assert deferred, f"never saw the task deferred while job {job_id} ran: {nightly_run.samples}"
    assert {s[1] for s in deferred} == {TRIGGER_CLASSPATH}
    claimed = {s[2] for s in deferred if s[2] is not None}
    assert len(claimed) == 1, f"one triggerer ran the wait: {deferred}"
    (triggerer_id,) = claimed
    # The triggerer process wrote the trigger's log beside the task's, named after its own job id.
    trigger_log = runs.trigger_logs(stack, NIGHTLY, run_id, RETRAIN, try_number, triggerer=str(triggerer_id))
    evidence = runs.try_log_tails(stack, NIGHTLY, run_id, RETRAIN, try_number)
    assert trigger_log and f"[job {job_id}] " in trigger_log[0], f"the trigger relays the job's log:\n{evidence}"
    # Airflow 2.11 has no TaskSuccessEvent: the task resumed on a worker (execute_complete) to end.
    log = rest_log(stack, NIGHTLY, run_id, RETRAIN, try_number)
    assert f"[job {job_id}] " in log, f"the job's log lines reach the task log the UI shows:\n{log[-3000:]}"
    assert "Pausing task as DEFERRED" in log, log[-3000:]
    assert "Resuming after deferral" in log, log[-3000:]


def test_the_retrain_task_xcoms_and_studio_link_exist(af2_stack: AirflowStack, nightly_run: NightlyRun) -> None:
    stack, run_id = af2_stack, nightly_run.run_id
    job_id = int(runs.xcom(stack, NIGHTLY, run_id, RETRAIN, key="job_id"))
    studio_url = f"{stack.emulator_url}/studio/{EMULATOR_PROJECT_ID}/jobs/{job_id}"
    assert runs.xcom(stack, NIGHTLY, run_id, RETRAIN, key="studio_url") == studio_url
    links = stack.api("GET", f"{runs.ti_path(NIGHTLY, run_id, RETRAIN)}/links")
    assert links == {"Edge Impulse Studio": studio_url}, "the operator's extra link, as the 2.11 UI shows it"
    result = runs.xcom(stack, NIGHTLY, run_id, RETRAIN)
    assert (result["job_id"], result["success"], result["status"]) == (job_id, True, "success"), result
    job = runs.emulator_job(stack, job_id)
    assert (job["finishedSuccessful"], job["cancelled"]) == (True, False), job
    assert job_variable(stack, NIGHTLY, run_id, RETRAIN) is None, "the job id Variable is removed once settled"


def test_no_asset_watchers_on_airflow_2_11_builds_are_announced_as_dataset_events(
    af2_stack: AirflowStack, nightly_run: NightlyRun
) -> None:
    """
    Airflow 2.11 has Datasets, not Assets, and no asset watchers. The build is announced as a Dataset event with
    the build's extra, and the firmware DAG runs on it; the new-data DAG polls with a sensor on an hourly schedule.
    """
    stack = af2_stack
    events = stack.api(
        "GET", "/datasets/events", params={"source_dag_id": NIGHTLY, "source_run_id": nightly_run.run_id}
    )["dataset_events"]
    (event,) = events
    assert event["dataset_uri"] == DEPLOYMENT_ASSET
    assert event["extra"]["sha256"] and event["extra"]["project_id"] == EMULATOR_PROJECT_ID, event

    def firmware_run() -> dict[str, Any] | None:
        found = [r for r in runs.runs_of(stack, FIRMWARE) if r["run_type"] == "dataset_triggered"]
        return found[0] if found else None

    run = wait_until(firmware_run, timeout=120, what="a firmware_release run started by the dataset event")
    run_id = str(run["dag_run_id"])
    assert runs.wait_for_run_end(stack, FIRMWARE, run_id) == "success", runs.task_states(stack, FIRMWARE, run_id)
    assert runs.xcom(stack, FIRMWARE, run_id, "release")["sha256"] == event["extra"]["sha256"]

    new_data = stack.wait_for_dag(NEW_DATA)
    assert new_data["schedule_interval"] == {"__type": "TimeDelta", "days": 0, "seconds": 3600, "microseconds": 0}
    tasks = {t["task_id"]: t for t in stack.api("GET", f"/dags/{NEW_DATA}/tasks")["tasks"]}
    assert tasks["new_samples"]["class_ref"]["class_name"] == "EdgeImpulseNewSamplesSensor"


# -- what happens to the remote job when Airflow's side of a task goes away ----------------------------------------


def task_runner_pid(dag_id: str, task_id: str, run_id: str) -> int | None:
    """The pid of the process that runs the task (Airflow 2 titles it ``airflow task runner: <dag> <task> <run>``)."""
    return runs.titled_process(f"airflow task runner: {dag_id} {task_id} {run_id}")


def test_a_retry_after_the_worker_died_re_attaches_through_the_job_id_variable(
    af2_stack: AirflowStack, jobs_wait_for_the_test: None
) -> None:
    stack, dag_id, task_id = af2_stack, "e2e_worker_death", "retrain_blocking"
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    run_id = trigger(stack, dag_id)
    job_id = runs.wait_for_job_of(stack, dag_id, run_id, task_id, "running", try_number=1)
    assert job_variable(stack, dag_id, run_id, task_id) == str(job_id), "the try recorded its job for a retry"

    pid = wait_until(lambda: task_runner_pid(dag_id, task_id, run_id), timeout=30, what="the task's process")
    os.kill(pid, signal.SIGKILL)

    # The scheduler fails the try whose process died; the retry finds the job still running and waits for it.
    assert runs.wait_for_job_of(stack, dag_id, run_id, task_id, "running", try_number=2) == job_id
    assert runs.emulator_job(stack, job_id)["cancelled"] is False, "a dead worker must not take its job with it"
    runs.check_the_retry_re_attached(stack, dag_id, run_id, task_id, job_id, known)
    assert job_variable(stack, dag_id, run_id, task_id) is None, "the Variable is removed once the job is settled"


def test_a_new_triggerer_takes_the_wait_of_a_dead_one_and_the_job_runs_on(
    af2_stack: AirflowStack, jobs_wait_for_the_test: None
) -> None:
    stack, dag_id, task_id = af2_stack, "e2e_triggerer_handover", "retrain_deferred"
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    run_id = trigger(stack, dag_id)
    job_id = runs.wait_for_job_of(stack, dag_id, run_id, task_id, "deferred", try_number=1)
    first = triggerer_of(stack, dag_id, run_id, task_id)
    assert first is not None

    stack.kill("triggerer")
    stack.start_triggerer("triggerer-2")

    def adopted() -> int | None:
        holder = triggerer_of(stack, dag_id, run_id, task_id)
        if holder in (None, first):
            return None
        assert holder is not None
        return holder if runs.trigger_relays(stack, dag_id, run_id, task_id, 1, job_id, str(holder)) else None

    wait_until(adopted, timeout=runs.ACTION_TIMEOUT_S, what="the new triggerer to take the wait over", interval=1)
    job = runs.emulator_job(stack, job_id)
    assert (job["finished"], job["cancelled"]) == (None, False), job
    assert runs.task_instance(stack, dag_id, run_id, task_id)["state"] == "deferred"

    stack.emulator("POST", f"/jobs/{job_id}/finish", json={"success": True})
    ti = runs.wait_for_ti_state(stack, dag_id, run_id, task_id, {"success", "failed"})
    assert (ti["state"], ti["try_number"]) == ("success", 1), ti
    job = runs.emulator_job(stack, job_id)
    assert (job["cancelled"], job["finishedSuccessful"]) == (False, True), job
    started = runs.jobs_started_since(stack, known)
    assert [int(j["id"]) for j in started] == [job_id], f"exactly one remote job: {started}"
    assert job_variable(stack, dag_id, run_id, task_id) is None


def test_a_deferred_task_marked_failed_on_airflow_2_11_leaves_its_job_running_as_no_trigger_on_kill_exists(
    af2_stack: AirflowStack, jobs_wait_for_the_test: None
) -> None:
    """
    Airflow 2.11 has no trigger ``on_kill``: a user's stop of a deferred task (marked failed, or cleared) only
    cancels its trigger's coroutine, as a triggerer shutting down does, so the remote job runs on. Its id stays in
    the task's Variable, so a cleared deferred task's next try re-attaches to that job instead of starting another.
    A blocking task marked failed is stopped by its ``airflow tasks run`` supervisor, whose SIGTERM reaches the
    operator's ``on_kill``: that job is cancelled. ``blocking_clear`` is left alone, the run's control.
    """
    stack, dag_id = af2_stack, "e2e_kill_and_clear"
    run_id = trigger(stack, dag_id)
    tasks = ("blocking_mark_failed", "blocking_clear", "deferred_mark_failed", "deferred_clear")
    waiting_state = {"blocking": "running", "deferred": "deferred"}
    first = {
        task: runs.wait_for_job_of(stack, dag_id, run_id, task, waiting_state[task.split("_")[0]], try_number=1)
        for task in tasks
    }
    assert len(set(first.values())) == len(tasks), first
    trigger_ids = {
        task: int(runs.task_instance(stack, dag_id, run_id, task)["trigger"]["id"])
        for task in ("deferred_mark_failed", "deferred_clear")
    }

    for task in ("blocking_mark_failed", "deferred_mark_failed"):
        stack.api("PATCH", runs.ti_path(dag_id, run_id, task), json={"new_state": "failed", "dry_run": False})
    body = {"dry_run": False, "task_ids": ["deferred_clear"], "dag_run_id": run_id, "only_failed": False}
    stack.api("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)

    runs.wait_cancelled(stack, first["blocking_mark_failed"])
    assert runs.task_instance(stack, dag_id, run_id, "blocking_mark_failed")["state"] == "failed"

    # The triggerer drops each stopped task's trigger: it ends the coroutine and calls nothing of the provider.
    (triggerer,) = [c for c in stack.components if c.name.startswith("triggerer") and c.alive()]
    for task, trigger_id in trigger_ids.items():
        ended = f"(ID {trigger_id}) completed"
        wait_until(
            lambda ended=ended: True if ended in triggerer.log_tail(400_000) else None,
            timeout=runs.ACTION_TIMEOUT_S,
            what=f"the triggerer to drop the trigger of {task}",
            interval=1,
        )
    failed = runs.emulator_job(stack, first["deferred_mark_failed"])
    assert (failed["finished"], failed["cancelled"]) == (None, False), "no trigger on_kill on 2.11: the job runs on"
    assert runs.task_instance(stack, dag_id, run_id, "deferred_mark_failed")["state"] == "failed"
    assert job_variable(stack, dag_id, run_id, "deferred_mark_failed") == str(first["deferred_mark_failed"])

    # The cleared deferred task re-attaches to the job that ran on; the control ends with its first job.
    second = runs.wait_for_job_of(stack, dag_id, run_id, "deferred_clear", "deferred", try_number=2)
    assert second == first["deferred_clear"], "the cleared deferred task re-attached to its running job"
    for task, try_number in (("deferred_clear", 2), ("blocking_clear", 1)):
        stack.emulator("POST", f"/jobs/{first[task]}/finish", json={"success": True})
        ti = runs.wait_for_ti_state(stack, dag_id, run_id, task, {"success", "failed"})
        assert (ti["state"], ti["try_number"]) == ("success", try_number), ti
        assert job_variable(stack, dag_id, run_id, task) is None
    stack.emulator("POST", f"/jobs/{first['deferred_mark_failed']}/finish", json={"success": False})


def test_no_secret_in_any_log_or_table_outside_connection(af2_stack: AirflowStack, nightly_run: NightlyRun) -> None:
    stack = af2_stack
    assert nightly_run.state == "success"
    secrets = dict(enumerate(stack.settings.credentials.secrets()))
    needles = {f"secret {n}": value for n, value in secrets.items()}
    # The job's Studio URL is in the XCom table: found there, it shows the search reads what it should.
    job_id = int(runs.xcom(stack, NIGHTLY, nightly_run.run_id, RETRAIN, key="job_id"))
    needles["studio url"] = f"{stack.emulator_url}/studio/{EMULATOR_PROJECT_ID}/jobs/{job_id}"

    # While a task waits deferred: the trigger kwargs as Airflow decrypts them for the triggerer.
    stack.emulator("POST", "/config", json={"job_duration": None})
    try:
        run_id = trigger(stack, "e2e_triggerer_handover")
        waiting = runs.wait_for_job_of(stack, "e2e_triggerer_handover", run_id, "retrain_deferred", "deferred", 1)
        search = Search(needles, fernet_of(stack))
        triggers = search_triggers_through_airflow(search, stack)
        assert [t["classpath"] for t in triggers] == [TRIGGER_CLASSPATH], triggers
        stack.emulator("POST", f"/jobs/{waiting}/finish", json={"success": True})
        ti = runs.wait_for_ti_state(stack, "e2e_triggerer_handover", run_id, "retrain_deferred", {"success", "failed"})
        assert ti["state"] == "success"
    finally:
        stack.emulator("POST", "/config", json={"job_duration": stack.settings.job_duration})

    rows = search_database(search, stack)
    search_files(search, stack)
    assert rows.get("xcom") and search.counts["task log files"] > 0, (rows, search.counts)
    assert any(p.startswith("db:xcom.") for p in search.places("studio url")), search.places("studio url")
    leaks = sorted(
        place
        for name in needles
        if name.startswith("secret")
        for place in search.places(name)
        if not in_allowed_table(place)
    )
    assert not leaks, f"secrets found outside the connection table: {leaks}"
