"""The worker's way to wait: the same async waiter, run to completion on a private event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.jobs.waiter import JobOutcome, LogCallback, WaitSettings, wait_for_job

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


class Warns(Protocol):
    """A logger as far as this module needs one (stdlib and Airflow's task loggers both are)."""

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def wait_for_job_blocking(
    credentials: EdgeImpulseCredentials,
    project_id: int,
    job_id: int,
    *,
    timeout: float | None = None,
    on_log: LogCallback | None = None,
    settings: WaitSettings | None = None,
) -> dict[str, Any]:
    """Block until the job ends or ``timeout`` seconds pass; return the outcome as a dict."""
    # NaN is refused too: it passes "< 0" and would end the wait the moment it starts, as a timeout.
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout < math.inf
    ):
        raise ValueError(f"timeout must be a non-negative number of seconds or None, got {timeout!r}")
    deadline = None if timeout is None else time.time() + timeout
    coro_args = (credentials, project_id, job_id)
    kwargs: dict[str, Any] = {"deadline": deadline, "on_log": on_log, "settings": settings}

    def run() -> dict[str, Any]:
        return asyncio.run(wait_for_job(*coro_args, **kwargs)).to_dict()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from inside an event loop (an async task, a notebook): asyncio.run() would refuse there.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeimpulse-wait") as pool:
        return pool.submit(run).result()


def finished_job_outcome(
    hook: EdgeImpulseHook, job_id: int, job: dict[str, Any], *, log_tail: int, log: Warns
) -> dict[str, Any]:
    """
    The outcome of job ``job_id``, already finished (``job`` is its REST status), shaped as a wait's outcome.

    For a task that finds the job finished without waiting (before deferring, on resume, in a poke): XCom is
    then the same whichever way the task got there. A log that cannot be read leaves the tail empty, said in
    ``log`` (the task's logger), since the outcome stands without it.
    """
    success = job.get("finishedSuccessful") is True
    tail: list[str] = []
    try:
        tail = hook.get_job_stdout_lines(job_id, limit=log_tail)
    except Exception as err:
        log.warning("Could not read the log of Edge Impulse job %s: %s", job_id, err)
    return JobOutcome(
        job_id=job_id,
        project_id=hook.project_id,
        status="success" if success else "failure",
        success=success,
        finished=job.get("finished"),
        log_tail=tail,
        job=job,
    ).to_dict()
