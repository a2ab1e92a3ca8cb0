"""
Re-attach a retried task to the job its earlier try started, on Airflow versions without a task state store.

Airflow 3.3+ keeps the job id in ``task_state_store`` through ``ResumableJobMixin``. Older versions clear a
task's XComs when a new try starts, so the id of a job started by a worker that died would be lost; it is
kept in an Airflow Variable named after the task instance instead, and removed once the job is settled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

# Kept importable from here, where it was first defined; it lives on the ground floor for the sensors.
from airflow_provider_edgeimpulse.compat import can_end_from_trigger as can_end_from_trigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

log = logging.getLogger(__name__)


def has_state_store(context: Context) -> bool:
    return context.get("task_state_store") is not None  # type: ignore[call-overload]


def job_variable_key(dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> str:
    """The Variable that carries a task instance's job id from one try to the next (pre-3.3)."""
    return f"edgeimpulse_job__{dag_id}__{task_id}__{run_id}__{map_index}"


def _variable_key(context: Context) -> str:
    ti = context["ti"]
    return job_variable_key(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))


def previous_job_id(context: Context) -> int | None:
    """The job id an earlier try of this task instance left behind (pre-3.3 fallback)."""
    if has_state_store(context):
        return None
    from airflow.providers.common.compat.sdk import Variable

    try:
        # Positional default: Airflow 2 names it default_var, the Task SDK default.
        value = Variable.get(_variable_key(context), None)
    except Exception as err:  # a Variable backend hiccup must not stop the task; it only loses re-attachment
        log.warning("Could not read the previous try's Edge Impulse job id: %s", err)
        return None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def remember(context: Context, job_id: int) -> None:
    if has_state_store(context):
        return
    from airflow.providers.common.compat.sdk import Variable

    try:
        Variable.set(_variable_key(context), str(job_id), description="Edge Impulse job of a running task")
    except Exception as err:
        log.warning("Could not record Edge Impulse job %s for re-attachment on retry: %s", job_id, err)


def forget(context: Context) -> None:
    if has_state_store(context):
        return
    from airflow.providers.common.compat.sdk import Variable

    try:
        Variable.delete(_variable_key(context))
    except Exception as err:
        log.debug("Could not remove the Edge Impulse job record: %s", err)


# Set while a try waits deferred on a job, removed when the try resumes. Still set when the next try starts, it
# means the earlier try ended in the triggerer by a user's hand (marked failed or success, cleared): its trigger's
# on_kill cancels the job, maybe only after the next try has started, so that try must not re-attach to it.
_DEFERRED_JOB_KEY = "edgeimpulse_deferred_job"


def mark_deferred(context: Context, job_id: int) -> None:
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        store.set(_DEFERRED_JOB_KEY, job_id)


def deferred_job(context: Context) -> int | None:
    """The job this try deferred on, when the task state store knows it."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    marked = store.get(_DEFERRED_JOB_KEY) if store is not None else None
    return int(str(marked)) if marked is not None else None


def mark_resumed(context: Context) -> None:
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None and store.get(_DEFERRED_JOB_KEY) is not None:
        store.delete(_DEFERRED_JOB_KEY)


def stopped_while_deferred(context: Context, job_id: Any) -> bool:
    """Whether ``job_id`` belongs to an earlier try that a user stopped while it waited in the triggerer."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is None:
        return False
    marked = store.get(_DEFERRED_JOB_KEY)
    return marked is not None and str(marked) == str(job_id)


def job_state(job: dict[str, Any] | None) -> str:
    """Collapse an Edge Impulse job into the mixin's vocabulary: running, success, failure or gone."""
    if not job:
        return "gone"
    if not job.get("finished"):
        return "running"
    return "success" if job.get("finishedSuccessful") is True else "failure"
