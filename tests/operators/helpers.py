"""Running operators the ways Airflow does: deferred to a trigger and back, and inside dag.test() runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from tests.airflow_compat import xcom as xcom

MODES = ("deferred", "blocking")


def defer(op: Any, context: dict[str, Any]) -> EdgeImpulseJobTrigger:
    """Run ``execute`` up to its deferral; the trigger it hands over holds plain kwargs only."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, EdgeImpulseJobTrigger)
    assert deferred.value.method_name == "execute_complete"
    return trigger


def fire(trigger: Any) -> Any:
    """Run the trigger to its first event, as the triggerer would, and return the event."""

    async def first() -> Any:
        events = trigger.run()
        try:
            return await anext(events)
        finally:
            await events.aclose()

    return asyncio.run(first())


def defer_and_resume(op: Any, context: dict[str, Any]) -> Any:
    """Execute deferred, fire the trigger, and resume on the 'worker' with its event (resuming operators only)."""
    trigger = defer(op, context)
    assert trigger.end_task_on_success is False, "this operator resumes on a worker"
    event = fire(trigger)
    return op.execute_complete(context, event.payload)


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    from tests.dags.edgeimpulse_operator_dags import DAGS

    return DAGS[dag_id].test(run_conf=conf or {})


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state).rsplit(".", 1)[-1].lower() for ti in dag_run.get_task_instances()}


def wait_for_jobs(em: Any, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = em.jobs()
        if len(jobs) >= count:
            return jobs
        time.sleep(0.02)
    raise AssertionError(f"expected {count} jobs in the emulator, saw {len(em.jobs())}")


def job_starts(em: Any) -> int:
    """Requests that could have started a job (any POST under jobs/ except cancel), whatever their answer."""
    routes = em.requests().get("by_route", {})
    return sum(
        n for route, n in routes.items() if route.startswith("POST") and "/jobs/" in route and "cancel" not in route
    )
