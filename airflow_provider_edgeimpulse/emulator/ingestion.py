"""The ingestion service: ``POST /api/{training|testing|anomaly|split}/files``, multipart, one ``data`` part a file.

Every response lists each file's outcome; the top-level ``success`` is true when the request was processed, even
if single files were refused (their entries carry ``success: false`` and an ``error``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from airflow_provider_edgeimpulse.emulator.errors import ApiError, bad_request
from airflow_provider_edgeimpulse.emulator.web_util import ok, state_of

INGESTION_CATEGORIES = ("training", "testing", "anomaly", "split")


@dataclass
class Upload:
    filename: str
    size: int
    sha256: str


def _flag(request: web.Request, name: str) -> bool:
    return request.headers.get(name, "").strip().lower() in ("1", "true", "yes")


def _metadata(request: web.Request) -> dict[str, str]:
    raw = request.headers.get("x-metadata")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad_request("Invalid 'x-metadata' header: not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("Invalid 'x-metadata' header: expected a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


async def _read_uploads(request: web.Request, max_files: int) -> list[Upload]:
    if not request.content_type.startswith("multipart/"):
        raise bad_request("Expected a multipart/form-data body with one 'data' part per file")
    reader = await request.multipart()
    uploads: list[Upload] = []
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or part.name != "data":
            if isinstance(part, BodyPartReader):
                await part.release()
            continue
        # Hash as we go: a 100 MB upload is never held in memory.
        digest = hashlib.sha256()
        size = 0
        while chunk := await part.read_chunk(1 << 16):
            digest.update(chunk)
            size += len(chunk)
        uploads.append(Upload(part.filename or f"file{len(uploads) + 1}", size, digest.hexdigest()))
        if len(uploads) > max_files:
            raise bad_request(f"Too many files: a request may hold at most {max_files} files")
    if not uploads:
        raise bad_request("No files found: send each file as a multipart part named 'data'")
    return uploads


async def ingest(request: web.Request) -> web.Response:
    state = state_of(request)
    project = state.project
    category = request.match_info["category"]
    if category not in INGESTION_CATEGORIES:
        raise ApiError(404, f"Unknown ingestion category '{category}', expected one of {INGESTION_CATEGORIES}")
    metadata = _metadata(request)
    raw_label = request.headers.get("x-label")
    label_header = unquote(raw_label) if raw_label is not None else None
    no_label = _flag(request, "x-no-label")
    no_duplicates = _flag(request, "x-disallow-duplicates")
    add_date_id = _flag(request, "x-add-date-id")
    settings = state.settings
    uploads = await _read_uploads(request, settings.ingestion_max_files)

    known = {s.sha256 for s in project.samples.values()}
    files: list[dict[str, Any]] = []
    for upload in uploads:
        entry: dict[str, Any] = {"fileName": upload.filename}
        if upload.size > settings.ingestion_max_file_bytes:
            limit_mb = settings.ingestion_max_file_bytes / (1024 * 1024)
            files.append({**entry, "success": False, "error": f"File is too large (max {limit_mb:g} MB)"})
            continue
        if no_duplicates and upload.sha256 in known:
            files.append({**entry, "success": False, "error": "An item with this hash already exists"})
            continue
        stem = os.path.splitext(os.path.basename(upload.filename))[0] or "sample"
        if no_label:
            label = ""
        elif label_header is not None:
            label = label_header
        else:
            # Without x-label the ingestion service takes the label from the file name: "<label>.<anything>".
            label = stem.split(".")[0]
        name = f"{stem}.{secrets.token_hex(6)}" if add_date_id else stem
        target = category
        if category == "anomaly":
            # Studio keeps the ingestion service's "anomaly" uploads in its post-processing dataset.
            target = "post-processing"
        elif category == "split":
            target = "training" if int(upload.sha256[:2], 16) < 205 else "testing"
        sample = project.add_sample(
            filename=name,
            category=target,
            label=label,
            sha256=upload.sha256,
            size_bytes=upload.size,
            metadata=metadata,
        )
        known.add(upload.sha256)
        files.append({**entry, "success": True, "sampleId": sample.id})
    return ok({"files": files})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/{category}/files", ingest)
