"""
No secret of the Edge Impulse connection ends up anywhere Airflow keeps things, except the connection table.

On a real Airflow 3 (see stack.py) the example DAGs run to success, then fail twice on purpose because Studio
refuses the credentials: once on a worker, once in the triggerer while a task waits deferred. Then the secrets
(the API key or the password, and every session token the emulator handed out: JWTs and socket tokens) are
looked for in:

- files: every task and trigger log, the components' logs, and every file under AIRFLOW_HOME and the processes'
  working folder, the raw SQLite file included (its free pages still hold deleted rows);
- the metadata DB: every text and blob cell of every table, with Fernet-encrypted values decrypted (connections,
  variables, connection-test requests, trigger kwargs a client sent encrypted) and zlib blobs inflated (compressed
  serialized DAGs); and, while a task is deferred, the trigger kwargs read back through Airflow's own Trigger
  model. (Airflow 3.3's execution API stores a deferring task's trigger kwargs as plain JSON: it only keeps them
  encrypted when the worker sent ciphertext, and the task runner sends a dict. So the plain search is what guards
  them, and the provider keeps credentials out of them.);
- the REST answers a user sees for those runs: task instances (rendered fields included), tries, logs, XComs
  deserialized, DAG runs with conf and notes, event logs, DAG details.

A search that finds nothing proves nothing unless it can find things. So the real secret is also planted where it
belongs (a connection created through REST, stored encrypted in ``connection``) and must be found there, and
non-secret canaries that travel the routes a leaked secret would take (a DAG run's conf -> rendered template
fields -> XCom -> task log; notes -> their tables and the event log) must be found in each kind of place.

Two variants, each on its own stack: the session's API-key stack and a username/password (JWT) stack started here.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_edgeimpulse.emulator.sample_files import write_wave_samples
from tests.e2e.conftest import dag_folders, on_airflow
from tests.e2e.secret_search import (
    Hit,
    Search,
    fernet_of,
    in_allowed_table,
    search_database,
    search_files,
    search_triggers_through_airflow,
)
from tests.e2e.stack import (
    EMULATOR_PROJECT_ID,
    AirflowStack,
    EmulatorCredentials,
    StackError,
    StackSettings,
    wait_until,
)
from tests.e2e.versions import TASK_OUTPUT_IN_SCHEDULER_LOG_SINCE, VersionVenv

pytestmark = pytest.mark.e2e

NIGHTLY = "edgeimpulse_nightly_retrain"
TUNER = "edgeimpulse_eon_tuner"
CURATION = "edgeimpulse_data_curation"
FAILING_TASK = "relabel"  # CURATION's first task: its first Studio call meets the refused credentials
DEFERRING_TASK = "generate_features"  # CURATION's job task: waits for its job in the triggerer
# Short, yet longer than the workers' 1 s heartbeat: a trigger that fires before the deferring try's worker has
# reported lets the 3.2/3.3 deferral race fail the task with a state mismatch (stack.py). 0.5 s hit it.
JOB_DURATION_S = 3.0
RUN_TIMEOUT_S = 300.0
PROBE_CONN_ID = "edgeimpulse_secret_probe"
AUTH_FAULTS: dict[str, dict[str, Any]] = {"api_key": {"revoke_api_key": True}, "jwt": {"jwt_ttl_s": 0}}
AUTH_ERRORS = {"api_key": "Invalid API key", "jwt": "JWT token expired or invalid"}
# Below these, the search cannot have looked at what the runs left behind (measured: several times more).
MIN_TASK_LOG_FILES = 15
MIN_COMPONENT_LOG_FILES = 4
MIN_TABLES = 40
MIN_ROWS = 150
MIN_REST_ANSWERS = 80


def search_rest(search: Search, stack: AirflowStack, runs: list[Run]) -> None:
    def get(path: str, **params: str) -> Any:
        answer = stack.api("GET", path, params=params, headers={"Accept": "application/json"}, expect=(200, 404))
        search.counts["REST answers"] += 1
        search.scan(f"rest:{path}", json.dumps(answer))
        return answer or {}

    for run in runs:
        get(run.path)
        for ti in get(f"{run.path}/taskInstances")["task_instances"]:
            ti_path = f"{run.path}/taskInstances/{ti['task_id']}"
            get(ti_path)
            for attempt in get(f"{ti_path}/tries").get("task_instances", []):
                if attempt["try_number"] >= 1:
                    get(f"{ti_path}/logs/{attempt['try_number']}", full_content="true")
            for entry in get(f"{ti_path}/xcomEntries").get("xcom_entries", []):
                get(f"{ti_path}/xcomEntries/{quote(entry['key'], safe='')}", deserialize="true")
    for dag_id in sorted({run.dag_id for run in runs}):
        get(f"/dags/{dag_id}/details")
    offset, total = 0, 1
    while offset < total:
        page = get("/eventLogs", limit="100", offset=str(offset), order_by="id")
        total = int(page["total_entries"])
        offset += 100


# -- driving the stack -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    label: str
    dag_id: str
    run_id: str
    state: str

    @property
    def path(self) -> str:
        return f"/dags/{self.dag_id}/dagRuns/{quote(self.run_id, safe='')}"

    def ti_path(self, task_id: str) -> str:
        return f"{self.path}/taskInstances/{task_id}"


def trigger(stack: AirflowStack, label: str, dag_id: str, conf: dict[str, Any] | None = None) -> Run:
    answer = stack.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
    return Run(label, dag_id, str(answer["dag_run_id"]), str(answer["state"]))


def finished(stack: AirflowStack, run: Run) -> Run:
    def ended() -> str | None:
        state = str(stack.api("GET", run.path)["state"])
        return state if state in ("success", "failed") else None

    try:
        state = wait_until(ended, timeout=RUN_TIMEOUT_S, what=f"{run.dag_id} run {run.run_id} to end", interval=0.5)
    except StackError as err:
        raise StackError(f"{err}\n{stack.log_tails()}") from None
    return Run(run.label, run.dag_id, run.run_id, state)


def task_states(stack: AirflowStack, run: Run) -> dict[str, str | None]:
    answer = stack.api("GET", f"{run.path}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}


def rest_log(stack: AirflowStack, run: Run, task_id: str) -> str:
    log = stack.api(
        "GET", f"{run.ti_path(task_id)}/logs/1", params={"full_content": "true"}, headers={"Accept": "application/json"}
    )
    return json.dumps(log["content"])


@dataclass
class Exercise:
    """What one stack went through, and what the searches over it found."""

    variant: str
    stack: AirflowStack
    canary: str
    note: str
    secret_names: frozenset[str]
    runs: dict[str, Run] = field(default_factory=dict)
    task_states: dict[str, dict[str, str | None]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    while_deferred: Search | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)
    deferred_job_id: int | None = None
    final: Search | None = None
    rows_per_table: dict[str, int] = field(default_factory=dict)
    rows_while_deferred: dict[str, int] = field(default_factory=dict)

    def leaks(self, search: Search, prefix: str = "") -> list[Hit]:
        """Secret hits outside the allowed tables (needle names and places only: never the values)."""
        return sorted(
            (
                h
                for h in search.hits
                if h.needle in self.secret_names and h.place.startswith(prefix) and not in_allowed_table(h.place)
            ),
            key=lambda h: (h.place, h.needle),
        )


def needles(stack: AirflowStack, exercise: Exercise) -> dict[str, str]:
    """The secrets known now (session tokens keep being issued) plus the canaries."""
    creds = stack.settings.credentials
    named = {"api key" if creds.auth_type == "api_key" else "password": creds.secrets()[0]}
    named.update({f"secret {n}": value for n, value in enumerate(creds.secrets()[1:], 2)})
    tokens = stack.emulator("GET", "/tokens")
    named.update({f"JWT {n}": token for n, token in enumerate(tokens["jwts"], 1)})
    named.update({f"socket token {n}": token for n, token in enumerate(tokens["socket_tokens"], 1)})
    exercise.secret_names = frozenset(named)
    return {**named, "canary": exercise.canary, "note": exercise.note, "auth error": AUTH_ERRORS[exercise.variant]}


def exercise_stack(stack: AirflowStack, variant: str, work: Path) -> Exercise:
    creds = stack.settings.credentials
    canary = f"canary{secrets.token_hex(10)}"
    exercise = Exercise(variant, stack, canary, f"reviewed {canary}note", frozenset())
    saved_config = stack.emulator("GET", "/config")["config"]
    # The real secret, where it belongs: the search has to find it here, and only here.
    probe = {"connection_id": PROBE_CONN_ID, "conn_type": "edgeimpulse", "host": stack.emulator_url}
    probe |= (
        {"password": creds.api_key} if variant == "api_key" else {"login": creds.username, "password": creds.password}
    )
    stack.api("POST", "/connections", json=probe, expect=201)
    try:
        _run_everything(stack, exercise, work)
    finally:
        stack.emulator("DELETE", "/faults")
        for job in stack.emulator("GET", "/jobs")["jobs"]:
            if job["finished"] is None:
                stack.emulator("POST", f"/jobs/{job['id']}/finish", json={"success": True})
        stack.emulator("POST", "/config", json=saved_config)
        stack.api("DELETE", f"/connections/{PROBE_CONN_ID}", expect=(204, 404))
    return exercise


def _run_everything(stack: AirflowStack, exercise: Exercise, work: Path) -> None:
    variant = exercise.variant
    stack.emulator("POST", "/config", json={"job_duration": JOB_DURATION_S})
    for dag_id in (NIGHTLY, TUNER, CURATION):
        stack.wait_for_dag(dag_id)
        stack.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    # Successes; one after the other, as the three DAGs change the same project's impulse.
    # The canary rides in paths: conf -> params -> rendered template fields, XCom (the file list) and task logs.
    samples = work / exercise.canary / "samples"
    write_wave_samples(samples, 2, tag="secrets", device_type="AIRFLOW_E2E")
    nightly_conf = {"samples_dir": str(samples), "output_dir": str(work / exercise.canary / "deployments")}
    tuner_conf = {"output_dir": str(work / exercise.canary / "tuner") + "/"}
    for label, dag_id, conf in (
        ("nightly", NIGHTLY, nightly_conf),
        ("tuner", TUNER, tuner_conf),
        ("curation", CURATION, None),
    ):
        exercise.runs[label] = finished(stack, trigger(stack, label, dag_id, conf))

    nightly = exercise.runs["nightly"]
    stack.api("PATCH", nightly.path, json={"note": exercise.note})
    stack.api("PATCH", nightly.ti_path("upload_samples"), json={"note": exercise.note}, params={"update_mask": "note"})

    # Studio refuses the credentials while a worker runs the task: its first call fails.
    stack.emulator("POST", "/faults", json=AUTH_FAULTS[variant])
    try:
        exercise.runs["worker auth failure"] = finished(stack, trigger(stack, "worker auth failure", CURATION))
    finally:
        stack.emulator("DELETE", "/faults")

    # A job that runs until told to finish keeps its task deferred, so its trigger row is there to be searched.
    stack.emulator("POST", "/config", json={"job_duration": None})
    waiting = trigger(stack, "triggerer auth failure", CURATION)
    wait_until(
        lambda: True if task_states(stack, waiting).get(DEFERRING_TASK) == "deferred" else None,
        timeout=RUN_TIMEOUT_S,
        what=f"{DEFERRING_TASK} to be deferred",
        interval=0.5,
    )
    running = [job for job in stack.emulator("GET", "/jobs")["jobs"] if job["finished"] is None]
    assert len(running) == 1, running
    exercise.deferred_job_id = int(running[0]["id"])
    # The job's Studio URL sits in the trigger kwargs (the XComs the trigger pushes on success): their canary.
    job_url = f"{stack.emulator_url}/studio/{EMULATOR_PROJECT_ID}/jobs/{exercise.deferred_job_id}"
    search = Search({**needles(stack, exercise), "deferred job URL": job_url}, fernet_of(stack))
    exercise.triggers = search_triggers_through_airflow(search, stack)
    exercise.rows_while_deferred = search_database(search, stack)
    exercise.while_deferred = search

    # Studio refuses the credentials while the triggerer waits: the job finishes, reading its outcome fails.
    stack.emulator("POST", "/faults", json=AUTH_FAULTS[variant])
    try:
        stack.emulator("POST", f"/jobs/{exercise.deferred_job_id}/finish", json={"success": True})
        exercise.runs["triggerer auth failure"] = finished(stack, waiting)
    finally:
        stack.emulator("DELETE", "/faults")
        stack.emulator("POST", "/config", json={"job_duration": JOB_DURATION_S})

    for label, run in exercise.runs.items():
        exercise.task_states[label] = task_states(stack, run)
    exercise.logs["worker"] = rest_log(stack, exercise.runs["worker auth failure"], FAILING_TASK)
    exercise.logs["triggerer"] = rest_log(stack, exercise.runs["triggerer auth failure"], DEFERRING_TASK)

    # Let the processes flush what they hold before the files are read.
    time.sleep(2)
    search = Search(needles(stack, exercise), fernet_of(stack))
    exercise.rows_per_table = search_database(search, stack)
    search_files(search, stack)
    search_rest(search, stack, list(exercise.runs.values()))
    exercise.final = search
    _write_summary(exercise)


def _write_summary(exercise: Exercise) -> None:
    assert exercise.final is not None and exercise.while_deferred is not None
    final = exercise.final
    summary = {
        "variant": exercise.variant,
        "secrets searched for": sorted(exercise.secret_names),
        "searched": dict(sorted(final.counts.items())),
        "searched while a task was deferred": dict(sorted(exercise.while_deferred.counts.items())),
        "rows per table": exercise.rows_per_table,
        "rows per table while a task was deferred": exercise.rows_while_deferred,
        "Fernet values decrypted per place": dict(final.decrypted),
        "Fernet values decrypted per place while a task was deferred": dict(exercise.while_deferred.decrypted),
        "runs": {label: [run.dag_id, run.run_id, run.state] for label, run in exercise.runs.items()},
        "canary found in": sorted(final.places("canary")),
        "note found in": sorted(final.places("note")),
        "auth error found in": sorted(final.places("auth error")),
        "secret hits (needle, place, how)": sorted(
            [h.needle, h.place, h.how]
            for h in final.hits | exercise.while_deferred.hits
            if h.needle in exercise.secret_names
        ),
    }
    path = exercise.stack.settings.artifacts / f"secrets-search-{exercise.variant}.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n[secrets/{exercise.variant}] searched: {json.dumps(summary['searched'])}; summary in {path}")


# -- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_stack(e2e_artifacts: Path, other_airflow: VersionVenv | None) -> Iterator[AirflowStack]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the stack harness reads /proc to prove every process it started is gone")
    settings = StackSettings(
        dag_folders=dag_folders(),
        artifacts=e2e_artifacts / "secrets-jwt",
        credentials=EmulatorCredentials(auth_type="jwt"),
        **on_airflow(other_airflow),
    )
    stack = AirflowStack(settings)
    try:
        stack.start()
        yield stack
    finally:
        leftovers = stack.stop()
    assert not leftovers, f"processes outlived their process group and were killed: {leftovers}"


# The other Airflow versions (``make test-versions``) search the API-key variant: the sign-in differs only in the
# provider's code, which the JWT variant on 3.3 covers, and a second stack per version would cost minutes of CI.
@pytest.fixture(scope="module", params=[pytest.param("api_key", marks=pytest.mark.versions), "jwt"])
def exercise(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exercise:
    variant = request.param
    stack: AirflowStack = request.getfixturevalue("airflow_stack" if variant == "api_key" else "jwt_stack")
    return exercise_stack(stack, variant, tmp_path_factory.mktemp(f"secrets-{variant}"))


# -- tests -----------------------------------------------------------------------------------------------------


def test_the_dags_succeeded_and_the_auth_failures_left_tracebacks(exercise: Exercise) -> None:
    states = {label: run.state for label, run in exercise.runs.items()}
    scheduler = next(c for c in exercise.stack.components if c.name == "scheduler")
    mismatches = [line for line in scheduler.log.read_text().splitlines() if "state attribute is" in line]
    assert states == {
        "nightly": "success",
        "tuner": "success",
        "curation": "success",
        "worker auth failure": "failed",
        "triggerer auth failure": "failed",
    }, (exercise.task_states, "state mismatches (the deferral race):", mismatches[-3:])
    assert exercise.task_states["worker auth failure"][FAILING_TASK] == "failed"
    assert exercise.task_states["triggerer auth failure"][DEFERRING_TASK] == "failed"
    auth_error = AUTH_ERRORS[exercise.variant]
    for where, log in exercise.logs.items():
        assert auth_error in log, f"the {where} failure's log does not show the auth error"
    assert '"exc_type": "EdgeImpulseAPIError"' in exercise.logs["worker"], "no traceback in the worker's log"
    # The error texts are among what was searched: in the task and trigger logs, and what the UI shows of them.
    assert exercise.final is not None
    places = exercise.final.places("auth error")
    for task_id in (FAILING_TASK, DEFERRING_TASK):
        assert any(p.startswith("file:task-logs/") and f"/task_id={task_id}/" in p for p in places), sorted(places)
        assert any(p.startswith("rest:") and f"/taskInstances/{task_id}/logs/" in p for p in places), sorted(places)
    assert any(p.startswith("file:task-logs/") and ".log.trigger." in p for p in places), sorted(places)


def test_the_search_finds_what_is_there(exercise: Exercise) -> None:
    final, deferred = exercise.final, exercise.while_deferred
    assert final is not None and deferred is not None
    secret = "api key" if exercise.variant == "api_key" else "password"
    # The probe connection: found, encrypted, in the connection table; by the raw-DB search and the decryption.
    assert Hit(secret, "db:connection.password", "fernet") in final.hits
    assert Hit(secret, "db:connection.password", "fernet") in deferred.hits
    if exercise.variant == "jwt":
        assert any(name.startswith("JWT ") for name in exercise.secret_names), "no JWT was issued?"
    assert any(name.startswith("socket token ") for name in exercise.secret_names), "no socket token was issued?"

    # The canary took every route a leaked secret could take.
    canary = final.places("canary")
    assert final.places("canary", "file:task-logs/"), canary
    for place in ("db:dag_run.conf", "db:xcom.value", "db:rendered_task_instance_fields.rendered_fields"):
        assert place in canary, (place, sorted(canary))
    for route in ("/logs/", "/xcomEntries/", "/dagRuns/"):
        assert any(p.startswith("rest:") and route in p for p in canary), (route, sorted(canary))
    notes = final.places("note")
    for place in ("db:dag_run_note.content", "db:task_instance_note.content", "rest:/eventLogs"):
        assert place in notes, (place, sorted(notes))

    if exercise.stack.airflow_version >= TASK_OUTPUT_IN_SCHEDULER_LOG_SINCE:
        assert "file:scheduler.log" in canary, "task output relayed through the executor was not searched"
    else:  # 3.1's LocalExecutor relays no task output: its log is searched (counted below), without the canary
        assert "file:scheduler.log" not in canary, "the scheduler's log holds task output after all"

    # The deferred task's trigger kwargs, as stored and as Airflow's Trigger model hands them to the triggerer.
    assert exercise.triggers, "no trigger row while the task was deferred"
    kwargs = " ".join(t["kwargs"] for t in exercise.triggers)
    assert f"'job_id': {exercise.deferred_job_id}" in kwargs, kwargs
    trigger_places = deferred.places("deferred job URL")
    assert "db:trigger.kwargs" in trigger_places, sorted(trigger_places)
    assert any(p.startswith("trigger-model:") for p in trigger_places), sorted(trigger_places)

    counts = final.counts
    assert counts["task log files"] >= MIN_TASK_LOG_FILES, counts
    assert counts["component log files"] >= MIN_COMPONENT_LOG_FILES, counts
    assert counts["DB tables"] >= MIN_TABLES and counts["DB rows"] >= MIN_ROWS, counts
    assert counts["REST answers"] >= MIN_REST_ANSWERS, counts
    for table in ("xcom", "rendered_task_instance_fields", "dag_run", "task_instance", "log", "serialized_dag"):
        assert exercise.rows_per_table.get(table, 0) > 0, (table, exercise.rows_per_table)


def test_no_secret_in_any_file(exercise: Exercise) -> None:
    assert exercise.final is not None
    assert exercise.leaks(exercise.final, "file:") == []


def test_no_secret_in_the_metadata_database(exercise: Exercise) -> None:
    assert exercise.final is not None and exercise.while_deferred is not None
    assert exercise.leaks(exercise.while_deferred) == [], "while a task was deferred"
    assert exercise.leaks(exercise.final, "db:") == []


def test_no_secret_in_what_the_rest_api_shows(exercise: Exercise) -> None:
    assert exercise.final is not None
    assert exercise.leaks(exercise.final, "rest:") == []
