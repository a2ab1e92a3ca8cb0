"""Version the project (a snapshot of its data and configuration), and optionally keep only the last N versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.hooks import job_requests
from airflow_provider_edgeimpulse.hooks.credentials import AuthType
from airflow_provider_edgeimpulse.links import STUDIO_URL_XCOM_KEY
from airflow_provider_edgeimpulse.operators._lineage import (
    DatasetName,
    LineageMixin,
    project_dataset,
    version_dataset,
)
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator, JobRequest
from airflow_provider_edgeimpulse.studio import studio_versions_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

# Read before the job starts; the version the job made is the first one numbered from here with our description.
NEXT_VERSION_XCOM_KEY = "next_version"


class EdgeImpulseVersionNotFound(AirflowException):
    """The version job succeeded, but the version it made is not in the project's list."""


def _created(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def identify_version(
    versions: list[dict[str, Any]], description: str, next_version: int | None, job_created: Any = None
) -> dict[str, Any] | None:
    """
    The version a job made: the lowest numbered one with ``description`` from ``next_version`` on.

    Without a usable ``next_version`` (a retried task that re-attached to a finished job reads a later one), the
    first version with that description created since the job was: the description tells it from versions that
    others made meanwhile.
    """
    ours = [v for v in versions if v.get("description") == description and isinstance(v.get("version"), int)]
    numbered = [v for v in ours if next_version is not None and v["version"] >= next_version]
    if not numbered:
        since = _created(job_created)
        numbered = [
            v for v in ours if since is not None and (made := _created(v.get("created"))) is not None and made >= since
        ]
    return min(numbered, key=lambda v: v["version"], default=None)


def _figure(version: dict[str, Any], key: str) -> float | None:
    value = version.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class EdgeImpulseCreateVersionOperator(LineageMixin, EdgeImpulseRunJobOperator):
    """
    Version the project (``jobs/version``): Studio stores its data and configuration as a numbered version, the
    rollback point and audit record of a retrain (``jobs/restore`` only restores into an empty project).

    Before the job starts the operator reads the number the version will get (``nextVersion`` of
    ``GET versions``); after it, it finds the version the job made in the list, returns its figures, and with
    ``keep_last`` deletes older versions. The task resumes on a worker after the job (``completes_in_trigger``
    is off). With Airflow's OpenLineage provider installed it reports the project as input and the version as
    output (``edgeimpulse://<studio host>``, ``project/<id>`` -> ``project/<id>/version/<number>``).

    :param description: the version's description. Templated.
    :param make_public: publish the version on a public URL (anyone can see and clone it). Default off. Templated.
    :param run_model_testing_while_versioning: run model testing as part of the job, so the version carries a
        test-set accuracy; Studio's last choice for the project when omitted. Templated.
    :param bucket_id: store the version in your own (enterprise) storage bucket instead of Edge Impulse's; Studio
        accepts this only from a JWT connection (``auth_type`` ``jwt`` or ``jwt_cookie``). Templated.
    :param keep_last: after the version is made, keep only the newest ``keep_last`` versions (at least 1): older
        ones are deleted, except public versions and the one just made, which are never deleted. Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: ``{"version_id", "version", "description", "created", "training_accuracy", "test_accuracy",
        "public", "public_project_url", "studio_url", "deleted_versions", "job_id", "project_id"}``. Accuracies
        are as Studio reports them for the version (``None`` when it has none, e.g. no model testing ran);
        ``deleted_versions`` lists the numbers ``keep_last`` removed.
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "description",
        "make_public",
        "run_model_testing_while_versioning",
        "bucket_id",
        "keep_last",
    )

    def __init__(
        self,
        *,
        description: str,
        make_public: bool | str = False,
        run_model_testing_while_versioning: bool | str | None = None,
        bucket_id: int | str | None = None,
        keep_last: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.description = description
        self.make_public = make_public
        self.run_model_testing_while_versioning = run_model_testing_while_versioning
        self.bucket_id = bucket_id
        self.keep_last = keep_last
        # What templates cannot change fails at parse time.
        if not isinstance(keep_last, str):
            self._keep_last()
        if not isinstance(make_public, str):
            _params.required_bool("make_public", make_public)

    def _keep_last(self) -> int | None:
        return _params.optional_int("keep_last", self.keep_last, minimum=1)

    def _description(self) -> str:
        if not isinstance(self.description, str):
            raise ValueError(f"description must be a string, got {_params.shown(self.description)}")
        return self.description

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        description = self._description()
        make_public = _params.required_bool("make_public", self.make_public)
        run_testing = _params.optional_bool(
            "run_model_testing_while_versioning", self.run_model_testing_while_versioning
        )
        bucket_id = _params.optional_int("bucket_id", self.bucket_id, minimum=1)
        self._keep_last()
        if bucket_id is not None and hook.credentials.auth_type is AuthType.API_KEY:
            raise ValueError(
                f"bucket_id: Edge Impulse stores a version in your own bucket only for a JWT connection; connection "
                f"{self.edgeimpulse_conn_id!r} uses an API key (set its auth_type to jwt or jwt_cookie)"
            )
        next_version = hook.list_versions()["next_version"]
        context["ti"].xcom_push(key=NEXT_VERSION_XCOM_KEY, value=next_version)
        self.log.info("Versioning the project as version %s: %r", next_version, description)
        return job_requests.create_version(description, make_public, run_testing, bucket_id)

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        # A fresh operator after a deferral: the (rendered) arguments are read again, the number from XCom.
        description = self._description()
        keep_last = self._keep_last()
        next_version = context["ti"].xcom_pull(task_ids=self.task_id, key=NEXT_VERSION_XCOM_KEY)
        next_version = next_version if isinstance(next_version, int) and not isinstance(next_version, bool) else None
        job = outcome.get("job")
        started = job.get("created") if isinstance(job, dict) else None
        versions = hook.list_versions()["versions"]
        made = identify_version(versions, description, next_version, started)
        if made is None:
            raise EdgeImpulseVersionNotFound(
                f"Edge Impulse job {outcome.get('job_id')} succeeded, but no version described {description!r} "
                f"numbered {next_version} or later is in project {hook.project_id}"
            )
        url = studio_versions_url(hook.studio_url, hook.project_id)
        context["ti"].xcom_push(key=STUDIO_URL_XCOM_KEY, value=url)
        deleted = self._retain(hook, versions, made, keep_last) if keep_last is not None else []
        result = {
            "version_id": made.get("id"),
            "version": made["version"],
            "description": made.get("description"),
            "created": made.get("created"),
            "training_accuracy": _figure(made, "trainingAccuracy"),
            "test_accuracy": _figure(made, "testAccuracy"),
            "public": made.get("publicProjectId") is not None,
            "public_project_url": made.get("publicProjectUrl"),
            "studio_url": url,
            "deleted_versions": deleted,
            "job_id": outcome.get("job_id"),
            "project_id": outcome.get("project_id"),
        }
        self.log.info(
            "Made version %s (id %s): training accuracy %s, test accuracy %s; %s",
            result["version"],
            result["version_id"],
            result["training_accuracy"],
            result["test_accuracy"],
            url,
        )
        self.lineage_result = result
        return result

    def lineage_datasets(self, result: dict[str, Any]) -> tuple[list[DatasetName], list[DatasetName]]:
        project_id, number = result.get("project_id"), result.get("version")
        if not isinstance(project_id, int) or not isinstance(number, int):
            return [], []
        studio = self.hook.studio_url
        return [project_dataset(studio, project_id)], [version_dataset(studio, project_id, number)]

    def _retain(
        self, hook: EdgeImpulseHook, versions: list[dict[str, Any]], made: dict[str, Any], keep_last: int
    ) -> list[int]:
        """Delete versions older than the newest ``keep_last``; never a public one, never the one just made."""
        from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError

        numbered = sorted((v for v in versions if isinstance(v.get("version"), int)), key=lambda v: -v["version"])
        deleted: list[int] = []
        for version in numbered[keep_last:]:
            if version.get("id") == made.get("id") or version.get("publicProjectId") is not None:
                continue
            try:
                hook.delete_version(int(version["id"]))
            except EdgeImpulseAPIError as err:
                if err.status != 404:  # gone already (deleted by someone else, or a retried delete): fine
                    raise
            deleted.append(version["version"])
        kept = [v["version"] for v in numbered if v["version"] not in deleted]
        self.log.info("keep_last=%d: deleted versions %s, kept %s", keep_last, deleted or "none", kept)
        return deleted
