"""
Whether a trigger's ``on_kill`` follows a user's stop of the task, or only a hand-over of the wait.

Airflow 3.3's triggerer calls ``on_kill`` when a user marks a deferred task failed or success or clears it, and
also when it takes a trigger away from a triggerer that was slow but alive (its heartbeat passed the health
threshold, so another triggerer adopted the trigger): ``update_triggers`` puts every trigger no longer assigned to
it among the ones to cancel, and ``cancel_triggers`` cancels them all with the user-action message. In the second
case the task is still deferred and its wait goes on elsewhere, so the remote work must go on too.

The task instance's state tells the two apart: still ``deferred`` means a hand-over. Any other state (failed,
success, cleared and not deferred again, its run deleted) means the task no longer waits on this work. A cleared
task whose next try is already deferred again has settled the old job itself (it cancels a job a user stopped
before starting its own, or re-attaches to it), so leaving it to that try is right as well.

When the state cannot be read the work is left running: a hand-over happens to a triggerer that was unhealthy,
the same trouble that can keep it from reading the state, and cancelling would fail a task nobody stopped (a
retrain hours in). A job left running ends by itself and is named in the log, so it can be cancelled in Studio.

Airflow 3.3 also cancels ``on_kill`` itself: until the trigger has finished, the supervisor sends its cancel again
with every state sync (about once a second) and each one cancels the trigger's task again, which cuts the running
``on_kill`` short without a word. So the work runs in a task of its own that those cancels do not reach
(``outlive_cancels``), bounded by ``KillBudget``. Airflow 2 never calls a trigger's ``on_kill``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine
from typing import Any

# Airflow cuts on_kill at [triggerer] on_kill_timeout; the state read and the cancel share that time. The read
# goes through the triggerer's supervisor: milliseconds once warm, but the supervisor's first read of this kind
# sets up Airflow's in-process execution API, which took about 15 s on a loaded two-core machine. So the read may
# take all but the few seconds a cancel needs.
_ON_KILL_TIMEOUT_FALLBACK_S = 30.0
_MARGIN_S = 1.0
CANCEL_RESERVE_S = 5.0
_DEFERRED = "deferred"
# How long cancelling a remote job may take (within what is left of the on_kill bound).
CANCEL_BOUND_S = 20.0
# Kill work whose on_kill was cancelled: referenced here until it ends, or the event loop would drop it.
_OUTLIVING: set[asyncio.Task[None]] = set()


async def cancel_remote_job(trigger: Any, credentials: Any, project_id: int, job_id: int, what: str) -> str:
    """Cancel ``what`` (job ``job_id``) within ``CANCEL_BOUND_S``; returns how it went, for an event's message."""
    from airflow_provider_edgeimpulse.hooks.async_client import AsyncEdgeImpulseClient

    try:
        async with asyncio.timeout(CANCEL_BOUND_S), AsyncEdgeImpulseClient(credentials) as client:
            await client.cancel_job(project_id, job_id)
    except Exception as err:
        trigger.log.warning("Could not cancel %s: %s", what, err)
        return f"; cancelling it failed ({err})"
    trigger.log.info("Cancelled %s", what)
    return "; it was cancelled"


async def stop_if_task_stopped(trigger: Any, conn_id: str, project_id: int, job_id: int, what: str) -> None:
    """
    The body of a trigger's ``on_kill``: cancel ``what`` (job ``job_id``) if its task no longer waits on it.

    The state read and the cancel share Airflow's on_kill bound, and run to their end even when Airflow cancels
    ``on_kill`` again meanwhile.
    """

    async def work() -> None:
        from airflow_provider_edgeimpulse.hooks.connection import aresolve_credentials

        budget = KillBudget()
        if not await task_was_stopped(trigger, what, budget):
            return
        try:
            async with asyncio.timeout(budget.left(CANCEL_BOUND_S)):
                credentials = await aresolve_credentials(conn_id)
                await cancel_remote_job(trigger, credentials, project_id, job_id, what)
        except TimeoutError:
            trigger.log.warning("Could not cancel %s: no answer within the on_kill bound", what)

    await outlive_cancels(work(), trigger, what)


async def outlive_cancels(work: Coroutine[Any, Any, None], trigger: Any, what: str) -> None:
    """Run ``work`` to its end, also when ``on_kill`` is cancelled meanwhile (``work`` must bound itself)."""

    async def guarded() -> None:
        try:
            await work
        except Exception as err:  # nobody may be left to hear it: say it here
            trigger.log.warning("Stopping %s failed: %s", what, err)

    task = asyncio.ensure_future(guarded())
    _OUTLIVING.add(task)
    task.add_done_callback(_OUTLIVING.discard)
    await asyncio.shield(task)


class KillBudget:
    """The time left of Airflow's on_kill bound, started when ``on_kill`` starts."""

    def __init__(self) -> None:
        from airflow.providers.common.compat.sdk import conf

        try:
            total = conf.getfloat("triggerer", "on_kill_timeout", fallback=_ON_KILL_TIMEOUT_FALLBACK_S)
        except Exception:  # an unreadable setting must not stop a kill
            total = _ON_KILL_TIMEOUT_FALLBACK_S
        if not total > 0:  # NaN or not positive: Airflow's default
            total = _ON_KILL_TIMEOUT_FALLBACK_S
        self.deadline = time.monotonic() + total - _MARGIN_S

    def left(self, cap: float = math.inf) -> float:
        """Seconds a step may take: at most ``cap``, at most what is left (never negative)."""
        return max(0.0, min(cap, self.deadline - time.monotonic()))


async def task_was_stopped(trigger: Any, what: str, budget: KillBudget) -> bool:
    """Whether ``on_kill`` should stop ``what`` (e.g. ``"Edge Impulse job 7"``): the task no longer waits on it."""
    bound = max(budget.left() - CANCEL_RESERVE_S, 0.0)
    try:
        async with asyncio.timeout(bound):
            state = await task_state(trigger)
    except Exception as err:
        reason = f"no answer within {bound:.0f} s" if isinstance(err, TimeoutError) else str(err)
        trigger.log.warning(
            "%s keeps running: the state of its task could not be read (%s), and a hand-over of the wait to "
            "another triggerer looks the same as a stop from here; cancel it in Studio if the task was stopped",
            what,
            reason or type(err).__name__,
        )
        return False
    if state == _DEFERRED:
        trigger.log.info("%s keeps running: its task is still deferred, its wait moved to another triggerer", what)
        return False
    trigger.log.info("The task is %s: stopping %s", state or "no longer deferred", what)
    return True


async def task_state(trigger: Any) -> str | None:
    """The current state of the trigger's task instance (``None``: no state, or no such task instance any more)."""
    ti = getattr(trigger, "task_instance", None)
    if ti is None:
        raise LookupError("the trigger runs without a task instance")
    # Airflow 3: the triggerer's supervisor answers task-state reads for the triggers it runs.
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    # A sync SDK call: in a thread it waits on the event loop without blocking it (and needs no greenback portal).
    states = await asyncio.to_thread(
        RuntimeTaskInstance.get_task_states,
        dag_id=ti.dag_id,
        map_index=map_index,
        task_ids=[ti.task_id],
        run_ids=[ti.run_id],
    )
    # Airflow keys a mapped task instance as "<task_id>_<map_index>".
    key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
    state = (states or {}).get(ti.run_id, {}).get(key)
    return None if state is None else str(getattr(state, "value", state))
