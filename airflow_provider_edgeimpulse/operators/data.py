"""Data work: relabel samples in bulk, and upload files (local or in object storage) to the ingestion service."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.links import STUDIO_URL_XCOM_KEY
from airflow_provider_edgeimpulse.operators import resume
from airflow_provider_edgeimpulse.operators._base import EdgeImpulseBaseOperator
from airflow_provider_edgeimpulse.operators._globs import glob_files, glob_objects
from airflow_provider_edgeimpulse.operators._lineage import DatasetName, LineageMixin, directories_of, project_dataset
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator, JobRequest
from airflow_provider_edgeimpulse.storage import is_object_path, is_url, shown_location, storage_path
from airflow_provider_edgeimpulse.studio import SAMPLE_CATEGORIES, UPLOAD_CATEGORIES, studio_page_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

EDIT_XCOM_KEY = "batch_edit"
UPLOAD_XCOM_KEY = "upload_result"
_SHOWN_ERRORS = 10


class EdgeImpulseBatchEditLabelsOperator(EdgeImpulseRunJobOperator):
    """
    Set the label of every sample of ``category`` that matches the filters: ``raw-data/batch/edit-labels``.

    Studio relabels small selections at once and hands big ones to a job; a job is waited for like any
    other (blocking or deferred, with the log streamed), and a retried task re-attaches to it. Without any
    filter the whole category would be relabelled: that needs ``allow_all=True``. The task resumes on a
    worker after a job to return the same result shape either way (``completes_in_trigger`` is off).

    :param label: the new label. Templated.
    :param category: ``training``, ``testing``, ``validation`` or ``post-processing``. Templated.
    :param labels: only samples that now have one of these labels. Templated.
    :param ids: only these sample ids. Templated.
    :param exclude_ids: never these sample ids. Templated.
    :param filename: only samples whose file name contains this. Templated.
    :param search: only samples whose name or label contains this. Templated.
    :param allow_all: allow relabelling the whole category (no filter). Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: ``{"affected", "job_id", "label", "category", "status"}``: ``affected`` is the number of
        samples that matched, counted just before the edit (``None`` if it could not be counted);
        ``job_id`` is ``None`` when Studio relabelled at once; ``status`` is ``success``, or ``started``
        when a job was started and ``wait_for_completion`` is off.
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "new_label",
        "category",
        "labels",
        "ids",
        "exclude_ids",
        "filename",
        "search",
        "allow_all",
    )

    def __init__(
        self,
        *,
        label: str,
        category: str,
        labels: Sequence[str] | str | None = None,
        ids: Sequence[int] | str | None = None,
        exclude_ids: Sequence[int] | str | None = None,
        filename: str | None = None,
        search: str | None = None,
        allow_all: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Not ``self.label``: BaseOperator.label is the task's display label (a read-only property).
        self.new_label = label
        self.category = category
        self.labels = labels
        self.ids = ids
        self.exclude_ids = exclude_ids
        self.filename = filename
        self.search = search
        self.allow_all = allow_all
        self._edit: dict[str, Any] | None = None
        self._result_value: dict[str, Any] | None = None

    def _filters(self) -> dict[str, Any]:
        filters = {
            "labels": _params.optional_str_list("labels", self.labels),
            "ids": _params.optional_int_list("ids", self.ids),
            "exclude_ids": _params.optional_int_list("exclude_ids", self.exclude_ids),
            "filename": _params.optional_str("filename", self.filename),
            "search": _params.optional_str("search", self.search),
        }
        allow_all = _params.required_bool("allow_all", self.allow_all)  # checked even when filters make it moot
        narrowing = [filters[key] for key in ("labels", "ids", "filename", "search")]
        if all(value is None for value in narrowing) and not allow_all:
            raise ValueError(
                "No filter (labels, ids, filename, search) given: that relabels every sample of the category; "
                "set allow_all=True if that is meant"
            )
        return filters

    def _count(self, hook: EdgeImpulseHook, category: str, filters: dict[str, Any]) -> int | None:
        try:
            return hook.count_samples(
                category,
                labels=filters["labels"],
                filename=filters["filename"],
                search=filters["search"],
                ids=filters["ids"],
                exclude_ids=filters["exclude_ids"],
            )
        except Exception as err:  # the count only informs; the edit does not depend on it
            self.log.warning("Could not count the samples to relabel: %s", err)
            return None

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        label = _params.label_text("label", self.new_label)
        category = _params.required_str("category", self.category, choices=SAMPLE_CATEGORIES)
        filters = self._filters()
        affected = self._count(hook, category, filters)
        self._edit = {"label": label, "category": category, "filters": filters, "affected": affected}
        # Kept for the worker that resumes after a deferral: it has only the XComs of this try.
        context["ti"].xcom_push(key=EDIT_XCOM_KEY, value={"label": label, "category": category, "affected": affected})
        self.log.info("Relabelling %s %s samples to %r (filters %s)", affected, category, label, filters)
        query = {"category": category, **filters}
        return "raw-data/batch/edit-labels", query, {"label": label}

    def submit_job(self, context: Context) -> Any:
        # The base starts jobs under jobs/...; this edit is another endpoint that only sometimes makes a job.
        previous = resume.previous_job_id(context)
        if previous is not None and self.get_job_status(previous, context) in ("running", "success"):
            self.log.info("Re-attaching to the relabelling job %s of an earlier try", previous)
            return previous
        edit = self._edit or {}
        filters = edit["filters"]
        answer = self.hook.batch_edit_labels(
            edit["label"],
            edit["category"],
            labels=filters["labels"],
            ids=filters["ids"],
            exclude_ids=filters["exclude_ids"],
            filename=filters["filename"],
            search=filters["search"],
            allow_all=True,  # checked in job_request, with the rendered arguments
        )
        job_id = answer.get("job_id")
        if job_id is None:
            return None  # relabelled at once: nothing to persist, nothing to wait for
        resume.remember(context, int(job_id))
        return int(job_id)

    def _result(self, job_id: int | None, status: str, context: Context | None = None) -> dict[str, Any]:
        edit = self._edit
        if edit is None and context is not None:
            ti = context["ti"]
            edit = ti.xcom_pull(task_ids=ti.task_id, key=EDIT_XCOM_KEY)
        edit = edit if isinstance(edit, dict) else {}
        return {
            "affected": edit.get("affected"),
            "job_id": job_id,
            "label": edit.get("label"),
            "category": edit.get("category"),
            "status": status,
        }

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        if external_id is not None:
            return super().poll_until_complete(external_id, context)
        hook = self.hook
        category = (self._edit or {}).get("category", "training")
        url = studio_page_url(hook.studio_url, hook.project_id, f"acquisition/{category}")
        context["ti"].xcom_push(key=STUDIO_URL_XCOM_KEY, value=url)
        self._result_value = self._result(None, "success")
        self.log.info("Edge Impulse relabelled the samples at once (no job)")
        return self._result_value

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if external_id is None:
            return self._result_value
        return super().get_job_result(external_id, context)

    def execute(self, context: Context) -> Any:
        result = super().execute(context)
        if isinstance(result, dict) and result.get("status") == "started" and "affected" not in result:
            return self._result(int(result["job_id"]), "started")
        return result

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        return self._result(outcome.get("job_id"), "success", context)


def expand_paths(paths: Any, *, log: Any = None) -> list[Any]:
    """
    Files from paths and glob patterns, in the order given, each real file once; every problem at once.

    Local entries come back as absolute path strings, object-storage entries (a URL such as ``s3://bucket/in/*.wav``
    or an ``ObjectStoragePath``) as ``ObjectStoragePath`` objects of their store.

    A local pattern keeps to its base folder (``_globs``): a symbolic link out of it is left out (and named in a
    warning on ``log``), and a file reached by several paths (links, hard links, a path given twice) is
    uploaded once, under the first of them.
    """
    entries = _path_entries(paths)
    if not entries:
        raise ValueError(f"paths must name at least one file or glob pattern, got {paths!r}")
    files: list[Any] = []
    problems: list[str] = []
    outside: list[str] = []
    for entry in entries:
        if is_object_path(entry) or is_url(entry):
            problems.extend(_expand_object(entry, files))
            continue
        pattern = os.path.expanduser(entry)
        if glob.has_magic(pattern):
            found = glob_files(pattern)
            outside.extend(found.outside)
            if not found.files:
                count = len(found.outside)
                links = f"{count} symbolic link{'s' if count != 1 else ''}"
                left_out = f" inside {found.base!r} ({links} out of it left out)" if count else ""
                problems.append(f"{entry!r} matches no file{left_out}")
            files.extend(found.files)
        elif os.path.isdir(pattern):
            problems.append(f"{entry!r} is a directory (use a pattern such as '{entry.rstrip('/')}/*.wav')")
        elif not os.path.isfile(pattern):
            problems.append(f"{entry!r}: no such file")
        else:
            files.append(pattern)
    if problems:
        shown = problems[:_SHOWN_ERRORS] + (
            [f"... {len(problems) - _SHOWN_ERRORS} more"] if len(problems) > _SHOWN_ERRORS else []
        )
        raise ValueError("paths: " + "; ".join(shown))
    if outside and log is not None:
        log.warning(
            "Left out %d matches that are symbolic links out of their pattern's folder: %s",
            len(outside),
            ", ".join(repr(p) for p in outside[:_SHOWN_ERRORS]) + (" ..." if len(outside) > _SHOWN_ERRORS else ""),
        )
    unique: dict[Any, Any] = {}
    for path in files:
        if is_object_path(path):
            unique.setdefault(str(path), path)
        else:
            info = os.stat(path)
            unique.setdefault((info.st_dev, info.st_ino), os.path.abspath(path))
    return list(unique.values())


def _path_entries(paths: Any) -> list[Any] | None:
    """``paths`` as a list of strings and ``ObjectStoragePath`` objects (a single one is a list of one)."""
    if is_object_path(paths):
        return [paths]
    if isinstance(paths, list | tuple) and any(is_object_path(p) for p in paths):
        if not all(is_object_path(p) or (isinstance(p, str) and p) for p in paths):
            raise ValueError(f"paths must be a list of paths, URLs or ObjectStoragePaths, got {_params.shown(paths)}")
        return list(paths)
    return _params.optional_str_list("paths", paths)


def _expand_object(entry: Any, files: list[Any]) -> list[str]:
    """Add the objects ``entry`` names to ``files``; the problems found (an unknown store raises at once)."""
    path = storage_path("paths", entry)
    where = shown_location(entry)
    if glob.has_magic(path.path):
        found = glob_objects(path).files
        files.extend(found)
        return [] if found else [f"{where!r} matches no file"]
    if path.is_file():
        files.append(path)
        return []
    if path.is_dir():
        return [f"{where!r} is a directory (use a pattern such as '{where.rstrip('/')}/*.wav')"]
    return [f"{where!r}: no such file"]


def _metadata(value: Any) -> dict[str, str] | None:
    metadata = _params.optional_dict("metadata", value)
    if metadata is None:
        return None
    bad = {k: v for k, v in metadata.items() if not isinstance(v, str | int | float | bool)}
    if bad:
        raise ValueError(f"metadata values must be strings (or numbers), got {bad!r}")
    # Edge Impulse keeps metadata as text.
    return {key: _text(value) for key, value in metadata.items()}


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class EdgeImpulseUploadFailed(AirflowException):
    """No file was uploaded, or some were not and ``fail_on_error`` is set."""


class EdgeImpulseUploadSamplesOperator(LineageMixin, EdgeImpulseBaseOperator):
    """
    Upload files as samples through the ingestion service (1000 files a request, streamed from disk or from
    Airflow's object storage).

    Every path is checked before the first request: a missing file or a pattern that matches nothing
    fails the task with all the problems listed, and nothing is sent.

    :param paths: files and glob patterns (``**`` recurses), as a list or a single string. Each may be a local
        path, a URL of Airflow's object storage (``s3://bucket/in/**/*.wav``; ``s3://conn_id@bucket/...`` picks
        the store's Airflow connection) or an ``ObjectStoragePath``. Templated.
    :param category: ``training``, ``testing``, ``anomaly`` or ``split`` (Studio splits 80/20). Templated.
    :param label: the label of every file; without it Studio takes the label from each file name (the part
        before the first dot) unless ``no_label`` is set. Templated.
    :param metadata: metadata for every sample (string values). Templated.
    :param no_label: upload the samples unlabelled.
    :param disallow_duplicates: let Studio skip files whose content it already has.
    :param add_date_id: let Studio add a date id to each sample name.
    :param fail_on_error: fail the task when any file was not uploaded (the result is still pushed under
        the XCom key ``upload_result`` first). A task that uploaded nothing always fails. Templated.
    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    :return: ``{"sample_ids": [...], "uploaded": n, "failed": [{"file", "error"}], "requests": n, "category"}``.

    With Airflow's OpenLineage provider installed the task reports the directories of the uploaded files as
    inputs and the project (``edgeimpulse://<studio host>``, ``project/<id>``) as output.
    """

    template_fields: Sequence[str] = ("project_id", "paths", "category", "sample_label", "metadata", "fail_on_error")
    template_fields_renderers = {"metadata": "json"}

    def __init__(
        self,
        *,
        paths: str | Sequence[str],
        category: str = "training",
        label: str | None = None,
        metadata: dict[str, Any] | str | None = None,
        no_label: bool = False,
        disallow_duplicates: bool = False,
        add_date_id: bool = False,
        fail_on_error: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.paths = paths
        self.category = category
        # Not ``self.label``: BaseOperator.label is the task's display label (a read-only property).
        self.sample_label = label
        self.metadata = metadata
        self.no_label = no_label
        self.disallow_duplicates = disallow_duplicates
        self.add_date_id = add_date_id
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        category = _params.required_str("category", self.category, choices=UPLOAD_CATEGORIES)
        label = None if self.sample_label is None else _params.label_text("label", self.sample_label)
        metadata = _metadata(self.metadata)
        fail_on_error = _params.required_bool("fail_on_error", self.fail_on_error)
        no_label = _params.required_bool("no_label", self.no_label)
        if label is not None and no_label:
            raise ValueError(f"label={label!r} and no_label=True contradict each other")
        files = expand_paths(self.paths, log=self.log)
        self.log.info("Uploading %d files to Edge Impulse (%s)", len(files), category)
        upload = self.hook.upload_files(
            files,
            category=category,
            label=label,
            metadata=metadata,
            disallow_duplicates=_params.required_bool("disallow_duplicates", self.disallow_duplicates),
            add_date_id=_params.required_bool("add_date_id", self.add_date_id),
            no_label=no_label,
        )
        done = [f for f in upload["files"] if f["success"]]
        failed = [{"file": f["path"], "error": f["error"]} for f in upload["files"] if not f["success"]]
        sample_ids = [f["sample_id"] for f in done if f["sample_id"] is not None]
        result = {
            "sample_ids": sample_ids,
            "uploaded": len(done),
            "failed": failed,
            "requests": upload["requests"],
            "category": category,
        }
        self.push_studio_url(context, f"acquisition/{'training' if category == 'split' else category}")
        if failed:
            for item in failed[:_SHOWN_ERRORS]:
                self.log.warning("Not uploaded: %s: %s", item["file"], item["error"])
        if not done or (failed and fail_on_error):
            context["ti"].xcom_push(key=UPLOAD_XCOM_KEY, value=result)
            errors = "; ".join(f"{item['file']}: {item['error']}" for item in failed[:_SHOWN_ERRORS])
            raise EdgeImpulseUploadFailed(
                f"Uploaded {len(done)} of {len(files)} files; {len(failed)} failed: {errors}"
                + (f" (and {len(failed) - _SHOWN_ERRORS} more)" if len(failed) > _SHOWN_ERRORS else "")
            )
        self.log.info("Uploaded %d files (%d sample ids)", len(done), len(sample_ids))
        self.lineage_result = {**result, "files": [f["path"] for f in done]}
        return result

    def lineage_datasets(self, result: dict[str, Any]) -> tuple[list[DatasetName], list[DatasetName]]:
        # The files themselves are known only to the run that uploaded them (the XCom keeps sample ids).
        inputs = directories_of(result.get("files") or [])
        return inputs, [project_dataset(self.hook.studio_url, self.hook.project_id)]
