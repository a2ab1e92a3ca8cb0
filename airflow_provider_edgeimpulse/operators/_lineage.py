"""
OpenLineage for the upload, build and version operators: samples -> project -> version -> deployment artefact.

Airflow's OpenLineage provider calls ``get_openlineage_facets_on_complete`` when it is installed; nothing here
imports it (or the OpenLineage client) before that call, so without the provider nothing changes and nothing
is imported. Datasets are named so a lineage tool can join the operators' runs:

- an Edge Impulse project: namespace ``edgeimpulse://<studio host>``, name ``project/<id>``;
- one of its versions: the same namespace, name ``project/<id>/version/<number>``;
- a file: namespace ``file`` and its absolute path, or for object storage ``<scheme>://<bucket>`` and its key.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_edgeimpulse.storage import shown_location
from airflow_provider_edgeimpulse.studio import studio_host

if TYPE_CHECKING:
    from collections.abc import Iterable

# One dataset per directory of uploaded files: a run of thousands of files names a few datasets, not thousands.
MAX_INPUT_DATASETS = 100

DatasetName = tuple[str, str]  # (namespace, name)


def studio_namespace(studio_url: str) -> str:
    """``edgeimpulse://<host[:port]>`` of a Studio URL (never its user info)."""
    return f"edgeimpulse://{studio_host(studio_url)}"


def project_dataset(studio_url: str, project_id: int) -> DatasetName:
    return studio_namespace(studio_url), f"project/{int(project_id)}"


def version_dataset(studio_url: str, project_id: int, version: int) -> DatasetName:
    return studio_namespace(studio_url), f"project/{int(project_id)}/version/{int(version)}"


def file_dataset(location: Any) -> DatasetName:
    """A local path or an object-storage URL (``s3://conn_id@bucket/key`` names the bucket, not the connection)."""
    text = shown_location(location)
    parts = urlsplit(text)
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1 and parts.netloc:
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}", parts.path.lstrip("/")
    path = parts.path if parts.scheme == "file" else text
    return "file", os.path.abspath(path)


def directories_of(locations: Iterable[Any]) -> list[DatasetName]:
    """The distinct directories (as datasets) the files came from, in first-seen order, at most a hundred."""
    seen: dict[DatasetName, None] = {}
    for location in locations:
        namespace, name = file_dataset(location)
        seen.setdefault((namespace, name.rsplit("/", 1)[0] if "/" in name else name), None)
        if len(seen) >= MAX_INPUT_DATASETS:
            break
    return list(seen)


def operator_lineage(inputs: list[DatasetName], outputs: list[DatasetName]) -> Any:
    """The provider's ``OperatorLineage`` (imported here, only when the OpenLineage provider asks for it)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in outputs],
    )


class LineageMixin:
    """
    ``get_openlineage_facets_on_complete`` from the task's result: the one the operator kept when it returned it,
    else the ``return_value`` XCom of the task instance.
    """

    lineage_result: dict[str, Any] | None = None

    def lineage_datasets(self, result: dict[str, Any]) -> tuple[list[DatasetName], list[DatasetName]]:
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        result = self.lineage_result
        if result is None:
            result = task_instance.xcom_pull(task_ids=task_instance.task_id)
        inputs, outputs = self.lineage_datasets(result) if isinstance(result, dict) else ([], [])
        return operator_lineage(inputs, outputs)
