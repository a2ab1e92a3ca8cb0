"""DAG runs and task instances on the end-to-end stack, through Airflow's REST API only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.e2e.stack import AirflowStack, StackError, wait_until

RUN_TIMEOUT_S = 180.0
ACTION_TIMEOUT_S = 90.0  # for one step of a test: a task to reach a state, a job to end


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
    # stringify=false: Airflow 2's REST API v1 would hand the value out as its str() otherwise.
    entry = stack.api("GET", path, params={"deserialize": "true", "stringify": "false"}, expect=(200, 404))
    return entry.get("value") if entry else None


def variable(stack: AirflowStack, key: str) -> str | None:
    """The value of Airflow Variable ``key``, or None when there is none."""
    answer = stack.api("GET", f"/variables/{quote(key, safe='')}", expect=(200, 404))
    return str(answer["value"]) if answer and "value" in answer else None


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


def emulator_job(stack: AirflowStack, job_id: int) -> dict[str, Any]:
    (job,) = [j for j in stack.emulator("GET", "/jobs")["jobs"] if int(j["id"]) == job_id]
    return dict(job)


def jobs_started_since(stack: AirflowStack, known: set[int]) -> list[dict[str, Any]]:
    return [j for j in stack.emulator("GET", "/jobs")["jobs"] if int(j["id"]) not in known]


def wait_for_job_of(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, state: str, try_number: int) -> int:
    """Until the task's given try is in ``state`` with its job running on the emulator; the job id."""

    def ready() -> int | None:
        ti = task_instance(stack, dag_id, run_id, task_id)
        if ti["state"] in ("failed", "success", "upstream_failed"):
            evidence = try_log_tails(stack, dag_id, run_id, task_id, try_number)
            raise StackError(f"{task_id} ended {ti['state']} while the test waited for it to be {state}\n{evidence}")
        job_id = xcom(stack, dag_id, run_id, task_id, key="job_id")
        if ti["state"] != state or ti["try_number"] != try_number or job_id is None:
            return None
        if state == "deferred" and not trigger_relays(stack, dag_id, run_id, task_id, try_number, int(job_id)):
            return None
        return job_id if emulator_job(stack, job_id)["finished"] is None else None

    return wait_until(ready, timeout=ACTION_TIMEOUT_S, what=f"{task_id} try {try_number} {state} with its job running")


def trigger_relays(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int, job_id: int, triggerer: str = "*"
) -> bool:
    """
    Whether the try's trigger runs in a triggerer (job id ``triggerer``, any by default): its log relays the job.

    A deferred task is acted on only then. A trigger the triggerer has not picked up yet is deleted with no
    ``on_kill`` (Airflow cancels only running triggers), so its job would run on: a gap of about a second that
    the provider cannot close from the trigger.
    """
    logs = trigger_logs(stack, dag_id, run_id, task_id, try_number, triggerer)
    return any(f"[job {job_id}] " in log for log in logs)


def trigger_logs(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int, triggerer: str = "*"
) -> list[str]:
    """The try's trigger logs, one per triggerer that ran it (each names the file after its own job id)."""
    folder = stack.settings.artifacts / "task-logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return [log.read_text(errors="replace") for log in folder.glob(f"attempt={try_number}.log.trigger.{triggerer}.log")]


def try_log_tails(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int, lines: int = 40) -> str:
    """The last events of each log of the try (the task's, its triggers'): why a try ended, in the failure message."""
    folder = stack.settings.artifacts / "task-logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    tails = []
    for log in sorted(folder.glob(f"attempt={try_number}.log*")):
        events = []
        for line in log.read_text(errors="replace").splitlines()[-lines:]:
            try:
                record = json.loads(line)
                fields = (record.get(key, "") for key in ("timestamp", "event", "error_detail"))
                events.append(" ".join(str(field) for field in fields))
            except ValueError:
                events.append(line)
        tails.append(f"--- {log.name}\n" + "\n".join(event[:400] for event in events))
    return "\n".join(tails) or f"(no log of try {try_number} in {folder})"


def wait_for_ti_state(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, states: set[str]) -> dict:
    def reached() -> dict[str, Any] | None:
        ti = task_instance(stack, dag_id, run_id, task_id)
        return ti if ti["state"] in states else None

    return wait_until(reached, timeout=ACTION_TIMEOUT_S, what=f"{task_id} to reach one of {sorted(states)}")


def wait_cancelled(stack: AirflowStack, job_id: int) -> dict[str, Any]:
    def cancelled() -> dict[str, Any] | None:
        job = emulator_job(stack, job_id)
        return job if job["finished"] is not None else None

    job = wait_until(cancelled, timeout=ACTION_TIMEOUT_S, what=f"Edge Impulse job {job_id} to end")
    assert (job["cancelled"], job["finishedSuccessful"]) == (True, False), job
    return job


def task_process(ti_id: str) -> int | None:
    """The pid of the process running task instance ``ti_id`` (Airflow titles it ``airflow worker -- <ti id>``)."""
    return titled_process(f"airflow worker -- {ti_id}")


def titled_process(title_start: str) -> int | None:
    """The pid of a process whose title (``/proc/<pid>/cmdline``, as Airflow sets it) starts with ``title_start``."""
    title = title_start.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes().startswith(title):
                return int(entry.name)
        except OSError:
            continue
    return None


def check_the_retry_re_attached(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, job_id: int, known: set[int]
) -> None:
    """Finish the job a task's second try waits on: the try succeeds with its outcome; the only job since ``known``."""
    stack.emulator("POST", f"/jobs/{job_id}/finish", json={"success": True})
    ti = wait_for_ti_state(stack, dag_id, run_id, task_id, {"success", "failed"})
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti
    tries = stack.api("GET", f"{ti_path(dag_id, run_id, task_id)}/tries")["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    result = xcom(stack, dag_id, run_id, task_id)
    assert (result["job_id"], result["success"]) == (job_id, True), result
    started = jobs_started_since(stack, known)
    assert [int(j["id"]) for j in started] == [job_id], f"exactly one remote job for two tries: {started}"
