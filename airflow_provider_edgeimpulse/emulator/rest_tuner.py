"""EON Tuner endpoints: configuration, the coordinator job, its state, past runs and adopting a trial."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.errors import bad_request, not_found
from airflow_provider_edgeimpulse.emulator.jobs import Job, lines
from airflow_provider_edgeimpulse.emulator.rest_jobs import start_job, started
from airflow_provider_edgeimpulse.emulator.tuner import DEFAULT_CONFIG, Trial, TunerRun
from airflow_provider_edgeimpulse.emulator.web_util import json_body, ok, path_int, state_of

ALGORITHMS = ("random", "hyperband", "bayesian", "custom")
PRECISIONS = ("float32", "int8")


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    latency = body.get("targetLatency")
    if isinstance(latency, bool) or not isinstance(latency, int):
        raise bad_request("Missing or invalid 'targetLatency' (integer, milliseconds)")
    device = body.get("targetDevice")
    if not isinstance(device, dict) or not isinstance(device.get("name"), str) or not device["name"]:
        raise bad_request("Missing or invalid 'targetDevice' (an object with a 'name')")
    algorithm = body.get("tuningAlgorithm")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise bad_request(f"Invalid 'tuningAlgorithm' {algorithm!r}, expected one of {', '.join(ALGORITHMS)}")
    precision = body.get("optimizationPrecision")
    if precision is not None and precision not in PRECISIONS:
        raise bad_request(f"Invalid 'optimizationPrecision' {precision!r}, expected one of {', '.join(PRECISIONS)}")
    for key in ("tuningMaxTrials", "tuningWorkers", "trainingCycles"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise bad_request(f"'{key}' must be a positive integer")
    return copy.deepcopy(body)


async def set_config(request: web.Request) -> web.Response:
    body = await json_body(request, required=True)
    state_of(request).project.optimize_config = _validate(body)
    return ok()


async def get_config(request: web.Request) -> web.Response:
    config = state_of(request).project.optimize_config or DEFAULT_CONFIG
    return ok(copy.deepcopy(config))


async def start_tuner(request: web.Request) -> web.Response:
    state = state_of(request)
    project = state.project
    if project.impulse is None:
        raise bad_request("This project has no impulse, create one first")
    config = project.optimize_config or DEFAULT_CONFIG
    trials = int(config.get("tuningMaxTrials") or state.settings.tuner_trials)
    failures = min(trials, state.settings.tuner_trial_failures)
    run = TunerRun.create(state.jobs.next_id, len(project.tuner_runs) + 1, config, project.impulse, trials, failures)
    project.tuner_runs[run.coordinator_job_id] = run

    def ended(job: Job, success: bool) -> None:
        run.end(success, cancelled=job.cancelled, reason=job.failure_reason)

    job = start_job(
        request,
        category="EON Tuner",
        category_key="tuner-coordinator",
        key=f"tuner-coordinator-{run.index}",
        steps=run.steps(),
        failure_reason="EON Tuner failed: the search could not be completed",
        on_end=ended,
    )
    return started(job)


def _run(request: web.Request) -> TunerRun:
    job_id = path_int(request, "tunerCoordinatorJobId")
    run = state_of(request).project.tuner_runs.get(job_id)
    if run is None:
        raise not_found(f"No EON Tuner run with coordinator job ID {job_id} found")
    return run


async def tuner_state(request: web.Request) -> web.Response:
    return web.json_response(_run(request).state_json())


async def tuner_runs(request: web.Request) -> web.Response:
    runs = sorted(state_of(request).project.tuner_runs.values(), key=lambda r: -r.index)
    return ok({"runs": [r.run_json() for r in runs]})


def _find_trial(request: web.Request, trial_id: str) -> Trial:
    for run in state_of(request).project.tuner_runs.values():
        trial = run.trial(trial_id)
        if trial is not None:
            return trial
    raise not_found(f"Unknown trial ID '{trial_id}'")


async def set_primary(request: web.Request) -> web.Response:
    trial_id = request.query.get("trialId")
    if not trial_id:
        raise bad_request("Missing parameter 'trialId'")
    trial = _find_trial(request, trial_id)
    if trial.status != "completed":
        raise bad_request(f"Trial '{trial_id}' has not completed (status: {trial.status})")
    body = await json_body(request)
    project = state_of(request).project

    def effect() -> None:
        impulse_id = project.new_impulse_id()
        project.impulse = {
            "id": impulse_id,
            "name": str(body.get("name") or f"EON Tuner {trial.name}"),
            "type": "default",
            **copy.deepcopy(trial.impulse),
            "postProcessingBlocks": [],
        }
        project.impulse_complete = True

    job = start_job(
        request,
        category="Updating impulse from EON Tuner trial",
        category_key="set-tuner-primary-job",
        key=f"set-tuner-primary-job-{trial_id}",
        steps=[
            lines(f"Copying blocks of trial {trial_id} into the project..."),
            lines("Retraining the selected model..."),
            lines(f"Trial {trial_id} is now the primary impulse"),
        ],
        failure_reason=f"Could not apply trial {trial_id}",
        on_success=effect,
    )
    return started(job)


def add_routes(app: web.Application) -> None:
    base = r"/v1/api/{projectId:\d+}"
    app.router.add_get(f"{base}/optimize/config", get_config)
    app.router.add_post(f"{base}/optimize/config", set_config)
    app.router.add_get(f"{base}/optimize/runs", tuner_runs)
    app.router.add_get(base + r"/optimize/{tunerCoordinatorJobId:\d+}/state", tuner_state)
    app.router.add_post(f"{base}/jobs/optimize", start_tuner)
    app.router.add_post(f"{base}/jobs/set-tuner-primary-job", set_primary)
