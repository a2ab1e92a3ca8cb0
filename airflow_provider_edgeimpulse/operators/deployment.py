"""Build a deployment (library or firmware) and stream it to a local file or to object storage."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.hooks import job_requests
from airflow_provider_edgeimpulse.operators._lineage import (
    DatasetName,
    LineageMixin,
    file_dataset,
    project_dataset,
    version_dataset,
)
from airflow_provider_edgeimpulse.operators.announce import announce, deployment_event_extra
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator, JobRequest
from airflow_provider_edgeimpulse.storage import is_object_path, make_object_directory, shown_location, storage_path
from airflow_provider_edgeimpulse.studio import MODEL_VARIANTS as MODEL_TYPES
from airflow_provider_edgeimpulse.wire import DEFAULT_DOWNLOAD_TIMEOUT_S

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


@dataclass(frozen=True)
class BuildSpec:
    format: str
    engine: str
    model_type: str | None
    impulse_id: int | None
    output_path: Any  # a Path, or an ObjectStoragePath
    into_directory: bool
    download_timeout: float


class EdgeImpulseBuildDeploymentOperator(LineageMixin, EdgeImpulseRunJobOperator):
    """
    Build a deployment (``jobs/build-ondevice-model``) and download it to ``output_path``.

    ``deployment_format``, ``engine`` and ``model_type`` are checked against the project's deployment targets
    (``GET deployment/targets``) before the build starts. The download is streamed to disk (memory stays
    flat whatever the size), checked (a zip must open; a sign-in page or an error answer is refused) and lands
    atomically. The task resumes on a worker after the job to download
    (``completes_in_trigger`` is off). With Airflow's OpenLineage provider installed it reports the project
    (``edgeimpulse://<studio host>``, ``project/<id>``) as input and the artefact (its file or object) as output.

    :param deployment_format: a ``format`` of ``deployment/targets``, e.g. ``zip`` (C++ library), ``arduino``,
        ``wasm``. Templated.
    :param output_path: where to write the artefact: a file path (replaced if it exists), or a directory
        (existing, or ending in ``/``) to keep the file name Studio gives it; that name never replaces another
        file (an identical one is kept, otherwise ``<name>-1.zip``, ``-2``... is used). Missing parent
        directories are created. Object storage too: a URL such as ``s3://bucket/firmware/`` (``s3://conn_id@...``
        picks the Airflow connection of the store) or an ``ObjectStoragePath``; the artefact is streamed to a
        temporary key beside the target in 5 MiB parts, checked, then moved, and ``path`` in the result is the
        final URL. Templated.
    :param engine: the inference engine, e.g. ``tflite-eon``; the target's preferred engine when omitted.
        Templated.
    :param model_type: ``int8``, ``float32`` or ``akida``; Studio's default for the target when omitted.
        Templated.
    :param impulse_id: the impulse to build; the project's default impulse when omitted. Templated.
    :param download_timeout: seconds the whole download may take once the build is done (default an hour),
        however the server paces it. Templated.
    :param project_version: the number of the project version this build was made from, when the pipeline made
        one (e.g. ``"{{ ti.xcom_pull(task_ids='version')['version'] }}"``); it goes into the result and the
        announcement. Templated.

    Announcing: every Asset among the task's ``outlets`` (e.g. :func:`~.announce.deployment_asset`) gets an
    event whose extra holds ``project_id``, ``project_version``, ``deployment_version``, ``format``, ``engine``,
    ``model_type``, ``sha256``, ``size``, ``filename``, ``path`` and ``job_id``, blocking or deferred.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: ``{"path", "size", "sha256", "filename", "format", "engine", "model_type", "deploymentVersion",
        "job_id", "project_id", "project_version"}`` (``deploymentVersion`` is ``None`` when Studio does not
        report it).
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "deployment_format",
        "output_path",
        "engine",
        "model_type",
        "impulse_id",
        "download_timeout",
        "project_version",
    )

    def __init__(
        self,
        *,
        deployment_format: str,
        output_path: str | os.PathLike[str],
        engine: str | None = None,
        model_type: str | None = None,
        impulse_id: int | str | None = None,
        download_timeout: float | str = DEFAULT_DOWNLOAD_TIMEOUT_S,
        project_version: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_format = deployment_format
        self.output_path = output_path
        self.engine = engine
        self.model_type = model_type
        self.impulse_id = impulse_id
        self.download_timeout = download_timeout
        self.project_version = project_version
        if not isinstance(download_timeout, str):  # a template is checked once rendered
            _params.positive_seconds("download_timeout", download_timeout, text=True)
        if not isinstance(project_version, str):
            _params.optional_int("project_version", project_version, minimum=1)

    def build_spec(self, hook: EdgeImpulseHook) -> BuildSpec:
        """The checked build: arguments first (no request), then the project's deployment targets."""
        fmt = _params.required_str("deployment_format", self.deployment_format)
        engine = _params.optional_str("engine", self.engine)
        model_type = _params.optional_str("model_type", self.model_type, choices=MODEL_TYPES)
        impulse_id = _params.optional_int("impulse_id", self.impulse_id, minimum=1)
        download_timeout = _params.positive_seconds("download_timeout", self.download_timeout, text=True)
        if is_object_path(self.output_path):
            path = storage_path("output_path", self.output_path)
            into_directory = path.is_dir()
        else:
            raw_path = os.fspath(self.output_path) if isinstance(self.output_path, os.PathLike) else self.output_path
            output = _params.required_str("output_path", raw_path)
            path = storage_path("output_path", output)
            into_directory = output.endswith(("/", os.sep)) or path.is_dir()

        targets = [t for t in hook.get_deployment_targets() if isinstance(t, dict)]
        target = next((t for t in targets if t.get("format") == fmt), None)
        if target is None:
            allowed = ", ".join(sorted(str(t.get("format")) for t in targets)) or "none"
            raise ValueError(
                f"deployment_format {fmt!r} is not a deployment target of this project; allowed: {allowed}"
            )
        supported = [str(e) for e in target.get("supportedEngines") or []]
        if engine is None:
            engine = target.get("preferredEngine") or (supported[0] if supported else None)
            if not engine:
                raise ValueError(f"deployment_format {fmt!r} names no preferred engine; set engine")
        elif supported and engine not in supported:
            raise ValueError(f"engine {engine!r} is not supported for deployment_format {fmt!r}; allowed: {supported}")
        variants = target.get("modelVariants")
        if model_type is not None and isinstance(variants, list):
            allowed_types = [v.get("variant") for v in variants if isinstance(v, dict) and v.get("supported")]
            if allowed_types and model_type not in allowed_types:
                raise ValueError(
                    f"model_type {model_type!r} is not supported for deployment_format {fmt!r}; "
                    f"allowed: {allowed_types}"
                )
        return BuildSpec(fmt, str(engine), model_type, impulse_id, path, into_directory, download_timeout)

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        _params.optional_int("project_version", self.project_version, minimum=1)
        spec = self.build_spec(hook)
        # Make the destination now: a path that cannot be written should fail before a build is paid for. (An
        # object store has no directories to make: its store was resolved by build_spec.)
        directory = spec.output_path if spec.into_directory else spec.output_path.parent
        if is_object_path(directory):
            make_object_directory(directory)
            self.log.info("Building deployment %s for %s", spec.format, shown_location(spec.output_path))
            return job_requests.build_deployment(spec.format, spec.engine, spec.model_type, spec.impulse_id)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(
                f"output_path {str(spec.output_path)!r}: cannot create {str(directory)!r}: {err}"
            ) from None
        if not os.access(directory, os.W_OK):
            raise ValueError(f"output_path {str(spec.output_path)!r}: directory {str(directory)!r} is not writable")
        self.log.info("Building deployment %s (engine %s, model type %s)", spec.format, spec.engine, spec.model_type)
        return job_requests.build_deployment(spec.format, spec.engine, spec.model_type, spec.impulse_id)

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        # A fresh operator after a deferral: check the (rendered) arguments again rather than trusting state.
        spec = self.build_spec(hook)
        project_version = _params.optional_int("project_version", self.project_version, minimum=1)
        version = _deployment_version(outcome.get("job"))
        destination = spec.output_path
        if is_object_path(destination):
            make_object_directory(destination if spec.into_directory else destination.parent)
        elif spec.into_directory:
            destination.mkdir(parents=True, exist_ok=True)
        download = hook.download_deployment(
            destination,
            format=spec.format,
            engine=spec.engine,
            model_type=spec.model_type,
            deployment_version=version,
            impulse_id=spec.impulse_id,
            download_timeout=spec.download_timeout,
            into_directory=spec.into_directory,
        )
        result = {
            "path": download["path"],
            "size": download["size"],
            "sha256": download["sha256"],
            "filename": download.get("filename"),
            "format": spec.format,
            "engine": spec.engine,
            "model_type": spec.model_type,
            "deploymentVersion": version,
            "job_id": outcome.get("job_id"),
            "project_id": outcome.get("project_id"),
            "project_version": project_version,
        }
        announced = announce(context, self.outlets, deployment_event_extra(result, project_version))
        if announced:
            self.log.info("Announced deployment %s (sha256 %s) to %s", version, result["sha256"], ", ".join(announced))
        self.lineage_result = result
        return result

    def lineage_datasets(self, result: dict[str, Any]) -> tuple[list[DatasetName], list[DatasetName]]:
        # Built from the version the pipeline made, when it says so: lineage then reads version -> artefact.
        project_id, number, path = result.get("project_id"), result.get("project_version"), result.get("path")
        inputs = []
        if isinstance(project_id, int):
            studio = self.hook.studio_url
            source = version_dataset(studio, project_id, number) if isinstance(number, int) else None
            inputs = [source or project_dataset(studio, project_id)]
        return inputs, ([file_dataset(path)] if path else [])


def _deployment_version(job: Any) -> int | None:
    """
    The version the build job made, from the job's ``metadata`` (newer Studio API).

    The start call also answers it, but the base operator's start path keeps only the job id (so that a
    retry can re-attach to the job); without a version the download asks for the latest build of the
    format, engine and model type, which is the same artefact unless another build raced this one.
    """
    metadata = job.get("metadata") if isinstance(job, dict) else None
    version = metadata.get("deploymentVersion") if isinstance(metadata, dict) else None
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, str) and version.isdigit():
        return int(version)
    return None
