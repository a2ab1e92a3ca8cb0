"""Deployment targets, build jobs and their zip artifacts (made on first download, streamed from disk)."""

from __future__ import annotations

import asyncio
import os
import zipfile
from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.errors import bad_request, not_found
from airflow_provider_edgeimpulse.emulator.jobs import lines
from airflow_provider_edgeimpulse.emulator.project import Deployment, ProjectData
from airflow_provider_edgeimpulse.emulator.rest_jobs import start_job, started
from airflow_provider_edgeimpulse.emulator.rest_project import check_impulse_id
from airflow_provider_edgeimpulse.emulator.web_util import json_body, ok, path_int, state_of

_MCU = ["tflite", "tflite-eon", "tflite-eon-ram-optimized"]
# (format, name, supported engines, preferred engine, section)
TARGETS: list[tuple[str, str, list[str], str, str]] = [
    ("zip", "C++ library", _MCU, "tflite-eon", "library"),
    ("arduino", "Arduino library", _MCU, "tflite-eon", "library"),
    ("cubemx", "Cube.MX CMSIS-PACK", _MCU, "tflite-eon", "library"),
    ("wasm", "WebAssembly", ["tflite", "tflite-eon"], "tflite", "library"),
    ("tflite", "TensorFlow Lite (int8 quantized)", ["tflite"], "tflite", "library"),
    ("runner-linux-aarch64", "Linux (AARCH64)", ["tflite", "tensorrt"], "tflite", "firmware"),
    ("brainchip-akida", "BrainChip Akida", ["akida"], "akida", "library"),
]
MODEL_TYPES = ("int8", "float32", "akida")


def _target_json(fmt: str, name: str, engines: list[str], preferred: str, section: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} (emulated)",
        "image": f"/assets/deploy/{fmt}.svg",
        "imageClasses": "",
        "format": fmt,
        "hasEonCompiler": "tflite-eon" in engines,
        "hasTensorRT": "tensorrt" in engines,
        "hasTensaiFlow": False,
        "hasDRPAI": False,
        "hasTIDL": False,
        "hasAkida": "akida" in engines,
        "hasMemryx": False,
        "hasStAton": False,
        "hasCevaNpn": False,
        "hasNordicAxon": False,
        "hasQaic": False,
        "hideOptimizations": False,
        "uiSection": section,
        "supportedEngines": engines,
        "preferredEngine": preferred,
        "docsUrl": f"https://docs.edgeimpulse.com/docs/deployment/{fmt}",
        "modelVariants": [
            {"variant": "int8", "supported": "akida" not in engines},
            {"variant": "float32", "supported": "akida" not in engines},
            {"variant": "akida", "supported": "akida" in engines},
        ],
        "parameters": [],
        "recommendedForProject": fmt == "zip",
        "disabledForProject": False,
    }


def _target(fmt: str) -> tuple[str, str, list[str], str, str] | None:
    return next((t for t in TARGETS if t[0] == fmt), None)


async def targets(request: web.Request) -> web.Response:
    check_impulse_id(request)
    return ok({"targets": [_target_json(*t) for t in TARGETS]})


async def build(request: web.Request) -> web.Response:
    check_impulse_id(request)
    project = state_of(request).project
    fmt = request.query.get("type")
    if not fmt:
        raise bad_request("Missing parameter 'type' (a deployment format from deployment/targets)")
    target = _target(fmt)
    if target is None:
        raise bad_request(f"Unknown deployment type '{fmt}', see deployment/targets for the valid formats")
    body = await json_body(request)
    engine = body.get("engine")
    if not engine:
        raise bad_request("Missing 'engine' in the request body")
    if engine not in target[2]:
        raise bad_request(f"Engine '{engine}' is not supported for deployment type '{fmt}' (supported: {target[2]})")
    model_type = body.get("modelType") or ("akida" if engine == "akida" else "int8")
    if model_type not in MODEL_TYPES:
        raise bad_request(f"Unknown modelType '{model_type}', expected one of {list(MODEL_TYPES)}")
    version = project.new_deployment_version()
    state = state_of(request)
    deployment = Deployment(version, fmt, engine, model_type, job_id=state.jobs.next_id, created=project.clock.now())
    project.deployments[version] = deployment

    def effect() -> None:
        deployment.ready = True

    job = start_job(
        request,
        category=f"Building {target[1]}",
        category_key="build-ondevice-model",
        key=f"build-ondevice-model-{fmt}",
        steps=[
            lines("Scheduling job in cluster...", f"Building {target[1]} ({engine}, {model_type})"),
            lines("Compiling model with the EON Compiler..." if "eon" in engine else "Converting model..."),
            lines("Packaging library..."),
            lines(f"Deployment v{version} ready"),
        ],
        failure_reason=f"Build failed: the {fmt} toolchain exited with code 1",
        on_success=effect,
        metadata={"deploymentVersion": version},
    )
    return started(job, deploymentVersion=version)


def _filename(project: ProjectData, deployment: Deployment) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in project.name.lower()).strip("-")
    return f"{slug}-{deployment.format}-v{deployment.version}.zip"


def write_artifact(path: str, size: int, readme: str) -> None:
    """A real zip of ``size`` bytes (or just over, when tiny), written in chunks: 1 GiB never sits in memory."""
    block = os.urandom(1 << 20)
    small = {
        "README.txt": readme,
        "model-parameters/model_metadata.h": "#define EI_CLASSIFIER_EMULATED 1\n",
    }
    padding_name = "tflite-model/trained_model.bin"
    with open(path, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, text in small.items():
            archive.writestr(name, text)
        big = size > (1 << 31)
        # Local header of the padding entry, then the central directory (one record per entry) and its end.
        local = 30 + len(padding_name) + (20 if big else 0)
        central = sum(46 + len(n) for n in [*small, padding_name]) + (28 if big else 0)
        end = 22 + (76 if big else 0)
        remaining = max(0, size - raw.tell() - local - central - end)
        with archive.open(padding_name, "w", force_zip64=big) as entry:
            while remaining > 0:
                chunk = block[: min(remaining, len(block))]
                entry.write(chunk)
                remaining -= len(chunk)


async def _artifact(request: web.Request, deployment: Deployment) -> web.StreamResponse:
    state = state_of(request)
    project = state.project
    if not deployment.ready:
        raise not_found(f"Deployment v{deployment.version} has not been built (yet); wait for job {deployment.job_id}")
    if deployment.lock is None:
        deployment.lock = asyncio.Lock()
    async with deployment.lock:
        if deployment.path is None:
            path = os.path.join(state.workdir, f"deployment-{deployment.version}.zip")
            readme = (
                f"Edge Impulse emulator deployment\nproject: {project.id}\nformat: {deployment.format}\n"
                f"engine: {deployment.engine}\nmodelType: {deployment.model_type}\nversion: {deployment.version}\n"
            )
            # The size is read at first download, so a test can set deployment_size_bytes after the build.
            await asyncio.to_thread(write_artifact, path, state.settings.deployment_size_bytes, readme)
            deployment.path = path
    filename = _filename(project, deployment)
    return web.FileResponse(
        deployment.path,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


async def download(request: web.Request) -> web.StreamResponse:
    check_impulse_id(request)
    project = state_of(request).project
    fmt = request.query.get("type")
    if not fmt:
        raise bad_request("Missing parameter 'type'")
    engine = request.query.get("engine")
    model_type = request.query.get("modelType")
    matching = [
        d
        for d in project.deployments.values()
        if d.ready
        and d.format == fmt
        and (engine is None or d.engine == engine)
        and (model_type is None or d.model_type == model_type)
    ]
    if not matching:
        raise not_found(f"No build found for deployment type '{fmt}'; start a build-ondevice-model job first")
    return await _artifact(request, max(matching, key=lambda d: d.version))


async def download_version(request: web.Request) -> web.StreamResponse:
    version = path_int(request, "deploymentVersion")
    deployment = state_of(request).project.deployments.get(version)
    if deployment is None:
        raise not_found(f"Deployment version {version} not found")
    return await _artifact(request, deployment)


def add_routes(app: web.Application) -> None:
    base = r"/v1/api/{projectId:\d+}"
    app.router.add_get(f"{base}/deployment/targets", targets)
    app.router.add_post(f"{base}/jobs/build-ondevice-model", build)
    app.router.add_get(f"{base}/deployment/download", download)
    app.router.add_get(base + r"/deployment/history/{deploymentVersion:\d+}/download", download_version)
