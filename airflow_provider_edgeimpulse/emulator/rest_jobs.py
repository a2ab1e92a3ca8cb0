"""Job endpoints: the training/DSP/testing job starters and status, stdout, cancel and listings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.errors import ApiError, bad_request, not_found
from airflow_provider_edgeimpulse.emulator.jobs import LOG_LEVELS, Job, Step, lines
from airflow_provider_edgeimpulse.emulator.rest_project import check_impulse_id
from airflow_provider_edgeimpulse.emulator.web_util import (
    json_body,
    ok,
    path_int,
    project_id_of,
    query_int,
    state_of,
)

NO_SUCH_JOB = "No job with this ID found"
MODEL_VARIANTS = ("int8", "float32", "akida")
STDOUT_MAX_LINES = 1000


def start_job(
    request: web.Request,
    *,
    category: str,
    category_key: str,
    key: str,
    steps: Sequence[Step],
    failure_reason: str,
    on_success: Callable[[], None] | None = None,
    on_end: Callable[[Job, bool], None] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Job:
    state = state_of(request)
    job = state.jobs.start(
        project_id_of(request),
        category=category,
        category_key=category_key,
        key=key,
        steps=steps,
        failure_reason=f"{failure_reason} (emulated failure: job_outcome=failure)",
        duration=state.settings.job_duration,
        outcome_success=state.settings.job_outcome == "success",
        on_success=on_success,
        metadata=metadata,
    )
    if on_end is not None:
        job.on_end = lambda success: on_end(job, success)
    return job


def started(job: Job, **extra: Any) -> web.Response:
    return ok({"id": job.id, **extra})


def _epoch_steps(cycles: int, title: str) -> list[Step]:
    steps: list[Step] = [lines("Scheduling job in cluster...", f"{title}: training for {cycles} epochs")]
    for epoch in range(1, cycles + 1):
        loss = round(1.2 / (epoch + 1), 4)
        accuracy = round(min(0.99, 0.5 + 0.45 * epoch / cycles), 4)
        steps.append(
            lines(
                f"Epoch {epoch}/{cycles} - loss: {loss:.4f} - accuracy: {accuracy:.4f} - "
                f"val_loss: {loss * 1.1:.4f} - val_accuracy: {accuracy * 0.97:.4f}"
            )
        )
    steps.append(lines("Finished training", "Saving best performing model..."))
    return steps


def _cycles(request: web.Request, body: dict[str, Any]) -> int:
    value = body.get("trainingCycles", state_of(request).settings.training_cycles)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise bad_request("'trainingCycles' must be an integer between 1 and 1000")
    return value


def _mark_trained(request: web.Request) -> Callable[[], None]:
    return state_of(request).project.trained


async def retrain(request: web.Request) -> web.Response:
    check_impulse_id(request)
    project = state_of(request).project
    if project.impulse is None:
        raise bad_request("This project has no impulse, create one first")
    cycles = state_of(request).settings.training_cycles
    steps: list[Step] = [lines("Retraining impulse with its last settings")]
    steps += [
        lines(f"Generating features for {b['title']} (DSP block {b['id']})...") for b in project.impulse["dspBlocks"]
    ]
    for block in project.impulse["learnBlocks"]:
        steps += _epoch_steps(cycles, f"{block['title']} (learn block {block['id']})")
    job = start_job(
        request,
        category="Retraining impulse",
        category_key="retrain",
        key=f"retrain-{project.impulse['id']}",
        steps=steps,
        failure_reason="Retraining failed: the model did not converge",
        on_success=_mark_trained(request),
    )
    return started(job)


def learn_block_of(request: web.Request, kinds: tuple[str, ...]) -> dict[str, Any]:
    learn_id = path_int(request, "learnId")
    block = state_of(request).project.learn_block(learn_id)
    if block is None:
        raise not_found(f"Learn block {learn_id} not found")
    if not str(block.get("type", "")).startswith(kinds):
        raise bad_request(f"Learn block {learn_id} is of type '{block.get('type')}', not {' or '.join(kinds)}")
    return block


async def train_keras(request: web.Request) -> web.Response:
    block = learn_block_of(request, ("keras",))
    body = await json_body(request)
    cycles = _cycles(request, body)
    rate = body.get("learningRate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0):
        raise bad_request("'learningRate' must be a positive number")
    job = start_job(
        request,
        category=f"Training model ({block['title']})",
        category_key="learn-train-studio-wrapper",
        key=f"keras-{block['id']}",
        steps=_epoch_steps(cycles, block["title"]),
        failure_reason="Training failed: loss became NaN after a few epochs",
        on_success=_mark_trained(request),
    )
    return started(job)


async def train_anomaly(request: web.Request) -> web.Response:
    block = learn_block_of(request, ("anomaly",))
    body = await json_body(request)
    axes = body.get("axes")
    if not isinstance(axes, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise bad_request("'axes' is required: a list of integers")
    rating = body.get("minimumConfidenceRating")
    if isinstance(rating, bool) or not isinstance(rating, int | float):
        raise bad_request("'minimumConfidenceRating' is required: a number")
    clusters = body.get("clusterCount", 32)
    job = start_job(
        request,
        category=f"Training model ({block['title']})",
        category_key="learn-train-studio-wrapper",
        key=f"anomaly-{block['id']}",
        steps=[
            lines("Scheduling job in cluster...", f"Training K-means anomaly model with {clusters} clusters"),
            lines("Calculating cluster centers..."),
            lines("Calculating anomaly scores for the training set..."),
            lines("Finished training anomaly model"),
        ],
        failure_reason="Anomaly training failed: not enough features to form the requested clusters",
        on_success=_mark_trained(request),
    )
    return started(job)


async def generate_features(request: web.Request) -> web.Response:
    body = await json_body(request, required=True)
    dsp_id = body.get("dspId")
    if isinstance(dsp_id, bool) or not isinstance(dsp_id, int):
        raise bad_request("Missing or invalid 'dspId' (integer)")
    block = state_of(request).project.dsp_block(dsp_id)
    if block is None:
        raise not_found(f"DSP block {dsp_id} not found")
    count = len(state_of(request).project.in_category("training"))
    job = start_job(
        request,
        category=f"Generating features for {block['title']}",
        category_key="dsp-generate-features",
        key=f"dsp-{dsp_id}",
        steps=[
            lines("Scheduling job in cluster...", f"Creating windows from {count} files..."),
            lines(f"Processing {count} files for {block['title']}..."),
            lines("Calculating feature importance..." if body.get("calculateFeatureImportance") else "Done windowing"),
            lines("Skipping feature explorer" if body.get("skipFeatureExplorer") else "Creating feature explorer..."),
            lines("Generated features"),
        ],
        failure_reason="Feature generation failed: a sample could not be processed",
    )
    return started(job)


async def classify(request: web.Request) -> web.Response:
    check_impulse_id(request)
    state = state_of(request)
    category = request.query.get("category", "testing")
    if category not in ("training", "testing", "validation", "post-processing"):
        raise bad_request(f"Invalid category '{category}'")
    body = await json_body(request)
    variants = body.get("modelVariants") or ["int8"]
    unknown = [v for v in variants if v not in MODEL_VARIANTS] if isinstance(variants, list) else [variants]
    if unknown:
        raise bad_request(f"Unknown model variant(s) {unknown}, expected some of {list(MODEL_VARIANTS)}")
    count = len(state.project.in_category(category))
    project = state.project

    def effect() -> None:
        project.classified = True

    job = start_job(
        request,
        category="Classifying all samples",
        category_key="classify",
        key=f"classify-{category}",
        steps=[
            lines("Scheduling job in cluster...", f"Classifying {count} {category} samples ({', '.join(variants)})"),
            lines("Classifying data for float32 model..." if "float32" in variants else "Classifying data..."),
            lines("Calculating accuracy..."),
            lines("Classifying all samples OK"),
        ],
        failure_reason="Model testing failed: the model could not be loaded",
        on_success=effect,
    )
    return started(job)


async def evaluate(request: web.Request) -> web.Response:
    check_impulse_id(request)
    project = state_of(request).project

    def effect() -> None:
        project.evaluated = True

    job = start_job(
        request,
        category="Evaluating model variants",
        category_key="evaluate",
        key="evaluate",
        steps=[
            lines("Scheduling job in cluster...", "Evaluating int8 model..."),
            lines("Evaluating float32 model..."),
            lines("Evaluation complete"),
        ],
        failure_reason="Evaluation failed: a model variant could not be evaluated",
        on_success=effect,
    )
    return started(job)


def _job(request: web.Request) -> Job:
    job = state_of(request).jobs.get(project_id_of(request), path_int(request, "jobId"))
    if job is None:
        raise not_found(NO_SUCH_JOB)
    return job


async def job_status(request: web.Request) -> web.Response:
    return ok({"job": _job(request).to_json()})


async def job_stdout(request: web.Request) -> web.Response:
    """Newest line first, as Studio serves it (the official SDK reverses the list to print it)."""
    job = _job(request)
    level = request.query.get("logLevel")
    if level is not None and level not in LOG_LEVELS:
        raise bad_request(f"Invalid 'logLevel' {level!r}, expected one of {', '.join(LOG_LEVELS)}")
    limit = query_int(request, "limit", STDOUT_MAX_LINES) or STDOUT_MAX_LINES
    entries = job.log
    if level is not None:
        # A level asks for that severity and anything more severe.
        allowed = set(LOG_LEVELS[: LOG_LEVELS.index(level) + 1])
        entries = [e for e in entries if e.level in allowed]
    newest = list(reversed(entries))[: min(max(limit, 0), STDOUT_MAX_LINES)]
    return ok({"stdout": [e.to_json() for e in newest], "totalCount": len(entries)})


async def cancel(request: web.Request) -> web.Response:
    state = state_of(request)
    job = _job(request)
    if not state.jobs.cancel(job):
        raise ApiError(400, f"Unknown job ID {job.id}: the job is not running (it already finished)")
    return ok()


async def active_jobs(request: web.Request) -> web.Response:
    jobs = state_of(request).jobs.jobs.values()
    project_id = project_id_of(request)
    active = sorted((j for j in jobs if j.project_id == project_id and j.finished is None), key=lambda j: -j.id)
    return ok({"jobs": [j.to_json() for j in active], "totalJobCount": len(active)})


async def finished_jobs(request: web.Request) -> web.Response:
    jobs = state_of(request).jobs.jobs.values()
    project_id = project_id_of(request)
    done = sorted((j for j in jobs if j.project_id == project_id and j.finished is not None), key=lambda j: -j.id)
    offset = query_int(request, "offset", 0) or 0
    limit = query_int(request, "limit", 20) or 20
    page = done[offset : offset + limit]
    return ok({"jobs": [j.to_json() for j in page], "totalJobCount": len(done)})


def add_routes(app: web.Application) -> None:
    base = r"/v1/api/{projectId:\d+}/jobs"
    app.router.add_post(f"{base}/retrain", retrain)
    app.router.add_post(base + r"/train/keras/{learnId:\d+}", train_keras)
    app.router.add_post(base + r"/train/anomaly/{learnId:\d+}", train_anomaly)
    app.router.add_post(f"{base}/generate-features", generate_features)
    app.router.add_post(f"{base}/classify", classify)
    app.router.add_post(f"{base}/evaluate", evaluate)
    app.router.add_get(base + r"/{jobId:\d+}/status", job_status)
    app.router.add_get(base + r"/{jobId:\d+}/stdout", job_stdout)
    app.router.add_post(base + r"/{jobId:\d+}/cancel", cancel)
    app.router.add_get(base, active_jobs)
    app.router.add_get(f"{base}/history", finished_jobs)
