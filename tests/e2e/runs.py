"""DAG runs and task instances on the end-to-end stack, through Airflow's REST API only."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.e2e.stack import AirflowStack, wait_until

RUN_TIMEOUT_S = 180.0


def unpause(stack: AirflowStack, dag_id: str) -> None:
    stack.wait_for_dag(dag_id)
    stack.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})


def trigger(stack: AirflowStack, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Unpause ``dag_id`` and start a manual run; its run id."""
    unpause(stack, dag_id)
    run = stack.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
    return str(run["dag_run_id"])


def run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def ti_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"{run_path(dag_id, run_id)}/taskInstances/{task_id}"


def task_instance(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return dict(stack.api("GET", ti_path(dag_id, run_id, task_id)))


def xcom(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    """The XCom as the task pushed it (deserialized), or None when there is none."""
    path = f"{ti_path(dag_id, run_id, task_id)}/xcomEntries/{key}"
    entry = stack.api("GET", path, params={"deserialize": "true"}, expect=(200, 404))
    return entry.get("value") if entry else None


def runs_of(stack: AirflowStack, dag_id: str) -> list[dict[str, Any]]:
    return list(stack.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "id"})["dag_runs"])


def wait_for_run_end(stack: AirflowStack, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT_S) -> str:
    """Until the run succeeds or fails; its final state."""

    def ended() -> str | None:
        state = str(stack.api("GET", run_path(dag_id, run_id))["state"])
        return state if state in ("success", "failed") else None

    return wait_until(ended, timeout=timeout, what=f"run {run_id} of {dag_id} to end", interval=0.5)


def task_states(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, str | None]:
    answer = stack.api("GET", f"{run_path(dag_id, run_id)}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}
