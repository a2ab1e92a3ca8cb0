"""The worker's way to wait: the same async waiter, run to completion on a private event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from typing import Any

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.jobs.waiter import LogCallback, WaitSettings, wait_for_job


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
