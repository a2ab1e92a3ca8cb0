"""``EdgeImpulseNewSamplesSensor``: wait until enough new samples have landed in an Edge Impulse project."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    conf,
)

from airflow_provider_edgeimpulse.hooks.credentials import parse_project_id
from airflow_provider_edgeimpulse.new_samples import watermark as wm
from airflow_provider_edgeimpulse.new_samples.probe import DEFAULT_MAX_SAMPLE_IDS, NewSamples, probe_new_samples
from airflow_provider_edgeimpulse.new_samples.query import (
    SampleFilter,
    parse_max_sample_ids,
    parse_min_new_samples,
    parse_start_after,
)
from airflow_provider_edgeimpulse.new_samples.watch import (
    WatchSpec,
    first_watermark,
    resolve_project_id,
    result_payload,
)
from airflow_provider_edgeimpulse.sensors._base import EdgeImpulseBaseSensor
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID
from airflow_provider_edgeimpulse.trigger_events import EVENT_STATUSES, TASK_SUCCESS, checked_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials

T = TypeVar("T")
PREVIOUS_WATERMARK_XCOM_KEY = "watermark_previous"


class EdgeImpulseNewSamplesSensor(EdgeImpulseBaseSensor):
    """
    Succeed once at least ``min_new_samples`` samples newer than the watermark match the filters.

    "Newer" means a sample id above the watermark: the highest id accounted for by this sensor's last
    success. Sample ids only grow and are never reused, so deleting old samples neither fires the sensor nor
    hides new ones (a count would do both). A sample moved between categories keeps its id and is not new.

    **The watermark** lives in an Airflow Variable (why: see ``new_samples/watermark.py``), named
    ``watermark_key`` or by default
    ``edgeimpulse_new_samples__<dag_id>.<task_id>__<conn>__<project>__<category>__<filters hash>``, so it
    carries across DAG runs, worker restarts and deletions of old samples. With no Variable yet, it starts at
    ``start_after_sample_id``, or (``None``) at the newest sample at the first check: only data landing after
    that counts. The seed is stored at once. Delete the Variable to start over.

    **When it advances**: with ``advance_watermark=True`` (default) when the sensor succeeds, to the highest
    new id. A downstream failure (training, the quality gate) does not bring those samples back: they
    remain in the dataset and are part of the next retrain, which the next batch starts. For "only after the
    whole run succeeded" set ``advance_watermark=False`` and call :func:`commit_watermark` with the sensor's
    result in a last task: a failed run then sees the same samples (and any newer) again.

    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: the project; default: the connection's, or the API key's only project. Templated.
    :param category: ``training``, ``testing``, ``validation``, ``post-processing`` or ``all``. Templated.
    :param labels: only samples with one of these labels. Templated.
    :param filename: only samples whose file name contains this. Templated.
    :param search: Studio's sample search text. Templated.
    :param min_new_samples: how many new samples are enough (at least 1). Templated.
    :param max_sample_ids: the most sample ids the result carries, newest first kept (0: counts only).
    :param watermark_key: the Variable holding the watermark. Templated.
    :param start_after_sample_id: the first watermark when none is stored. Templated.
    :param advance_watermark: move the watermark when the sensor succeeds (see above).
    :param deferrable: wait in the triggerer; ``timeout`` is then enforced there.

    :return: ``{"project_id", "category", "filters", "new_sample_count", "sample_ids" (ascending),
        "truncated", "watermark": {"key", "previous", "current"}}`` (XCom ``return_value``).
    """

    template_fields: Sequence[str] = (
        "project_id",
        "category",
        "labels",
        "filename",
        "search",
        "min_new_samples",
        "watermark_key",
        "start_after_sample_id",
    )

    def __init__(
        self,
        *,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | str | None = None,
        category: str = "training",
        labels: Sequence[str] | str | None = None,
        filename: str | None = None,
        search: str | None = None,
        min_new_samples: int | str = 1,
        max_sample_ids: int = DEFAULT_MAX_SAMPLE_IDS,
        watermark_key: str | None = None,
        start_after_sample_id: int | str | None = None,
        advance_watermark: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(edgeimpulse_conn_id=edgeimpulse_conn_id, project_id=project_id, **kwargs)
        self.category = category
        self.labels = labels
        self.filename = filename
        self.search = search
        self.min_new_samples = min_new_samples
        self.max_sample_ids = parse_max_sample_ids(max_sample_ids)
        self.watermark_key = watermark_key
        self.start_after_sample_id = start_after_sample_id
        self.advance_watermark = advance_watermark
        self.deferrable = deferrable
        self.watermark_store: wm.WatermarkStore = wm.VariableWatermarkStore()
        # Fail at parse time for what is not a template; templates are checked again once rendered.
        if not _is_template(min_new_samples):
            parse_min_new_samples(min_new_samples)
        if not _is_template(category):
            SampleFilter.parse(category)
        if not _is_template(start_after_sample_id):
            parse_start_after(start_after_sample_id)
        if not _is_template(project_id):
            parse_project_id(project_id)

    # -- settings ------------------------------------------------------------------------------------------

    def watch_spec(self) -> WatchSpec:
        """The rendered arguments, checked; every error names the parameter and its value."""
        try:
            sample_filter = SampleFilter.parse(self.category, self.labels, self.filename, self.search)
            return WatchSpec(
                conn_id=self.edgeimpulse_conn_id,
                project_id=parse_project_id(self.project_id),
                sample_filter=sample_filter,
                min_new_samples=parse_min_new_samples(self.min_new_samples),
                max_sample_ids=self.max_sample_ids,
                start_after_sample_id=parse_start_after(self.start_after_sample_id),
                watermark_key=_optional_text(self.watermark_key),
                scope=f"{self.dag_id}.{self.task_id}",
            )
        except Exception as err:
            raise ValueError(f"{self.task_id}: {err}") from None

    # -- poke and reschedule modes -------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        spec = self.watch_spec()
        if not self.deferrable:
            return super().execute(context)
        return self._execute_deferrable(context, spec)

    def look(self, context: Context) -> PokeReturnValue:
        spec = self.watch_spec()
        project_id, key, found = self._check(spec)
        if not spec.is_enough(found):
            self._log_waiting(spec, found)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._succeed(spec, project_id, key, found))

    def _check(
        self, spec: WatchSpec, *, after_id: int | None = None, up_to_stored: bool = False
    ) -> tuple[int, str, NewSamples]:
        """
        Project, watermark key and what lies above the watermark (or ``after_id``), in one private event loop.

        ``up_to_stored`` stops at the stored watermark: what an earlier check already reported and committed.
        """
        from airflow_provider_edgeimpulse.hooks.connection import resolve_credentials

        credentials = resolve_credentials(spec.conn_id)
        return _run(self._acheck(credentials, spec, after_id, up_to_stored))

    async def _acheck(
        self, credentials: EdgeImpulseCredentials, spec: WatchSpec, after_id: int | None, up_to_stored: bool
    ) -> tuple[int, str, NewSamples]:
        from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient

        async with AsyncEdgeImpulseClient(credentials) as client:
            project_id = await resolve_project_id(client, spec, credentials)
            key = spec.key(project_id)
            if after_id is None:
                after_id = await first_watermark(client, spec, project_id, self.watermark_store, key, self._note())
            through_id = await wm.aget(self.watermark_store, key) if up_to_stored else None
            found = await probe_new_samples(
                client,
                project_id,
                spec.sample_filter,
                after_id,
                want=spec.min_new_samples,
                max_sample_ids=spec.max_sample_ids,
                through_id=through_id,
            )
        return project_id, key, found

    def _succeed(self, spec: WatchSpec, project_id: int, key: str, found: NewSamples) -> dict[str, Any]:
        result = result_payload(spec, project_id, key, found)
        self.log.info(
            "%d new Edge Impulse sample(s) in project %s (%s), ids %d..%d",
            found.count,
            project_id,
            spec.sample_filter.describe(),
            found.after_id + 1,
            found.watermark,
        )
        if self.advance_watermark:
            stored = wm.advance(self.watermark_store, key, found.watermark, self._note())
            self.log.info("Watermark %r is now sample id %d", key, stored)
        return result

    def _log_waiting(self, spec: WatchSpec, found: NewSamples) -> None:
        self.log.info(
            "%d of %d new sample(s) after sample id %d (%s)",
            found.count,
            spec.min_new_samples,
            found.after_id,
            spec.sample_filter.describe(),
        )

    def _note(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    # -- deferrable mode -----------------------------------------------------------------------------------

    def _execute_deferrable(self, context: Context, spec: WatchSpec) -> Any:
        from airflow_provider_edgeimpulse.compat import can_end_from_trigger
        from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesSensorTrigger

        project_id, key, found = self._check(spec)
        if spec.is_enough(found):
            return self._succeed(spec, project_id, key, found)
        self._log_waiting(spec, found)
        # The resumed worker (if any) needs the starting point: the trigger may have moved the Variable on.
        context["ti"].xcom_push(key=PREVIOUS_WATERMARK_XCOM_KEY, value=found.after_id)
        sf = spec.sample_filter
        end_in_trigger = can_end_from_trigger()
        trigger = EdgeImpulseNewSamplesSensorTrigger(
            project_id=project_id,
            after_id=found.after_id,
            watermark_key=key,
            edgeimpulse_conn_id=spec.conn_id,
            category=sf.category,
            labels=list(sf.labels) if sf.labels is not None else None,
            filename=sf.filename,
            search=sf.search,
            min_new_samples=spec.min_new_samples,
            max_sample_ids=spec.max_sample_ids,
            poll_interval=max(float(self.poke_interval), 1.0),
            deadline=time.time() + float(self.timeout) if self.timeout is not None else None,
            commit_watermark_key=key if self.advance_watermark and end_in_trigger else None,
            # Nothing is left for a worker: ending here avoids the 3.2/3.3 resume race (apache/airflow#66374).
            end_task_on_success=end_in_trigger,
        )
        # timeout=None: the deadline is in the trigger, which reports it as a timeout event.
        self.defer(trigger=trigger, method_name="execute_complete", timeout=None)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        spec = self.watch_spec()
        if event == TASK_SUCCESS:
            # The trigger ended the task itself; runners that resume anyway (dag.test) land here.
            return self._rebuild_result(context, spec)
        # Its trigger never reports a failure: there is no remote job that could fail.
        event = checked_event(event, self.task_id, statuses=set(EVENT_STATUSES) - {"failure"})
        if event["status"] == "timeout":
            message = f"{self.task_id}: {event.get('message')} when the sensor timed out"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        if event["status"] == "error":
            raise AirflowException(str(event.get("message") or "watching for new samples failed"))
        result = event.get("result")
        if not isinstance(result, dict):
            raise AirflowException(f"{self.task_id}: trigger event without a result; failing closed")
        watermark = result.get("watermark") or {}
        if self.advance_watermark:
            wm.advance(self.watermark_store, str(watermark["key"]), int(watermark["current"]), self._note())
        return result

    def _rebuild_result(self, context: Context, spec: WatchSpec) -> dict[str, Any]:
        previous = context["ti"].xcom_pull(task_ids=self.task_id, key=PREVIOUS_WATERMARK_XCOM_KEY)
        if previous is None:
            raise AirflowException(f"{self.task_id}: resumed after success but no {PREVIOUS_WATERMARK_XCOM_KEY} XCom")
        # The trigger stored the watermark it reached: report up to there, not what landed since.
        project_id, key, found = self._check(spec, after_id=int(previous), up_to_stored=self.advance_watermark)
        if not spec.is_enough(found):
            raise AirflowException(f"{self.task_id}: resumed after success but the new samples are gone")
        result = result_payload(spec, project_id, key, found)
        if self.advance_watermark:
            wm.advance(self.watermark_store, key, found.watermark, self._note())
        return result


def commit_watermark(result: dict[str, Any], store: wm.WatermarkStore | None = None) -> int:
    """
    Move the watermark to what a sensor with ``advance_watermark=False`` reported (its XCom ``return_value``).

    Call it in the DAG's last task, so the watermark advances only when the whole run succeeded. Returns the
    watermark now stored (it never moves back).
    """
    watermark = result.get("watermark") if isinstance(result, dict) else None
    if not isinstance(watermark, dict) or "key" not in watermark or "current" not in watermark:
        raise ValueError(f"commit_watermark expects the sensor's result with a 'watermark' entry, got {result!r}")
    return wm.advance(store or wm.VariableWatermarkStore(), str(watermark["key"]), int(watermark["current"]), "commit")


def _optional_text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop (in a thread if this thread already has one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeimpulse-samples") as pool:
        return pool.submit(asyncio.run, coro).result()
