"""
``EdgeImpulseHook``: every Edge Impulse Studio REST endpoint the provider uses, as one typed method each.

The hook is lazy: building one reads no connection and opens no socket, so operators can create it in
``__init__`` and DAG files stay cheap to parse. Credentials are read on first use, their secrets registered
with Airflow's masker, and all requests go through one ``requests.Session`` (``hooks/_session.py``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, TypedDict
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError, EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.hooks import job_requests
from airflow_provider_edgeimpulse.hooks._multipart import MultipartFiles
from airflow_provider_edgeimpulse.hooks._session import EdgeImpulseSession, iter_batches
from airflow_provider_edgeimpulse.hooks.credentials import (
    AuthType,
    EdgeImpulseCredentials,
    credentials_from_connection,
    parse_project_id,
)
from airflow_provider_edgeimpulse.hooks.download import ArtefactDownload, DownloadResult
from airflow_provider_edgeimpulse.hooks.job_log import stdout_lines
from airflow_provider_edgeimpulse.hooks.masking import mask_secrets
from airflow_provider_edgeimpulse.hooks.policy import DEFAULT_RETRY_POLICY, RetryPolicy
from airflow_provider_edgeimpulse.storage import file_size, is_object_path, shown_location, storage_path
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID, UPLOAD_CATEGORIES
from airflow_provider_edgeimpulse.validation import label_text, positive_seconds
from airflow_provider_edgeimpulse.validation import shown as shown_value
from airflow_provider_edgeimpulse.wire import DEFAULT_DOWNLOAD_TIMEOUT_S

UPLOAD_BATCH_SIZE = 1000  # files per ingestion request (the service's limit)
UPLOAD_MAX_FILE_BYTES = 100 * 1024 * 1024  # per file (the service's limit)
# test_connection answers a person waiting in the UI: two quick tries, not the task-time budget.
_TEST_CONNECTION_POLICY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_total_sleep=2.0)
_JOB_PATH = re.compile(r"^jobs/[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$")
_COUNT_PAGE = 1000  # samples per GET raw-data page when a count has to be made from the listing


class BuildStarted(TypedDict):
    job_id: int
    deployment_version: int | None


class BatchEditResult(TypedDict):
    job_id: int | None  # set when Edge Impulse relabels in a job: wait for it
    done: bool  # true when the labels were changed at once


class ProjectVersions(TypedDict):
    next_version: int | None  # the number the next version job will give its version
    versions: list[dict[str, Any]]  # ``{id, version, description, created, testAccuracy?...}``, as Studio lists
    run_model_testing_while_versioning: bool


class UploadedFile(TypedDict):
    path: str
    success: bool
    sample_id: int | None
    error: str | None


class UploadResult(TypedDict):
    files: list[UploadedFile]
    succeeded: int
    failed: int
    requests: int


class EdgeImpulseHook(BaseHook):
    """
    Talk to Edge Impulse Studio (or the local emulator) as the principal of one Airflow connection.

    :param edgeimpulse_conn_id: the Airflow connection (type ``edgeimpulse``).
    :param project_id: the project to work on; overrides the connection's ``project_id`` extra. Without
        either, an API-key connection finds the key's project with one call; a JWT connection must name one.
    :param retry_policy: how transient failures (connection errors, timeouts, 429, 5xx) are retried.
    :param timeout: seconds to wait for the server on each request; overrides the connection's ``timeout``.
    """

    conn_name_attr = "edgeimpulse_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "edgeimpulse"
    hook_name = "Edge Impulse"

    def __init__(
        self,
        edgeimpulse_conn_id: str = default_conn_name,
        project_id: int | str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        # Validating the arguments needs no I/O, and failing here points at the DAG line that is wrong.
        self._project_id_arg = parse_project_id(project_id)
        self.retry_policy = retry_policy or DEFAULT_RETRY_POLICY
        self.timeout = _parse_timeout_arg(timeout)
        self._project_id: int | None = None

    def __repr__(self) -> str:
        return f"EdgeImpulseHook(edgeimpulse_conn_id={self.edgeimpulse_conn_id!r}, project_id={self._project_id_arg!r})"

    # -- connection ----------------------------------------------------------------------------------------

    @cached_property
    def credentials(self) -> EdgeImpulseCredentials:
        """The connection, parsed and validated on first use; its secrets are masked from then on."""
        conn = self.get_connection(self.edgeimpulse_conn_id)
        credentials = credentials_from_connection(conn)
        mask_secrets(credentials.secrets())
        return credentials

    @cached_property
    def session(self) -> EdgeImpulseSession:
        return EdgeImpulseSession(
            self.credentials,
            retry_policy=self.retry_policy,
            timeout=self.timeout or self.credentials.timeout,
            log=self.log,
        )

    @property
    def studio_url(self) -> str:
        """The Studio base URL of the connection, e.g. ``https://studio.edgeimpulse.com`` (for links)."""
        return self.credentials.studio_url

    def get_conn(self) -> EdgeImpulseSession:
        """The hook's authenticated session (Airflow's generic hook entry point)."""
        return self.session

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()

    @property
    def project_id(self) -> int:
        """The project this hook works on: hook argument, else connection extra, else the API key's project."""
        if self._project_id is None:
            self._project_id = self._project_id_arg or self.credentials.project_id or self._discover_project_id()
        return self._project_id

    def _discover_project_id(self) -> int:
        if self.credentials.auth_type is not AuthType.API_KEY:
            raise EdgeImpulseConnectionError(
                f"Connection {self.edgeimpulse_conn_id!r} logs in with a username and password, which can see "
                "many projects: set project_id (in the connection's extras or on the task)"
            )
        projects = self.list_projects()
        if len(projects) != 1 or "id" not in projects[0]:
            raise EdgeImpulseConnectionError(
                f"Connection {self.edgeimpulse_conn_id!r}: could not tell the project from the API key "
                f"(it lists {len(projects)} projects); set project_id"
            )
        project_id = parse_project_id(projects[0]["id"])
        assert project_id is not None
        self.log.info("Edge Impulse API key belongs to project %d", project_id)
        return project_id

    # -- request helpers -----------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """One JSON call; ``path`` starts with ``/api/`` and is relative to the Studio's ``/v1``."""
        response = self.session.request(
            method,
            f"{self.credentials.api_base}{path}",
            display_path=path,
            params=params,
            json_body=body,
            idempotent=idempotent,
        )
        return self.session.decode(response, method, path)

    def _project_path(self, relative: str) -> str:
        return f"/api/{self.project_id}/{relative}"

    def _get(self, relative: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("GET", self._project_path(relative), params=params)

    def _post(
        self, relative: str, *, params: dict[str, Any] | None = None, body: Any = None, idempotent: bool = False
    ) -> dict[str, Any]:
        return self._call("POST", self._project_path(relative), params=params, body=body, idempotent=idempotent)

    # -- projects ------------------------------------------------------------------------------------------

    def list_projects(self) -> list[dict[str, Any]]:
        """Projects the principal can see: exactly one for an API key, all of the user's for a JWT."""
        return list(self._call("GET", "/api/projects").get("projects") or [])

    def get_project_info(self) -> dict[str, Any]:
        """Project info: ``project``, ``impulse``, ``dataSummary``, ``computeTime``, ``performance``..."""
        return self._call("GET", f"/api/{self.project_id}")

    def get_socket_token(self) -> dict[str, Any]:
        """A fresh Socket.IO token ``{socketToken, expires}`` (masked: it opens the project's event stream)."""
        token = self._get("socket-token").get("token")
        if not isinstance(token, dict) or not isinstance(token.get("socketToken"), str):
            raise EdgeImpulseAPIError(
                "Edge Impulse GET socket-token answered without a socketToken",
                method="GET",
                path=self._project_path("socket-token"),
            )
        mask_secrets([token["socketToken"]])
        return token

    # -- jobs ----------------------------------------------------------------------------------------------

    def _start(self, path: str, query: dict[str, Any] | None, body: Any) -> dict[str, Any]:
        if not isinstance(path, str) or not _JOB_PATH.match(path) or ".." in path.split("/"):
            raise ValueError(
                f"job path must look like 'jobs/<name>[/<id>]' (relative to /api/{{projectId}}/), got {path!r}"
            )
        # Starting a job is not safe to repeat: a blind retry could start (and bill) a second job.
        data = self._post(path, params=query, body=body, idempotent=False)
        job_id = data.get("id")
        if isinstance(job_id, bool) or not isinstance(job_id, int | str) or not str(job_id).isdigit():
            raise EdgeImpulseAPIError(
                f"Edge Impulse POST {self._project_path(path)} answered without a job id",
                method="POST",
                path=self._project_path(path),
            )
        data["id"] = int(job_id)
        self.log.info("Started Edge Impulse job %d (%s) in project %d", data["id"], path, self.project_id)
        return data

    def start_job(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> int:
        """Start any job: ``POST /api/{projectId}/{path}`` where ``path`` starts with ``jobs/``; returns its id."""
        return int(self._start(path, query, body)["id"])

    def start_retrain(self, impulse_id: int | None = None) -> int:
        """Retrain the whole impulse (features + every learn block) with its last settings."""
        return self.start_job(*job_requests.retrain(impulse_id))

    def start_train_keras(self, learn_id: int, params: dict[str, Any] | None = None) -> int:
        """Train a Keras learn block; ``params`` (``trainingCycles``, ``learningRate``...) are all optional."""
        return self.start_job(*job_requests.train("keras", learn_id, params))

    def start_train_anomaly(self, learn_id: int, params: dict[str, Any] | None = None) -> int:
        """Train an anomaly block; ``params`` is ``{axes, minimumConfidenceRating, clusterCount?}``."""
        return self.start_job(*job_requests.train("anomaly", learn_id, params))

    def start_generate_features(
        self,
        dsp_id: int,
        calculate_feature_importance: bool | None = None,
        skip_feature_explorer: bool | None = None,
    ) -> int:
        return self.start_job(
            *job_requests.generate_features(dsp_id, calculate_feature_importance, skip_feature_explorer)
        )

    def start_classify(
        self,
        impulse_id: int | None = None,
        category: str | None = None,
        model_variants: Sequence[str] | None = None,
    ) -> int:
        """Model testing: classify the test set (``model_variants`` e.g. ``["int8", "float32"]``)."""
        return self.start_job(*job_requests.classify(impulse_id, category, model_variants))

    def start_evaluate(self, impulse_id: int | None = None) -> int:
        """Evaluate every model variant (the numbers behind ``get_deployment_evaluation``)."""
        return self.start_job(*job_requests.evaluate(impulse_id))

    def start_build_deployment(
        self, format: str, engine: str, model_type: str | None = None, impulse_id: int | None = None
    ) -> BuildStarted:
        """Build a deployment (``format`` from ``get_deployment_targets``); the version names the artefact."""
        data = self._start(*job_requests.build_deployment(format, engine, model_type, impulse_id))
        version = data.get("deploymentVersion")
        return {
            "job_id": int(data["id"]),
            "deployment_version": int(version) if isinstance(version, int | str) and str(version).isdigit() else None,
        }

    def start_optimize(self, extended_from_job_id: int | None = None) -> int:
        """Start the EON Tuner (configure it first); the id is the tuner coordinator job id."""
        return self.start_job(*job_requests.optimize(extended_from_job_id))

    def start_set_tuner_primary(self, trial_id: str, name: str | None = None) -> int:
        """Make an EON Tuner trial the project's impulse."""
        return self.start_job(*job_requests.set_tuner_primary(trial_id, name))

    def start_version(
        self,
        description: str,
        make_public: bool = False,
        run_model_testing_while_versioning: bool | None = None,
        bucket_id: int | None = None,
    ) -> int:
        """Version the project (data and configuration); ``bucket_id`` (own storage) needs a JWT connection."""
        return self.start_job(
            *job_requests.create_version(description, make_public, run_model_testing_while_versioning, bucket_id)
        )

    def get_job_status(self, job_id: int) -> dict[str, Any]:
        """The job object: ``id, category, created, started?, finished?, finishedSuccessful?...``."""
        path = f"jobs/{int(job_id)}/status"
        job = self._get(path).get("job")
        if not isinstance(job, dict):
            raise EdgeImpulseAPIError(
                f"Edge Impulse job {job_id} status answer has no job object",
                method="GET",
                path=self._project_path(path),
            )
        return job

    def get_job_stdout(self, job_id: int, limit: int | None = None) -> dict[str, Any]:
        """``{stdout: [{created, data, logLevel?}], totalCount}`` (Edge Impulse keeps the last 1000 lines)."""
        return self._get(f"jobs/{int(job_id)}/stdout", {"limit": limit})

    def get_job_stdout_lines(self, job_id: int, limit: int = 50) -> list[str]:
        """The last ``limit`` log lines of a job as text, oldest first."""
        return stdout_lines(self.get_job_stdout(job_id, limit=limit))

    def cancel_job(self, job_id: int, force: bool = True) -> dict[str, Any]:
        """Cancel a running job; ``force`` marks it finished without waiting for the job cluster."""
        params = {"forceCancel": "true"} if force else None
        self.log.info("Cancelling Edge Impulse job %d in project %d", int(job_id), self.project_id)
        return self._post(f"jobs/{int(job_id)}/cancel", params=params, idempotent=True)

    def list_active_jobs(self, root_only: bool = True) -> list[dict[str, Any]]:
        return list(self._get("jobs", {"rootOnly": root_only}).get("jobs") or [])

    def list_job_history(
        self,
        limit: int | None = None,
        offset: int | None = None,
        root_only: bool | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> dict[str, Any]:
        """Finished jobs, newest first: ``{jobs, totalJobCount}``."""
        params = {"limit": limit, "offset": offset, "rootOnly": root_only, "startDate": start_date, "endDate": end_date}
        return self._get("jobs/history", params)

    # -- impulse -------------------------------------------------------------------------------------------

    def get_impulse(self) -> dict[str, Any] | None:
        """The impulse ``{inputBlocks, dspBlocks, learnBlocks...}``, or ``None`` when the project has none."""
        impulse = self._get("impulse").get("impulse")
        return impulse if isinstance(impulse, dict) else None

    def create_impulse(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace) the impulse from ``{name?, inputBlocks, dspBlocks, learnBlocks}``."""
        # Creating the same definition twice leaves the same impulse: safe to retry.
        return self._post("impulse", body=definition, idempotent=True)

    # -- samples -------------------------------------------------------------------------------------------

    def list_samples(
        self,
        category: str,
        limit: int | None = None,
        offset: int | None = None,
        labels: Sequence[str] | None = None,
        filename: str | None = None,
        search: str | None = None,
        exclude_sensors: bool | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """``{samples, totalCount}``; further filters by their API names (``minLength=...``)."""
        params = {
            "category": category,
            "limit": limit,
            "offset": offset,
            "labels": labels,
            "filename": filename,
            "search": search,
            "excludeSensors": exclude_sensors,
            **filters,
        }
        return self._get("raw-data", params)

    def count_samples(
        self,
        category: str,
        labels: Sequence[str] | None = None,
        filename: str | None = None,
        search: str | None = None,
        ids: Sequence[int] | None = None,
        exclude_ids: Sequence[int] | None = None,
        **filters: Any,
    ) -> int:
        """
        How many samples of ``category`` match the filters.

        ``GET raw-data/count`` takes no ``ids``/``excludeIds``; with those the count is made from the listing.
        """
        params = {"category": category, "labels": labels, "filename": filename, "search": search, **filters}
        if ids is not None or exclude_ids is not None:
            return self._count_listed(params, ids, exclude_ids)
        count = self._get("raw-data/count", params).get("count")
        if isinstance(count, bool) or not isinstance(count, int):
            raise EdgeImpulseAPIError(
                "Edge Impulse GET raw-data/count answered without a count",
                method="GET",
                path=self._project_path("raw-data/count"),
            )
        return count

    def _count_listed(
        self, params: dict[str, Any], ids: Sequence[int] | None, exclude_ids: Sequence[int] | None
    ) -> int:
        wanted = None if ids is None else set(ids)
        skipped = set(exclude_ids or ())
        seen: set[int] = set()
        offset = 0
        while True:
            page = self._get("raw-data", {**params, "limit": _COUNT_PAGE, "offset": offset}).get("samples")
            if not isinstance(page, list):
                raise EdgeImpulseAPIError(
                    "Edge Impulse GET raw-data answered without samples",
                    method="GET",
                    path=self._project_path("raw-data"),
                )
            page_ids = {s["id"] for s in page if isinstance(s, dict) and isinstance(s.get("id"), int)}
            if not page_ids or page_ids <= seen:  # the end, or a server that ignores offset
                break
            seen |= page_ids
            offset += len(page)
            if len(page) < _COUNT_PAGE:
                break
        return len({i for i in seen if (wanted is None or i in wanted) and i not in skipped})

    def batch_edit_labels(
        self,
        label: str,
        category: str,
        labels: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        exclude_ids: Sequence[int] | None = None,
        filename: str | None = None,
        search: str | None = None,
        allow_all: bool = False,
    ) -> BatchEditResult:
        """
        Set the label of every sample of ``category`` that matches the filters.

        Without any filter this would relabel the whole category; that needs ``allow_all=True``.
        Edge Impulse either relabels at once (``done``) or starts a job (``job_id``: wait for it).
        """
        label = label_text("label", label)
        if not allow_all and labels is None and ids is None and filename is None and search is None:
            raise ValueError(
                "batch_edit_labels without labels, ids, filename or search relabels every sample of "
                f"{category!r}; pass allow_all=True if that is meant"
            )
        params = {
            "category": category,
            "labels": labels,
            "ids": ids,
            "excludeIds": exclude_ids,
            "filename": filename,
            "search": search,
        }
        # Setting a label is idempotent: a repeat sets the same label on the same samples.
        data = self._post("raw-data/batch/edit-labels", params=params, body={"label": label}, idempotent=True)
        job_id = data.get("id")
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            return {"job_id": job_id, "done": False}
        return {"job_id": None, "done": True}

    # -- ingestion -----------------------------------------------------------------------------------------

    def upload_files(
        self,
        paths: Iterable[Any],
        category: str = "training",
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        disallow_duplicates: bool = False,
        add_date_id: bool = False,
        no_label: bool = False,
    ) -> UploadResult:
        """
        Upload files to the ingestion service, 1000 per request, streamed from disk or from object storage (a
        URL or an ``ObjectStoragePath`` among ``paths``, read in bounded parts).

        ``label`` applies to every file; without it Edge Impulse takes the label from the file name (the part
        before the first dot) unless ``no_label`` is set. Everything is checked before the first byte is sent
        (``ValueError`` lists every problem). A request that fails marks its files failed and stops the upload;
        the result lists each file with its sample id or error, in the order given.
        """
        files = [storage_path("paths", p) for p in paths]
        self._validate_upload(files, category, label, no_label)
        headers = self._ingestion_headers(label, metadata, disallow_duplicates, add_date_id, no_label)
        url = f"{self.credentials.ingestion_url}/api/{category}/files"
        display_path = f"/api/{category}/files"
        results: list[UploadedFile] = []
        sent_requests = 0
        stopped: str | None = None
        for batch in iter_batches(files, UPLOAD_BATCH_SIZE):
            if stopped is not None:
                results.extend(_failed(p, f"not sent: an earlier request failed ({stopped})") for p in batch)
                continue
            sent_requests += 1
            try:
                results.extend(self._upload_batch(url, display_path, batch, headers))
            except EdgeImpulseAPIError as err:
                stopped = str(err)
                results.extend(_failed(p, stopped) for p in batch)
        succeeded = sum(1 for r in results if r["success"])
        self.log.info(
            "Uploaded %d of %d files to Edge Impulse %s in %d requests", succeeded, len(files), category, sent_requests
        )
        return {"files": results, "succeeded": succeeded, "failed": len(results) - succeeded, "requests": sent_requests}

    @staticmethod
    def _validate_upload(files: list[Any], category: str, label: str | None, no_label: bool) -> None:
        problems: list[str] = []
        if category not in UPLOAD_CATEGORIES:
            problems.append(
                f"unknown category {shown_value(category)} (expected one of: {', '.join(UPLOAD_CATEGORIES)})"
            )
        if no_label and label is not None:
            problems.append("label and no_label=True contradict each other")
        if label is not None:
            try:
                label_text("label", label)
            except ValueError as err:
                problems.append(str(err))
        for path in files:
            where = shown_location(path)
            if not _is_utf8(str(path)):
                # Names travel as UTF-8 (the form's file name, logs, XCom): a raw byte name cannot be sent.
                problems.append(f"{where!r}: the file name is not valid UTF-8 (rename the file)")
            elif not path.is_file():
                problems.append(f"{where}: no such file")
            elif (size := file_size(path)) > UPLOAD_MAX_FILE_BYTES:
                problems.append(f"{where}: {size} bytes is over the 100 MiB limit of a file")
        if problems:
            shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
            raise ValueError("Edge Impulse upload not started: " + "; ".join(shown))

    def _ingestion_headers(
        self,
        label: str | None,
        metadata: dict[str, Any] | None,
        disallow_duplicates: bool,
        add_date_id: bool,
        no_label: bool,
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if label is not None:
            headers["x-label"] = quote(label, safe="")
        if no_label:
            headers["x-no-label"] = "1"
        if metadata:
            headers["x-metadata"] = json.dumps(metadata)  # ASCII-only (escaped), as HTTP headers must be
        if disallow_duplicates:
            headers["x-disallow-duplicates"] = "1"
        if add_date_id:
            headers["x-add-date-id"] = "1"
        return headers

    def _upload_batch(
        self, url: str, display_path: str, batch: list[Any], headers: dict[str, str]
    ) -> list[UploadedFile]:
        body = MultipartFiles(batch)
        # Not idempotent: a repeat after the service stored the files would store them twice.
        response = self.session.request(
            "POST",
            url,
            display_path=display_path,
            target="ingestion",
            data=body,
            headers={**headers, "Content-Type": body.content_type},
            idempotent=False,
        )
        data = self.session.decode(response, "POST", display_path)
        answers = data.get("files")
        if not isinstance(answers, list) or len(answers) != len(batch):
            count = len(answers) if isinstance(answers, list) else "no"
            raise EdgeImpulseAPIError(
                f"Edge Impulse POST {display_path} answered {count} file results for {len(batch)} files",
                method="POST",
                path=display_path,
            )
        results: list[UploadedFile] = []
        for path, answer in zip(batch, answers, strict=True):
            answer = answer if isinstance(answer, dict) else {}
            ok = answer.get("success") is True
            sample_id = answer.get("sampleId")
            results.append(
                {
                    "path": shown_location(path),
                    "success": ok,
                    "sample_id": sample_id if isinstance(sample_id, int) and not isinstance(sample_id, bool) else None,
                    # A service may echo the request (our key) into a file's error; the XCom shows it.
                    "error": None
                    if ok
                    else self.session.scrub(str(answer.get("error") or "the service reported no result")),
                }
            )
        return results

    # -- deployment ----------------------------------------------------------------------------------------

    def get_deployment_targets(self) -> list[dict[str, Any]]:
        """Deployment targets ``{format, supportedEngines, preferredEngine, ...}``."""
        return list(self._get("deployment/targets").get("targets") or [])

    def download_deployment(
        self,
        dest_path: Any,
        format: str,
        engine: str,
        model_type: str | None = None,
        deployment_version: int | None = None,
        impulse_id: int | None = None,
        download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
        into_directory: bool | None = None,
    ) -> DownloadResult:
        """
        Stream a built deployment to ``dest_path`` (a file, or an existing directory to use the server's name):
        a local path, or a URL or ``ObjectStoragePath`` of Airflow's object storage (``into_directory`` says it is
        a directory where an object store cannot tell; the result's ``path`` is then the final URL).

        Memory stays flat whatever the size: the body is written in 1 MiB chunks to a temporary file beside
        the destination, hashed on the way, checked (``hooks/download.py``: a zip must open, a page or a JSON
        answer is refused, a short body is an error) and put in place only then; a failed download leaves
        nothing behind. ``download_timeout`` bounds the whole download, in seconds. Into a directory, the
        server's file name never replaces another file (see ``ArtefactDownload``).
        """
        limit = positive_seconds("download_timeout", download_timeout, text=True)
        started = time.monotonic()
        # Checked before the request: a missing directory would otherwise only show after the whole download.
        target = storage_path("dest_path", dest_path)
        if not is_object_path(target) and not target.is_dir() and not target.parent.is_dir():
            raise ValueError(f"download destination {str(target)!r}: directory {str(target.parent)!r} does not exist")
        if deployment_version is not None:
            relative = f"deployment/history/{int(deployment_version)}/download"
            params: dict[str, Any] = {}
        else:
            relative = "deployment/download"
            params = {"type": format, "engine": engine, "modelType": model_type, "impulseId": impulse_id}
        path = self._project_path(relative)
        response = self.session.request(
            "GET", f"{self.credentials.api_base}{path}", display_path=path, params=params, stream=True
        )
        with response:
            result = ArtefactDownload(
                response,
                target,
                default_name=f"{self.project_id}-{format}-{engine}",
                deadline=started + limit,
                timeout_s=limit,
                max_bytes=self.credentials.limits.max_download_bytes,
                path=path,
                scrub=self.session.scrub,
                log=self.log,
                into_directory=into_directory,
            ).run()
        self.log.info("Downloaded %s (%d bytes, sha256 %s)", result["path"], result["size"], result["sha256"])
        return result

    def get_deployment_evaluation(self, impulse_id: int | None = None) -> dict[str, Any]:
        """Results of ``start_evaluate``: metrics per model variant."""
        return self._get("deployment/evaluate", {"impulseId": impulse_id})

    def get_model_testing_results(self, impulse_id: int | None = None) -> dict[str, Any]:
        """Results of ``start_classify`` on the test set (``classify/all/result``)."""
        return self._get("classify/all/result", {"impulseId": impulse_id})

    def get_model_variant_metrics(self, impulse_id: int | None = None) -> list[dict[str, Any]]:
        """The last model testing's accuracy per variant (``classify/all/metrics``): ``[{variant, accuracy?}]``."""
        metrics = self._get("classify/all/metrics", {"impulseId": impulse_id}).get("metrics")
        return [m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else []

    def get_keras_metadata(self, learn_id: int, *, exclude_labels: bool = True) -> dict[str, Any]:
        """
        A trained Keras block's metadata (``training/keras/{learnId}/metadata``): ``modelValidationMetrics``,
        one per model variant, each with ``onDevicePerformance`` per target device (latency, RAM and ROM per
        engine). ``exclude_labels`` leaves out the dataset's labels, which are big on regression projects.
        """
        return self._get(f"training/keras/{int(learn_id)}/metadata", {"excludeLabels": exclude_labels})

    # -- versions ------------------------------------------------------------------------------------------

    def list_versions(self) -> ProjectVersions:
        """The project's versions as Studio lists them, and the number the next version job will use."""
        data = self._get("versions")
        versions = data.get("versions")
        next_version = data.get("nextVersion")
        return {
            "next_version": next_version
            if isinstance(next_version, int) and not isinstance(next_version, bool)
            else None,
            "versions": [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else [],
            "run_model_testing_while_versioning": data.get("runModelTestingWhileVersioning") is True,
        }

    def get_version(self, version_id: int) -> dict[str, Any]:
        """One version by id (Studio has no single-version endpoint: it is picked from the list)."""
        found = next((v for v in self.list_versions()["versions"] if v.get("id") == int(version_id)), None)
        if found is None:
            path = self._project_path("versions")
            raise EdgeImpulseAPIError(
                f"Edge Impulse project {self.project_id} has no version with id {int(version_id)}",
                status=404,
                method="GET",
                path=path,
            )
        return found

    def update_version(self, version_id: int, description: str | None = None) -> None:
        """Change a version's description (only the fields given are changed)."""
        body = {} if description is None else {"description": description}
        self._post(f"versions/{int(version_id)}", body=body, idempotent=True)

    def delete_version(self, version_id: int) -> None:
        """Delete a version (Studio keeps its copy in cold storage)."""
        self.log.info("Deleting version %d of Edge Impulse project %d", int(version_id), self.project_id)
        self._call("DELETE", self._project_path(f"versions/{int(version_id)}"), idempotent=True)

    # -- EON Tuner -----------------------------------------------------------------------------------------

    def get_optimize_config(self) -> dict[str, Any]:
        return self._get("optimize/config")

    def set_optimize_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Configure the EON Tuner: needs ``targetLatency`` (ms) and ``targetDevice {name, ram?, rom?}``."""
        return self._post("optimize/config", body=config, idempotent=True)

    def get_tuner_state(self, coordinator_job_id: int) -> dict[str, Any]:
        """State of a tuner run: ``status``, ``tunerJobIsRunning``, ``trials[]``, ``jobError?``..."""
        return self._get(f"optimize/{int(coordinator_job_id)}/state")

    def list_optimize_runs(self) -> list[dict[str, Any]]:
        return list(self._get("optimize/runs").get("runs") or [])

    # -- Airflow connection UI -----------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """One cheap call: the project info when a project id is known, else the list of projects."""
        probe: EdgeImpulseHook | None = None
        try:
            credentials = self.credentials
            # Someone is waiting in the UI: a quick policy, not the task-time retry budget.
            probe = EdgeImpulseHook(
                self.edgeimpulse_conn_id,
                project_id=self._project_id_arg,
                retry_policy=_TEST_CONNECTION_POLICY,
                timeout=min(self.timeout or credentials.timeout, 15.0),
            )
            probe.__dict__["credentials"] = credentials
            project_id = self._project_id_arg or credentials.project_id
            where = f"Connected to Edge Impulse at {credentials.studio_url}"
            if project_id is None:
                return True, f"{where}: {len(probe.list_projects())} project(s) visible"
            project = probe.get_project_info().get("project")
            name = project.get("name") if isinstance(project, dict) else None
            return True, f"{where}: project {project_id}" + (f" ({name})" if name else "")
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            if "credentials" in self.__dict__:
                for secret in sorted(self.credentials.secrets(), key=len, reverse=True):
                    message = message.replace(secret, "***")
            if probe is not None and "session" in probe.__dict__:
                message = probe.session.scrub(message)
            return False, message
        finally:
            if probe is not None:
                probe.close()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form on Airflow < 3.2 (3.2+ reads ``conn-fields`` instead)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, PasswordField, StringField
        from wtforms.validators import Optional

        return {
            "project_id": StringField(lazy_gettext("Project ID"), widget=BS3TextFieldWidget(), validators=[Optional()]),
            "auth_type": StringField(
                lazy_gettext("Auth type (api_key, jwt or jwt_cookie)"),
                widget=BS3TextFieldWidget(),
                validators=[Optional()],
                default="api_key",
            ),
            "api_key": PasswordField(
                lazy_gettext("API key (instead of the Password field)"),
                widget=BS3PasswordFieldWidget(),
                validators=[Optional()],
            ),
            "ingestion_host": StringField(
                lazy_gettext("Ingestion URL"), widget=BS3TextFieldWidget(), validators=[Optional()]
            ),
            "timeout": StringField(
                lazy_gettext("Request timeout (seconds)"), widget=BS3TextFieldWidget(), validators=[Optional()]
            ),
            "allow_insecure_http": BooleanField(
                lazy_gettext("Allow plain http to a host that is not this machine (unencrypted key)"), default=False
            ),
            "max_response_mib": StringField(
                lazy_gettext("Largest answer (MiB)"), widget=BS3TextFieldWidget(), validators=[Optional()]
            ),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Standard connection fields on Airflow < 3.2 (kept in step with ``get_provider_info``)."""
        from airflow_provider_edgeimpulse.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": {
                **UI_FIELD_BEHAVIOUR["placeholders"],
                "project_id": "12345 (optional with an API key)",
                "auth_type": "api_key",
                "ingestion_host": "https://ingestion.edgeimpulse.com",
                "timeout": "60",
                "max_response_mib": "64",
            },
        }


def _parse_timeout_arg(value: Any) -> float | None:
    if value is None:
        return None
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        timeout = 0.0
    if isinstance(value, bool) or not timeout > 0:
        raise EdgeImpulseConnectionError(f"timeout must be a positive number of seconds, got {value!r}")
    return timeout


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failed(path: Any, error: str) -> UploadedFile:
    return {"path": shown_location(path), "success": False, "sample_id": None, "error": error}
