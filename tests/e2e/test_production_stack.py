"""
Airflow as most teams run it in production, on this machine: PostgreSQL, Redis, the CeleryExecutor with two Celery
workers, two triggerers, scheduler, dag-processor and api-server (stack.py, ``distributed``), with the provider
installed from its built wheel into a virtualenv of its own (``wheel_venv``), not from the work tree.

- Twenty deferred job tasks are spread over both triggerers; one triggerer is SIGKILLed mid-wait and the other
  adopts its triggers (heartbeat 1 s, health threshold 5 s). Every task succeeds on its first try with one remote
  job each, none cancelled; the jobs that finished while their triggers had no triggerer are seen as soon as the
  triggers are adopted (their safety check is 600 s away).
- A Celery worker running a blocking job task is SIGKILLed (the whole worker, as when its node is lost): the
  scheduler fails the try once its heartbeat is overdue, the retry runs on the other worker and re-attaches to the
  job; exactly one remote job.
- The nightly pipeline's hand-over through object storage: retrain, then the build on one Celery worker writes the
  firmware to an S3-compatible store (moto's server, started here, reached through an Amazon provider connection
  made over the REST API as a user makes it), and a task on the other worker reads it back from the store and
  checks its sha256. Each task's queue is served by one worker only, and the REST API's task instances name the
  worker that ran them.
- No secret in PostgreSQL (every table, the Celery result backend's included, trigger kwargs as Airflow decrypts
  them), in Redis (every key and value of the Celery broker) or in any file, as test_secrets.py shows for SQLite;
  the store's secret key included.

The DAGs are in tests/e2e/dags (e2e_production.py, e2e_task_lifecycle.py, e2e_nightly_s3.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.dags.e2e_nightly_s3 import BUILD_QUEUE, CHECK_QUEUE
from tests.e2e.dags.e2e_production import MANY_DEFERRED, SAFETY_INTERVAL_S
from tests.e2e.runs import (
    ACTION_TIMEOUT_S,
    check_the_retry_re_attached,
    emulator_job,
    jobs_started_since,
    run_path,
    task_instance,
    task_process,
    task_states,
    trigger,
    trigger_relays,
    try_log_tails,
    wait_for_job_of,
    wait_for_run_end,
    wait_for_ti_state,
    xcom,
)
from tests.e2e.secret_search import (
    Hit,
    Search,
    fernet_of,
    in_allowed_table,
    search_database,
    search_files,
    search_redis,
    search_triggers_through_airflow,
)
from tests.e2e.services import ensure_services
from tests.e2e.stack import (
    EMULATOR_PROJECT_ID,
    REPO,
    AirflowStack,
    StackError,
    StackSettings,
    wait_until,
    wheel_venv,
    worker_queue,
)
from tests.object_store import ACCESS_KEY, SECRET_KEY, S3Server, s3_server

pytestmark = pytest.mark.e2e

TRIGGERER_HEARTBEAT_S = 1
TRIGGERER_HEALTH_THRESHOLD_S = 5
# The first triggerer takes at most half the waits, so the second one, started after it, gets the rest.
FIRST_TRIGGERER_CAPACITY = MANY_DEFERRED // 2
TASK_HEARTBEAT_TIMEOUT_S = 20
PROBE_CONN_ID = "edgeimpulse_secret_probe"
REDIS_PROBE_KEY = "edgeimpulse-secret-probe"


@pytest.fixture(scope="module")
def production_stack(e2e_artifacts: Path) -> Iterator[AirflowStack]:
    ensure_services()
    artifacts = e2e_artifacts / "production"
    artifacts.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    python = wheel_venv(artifacts / "wheel")
    installed_s = time.monotonic() - began
    settings = StackSettings(
        dag_folders=(REPO / "tests" / "e2e" / "dags",),
        artifacts=artifacts,
        python=python,
        distributed=True,
        parallelism=32,
        triggerer_heartbeat_s=TRIGGERER_HEARTBEAT_S,
        triggerer_health_check_threshold_s=TRIGGERER_HEALTH_THRESHOLD_S,
        triggerer_capacity=FIRST_TRIGGERER_CAPACITY,
        task_heartbeat_timeout_s=TASK_HEARTBEAT_TIMEOUT_S,
    )
    try:
        for stack in running_stack(settings):
            stack.timings["wheel_venv_s"] = installed_s
            yield stack
    finally:
        shutil.rmtree(artifacts / "wheel" / "venv", ignore_errors=True)


@pytest.fixture(scope="module")
def s3_store(production_stack: AirflowStack) -> Iterator[S3Server]:
    """moto's S3 server, and the stack's Amazon connection to it, made through the REST API as a user makes it."""
    with s3_server() as server:
        extra = json.loads(server.connection_json())["extra"]
        connection = {"connection_id": server.conn_id, "conn_type": "aws", "login": ACCESS_KEY}
        connection |= {"password": SECRET_KEY, "extra": json.dumps(extra)}
        production_stack.api("POST", "/connections", json=connection, expect=201)
        yield server


def triggerer_holding(tis: list[dict[str, Any]]) -> dict[str, int | None]:
    return {ti["task_id"]: (ti.get("trigger") or {}).get("triggerer_id") for ti in tis}


def many_deferred(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    answer = stack.api("GET", f"{run_path('e2e_many_deferred', run_id)}/taskInstances", params={"limit": 100})
    return list(answer["task_instances"])


def alive_triggerers(stack: AirflowStack) -> set[int]:
    jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob", "is_alive": True})["jobs"]
    return {int(job["id"]) for job in jobs}


def test_the_stack_runs_the_provider_from_its_wheel(production_stack: AirflowStack) -> None:
    stack = production_stack
    result = stack.run_python("import airflow_provider_edgeimpulse as p; print(p.__file__)")
    where = Path(result.stdout.strip().splitlines()[-1])
    assert where.is_relative_to(stack.settings.python.parent.parent), where
    assert not where.is_relative_to(REPO / "airflow_provider_edgeimpulse"), f"imports the work tree: {where}"
    providers = stack.api("GET", "/providers", params={"limit": 100})["providers"]
    assert "airflow-provider-edgeimpulse" in {p["package_name"] for p in providers}


def test_the_nightly_build_on_one_worker_is_checked_through_s3_on_the_other(
    production_stack: AirflowStack, s3_store: S3Server
) -> None:
    stack, dag_id = production_stack, "e2e_nightly_s3"
    assert (worker_queue(1), worker_queue(2)) == (BUILD_QUEUE, CHECK_QUEUE)
    # Before the tests that kill a worker or a triggerer (this module runs in file order): each queue needs its worker.
    assert all(stack.component(worker_queue(n)).alive() for n in (1, 2)), "a Celery worker is gone"
    # Jobs that last a few seconds: a trigger that fires within a second of its deferral meets Airflow's deferral
    # race (see stack.py), which this test is not about.
    stack.emulator("POST", "/config", json={"job_duration": 4})
    bucket = s3_store.new_bucket()
    output_dir = f"s3://{s3_store.conn_id}@{bucket}/nightly"
    run_id = trigger(stack, dag_id, {"output_dir": output_dir})

    state = wait_for_run_end(stack, dag_id, run_id)
    tails = "\n".join(try_log_tails(stack, dag_id, run_id, task, 1) for task in ("build", "check_firmware"))
    assert state == "success", f"{task_states(stack, dag_id, run_id)}\n{tails}"

    built = xcom(stack, dag_id, run_id, "build")
    checked = xcom(stack, dag_id, run_id, "check_firmware")
    prefix = f"s3://{s3_store.conn_id}@{bucket}/"
    assert built["path"].startswith(f"{output_dir}/{run_id}/"), built
    key = built["path"].removeprefix(prefix)
    assert s3_store.keys(bucket) == [key], "only the artefact: no temporary key is left beside it"
    stored = s3_store.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(stored) > 0
    facts = (len(stored), hashlib.sha256(stored).hexdigest())
    assert (built["size"], built["sha256"]) == facts
    assert (checked["path"], checked["size"], checked["sha256"]) == (built["path"], *facts)

    # Which worker ran what: the queue each task was sent to (one worker serves it) and the host it reported.
    ran_on = {
        task: (ti["queue"], ti["hostname"], ti["try_number"])
        for task in ("build", "check_firmware")
        for ti in [task_instance(stack, dag_id, run_id, task)]
    }
    assert ran_on == {"build": (BUILD_QUEUE, BUILD_QUEUE, 1), "check_firmware": (CHECK_QUEUE, CHECK_QUEUE, 1)}
    assert SECRET_KEY not in json.dumps([built, checked]), "the store's secret key in an XCom"


def test_twenty_waits_survive_the_loss_of_one_of_two_triggerers(production_stack: AirflowStack) -> None:
    stack, dag_id = production_stack, "e2e_many_deferred"
    stack.emulator("POST", "/config", json={"job_duration": None})  # jobs run until the test finishes them
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    (first,) = wait_until(lambda: alive_triggerers(stack) or None, timeout=60, what="the first triggerer")
    run_id = trigger(stack, dag_id)

    # The first triggerer fills its capacity; the other waits have no triggerer until the second one starts.
    def first_full() -> dict[str, int] | None:
        tis = many_deferred(stack, run_id)
        held = triggerer_holding(tis)
        jobs = {ti["task_id"]: xcom(stack, dag_id, run_id, ti["task_id"], key="job_id") for ti in tis}
        if any(ti["state"] in ("failed", "success", "upstream_failed") for ti in tis):
            states = {ti["task_id"]: ti["state"] for ti in tis}
            raise StackError(f"a task ended while the test waited for them to defer: {states}")
        deferred = all(ti["state"] == "deferred" for ti in tis) and len(tis) == MANY_DEFERRED
        full = list(held.values()).count(first) == FIRST_TRIGGERER_CAPACITY
        return {t: int(j) for t, j in jobs.items()} if deferred and full and None not in jobs.values() else None

    job_of = wait_until(
        first_full, timeout=180, what=f"{MANY_DEFERRED} tasks deferred, {first} at capacity", interval=1
    )
    stack.start_triggerer("triggerer-2")
    (second,) = wait_until(
        lambda: (alive_triggerers(stack) - {first}) or None, timeout=90, what="the second triggerer's heartbeat"
    )

    def spread() -> dict[str, int] | None:
        held = triggerer_holding(many_deferred(stack, run_id))
        relaying = all(
            holder is not None and trigger_relays(stack, dag_id, run_id, task, 1, job_of[task], str(holder))
            for task, holder in held.items()
        )
        return held if relaying else None  # type: ignore[return-value]

    held = wait_until(spread, timeout=ACTION_TIMEOUT_S, what="every wait running in a triggerer", interval=1)
    orphaned = sorted(task for task, holder in held.items() if holder == first)
    kept = sorted(task for task, holder in held.items() if holder == second)
    assert (len(orphaned), len(kept)) == (FIRST_TRIGGERER_CAPACITY, MANY_DEFERRED - FIRST_TRIGGERER_CAPACITY), held

    stack.kill("triggerer")
    killed_at = time.monotonic()
    # While no triggerer holds them, the first triggerer's jobs finish; nothing listens to them now.
    for task in orphaned:
        stack.emulator("POST", f"/jobs/{job_of[task]}/finish", json={"success": True})

    # Adopted: the second triggerer holds the wait; from then on, how long until the task succeeds.
    adopted_at: dict[str, float] = {}
    succeeded_at: dict[str, float] = {}

    def orphans_done() -> bool | None:
        now = time.monotonic()
        for ti in many_deferred(stack, run_id):
            task = ti["task_id"]
            if task not in orphaned:
                continue
            if (ti.get("trigger") or {}).get("triggerer_id") == second or ti["state"] == "success":
                adopted_at.setdefault(task, now)
            if ti["state"] in ("failed", "upstream_failed"):
                raise StackError(f"{task} ended {ti['state']} after its triggerer died")
            if ti["state"] == "success":
                succeeded_at.setdefault(task, now)
        return True if len(succeeded_at) == len(orphaned) else None

    wait_until(orphans_done, timeout=ACTION_TIMEOUT_S + TRIGGERER_HEALTH_THRESHOLD_S, what="the adopted waits to end")
    seen_after = {task: succeeded_at[task] - adopted_at[task] for task in orphaned}
    figures = {"kill to adoption s": {task: adopted_at[task] - killed_at for task in orphaned}}
    figures["adoption to success s"] = seen_after
    (stack.settings.artifacts / "triggerer-loss.json").write_text(json.dumps(figures, indent=1) + "\n")
    # Not by the periodic check, 600 s away: the check a trigger makes when it starts saw each finished job.
    assert max(seen_after.values()) < SAFETY_INTERVAL_S / 10, seen_after

    for task in kept:
        stack.emulator("POST", f"/jobs/{job_of[task]}/finish", json={"success": True})
    for task in kept:
        wait_for_ti_state(stack, dag_id, run_id, task, {"success", "failed"})

    tis = many_deferred(stack, run_id)
    assert {(ti["state"], ti["try_number"]) for ti in tis} == {("success", 1)}, tis
    started = jobs_started_since(stack, known)
    assert sorted(int(j["id"]) for j in started) == sorted(job_of.values()), "one remote job per task"
    assert all((j["cancelled"], j["finishedSuccessful"]) == (False, True) for j in started), started


def test_a_retry_after_a_celery_worker_died_re_attaches_on_the_other_worker(production_stack: AirflowStack) -> None:
    stack, dag_id, task_id = production_stack, "e2e_worker_death", "retrain_blocking"
    stack.emulator("POST", "/config", json={"job_duration": None})
    known = {int(j["id"]) for j in stack.emulator("GET", "/jobs")["jobs"]}
    run_id = trigger(stack, dag_id)
    job_id = wait_for_job_of(stack, dag_id, run_id, task_id, "running", try_number=1)
    ti_id = task_instance(stack, dag_id, run_id, task_id)["id"]
    pid = wait_until(lambda: task_process(ti_id), timeout=30, what=f"the process of task instance {ti_id}")
    dead = stack.owner_of(pid).name
    assert dead.startswith("celery-worker-"), dead

    stack.kill(dead)  # the whole worker: its pool, the task's supervisor and the task

    # The scheduler fails the try when its heartbeat is overdue; the retry finds the job and waits for it.
    assert wait_for_job_of(stack, dag_id, run_id, task_id, "running", try_number=2) == job_id
    retry_id = task_instance(stack, dag_id, run_id, task_id)["id"]  # each try has an id of its own
    retry_pid = wait_until(lambda: task_process(retry_id), timeout=30, what="the retry's process")
    assert stack.owner_of(retry_pid).name.startswith("celery-worker-")
    assert stack.owner_of(retry_pid).name != dead
    assert emulator_job(stack, job_id)["cancelled"] is False, "a dead worker must not take its job with it"
    check_the_retry_re_attached(stack, dag_id, run_id, task_id, job_id, known)


def test_no_secret_in_postgresql_redis_the_result_backend_or_any_file(
    production_stack: AirflowStack, s3_store: S3Server
) -> None:
    import redis

    stack, dag_id, task_id = production_stack, "e2e_triggerer_handover", "retrain_deferred"
    creds = stack.settings.credentials
    (api_key,) = creds.secrets()
    # The real secret where it belongs (encrypted in ``connection``): the search must find it there, and only there.
    probe = {"connection_id": PROBE_CONN_ID, "conn_type": "edgeimpulse", "host": stack.emulator_url}
    stack.api("POST", "/connections", json={**probe, "password": api_key}, expect=201)
    stack.emulator("POST", "/config", json={"job_duration": None})

    def needles() -> dict[str, str]:
        tokens = stack.emulator("GET", "/tokens")
        socket_tokens = {f"socket token {n}": t for n, t in enumerate(tokens["socket_tokens"], 1)}
        return {"api key": api_key, "S3 secret key": SECRET_KEY, **socket_tokens}

    # While a blocking task runs, its Celery message waits in the broker unacknowledged (Airflow acks late); the
    # key a probe puts there beside it must be found, in its value and its DUMP.
    blocking_dag, blocking_task = "e2e_worker_death", "retrain_blocking"
    blocking_run = trigger(stack, blocking_dag)
    blocking_job = wait_for_job_of(stack, blocking_dag, blocking_run, blocking_task, "running", try_number=1)
    assert stack.redis is not None
    with redis.Redis(host="127.0.0.1", port=stack.redis.port) as broker:
        broker.set(REDIS_PROBE_KEY, api_key)
        running = Search(needles(), fernet_of(stack))
        try:
            in_flight = search_redis(running, stack)
        finally:
            broker.delete(REDIS_PROBE_KEY)
    stack.emulator("POST", f"/jobs/{blocking_job}/finish", json={"success": True})
    assert wait_for_ti_state(stack, blocking_dag, blocking_run, blocking_task, {"success", "failed"})["state"] == (
        "success"
    )
    redis_probe = f"redis:0:{REDIS_PROBE_KEY}"
    assert {Hit("api key", redis_probe, "plain"), Hit("api key", f"{redis_probe} (DUMP)", "plain")} <= running.hits
    assert in_flight.get("0:unacked") == "hash", in_flight

    run_id = trigger(stack, dag_id)
    job_id = wait_for_job_of(stack, dag_id, run_id, task_id, "deferred", try_number=1)

    # While the task waits: its trigger row, and the kwargs as Airflow decrypts them for a triggerer.
    job_url = f"{stack.emulator_url}/studio/{EMULATOR_PROJECT_ID}/jobs/{job_id}"
    deferred = Search({**needles(), "deferred job URL": job_url}, fernet_of(stack))
    triggers = search_triggers_through_airflow(deferred, stack)
    search_database(deferred, stack)
    search_redis(deferred, stack)
    stack.emulator("POST", f"/jobs/{job_id}/finish", json={"success": True})
    assert wait_for_ti_state(stack, dag_id, run_id, task_id, {"success", "failed"})["state"] == "success"
    time.sleep(2)  # let the processes flush what they hold before the files are read

    # The probe stays until the files are searched: PostgreSQL's files hold its ciphertext, allowed as the table's.
    final = Search(needles(), fernet_of(stack))
    try:
        rows = search_database(final, stack)
        redis_keys = search_redis(final, stack)
        search_files(final, stack)
    finally:
        stack.api("DELETE", f"/connections/{PROBE_CONN_ID}", expect=(204, 404))
    (stack.settings.artifacts / "secrets-search.json").write_text(
        json.dumps(
            {
                "searched": dict(final.counts),
                "rows per table": rows,
                "Redis keys while a task runs": in_flight,
                "Redis keys at the end": redis_keys,
            },
            indent=1,
        )
        + "\n"
    )

    # The searches could find things: the probe (decrypted) and the job URL in the trigger kwargs.
    assert Hit("api key", "db:connection.password", "fernet") in deferred.hits
    assert Hit("S3 secret key", "db:connection.password", "fernet") in deferred.hits
    assert any(f"'job_id': {job_id}" in t["kwargs"] for t in triggers), triggers
    assert "db:trigger.kwargs" in deferred.places("deferred job URL")
    assert any(p.startswith("trigger-model:") for p in deferred.places("deferred job URL"))
    # What was searched: the Celery result backend's table with its results, PostgreSQL's own files, the logs.
    assert rows.get("celery_taskmeta", 0) > 0, rows
    # The broker's own keys (kombu's queue bindings) at least, also while nothing runs.
    assert deferred.counts["Redis keys"] > 0 and final.counts["Redis keys"] > 0, redis_keys
    assert final.counts["service files"] > 0 and final.counts["task log files"] > 0, final.counts
    assert {"celery-worker-1", "celery-worker-2", "postgres", "redis"} <= {c.name for c in stack.components}

    secret_names = set(needles())
    leaks = sorted(
        (h.needle, h.place, h.how)
        for h in running.hits | deferred.hits | final.hits
        if h.needle in secret_names and not in_allowed_table(h.place) and not h.place.startswith(redis_probe)
    )
    assert leaks == []
