"""
Announce a built deployment downstream: an Asset event whose extra says exactly which build it is.

A DAG author names the Asset with :func:`deployment_asset` (or any Asset of their own) and passes it as the
build task's ``outlets``; the build operator attaches :data:`DEPLOYMENT_EVENT_KEYS` to the event of every Asset
among its outlets through Airflow's outlet events (``context["outlet_events"][asset].extra``; Airflow 2.11 names
them Datasets and keeps the same accessor).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.studio import DEFAULT_STUDIO_URL, deployment_asset_uri

# What a downstream DAG reads from the event's extra (a key whose figure is unknown holds None).
DEPLOYMENT_EVENT_KEYS = (
    "project_id",
    "project_version",
    "deployment_version",
    "format",
    "engine",
    "model_type",
    "sha256",
    "size",
    "filename",
    "path",
    "job_id",
)


def deployment_asset(project_id: int | str, deployment_format: str, studio_url: str = DEFAULT_STUDIO_URL) -> Any:
    """
    The Asset (a Dataset on Airflow 2.11) for the builds of one format of a project, for ``outlets`` and
    ``schedule``: ``edgeimpulse://<studio host>/project/<id>/deployment/<format>``.
    """
    from airflow.providers.common.compat.sdk import Asset

    project = _params.required_int("project_id", project_id, minimum=1)
    fmt = _params.required_str("deployment_format", deployment_format)
    if "/" in fmt or fmt != fmt.strip():
        raise ValueError(f"deployment_format must be a format name such as 'zip', got {_params.shown(fmt)}")
    url = _params.required_str("studio_url", studio_url)
    return Asset(deployment_asset_uri(project, fmt, url))


def deployment_event_extra(result: Mapping[str, Any], project_version: int | None) -> dict[str, Any]:
    """The event's extra from the build operator's result: plain JSON, nothing but the build's identity."""
    return {
        "project_id": result.get("project_id"),
        "project_version": project_version,
        "deployment_version": result.get("deploymentVersion"),
        "format": result.get("format"),
        "engine": result.get("engine"),
        "model_type": result.get("model_type"),
        "sha256": result.get("sha256"),
        "size": result.get("size"),
        "filename": result.get("filename"),
        "path": None if result.get("path") is None else str(result["path"]),
        "job_id": result.get("job_id"),
    }


def announce(context: Mapping[str, Any], outlets: Iterable[Any], extra: dict[str, Any]) -> list[str]:
    """Attach ``extra`` to the outlet event of every Asset among ``outlets``; the URIs announced."""
    from airflow.providers.common.compat.sdk import Asset

    assets = [outlet for outlet in outlets or () if isinstance(outlet, Asset)]
    if not assets:
        return []
    events = context.get("outlet_events")
    if events is None:
        # Only a hand-made context lacks it; Airflow always gives one (2.10+ and 3.x).
        raise RuntimeError("the task context has no outlet_events: cannot announce the deployment to its outlets")
    for asset in assets:
        events[asset].extra.update(extra)
    return [asset.uri for asset in assets]
