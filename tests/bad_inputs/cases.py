"""
The bad-input table of ``docs/bad-inputs.md``, one case per row: how to make the bad input, what must come back.

Each case's ``setup`` prepares the emulator (a running job, an odd answer to inject) and returns the one call that
meets the bad input. ``test_bad_inputs.py`` runs that call under a deadline and checks the answer: the exception
type (or the trigger event), that the message names the problem and the value, its size, that no secret leaked,
how many requests the call made and that no job was started when the input can be refused before one.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowNotFoundException

from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle
from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError, EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.hooks.policy import RetryPolicy
from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking
from airflow_provider_edgeimpulse.new_samples.watermark import MemoryWatermarkStore
from airflow_provider_edgeimpulse.operators.data import (
    EdgeImpulseBatchEditLabelsOperator,
    EdgeImpulseUploadSamplesOperator,
)
from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed, EdgeImpulseRunJobOperator
from airflow_provider_edgeimpulse.operators.model_gate import EdgeImpulseModelGateOperator
from airflow_provider_edgeimpulse.operators.model_testing import EdgeImpulseModelTestingOperator
from airflow_provider_edgeimpulse.operators.training import (
    EdgeImpulseGenerateFeaturesOperator,
    EdgeImpulseRetrainOperator,
    EdgeImpulseTrainOperator,
)
from airflow_provider_edgeimpulse.operators.tuner import (
    EdgeImpulseSetTunerPrimaryOperator,
    EdgeImpulseStartEONTunerOperator,
)
from airflow_provider_edgeimpulse.operators.versions import EdgeImpulseCreateVersionOperator
from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesTrigger
from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger
from tests.operators.fakes import make_context
from tests.operators.helpers import fire

# What the call may do remotely.
LOCAL = "local"  # not one request: the input is refused before anything is sent
NO_JOB = "no-job"  # requests to read what the check needs, but no job started
ANY = "any"  # the bad input comes from the server, or only shows on it; no job started by the call itself

# A bad answer must come back fast: within this many seconds, and after at most this many requests by default.
CASE_BOUND_S = 30.0
DEFAULT_MAX_REQUESTS = 3
MAX_MESSAGE_CHARS = 4000
BIG_LINE_CHARS = 10 * 1024 * 1024
# A sparse file one byte over the ingestion service's 100 MiB limit: no data is written.
OVER_100_MIB = 100 * 1024 * 1024 + 1
# Retries a hook case may make, kept short so a case that did retry would not sit out the task-time backoff.
QUICK_POLICY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total_sleep=1.0)


class Env:
    """The emulator, a temporary directory and the connections of one case."""

    def __init__(self, em: EmulatorHandle, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.em = em
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        # Secrets a case adds (a wrong password it typed in): they must not leak either.
        self.extra_secrets: list[str] = []

    def set_connection(self, conn_id: str = "edgeimpulse_default", auth_type: str = "api_key", **changes: Any) -> None:
        """Point ``conn_id`` at the emulator; ``changes`` replace fields, ``extra__<key>`` extras (None removes)."""
        conn = json.loads(self.em.connection_json(auth_type))
        for key, value in changes.items():
            if key.startswith("extra__"):
                target, key = conn["extra"], key.removeprefix("extra__")
            else:
                target = conn
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    def secrets(self) -> list[str]:
        state = self.em.state
        issued = [*list(state.jwt_tokens), *list(state.socket_tokens)]
        return [self.em.api_key, self.em.password, *issued, *self.extra_secrets]

    def side_handle(self) -> EmulatorHandle:
        """A handle of its own (one ``requests.Session`` per thread) for a driver running beside the call."""
        return self.em.clone()

    def hook(self, **kwargs: Any) -> EdgeImpulseHook:
        kwargs.setdefault("retry_policy", QUICK_POLICY)
        return EdgeImpulseHook(**kwargs)

    def running_job(self) -> int:
        """A job that runs until finished through the control API."""
        self.em.configure(job_duration=None)
        hook = self.hook()
        try:
            return hook.start_retrain()
        finally:
            hook.close()

    def finished_tuner_state(self) -> tuple[int, dict[str, Any]]:
        """An EON Tuner run that completed, and its state as Studio answers it."""
        self.em.configure(job_duration=None)
        hook = self.hook()
        try:
            run_id = hook.start_optimize()
            self.em.finish_job(run_id, True)
            return run_id, hook.get_tuner_state(run_id)
        finally:
            hook.close()

    def answer_tuner_state(self, run_id: int, state: dict[str, Any]) -> None:
        """Make Studio answer ``state`` for the run's next few state reads."""
        self.em.fault(status=200, body=json.dumps(state), path=f"/optimize/{run_id}/state", count=5)

    def built_deployment(self) -> None:
        """A finished ``zip`` build, so that a download has something to fetch."""
        self.em.configure(job_duration=None)
        hook = self.hook()
        try:
            started = hook.start_build_deployment("zip", "tflite-eon", model_type="int8")
            self.em.finish_job(started["job_id"], True)
        finally:
            hook.close()

    def sparse_file(self, name: str, size: int) -> Path:
        path = self.tmp / name
        with open(path, "wb") as handle:
            handle.truncate(size)
        return path

    def sample_file(self, name: str = "idle.0.json") -> Path:
        path = self.tmp / name
        path.write_text(json.dumps({"payload": {"values": [[1, 2, 3]]}}))
        return path


Call = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    setup: Callable[[Env], Call]
    raises: type[BaseException] | None  # the exception the call must raise (exactly this type)
    names: tuple[str, ...]  # what the message must contain: the problem and the offending value
    remote: str  # LOCAL, NO_JOB or ANY
    max_requests: int = DEFAULT_MAX_REQUESTS
    event: str | None = None  # a trigger case: the status of the event it must fire
    result: Callable[[Any], str] | None = None  # a case that succeeds: the text the user sees, from its result
    max_message: int = MAX_MESSAGE_CHARS
    starts_job: bool = False  # the scenario is a job the call itself starts (and that then misbehaves)
    off_spec: str | None = None  # why the server's answer is off openapi.yaml on purpose (the pytest marker's reason)


CASES: dict[str, Case] = {}


def case(case_id: str, raises: type[BaseException] | None, *names: str, remote: str, **kwargs: Any) -> Callable:
    def register(setup: Callable[[Env], Call]) -> Callable[[Env], Call]:
        assert case_id not in CASES, case_id
        CASES[case_id] = Case(setup, raises, names, remote, **kwargs)
        return setup

    return register


def execute(op: Any) -> Call:
    return lambda: op.execute(make_context())


def render_and_execute(op: Any, **params: Any) -> Call:
    """Render the templated fields with ``params`` (as Airflow does before ``execute``), then execute."""

    def call() -> Any:
        op.render_template_fields({"params": params})
        return op.execute(make_context())

    return call


def in_dag(factory: Callable[[], Any], *, native: bool = False) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    with DAG("bad_inputs", schedule=None, render_template_as_native_obj=native):
        return factory()


def with_driver(call: Call, driver: Callable[[], None]) -> Call:
    """Run ``driver`` beside ``call`` (e.g. to write into the job the call waits on)."""

    def run() -> Any:
        thread = threading.Thread(target=driver, name="bad-input-driver", daemon=True)
        thread.start()
        try:
            return call()
        finally:
            thread.join(CASE_BOUND_S)

    return run


def big_line_then_finish(env: Env, success: bool) -> Callable[[], None]:
    """Once the waiter's socket is up, a 10 MB log line from the job, then its end."""

    def drive() -> None:
        handle = env.side_handle()
        try:
            deadline = time.monotonic() + CASE_BOUND_S
            running: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                running = [j for j in handle.jobs() if j["finished"] is None]
                if running and handle.sockets() > 0:
                    break
                time.sleep(0.02)
            assert running, "no running job to write into"
            job_id = int(running[0]["id"])
            handle.write_job_log(job_id, "x", repeat=BIG_LINE_CHARS)
            handle.finish_job(job_id, success)
        finally:
            handle.close()

    return drive


def lines_of(outcome: dict[str, Any]) -> str:
    return "\n".join(outcome["log_tail"])


# -- the connection ---------------------------------------------------------------------------------------------


@case("conn-host-scheme", EdgeImpulseConnectionError, "not an http(s) URL", "ftp://studio.example", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(host="ftp://studio.example")
    return lambda: env.hook().get_project_info()


@case("conn-host-without-name", EdgeImpulseConnectionError, "not an http(s) URL", "'https://'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(host="https://")
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case("conn-host-bad-port", EdgeImpulseConnectionError, "is not a valid URL", "'localhost:abc'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(host="localhost:abc")
    return lambda: env.hook().get_project_info()


@case("conn-ingestion-host-scheme", EdgeImpulseConnectionError, "not an http(s) URL", "'s3://bucket'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(extra__ingestion_host="s3://bucket")
    path = env.sample_file()
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(path)]))


@case("conn-auth-type", EdgeImpulseConnectionError, "unknown auth_type", "'oauth2'", "api_key", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(extra__auth_type="oauth2")
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case(
    "conn-project-id-text", EdgeImpulseConnectionError, "project_id must be a positive integer", "'abc'", remote=LOCAL
)
def _(env: Env) -> Call:
    env.set_connection(extra__project_id="abc")
    return lambda: env.hook().get_project_info()


@case("conn-timeout-negative", EdgeImpulseConnectionError, "timeout must be a positive number", "'-3'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(extra__timeout="-3")
    return lambda: env.hook().get_impulse()


@case("conn-no-api-key", EdgeImpulseConnectionError, "no API key", "edgeimpulse_default", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(password=None)
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case("conn-jwt-without-username", EdgeImpulseConnectionError, "needs a username", "'jwt'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection("ei_jwt", auth_type="jwt", login=None)
    return lambda: env.hook(edgeimpulse_conn_id="ei_jwt").get_impulse()


@case("conn-unknown-id", AirflowNotFoundException, "ei_missing", "isn't defined", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseRetrainOperator(task_id="t", edgeimpulse_conn_id="ei_missing"))


@case("conn-wrong-api-key", EdgeImpulseAPIError, "HTTP 401", "Invalid API key", remote=NO_JOB, max_requests=1)
def _(env: Env) -> Call:
    wrong = "ei_WrongKey_0a1b2c3d4e5f"
    env.extra_secrets.append(wrong)
    env.set_connection(password=wrong)
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case("conn-jwt-wrong-password", EdgeImpulseAPIError, "/api-login", "HTTP 401", remote=NO_JOB, max_requests=1)
def _(env: Env) -> Call:
    wrong = "pw-Wrong-Pa55-77q"
    env.extra_secrets.append(wrong)
    env.set_connection("ei_jwt", auth_type="jwt", password=wrong)
    return execute(EdgeImpulseRetrainOperator(task_id="t", edgeimpulse_conn_id="ei_jwt"))


@case("conn-host-userinfo", EdgeImpulseConnectionError, "host holds a user name or password", remote=LOCAL)
def _(env: Env) -> Call:
    in_url = "pw-In-The-Url-3x"
    env.extra_secrets.append(in_url)
    env.set_connection(host=f"https://ops:{in_url}@studio.example")
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case("conn-ingestion-host-userinfo", EdgeImpulseConnectionError, "ingestion_host holds a user name", remote=LOCAL)
def _(env: Env) -> Call:
    in_url = "pw-In-The-Url-4y"
    env.extra_secrets.append(in_url)
    env.set_connection(extra__ingestion_host=f"https://ops:{in_url}@ingest.example")
    path = env.sample_file()
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(path)]))


@case(
    "conn-host-plain-http",
    EdgeImpulseConnectionError,
    "host 'http://studio.example' is plain http",
    "allow_insecure_http",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    env.set_connection(host="http://studio.example")
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case(
    "conn-ingestion-host-plain-http",
    EdgeImpulseConnectionError,
    "ingestion_host 'http://ingest.example' is plain http",
    "allow_insecure_http",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    env.set_connection(extra__ingestion_host="http://ingest.example")
    path = env.sample_file()
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(path)]))


@case("conn-allow-insecure-http-text", EdgeImpulseConnectionError, "allow_insecure_http", "'maybe'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(extra__allow_insecure_http="maybe")
    return lambda: env.hook().get_impulse()


@case("conn-max-response-mib-text", EdgeImpulseConnectionError, "max_response_mib", "'lots'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(extra__max_response_mib="lots")
    return lambda: env.hook().get_impulse()


@case("conn-max-download-mib-zero", EdgeImpulseConnectionError, "max_download_mib", "'0'", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(extra__max_download_mib="0")
    return lambda: env.hook().get_impulse()


@case("conn-api-key-trailing-newline", EdgeImpulseConnectionError, "password (the API key)", "line break", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(password=env.em.api_key + "\n")
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case("conn-api-key-control-char", EdgeImpulseConnectionError, "extra api_key", "control character", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection(password=None, extra__api_key=env.em.api_key[:6] + "\x01" + env.em.api_key[6:])
    return lambda: env.hook().get_impulse()


@case("conn-api-key-not-latin1", EdgeImpulseConnectionError, "password (the API key)", "Latin-1", remote=LOCAL)
def _(env: Env) -> Call:
    key = "ei_\u043a\u043b\u044e\u0447_0a1b2c3d"
    env.extra_secrets.append(key)
    env.set_connection(password=key)
    return execute(EdgeImpulseRetrainOperator(task_id="t"))


@case(
    "conn-username-control-char", EdgeImpulseConnectionError, "login (the username)", "control character", remote=LOCAL
)
def _(env: Env) -> Call:
    env.set_connection("ei_jwt", auth_type="jwt", login="ops\x00@example.com")
    return lambda: env.hook(edgeimpulse_conn_id="ei_jwt").get_impulse()


@case("conn-password-trailing-newline", EdgeImpulseConnectionError, "password ends with a line break", remote=LOCAL)
def _(env: Env) -> Call:
    env.set_connection("ei_jwt", auth_type="jwt", password=env.em.password + "\r\n")
    return execute(EdgeImpulseRetrainOperator(task_id="t", edgeimpulse_conn_id="ei_jwt"))


# -- the hook ---------------------------------------------------------------------------------------------------


@case("hook-timeout-nan", EdgeImpulseConnectionError, "timeout must be a positive number", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseHook(timeout=math.nan)


@case(
    "hook-project-id-text", EdgeImpulseConnectionError, "project_id must be a positive integer", "'12ab'", remote=LOCAL
)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseHook(project_id="12ab")


@case("hook-project-not-owned", EdgeImpulseAPIError, "HTTP 404", "Project 999", remote=ANY, max_requests=1)
def _(env: Env) -> Call:
    return lambda: env.hook(project_id=999).get_project_info()


@case("hook-unknown-job", EdgeImpulseAPIError, "HTTP 404", "/jobs/987654/status", remote=ANY, max_requests=1)
def _(env: Env) -> Call:
    return lambda: env.hook().get_job_status(987654)


@case("wait-negative-timeout", ValueError, "timeout must be a non-negative number", "-1", remote=LOCAL)
def _(env: Env) -> Call:
    job_id = env.running_job()

    def call() -> Any:
        hook = env.hook()
        return wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=-1)

    return call


@case("wait-nan-timeout", ValueError, "timeout must be a non-negative number", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    job_id = env.running_job()

    def call() -> Any:
        hook = env.hook()
        return wait_for_job_blocking(hook.credentials, hook.project_id, job_id, timeout=math.nan)

    return call


@case("hook-job-path-traversal", ValueError, "job path must look like", "'jobs/../../admin'", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: env.hook().start_job("jobs/../../admin")


@case("hook-upload-missing-file", ValueError, "upload not started", "gone.wav: no such file", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: env.hook().upload_files([env.tmp / "gone.wav"])


@case("hook-upload-file-over-100mb", ValueError, "over the 100 MiB limit", f"{OVER_100_MIB} bytes", remote=LOCAL)
def _(env: Env) -> Call:
    big = env.sparse_file("huge.bin", OVER_100_MIB)
    return lambda: env.hook().upload_files([big], label="noise")


@case("hook-upload-label-bytes", ValueError, "label must be a non-empty string", "bytes", "\\xff\\xfe", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    return lambda: env.hook().upload_files([path], label=b"\xff\xfe")  # type: ignore[arg-type]


@case("hook-upload-label-not-utf8", ValueError, "is not valid UTF-8", "'caf\\udce9'", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    # What b"caf\xe9" (Latin-1) becomes when decoded as UTF-8 with surrogateescape, as file names are.
    label = b"caf\xe9".decode("utf-8", "surrogateescape")
    return lambda: env.hook().upload_files([path], label=label)


@case("hook-upload-label-too-long", ValueError, "label is 5000 characters long", "over the 256", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    return lambda: env.hook().upload_files([path], label="w" * 5000)


@case("hook-upload-label-empty", ValueError, "label must be a non-empty string", "got ''", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    return lambda: env.hook().upload_files([path], label="")


@case("hook-upload-unknown-category", ValueError, "unknown category", "'holdout'", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    return lambda: env.hook().upload_files([path], category="holdout")


@case("hook-relabel-without-filter", ValueError, "relabels every sample of", "'training'", "allow_all", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: env.hook().batch_edit_labels("noise", "training")


@case("hook-download-missing-directory", ValueError, "does not exist", "no/such/dir", remote=LOCAL)
def _(env: Env) -> Call:
    dest = env.tmp / "no" / "such" / "dir" / "model.zip"
    return lambda: env.hook().download_deployment(dest, format="zip", engine="tflite-eon")


@case(
    "hook-download-html-page",
    EdgeImpulseAPIError,
    "HTML page",
    "Sign in",
    "nothing was saved",
    remote=ANY,
    off_spec="a sign-in page instead of the artefact",
)
def _(env: Env) -> Call:
    env.built_deployment()
    page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in to continue</body></html>"
    env.em.fault(status=200, body=page, path="/deployment/download")
    return lambda: env.hook().download_deployment(env.tmp / "firmware.zip", format="zip", engine="tflite-eon")


@case("hook-download-success-false", EdgeImpulseAPIError, "deployment/download failed:", "Build expired", remote=ANY)
def _(env: Env) -> Call:
    env.built_deployment()
    body = json.dumps({"success": False, "error": "Build expired"})
    env.em.fault(status=200, body=body, path="/deployment/download", content_type="application/zip")
    return lambda: env.hook().download_deployment(env.tmp, format="zip", engine="tflite-eon")


@case("hook-download-timeout-nan", ValueError, "download_timeout must be a positive, finite", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: env.hook().download_deployment(env.tmp, "zip", "tflite-eon", download_timeout=math.nan)


@case(
    "hook-truncated-json",
    EdgeImpulseAPIError,
    "body that is not JSON",
    '{"success": true, "job": {"id"',
    remote=ANY,
    off_spec="a truncated JSON answer",
)
def _(env: Env) -> Call:
    job_id = env.running_job()
    env.em.fault(status=200, body='{"success": true, "job": {"id": 1, "crea', path=f"/jobs/{job_id}/status")
    return lambda: env.hook().get_job_status(job_id)


@case(
    "hook-json-not-an-object",
    EdgeImpulseAPIError,
    "JSON that is not an object",
    "(list)",
    "[1, 2, 3]",
    remote=ANY,
    off_spec="a JSON list where Studio answers an object",
)
def _(env: Env) -> Call:
    env.em.fault(status=200, body="[1, 2, 3]", path="/impulse")
    return lambda: env.hook().get_impulse()


@case(
    "hook-deeply-nested-json",
    EdgeImpulseAPIError,
    "HTTP 200",
    "JSON nested too deeply",
    remote=ANY,
    off_spec="JSON nested 100,000 deep",
)
def _(env: Env) -> Call:
    env.em.fault(status=200, body="[" * 100_000 + "]" * 100_000, content_type="application/json", path="/impulse")
    return lambda: env.hook().get_impulse()


@case(
    "hook-answer-over-limit",
    EdgeImpulseAPIError,
    "too large",
    "limit of 1048 bytes",
    "max_response_mib",
    remote=ANY,
    off_spec="an answer padded past the size limit",
)
def _(env: Env) -> Call:
    env.set_connection(extra__max_response_mib="0.001")
    env.em.fault(status=200, body=json.dumps({"success": True, "impulse": {"pad": "p" * 5000}}), path="/impulse")
    return lambda: env.hook().get_impulse()


@case("hook-long-error-text", EdgeImpulseAPIError, "HTTP 400", "EEEE", "more characters not shown", remote=ANY)
def _(env: Env) -> Call:
    env.em.fault(status=400, body=json.dumps({"success": False, "error": "E" * 50_000}), path="/impulse")
    return lambda: env.hook().get_impulse()


@case("hook-huge-error-body", EdgeImpulseAPIError, "HTTP 400", "over 64 KiB", '{"success": false', remote=ANY)
def _(env: Env) -> Call:
    env.em.fault(status=400, body=json.dumps({"success": False, "error": "E" * 3_000_000}), path="/impulse")
    return lambda: env.hook().get_impulse()


@case(
    "wait-10mb-log-line",
    None,
    "x" * 100,
    "more characters not shown",
    remote=ANY,
    max_requests=6,
    result=lambda lines: "\n".join(lines),
    max_message=40_000,
)
def _(env: Env) -> Call:
    job_id = env.running_job()
    seen: list[str] = []

    def call() -> list[str]:
        hook = env.hook()
        outcome = wait_for_job_blocking(
            hook.credentials, hook.project_id, job_id, timeout=CASE_BOUND_S, on_log=seen.append
        )
        assert outcome["success"] is True
        # The line reaches the wait over the socket (on_log) or, when the job ended first, in the REST tail.
        return [*seen, *outcome["log_tail"]]

    return with_driver(call, big_line_then_finish(env, success=True))


# -- operators --------------------------------------------------------------------------------------------------


@case("op-project-id-rendered-text", ValueError, "project_id must be a positive integer", "'abc'", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(lambda: EdgeImpulseRetrainOperator(task_id="t", project_id="{{ params.project }}"))
    return render_and_execute(op, project="abc")


@case("op-project-not-owned", EdgeImpulseAPIError, "HTTP 404", "Project 999", remote=ANY, max_requests=1)
def _(env: Env) -> Call:
    return execute(EdgeImpulseRetrainOperator(task_id="t", project_id=999))


@case("op-timeout-negative", ValueError, "timeout must be a non-negative number", "-5", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseRetrainOperator(task_id="t", timeout=-5)


@case("op-timeout-nan", ValueError, "timeout must be a non-negative number", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseRetrainOperator(task_id="t", timeout=math.nan)


@case("op-timeout-rendered-text", ValueError, "timeout must be a number of seconds", "'soon'", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(lambda: EdgeImpulseTrainOperator(task_id="t", learn_block="Classifier", timeout="{{ params.t }}"))
    return render_and_execute(op, t="soon")


@case("op-poll-interval-nan", ValueError, "poll_interval must be a positive number", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseRetrainOperator(task_id="t", poll_interval=math.nan)


@case("op-log-tail-negative", ValueError, "log_tail must be a positive number of lines", "-1", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseRetrainOperator(task_id="t", log_tail=-1)


@case("op-job-body-not-object", TypeError, "job_body must be a JSON object", "str", "'[1, 2]'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseRunJobOperator(task_id="t", job_path="jobs/retrain", job_body="[1, 2]"))


@case("op-job-path-traversal", ValueError, "job path must look like", "'jobs/../../admin'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseRunJobOperator(task_id="t", job_path="jobs/../../admin"))


@case("op-train-unknown-learn-block", ValueError, "learn_block='Nope'", "Known names", "'Classifier'", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(EdgeImpulseTrainOperator(task_id="t", learn_block="Nope"))


@case("op-train-unknown-learn-block-id", ValueError, "learn_block_id=99", "no learn block with that id", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(EdgeImpulseTrainOperator(task_id="t", learn_block_id=99))


@case("op-train-name-and-id", ValueError, "exactly one of learn_block", "'Classifier' and 4", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseTrainOperator(task_id="t", learn_block="Classifier", learn_block_id=4))


@case(
    "op-train-anomaly-without-axes",
    ValueError,
    "anomaly block 'Anomaly detection'",
    "must have axes and minimumConfidenceRating",
    "'trainingCycles'",
    remote=NO_JOB,
)
def _(env: Env) -> Call:
    params = {"trainingCycles": 30}
    return execute(EdgeImpulseTrainOperator(task_id="t", learn_block="Anomaly detection", training_params=params))


@case(
    "op-train-anomaly-axes-not-ints",
    ValueError,
    "training_params.axes must be a list of integers",
    "'x'",
    remote=NO_JOB,
)
def _(env: Env) -> Call:
    params = {"axes": ["x"], "minimumConfidenceRating": 0.3}
    return execute(EdgeImpulseTrainOperator(task_id="t", learn_block="Anomaly detection", training_params=params))


@case("op-train-params-not-object", ValueError, "training_params must be a dict", "'[50, 0.01]'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseTrainOperator(task_id="t", learn_block="Classifier", training_params="[50, 0.01]"))


@case("op-features-unknown-dsp-block", ValueError, "dsp_block='FFT'", "no DSP block of that name", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(EdgeImpulseGenerateFeaturesOperator(task_id="t", dsp_block="FFT"))


@case("op-retrain-impulse-id-text", ValueError, "impulse_id must be an integer", "'first'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseRetrainOperator(task_id="t", impulse_id="first"))


@case("op-build-unknown-format", ValueError, "deployment_format 'floppy-disk'", "allowed:", "zip", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseBuildDeploymentOperator(task_id="t", deployment_format="floppy-disk", output_path=str(env.tmp))
    )


@case("op-build-unknown-engine", ValueError, "engine 'abacus' is not supported", "tflite-eon", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseBuildDeploymentOperator(
            task_id="t", deployment_format="zip", engine="abacus", output_path=str(env.tmp)
        )
    )


@case("op-build-unknown-model-type", ValueError, "model_type must be one of", "'int4'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseBuildDeploymentOperator(
            task_id="t", deployment_format="zip", model_type="int4", output_path=str(env.tmp)
        )
    )


@case("op-build-output-path-unwritable", ValueError, "output_path", "cannot create", "a-file", remote=NO_JOB)
def _(env: Env) -> Call:
    (env.tmp / "a-file").write_text("not a directory")
    return execute(
        EdgeImpulseBuildDeploymentOperator(
            task_id="t", deployment_format="zip", output_path=str(env.tmp / "a-file" / "model.zip")
        )
    )


@case(
    "op-build-output-path-unknown-scheme",
    ValueError,
    "output_path 'nosuchscheme://bucket/model.zip'",
    "no object storage for the scheme 'nosuchscheme'",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseBuildDeploymentOperator(
            task_id="t", deployment_format="zip", output_path="nosuchscheme://bucket/model.zip"
        )
    )


@case(
    "op-build-output-path-provider-missing",
    ValueError,
    "output_path 'gs://builds/model.zip'",
    "scheme 'gs'",
    "install the provider",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseBuildDeploymentOperator(task_id="t", deployment_format="zip", output_path="gs://builds/model.zip")
    )


@case("op-build-output-url-with-password", ValueError, "output_path 'gs://store@builds/model.zip'", remote=LOCAL)
def _(env: Env) -> Call:
    # A store's password belongs in its Airflow connection; one typed into the URL must not be echoed.
    env.extra_secrets.append("url-typed-store-secret")
    return execute(
        EdgeImpulseBuildDeploymentOperator(
            task_id="t", deployment_format="zip", output_path="gs://store:url-typed-store-secret@builds/model.zip"
        )
    )


def rendered_build(env: Env, field: str, value: Any) -> Call:
    """A build whose templated ``field`` renders to ``value``."""
    op = in_dag(
        lambda: EdgeImpulseBuildDeploymentOperator(
            task_id="t", deployment_format="zip", output_path=str(env.tmp), **{field: "{{ params.value }}"}
        )
    )
    return render_and_execute(op, value=value)


@case("op-build-download-timeout-text", ValueError, "download_timeout must be a positive", "'soon'", remote=LOCAL)
def _(env: Env) -> Call:
    return rendered_build(env, "download_timeout", "soon")


@case("op-build-project-version-text", ValueError, "project_version must be an integer", "'latest'", remote=LOCAL)
def _(env: Env) -> Call:
    return rendered_build(env, "project_version", "latest")


@case("op-build-project-version-zero", ValueError, "project_version must be at least 1", "0", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseBuildDeploymentOperator(
        task_id="t", deployment_format="zip", output_path=str(env.tmp), project_version=0
    )


@case("deployment-asset-format-path", ValueError, "deployment_format must be a format name", "'zip/v2'", remote=LOCAL)
def _(env: Env) -> Call:
    from airflow_provider_edgeimpulse.operators.announce import deployment_asset

    return lambda: deployment_asset(1, "zip/v2")


@case("op-testing-unknown-category", ValueError, "category must be one of", "'holdout'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelTestingOperator(task_id="t", category="holdout"))


@case("op-testing-variants-rendered-dict", ValueError, "model_variants must be a list", "{'int8': True}", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(
        lambda: EdgeImpulseModelTestingOperator(task_id="t", model_variants="{{ params.variants }}"), native=True
    )
    return render_and_execute(op, variants={"int8": True})


@case("op-testing-min-accuracy-range", ValueError, "min_accuracy is a fraction between 0 and 1", "85", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelTestingOperator(task_id="t", min_accuracy=85))


@case("op-gate-no-check", ValueError, "the gate has no check", "min_accuracy", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t"))


@case(
    "op-gate-label-limit-percent",
    ValueError,
    "min_label_accuracy[wave] is a fraction between 0 and 1",
    "90",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t", min_label_accuracy={"wave": 90}))


@case("op-gate-budget-without-device", ValueError, "device: name the target device", "max_ram_bytes", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t", max_ram_bytes=65536))


@case("op-gate-ram-text", ValueError, "max_ram_bytes must be a number", "'64k'", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(
        lambda: EdgeImpulseModelGateOperator(task_id="t", device="cortex-m4f-80mhz", max_ram_bytes="{{ params.ram }}")
    )
    return render_and_execute(op, ram="64k")


@case("op-gate-unknown-engine", ValueError, "engine must be one of", "'tensorrt'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseModelGateOperator(task_id="t", device="cortex-m4f-80mhz", engine="tensorrt", max_latency_ms=10)
    )


@case("op-gate-baseline-unknown-key", ValueError, "baseline: unknown key(s) ['acc']", "'accuracy'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t", baseline={"acc": 0.9}))


@case(
    "op-gate-baseline-version-text",
    ValueError,
    "baseline_version must be 'last' or a version id",
    "'latest'",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t", baseline_version="latest"))


@case("op-gate-two-baselines", ValueError, "set baseline or baseline_version, not both", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t", baseline={"accuracy": 0.9}, baseline_version="last"))


@case("op-gate-unknown-device", ValueError, "device: 'esp32'", "cortex-m4f-80mhz / Cortex-M4F 80MHz", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(EdgeImpulseModelGateOperator(task_id="t", device="esp32", max_latency_ms=10))


@case("op-gate-device-variant-not-profiled", ValueError, "device_variant: 'akida'", "'int8", remote=NO_JOB)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseModelGateOperator(task_id="t", device="cortex-m4f-80mhz", device_variant="akida", max_ram_bytes=1)
    )


@case("op-version-keep-last-zero", ValueError, "keep_last must be at least 1", "'0'", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(lambda: EdgeImpulseCreateVersionOperator(task_id="t", description="d", keep_last="{{ params.n }}"))
    return render_and_execute(op, n=0)


@case("op-version-bucket-with-api-key", ValueError, "bucket_id", "only for a JWT connection", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseCreateVersionOperator(task_id="t", description="d", bucket_id=3))


@case("op-version-description-not-text", ValueError, "description must be a string", "{'v': 2}", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(lambda: EdgeImpulseCreateVersionOperator(task_id="t", description="{{ params.d }}"), native=True)
    return render_and_execute(op, d={"v": 2})


@case("op-tuner-latency-text", ValueError, "target_latency must be an integer", "'fast'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseStartEONTunerOperator(task_id="t", target_device="cortex-m4f-80mhz", target_latency="fast")
    )


@case("op-tuner-unknown-algorithm", ValueError, "tuning_algorithm must be one of", "'genetic'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseStartEONTunerOperator(
            task_id="t", target_device="cortex-m4f-80mhz", target_latency=100, tuning_algorithm="genetic"
        )
    )


@case("op-tuner-device-without-name", ValueError, "target_device must be a device name", "{'ram': 4096}", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseStartEONTunerOperator(task_id="t", target_device={"ram": 4096}, target_latency=100))


@case("op-adopt-best-without-run", ValueError, "trial_id='best' needs tuner_coordinator_job_id", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseSetTunerPrimaryOperator(task_id="t", trial_id="best"))


@case("op-adopt-unknown-mode", ValueError, "metric_mode must be 'max' or 'min'", "'up'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseSetTunerPrimaryOperator(task_id="t", trial_id="best", tuner_coordinator_job_id=5, metric_mode="up")
    )


@case("op-adopt-unknown-variant", ValueError, "model_variant must be one of", "'int4'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseSetTunerPrimaryOperator(
            task_id="t", trial_id="best", tuner_coordinator_job_id=5, model_variant="int4"
        )
    )


@case("op-adopt-mode-and-old-name-disagree", ValueError, "metric_mode='max'", "mode='min'", "disagree", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseSetTunerPrimaryOperator(task_id="t", trial_id="best", metric_mode="max", mode="min")


@case("op-adopt-trial-unknown-status", ValueError, "is 'exploded'", "only a completed trial", remote=NO_JOB)
def _(env: Env) -> Call:
    run_id, state = env.finished_tuner_state()
    trial_id = state["trials"][0]["id"]
    state["trials"][0]["status"] = "exploded"
    env.answer_tuner_state(run_id, state)
    return execute(EdgeImpulseSetTunerPrimaryOperator(task_id="t", trial_id=trial_id, tuner_coordinator_job_id=run_id))


@case("op-adopt-best-unknown-statuses", ValueError, "no completed trial", "'exploded'", "'melted'", remote=NO_JOB)
def _(env: Env) -> Call:
    run_id, state = env.finished_tuner_state()
    for n, trial in enumerate(state["trials"]):
        trial["status"] = "exploded" if n % 2 else "melted"
    env.answer_tuner_state(run_id, state)
    return execute(EdgeImpulseSetTunerPrimaryOperator(task_id="t", trial_id="best", tuner_coordinator_job_id=run_id))


@case(
    "op-adopt-trials-not-a-list",
    ValueError,
    "trial_id 'trial_1_1'",
    "is not a trial of",
    remote=NO_JOB,
    off_spec="tuner state whose trials are not a list",
)
def _(env: Env) -> Call:
    run_id, state = env.finished_tuner_state()
    state["trials"] = "oops"
    env.answer_tuner_state(run_id, state)
    return execute(
        EdgeImpulseSetTunerPrimaryOperator(task_id="t", trial_id="trial_1_1", tuner_coordinator_job_id=run_id)
    )


@case("op-relabel-labels-rendered-dict", ValueError, "labels must be a list of strings", "{'wave': 1}", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(
        lambda: EdgeImpulseBatchEditLabelsOperator(
            task_id="t", category="training", label="waving", labels="{{ params.labels }}"
        )
    )
    return render_and_execute(op, labels={"wave": 1})


@case("op-relabel-label-bytes", ValueError, "label must be a non-empty string", "bytes", "b'wave'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseBatchEditLabelsOperator(task_id="t", category="training", label=b"wave", labels=["idle"]))


@case("op-relabel-label-too-long", ValueError, "label is 1000 characters long", "over the 256", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(
        EdgeImpulseBatchEditLabelsOperator(task_id="t", category="training", label="w" * 1000, labels=["idle"])
    )


@case("op-relabel-unknown-category", ValueError, "category must be one of", "'anomaly'", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseBatchEditLabelsOperator(task_id="t", category="anomaly", label="x", labels=["idle"]))


@case("op-relabel-ids-not-integers", ValueError, "ids must be a list of integers", "[1, 'x']", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseBatchEditLabelsOperator(task_id="t", category="training", label="x", ids="[1, 'x']"))


@case("op-upload-missing-file", ValueError, "paths:", "gone.wav': no such file", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(env.tmp / "gone.wav")]))


@case("op-upload-unknown-scheme", ValueError, "paths 'nosuchscheme://bucket/*.wav'", "no object storage", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=["nosuchscheme://bucket/*.wav"]))


@case("op-upload-missing-directory", ValueError, "paths:", "missing-dir", "matches no file", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(env.tmp / "missing-dir" / "*.wav")))


@case("op-upload-directory", ValueError, "is a directory", "use a pattern", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(env.tmp)))


@case("op-upload-file-over-100mb", ValueError, "over the 100 MiB limit", f"{OVER_100_MIB} bytes", remote=LOCAL)
def _(env: Env) -> Call:
    big = env.sparse_file("wave.huge.wav", OVER_100_MIB)
    small = env.sample_file()
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(small), str(big)]))


@case("op-upload-label-not-utf8", ValueError, "is not valid UTF-8", "'caf\\udce9'", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    label = b"caf\xe9".decode("utf-8", "surrogateescape")
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(path)], label=label))


@case("op-upload-label-empty", ValueError, "label must be a non-empty string", "got '  '", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(path)], label="  "))


@case("op-upload-unknown-category", ValueError, "category must be one of", "'holdout'", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.sample_file()
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=[str(path)], category="holdout"))


@case("op-upload-file-name-not-utf8", ValueError, "not valid UTF-8", "/caf\\udce9.0.json'", remote=LOCAL)
def _(env: Env) -> Call:
    env.sample_file()
    with open(os.fsencode(env.tmp) + b"/caf\xe9.0.json", "w") as handle:  # a Latin-1 name, as old tools write
        handle.write(json.dumps({"payload": {"values": [[1, 2, 3]]}}))
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(env.tmp / "*.json")))


@case("op-upload-glob-link-out", ValueError, "matches no file inside", "/samples'", "1 symbolic link", remote=LOCAL)
def _(env: Env) -> Call:
    outside = env.sample_file("settings.json")
    folder = env.tmp / "samples"
    folder.mkdir()
    (folder / "idle.0.json").symlink_to(outside)
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(folder / "*.json")))


@case(
    "op-upload-glob-link-loop",
    None,
    "uploaded 1 file(s)",
    remote=ANY,
    max_requests=1,
    result=lambda result: f"uploaded {result['uploaded']} file(s)",
)
def _(env: Env) -> Call:
    folder = env.tmp / "samples"
    folder.mkdir()
    env.sample_file("samples/idle.0.json")
    (folder / "up").symlink_to(env.tmp, target_is_directory=True)
    (folder / "here").symlink_to(folder, target_is_directory=True)
    return execute(EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(env.tmp / "**" / "*.json")))


@case("op-impulse-truncated-json", ValueError, "definition is not valid JSON", "line 1 column", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(EdgeImpulseCreateImpulseOperator(task_id="t", definition='{"inputBlocks": [{"type": "time'))


@case("op-impulse-malformed-file", ValueError, "definition file", "impulse.json", "is not valid JSON", remote=LOCAL)
def _(env: Env) -> Call:
    path = env.tmp / "impulse.json"
    path.write_text('{"inputBlocks": [}')
    return execute(EdgeImpulseCreateImpulseOperator(task_id="t", definition=str(path)))


@case(
    "op-impulse-missing-file", ValueError, "neither a JSON object nor an existing JSON file", "gone.json", remote=LOCAL
)
def _(env: Env) -> Call:
    return execute(EdgeImpulseCreateImpulseOperator(task_id="t", definition=str(env.tmp / "gone.json")))


@case(
    "op-impulse-unknown-scheme",
    ValueError,
    "definition 'nosuchscheme://bucket/impulse.json'",
    "no object storage for the scheme",
    remote=LOCAL,
)
def _(env: Env) -> Call:
    return execute(EdgeImpulseCreateImpulseOperator(task_id="t", definition="nosuchscheme://bucket/impulse.json"))


@case("op-impulse-without-learn-blocks", ValueError, "is not an impulse", "learnBlocks is missing", remote=LOCAL)
def _(env: Env) -> Call:
    definition = {"inputBlocks": [{"type": "time-series"}], "dspBlocks": []}
    return execute(EdgeImpulseCreateImpulseOperator(task_id="t", definition=definition))


@case(
    "op-10mb-log-line-in-failed-job",
    EdgeImpulseJobFailed,
    "failed. Last log lines",
    "more characters not shown",
    remote=ANY,
    max_requests=8,
    max_message=40_000,
    starts_job=True,
)
def _(env: Env) -> Call:
    env.em.configure(job_duration=None)
    op = EdgeImpulseRetrainOperator(task_id="t", deferrable=False, poll_interval=0.5)
    return with_driver(execute(op), big_line_then_finish(env, success=False))


# -- sensors ----------------------------------------------------------------------------------------------------


@case("sensor-job-id-rendered-text", ValueError, "job_id must be a positive integer", "'abc'", remote=LOCAL)
def _(env: Env) -> Call:
    op = in_dag(lambda: EdgeImpulseJobSensor(task_id="s", job_id="{{ params.job }}", poke_interval=0.1, timeout=5))
    return render_and_execute(op, job="abc")


@case("sensor-job-unknown-id", EdgeImpulseAPIError, "HTTP 404", "/jobs/987654/status", remote=ANY, max_requests=1)
def _(env: Env) -> Call:
    return execute(EdgeImpulseJobSensor(task_id="s", job_id=987654, poke_interval=0.1, timeout=5))


@case("sensor-poke-interval-negative", ValueError, "poke_interval must be a positive", "-1", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseJobSensor(task_id="s", job_id=1, poke_interval=-1)


@case("sensor-poke-interval-zero", ValueError, "poke_interval must be a positive", "got 0", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=1, poke_interval=0)


@case("sensor-timeout-negative", ValueError, "timeout must be a non-negative", "-60", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseJobSensor(task_id="s", job_id=1, timeout=-60)


@case("sensor-timeout-nan", ValueError, "timeout must be a non-negative", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseNewSamplesSensor(task_id="s", timeout=math.nan)


@case("sensor-safety-interval-zero", ValueError, "safety_interval must be a positive, finite", "got 0", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseJobSensor(task_id="s", job_id=1, safety_interval=0)


@case("sensor-tuner-unknown-metric", ValueError, "metric 'smiles' is unknown", "accuracy", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=1, metric="smiles")


@case("sensor-tuner-unknown-mode", ValueError, "metric_mode must be 'max' or 'min'", "'up'", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=1, metric_mode="up")


@case("sensor-tuner-unknown-variant", ValueError, "model_variant must be one of", "'fp16'", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=1, model_variant="fp16")


@case(
    "sensor-tuner-unknown-statuses",
    AirflowFailException,
    "no EON Tuner trial completed",
    "in other states",
    "'exploded'",
    remote=ANY,
)
def _(env: Env) -> Call:
    run_id, state = env.finished_tuner_state()
    for trial in state["trials"]:
        trial["status"] = "exploded"
    state["status"]["status"] = "imploded"
    env.answer_tuner_state(run_id, state)
    return execute(EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=run_id, poke_interval=0.1, timeout=5))


@case(
    "sensor-tuner-truncated-state",
    EdgeImpulseAPIError,
    "body that is not JSON",
    '{"success": true, "tr',
    remote=ANY,
    off_spec="a truncated tuner state",
)
def _(env: Env) -> Call:
    run_id, _state = env.finished_tuner_state()
    env.em.fault(status=200, body='{"success": true, "tr', path=f"/optimize/{run_id}/state")
    return execute(EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=run_id, poke_interval=0.1, timeout=5))


@case("sensor-tuner-unknown-run", EdgeImpulseAPIError, "HTTP 404", "987654", remote=ANY, max_requests=1)
def _(env: Env) -> Call:
    return execute(EONTunerStateSensor(task_id="s", tuner_coordinator_job_id=987654, poke_interval=0.1, timeout=5))


def samples_sensor(**kwargs: Any) -> EdgeImpulseNewSamplesSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 5)
    sensor = EdgeImpulseNewSamplesSensor(task_id="s", **kwargs)
    sensor.watermark_store = MemoryWatermarkStore()
    return sensor


@case("sensor-samples-min-new-zero", ValueError, "min_new_samples must be at least 1", "got 0", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: samples_sensor(min_new_samples=0)


@case(
    "sensor-samples-min-new-rendered-text", ValueError, "min_new_samples must be an integer", "'several'", remote=LOCAL
)
def _(env: Env) -> Call:
    sensor = in_dag(lambda: samples_sensor(min_new_samples="{{ params.n }}"))
    return render_and_execute(sensor, n="several")


@case("sensor-samples-unknown-category", ValueError, "category must be one of", "'holdout'", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: samples_sensor(category="holdout")


@case("sensor-samples-labels-dict", ValueError, "labels must be a list of strings", "{'wave': 1}", remote=LOCAL)
def _(env: Env) -> Call:
    return execute(samples_sensor(labels={"wave": 1}))


@case("sensor-samples-bad-watermark", ValueError, "should hold a watermark", "'yesterday'", remote=LOCAL)
def _(env: Env) -> Call:
    sensor = samples_sensor(watermark_key="ei_watermark")
    sensor.watermark_store = MemoryWatermarkStore({"ei_watermark": "yesterday"})
    return execute(sensor)


@case("sensor-samples-project-not-owned", EdgeImpulseAPIError, "HTTP 404", "Project 999", remote=ANY, max_requests=1)
def _(env: Env) -> Call:
    return execute(samples_sensor(project_id=999))


# -- triggers ---------------------------------------------------------------------------------------------------


def payload(event: Any) -> dict[str, Any]:
    return dict(event.payload)


@case(
    "trigger-job-unknown-id", None, "Waiting for Edge Impulse job 987654 failed", "HTTP 404", remote=ANY, event="error"
)
def _(env: Env) -> Call:
    trigger = EdgeImpulseJobTrigger(job_id=987654, project_id=env.em.project_id, poll_interval=1)
    return lambda: payload(fire(trigger))


@case(
    "trigger-job-truncated-json",
    None,
    "body that is not JSON",
    '{"success": tr',
    remote=ANY,
    event="error",
    off_spec="a truncated JSON answer",
)
def _(env: Env) -> Call:
    job_id = env.running_job()
    env.em.fault(status=200, body='{"success": tr', path=f"/jobs/{job_id}/status")
    trigger = EdgeImpulseJobTrigger(job_id=job_id, project_id=env.em.project_id, poll_interval=1)
    return lambda: payload(fire(trigger))


@case(
    "trigger-job-deeply-nested-json",
    None,
    "JSON nested too deeply",
    remote=ANY,
    event="error",
    off_spec="JSON nested 100,000 deep",
)
def _(env: Env) -> Call:
    job_id = env.running_job()
    env.em.fault(
        status=200, body="[" * 100_000 + "]" * 100_000, content_type="application/json", path=f"/jobs/{job_id}/status"
    )
    trigger = EdgeImpulseJobTrigger(job_id=job_id, project_id=env.em.project_id, poll_interval=1)
    return lambda: payload(fire(trigger))


@case(
    "trigger-job-10mb-log-line",
    None,
    "x" * 100,
    "more characters not shown",
    remote=ANY,
    max_requests=6,
    event="success",
    result=lambda event: lines_of(event["outcome"]),
    max_message=20_000,
)
def _(env: Env) -> Call:
    job_id = env.running_job()
    trigger = EdgeImpulseJobTrigger(job_id=job_id, project_id=env.em.project_id, poll_interval=1)
    return with_driver(lambda: payload(fire(trigger)), big_line_then_finish(env, success=True))


@case("trigger-job-deferred-at-nan", ValueError, "deferred_at must be a UNIX time in seconds", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseJobTrigger(job_id=1, project_id=1, deferred_at=math.nan)


@case("trigger-tuner-poll-interval-zero", ValueError, "poll_interval must be a positive number", "got 0", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EONTunerStateTrigger(project_id=1, tuner_coordinator_job_id=1, poll_interval=0)


@case(
    "trigger-tuner-unknown-statuses",
    None,
    "no EON Tuner trial completed",
    "'exploded'",
    remote=ANY,
    max_requests=4,
    event="failure",
)
def _(env: Env) -> Call:
    run_id, state = env.finished_tuner_state()
    for trial in state["trials"]:
        trial["status"] = "exploded"
    env.answer_tuner_state(run_id, state)
    trigger = EONTunerStateTrigger(project_id=env.em.project_id, tuner_coordinator_job_id=run_id, poll_interval=1)
    return lambda: payload(fire(trigger))


@case("trigger-samples-min-new-zero", ValueError, "min_new_samples must be at least 1", "got 0", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseNewSamplesTrigger(min_new_samples=0)


@case("trigger-samples-poll-interval-nan", ValueError, "poll_interval must be a positive number", "nan", remote=LOCAL)
def _(env: Env) -> Call:
    return lambda: EdgeImpulseNewSamplesTrigger(poll_interval=math.nan)
