"""
The contract between our triggers and the tasks they resume: what an event may say, checked one way.

A trigger yields ``{"status": <one of EVENT_STATUSES>, "message": ..., ...}``, or ends the task itself with a
``TaskSuccessEvent``; runners that resume the task anyway (``dag.test``) then hand ``TASK_SUCCESS`` to
``execute_complete``. Ground floor: the triggers that build events and the tasks that read them both import it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

EVENT_STATUSES = ("success", "failure", "timeout", "error")
# What execute_complete gets instead of a dict when the trigger ended the task itself (TaskSuccessEvent).
TASK_SUCCESS = "success"


def checked_event(
    event: Any,
    task_id: str,
    *,
    statuses: Collection[str] = EVENT_STATUSES,
    error: type[Exception] = AirflowException,
) -> dict[str, Any]:
    """
    ``event`` when it is a dict whose ``status`` is one of ``statuses``; else raise ``error``.

    Fail closed: anything that is not one of our events (a string, a missing status, a status this task does
    not expect) fails the task rather than passing it.
    """
    if not isinstance(event, dict) or event.get("status") not in statuses:
        raise error(f"Unexpected trigger event {event!r} for task {task_id}; failing closed")
    return event
