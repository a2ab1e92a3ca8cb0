"""
1000 EdgeImpulseJobTrigger runs in one event loop of one process, as a triggerer holds them; the jobs then end
in one burst. Baseline: the same with one socket per wait (every wait gets a hub of its own). Then many projects:
5000 runs over 50 projects, each opened by its own API key (50 connections), in one process; the goal is at most
one socket per project, and the figures are printed next to the same run's baseline (``many_projects_*``).

Each side runs in a fresh child process so that its peak RSS (VmHWM) is its own; the child's stdout (the
triggers' log lines, rendered by Airflow's logging as in a triggerer) goes to /dev/null, its figures to a file.
The burst comes from a helper process (see ``_common.FinishBurst``) once every trigger has made its first status
check; "last event after last finish" runs from the moment the last finish request was sent to the moment the
last trigger event was yielded. The emulator broadcasts every job's events to every socket of the project, so
the baseline's burst costs sockets x events; it is given ``--baseline-cap`` seconds and reports how far it got.
"Loop lag" is how late a 20 ms sleep on the triggers' event loop wakes up, sampled from the first trigger to the
last event: what every other trigger of a triggerer would feel. ``full_collections_ms`` are the full garbage
collections among those samples, and ``worst_lags`` says which of the worst samples one of them fell into.
Airflow's floor for the many-projects run (``floor_*``): as many of Airflow's own ``DateTimeTrigger`` in a child
with the same imports, all due at one instant as long after the first as our waits took to become live, so both
loops hold the same number of triggers for about as long and then end them in one burst.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncGenerator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from _common import (
    API_KEY,
    CONN_ID,
    PROJECT_ID,
    Emulator,
    FinishBurst,
    emit,
    note,
    parser,
    peak_rss_mb,
    percentile,
    rounded,
    rss_mb,
)

if TYPE_CHECKING:
    from airflow.triggers.base import TriggerEvent

LAG_SAMPLE_S = 0.02
# Projects of the many-projects run: ids and keys of their own, next to the emulator's project 1.
FIRST_EXTRA_PROJECT = 1001


# ------------------------------------------------------------------------------------------ one side (a child)


async def _until_all_checked(side: Side, timeout: float) -> None:
    """Every wait checks its job once subscribed (alone or on a shared list): when all have, all are live."""
    async with asyncio.timeout(timeout):
        while side.checked < side.waits:
            await asyncio.sleep(0.05)


def _count_checks(side: Side) -> None:
    """Counts each wait's check after its subscription, however the wait engine answers it."""
    from airflow_provider_edgeimpulse.jobs import waiter

    check = waiter._JobWait._check_subscribed

    async def counted(self: Any) -> dict[str, Any]:
        job = await check(self)
        side.checked += 1
        return job

    waiter._JobWait._check_subscribed = counted  # type: ignore[method-assign]


async def _sample_lag(side: Side) -> None:
    """Loop lag samples, and the full garbage collections that fall among them (the lag's usual cause)."""
    loop = asyncio.get_running_loop()
    gc.callbacks.append(side.on_gc)
    try:
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_SAMPLE_S)
            side.lags.append(max(loop.time() - asked - LAG_SAMPLE_S, 0.0))
            side.lag_times.append(asked)
    finally:
        gc.callbacks.remove(side.on_gc)


class Side:
    """What one side has seen so far; readable from any thread, so a stuck event loop can still be reported."""

    def __init__(self, waits: int) -> None:
        self.waits = waits
        self.events: list[tuple[float, str]] = []
        self.lags: list[float] = []
        self.lag_times: list[float] = []
        # Seconds each full (generation 2) collection stood the loop still, and when it started (loop time).
        self.full_collections: list[tuple[float, float]] = []
        self._collecting_since: tuple[float, float] | None = None
        self.checked = 0
        self.peak_sockets = 0
        self.rss_before = rss_mb()
        self.rss_live: float | None = None
        self.live_after: float | None = None
        self.sent: dict[str, float] | None = None

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._collecting_since = (time.monotonic(), time.perf_counter())
        elif self._collecting_since is not None:
            at, started = self._collecting_since
            self.full_collections.append((at, time.perf_counter() - started))
            self._collecting_since = None

    def figures(self) -> dict[str, Any]:
        successes = sum(1 for _, status in self.events if status == "success")
        complete = successes == self.waits and self.sent is not None
        last_event = max((t for t, _ in self.events), default=None)
        sent = self.sent
        return {
            "waits": successes,
            "complete": complete,
            "max_sockets": self.peak_sockets,
            "peak_rss_mb": rounded(peak_rss_mb()),
            "rss_before_waits_mb": rounded(self.rss_before),
            "rss_all_live_mb": rounded(self.rss_live),
            "all_live_after_s": rounded(self.live_after, 2),
            "burst_s": rounded(sent["last_sent"] - sent["first_sent"], 2) if sent else None,
            "last_event_after_last_finish_ms": (
                rounded((last_event - sent["last_sent"]) * 1000) if complete and sent and last_event else None
            ),
            "loop_lag_p99_ms": rounded(percentile(self.lags, 99) * 1000) if self.lags else None,
            "loop_lag_max_ms": rounded(max(self.lags) * 1000) if self.lags else None,
            "full_collections": len(self.full_collections),
            "full_collections_ms": [rounded(took * 1000) for _, took in self.full_collections],
            "worst_lags": _worst_lags(self),
        }


def _worst_lags(side: Side, count: int = 6) -> list[dict[str, Any]]:
    """The worst lag samples, each with the full collection that fell into it, if one did."""
    worst = sorted(zip(side.lags, side.lag_times, strict=True), reverse=True)[:count]
    out = []
    for lag, asked in worst:
        collected = [took for at, took in side.full_collections if asked <= at <= asked + LAG_SAMPLE_S + lag]
        out.append({"lag_ms": rounded(lag * 1000), "collection_ms": rounded(sum(collected) * 1000)})
    return out


def _conn_id(project_id: int) -> str:
    return CONN_ID if project_id == PROJECT_ID else f"edgeimpulse_bench_{project_id}"


def _use_connections(url: str, keys: dict[int, str]) -> None:
    """One Airflow connection (env var form) per project, each with its project's own API key."""
    for project_id, api_key in keys.items():
        conn = {"conn_type": "edgeimpulse", "host": url, "password": api_key, "extra": {"project_id": project_id}}
        os.environ[f"AIRFLOW_CONN_{_conn_id(project_id).upper()}"] = json.dumps(conn)


async def run_side(
    url: str, jobs: list[tuple[int, int]], keys: dict[int, str], one_socket_per_wait: bool, cap: float, result: Path
) -> None:
    from airflow_provider_edgeimpulse.jobs import hub, waiter
    from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger

    if one_socket_per_wait:
        # A fresh registry per wait means a hub, an HTTP session and a socket per wait: the naive design.
        # Patched where the waiter looks it up, whether it imported the name or looks it up in hub at call time.
        hub.registry_for_running_loop = hub.HubRegistry
        if hasattr(waiter, "registry_for_running_loop"):
            waiter.registry_for_running_loop = hub.HubRegistry

    emulator = Emulator()
    emulator.url = url
    _use_connections(url, keys)
    side = Side(len(jobs))
    _count_checks(side)
    burst = FinishBurst(url, [job_id for _, job_id in jobs])

    async def one(project_id: int, job_id: int) -> None:
        trigger = EdgeImpulseJobTrigger(job_id=job_id, project_id=project_id, edgeimpulse_conn_id=_conn_id(project_id))
        # A triggerer takes the first event, then closes the generator.
        gen = cast(AsyncGenerator["TriggerEvent", None], trigger.run())
        try:
            event = await anext(gen)
            side.events.append((time.time(), event.payload.get("status", "?")))
        finally:
            await gen.aclose()

    async def sample_sockets() -> None:
        while True:
            side.peak_sockets = max(side.peak_sockets, await asyncio.to_thread(emulator.sockets))
            await asyncio.sleep(0.05)

    def give_up() -> None:
        # An event loop swamped by its sockets may not run its own timeouts for minutes: report from a thread.
        burst.result(timeout=0)
        result.write_text(json.dumps(side.figures()))
        os._exit(0)

    sampler = asyncio.create_task(sample_sockets())
    lag = asyncio.create_task(_sample_lag(side))
    started = time.monotonic()
    tasks = []
    for project_id, job_id in jobs:
        # As Airflow's triggerer adds triggers: one task at a time, yielding to the loop in between.
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(one(project_id, job_id)))
    await _until_all_checked(side, timeout=120)
    side.live_after = time.monotonic() - started
    side.rss_live = rss_mb()
    deadline = threading.Timer(cap, give_up)
    deadline.daemon = True  # a side that crashes must exit with its error, not wait for the deadline
    deadline.start()
    burst.fire()
    await asyncio.wait(tasks)
    sampler.cancel()
    lag.cancel()
    side.sent = await asyncio.to_thread(burst.result)
    await asyncio.to_thread(result.write_text, json.dumps(side.figures()))
    os._exit(0)  # the figures are out; tearing down a thousand waits measures nothing


async def run_floor(waits: int, due_after: float, result: Path) -> None:
    """Airflow's own floor: ``waits`` DateTimeTriggers due at one instant, with the provider side's imports."""
    try:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    except ImportError:  # Airflow 2.11 without the standard provider: the trigger's older home
        from airflow.triggers.temporal import DateTimeTrigger  # type: ignore[no-redef]
    from airflow.utils import timezone

    import airflow_provider_edgeimpulse.triggers.job  # noqa: F401  the same heap as the provider side

    side = Side(waits)
    due = timezone.utcnow() + timedelta(seconds=due_after)

    async def one() -> None:
        gen = cast(AsyncGenerator["TriggerEvent", None], DateTimeTrigger(due).run())
        try:
            await anext(gen)
            side.events.append((time.time(), "success"))
        finally:
            await gen.aclose()

    lag = asyncio.create_task(_sample_lag(side))
    tasks = []
    for _ in range(waits):
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(one()))
    await asyncio.wait(tasks)
    lag.cancel()
    side.sent = {"first_sent": due.timestamp(), "last_sent": due.timestamp()}
    await asyncio.to_thread(result.write_text, json.dumps(side.figures()))
    os._exit(0)


def child_main(url: str, side: str, cap: float, result_path: str) -> None:
    plan = json.loads(sys.stdin.read())
    if side == "floor":
        asyncio.run(run_floor(len(plan["jobs"]), cap, Path(result_path)))
        return
    jobs = [(int(p), int(j)) for p, j in plan["jobs"]]
    keys = {int(p): str(k) for p, k in plan["keys"].items()}
    asyncio.run(run_side(url, jobs, keys, side == "baseline", cap, Path(result_path)))


# ------------------------------------------------------------------------------------------------- the parent


def measure(emulator: Emulator, side: str, waits: int, cap: float, projects: int = 1) -> dict[str, Any]:
    """One side's figures: ``waits`` jobs spread round-robin over ``projects`` projects, one API key each."""
    emulator.reset()
    emulator.configure(job_duration=None)
    keys = {PROJECT_ID: API_KEY}
    if projects > 1:
        keys = {FIRST_EXTRA_PROJECT + n: f"ei_bench_key_{n}" for n in range(projects)}
        for project_id, api_key in keys.items():
            emulator.add_principal(api_key, project_id)
    order = list(keys.items())
    jobs = []
    for index in range(waits):
        project_id, api_key = order[index % len(order)]
        jobs.append((project_id, emulator.start_job(project_id=project_id, api_key=api_key)))
    plan = json.dumps({"jobs": jobs, "keys": keys})
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, __file__, "--side", side, "--url", emulator.url, "--cap", str(cap)]
        child = subprocess.run(
            [*command, "--result", result.name],
            input=plan,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=cap + 300,
        )
        if child.returncode:
            raise RuntimeError(f"the {side} side failed:\n{child.stderr[-3000:]}")
        return dict(json.loads(Path(result.name).read_text()))


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--waits", type=int, default=1000)
    args.add_argument("--baseline-cap", type=float, default=45.0, help="seconds the baseline gets after the burst")
    args.add_argument("--many-waits", type=int, default=5000, help="waits of the many-projects run")
    args.add_argument("--projects", type=int, default=50, help="projects (and API keys) of the many-projects run")
    # The parent runs each side in a child process of this same script, with these options.
    args.add_argument("--side", choices=("provider", "baseline", "floor"), help=argparse.SUPPRESS)
    args.add_argument("--url", help=argparse.SUPPRESS)
    args.add_argument("--cap", type=float, default=60.0, help=argparse.SUPPRESS)
    args.add_argument("--result", help=argparse.SUPPRESS)
    opts = args.parse_args()
    if opts.side:
        child_main(opts.url, opts.side, opts.cap, opts.result)
        return
    waits = 20 if opts.quick else opts.waits
    many_waits, projects = (20, 4) if opts.quick else (opts.many_waits, opts.projects)
    with Emulator() as emulator:
        note(f"provider: {waits} triggers, one shared socket")
        ours = measure(emulator, "provider", waits, cap=120.0)
        note(f"many projects: {many_waits} triggers over {projects} projects and API keys, one socket per project")
        many = measure(emulator, "provider", many_waits, cap=120.0, projects=projects)
        note(f"Airflow's floor: {many_waits} DateTimeTriggers due at one instant")
        # For the floor, "cap" is how long after the first trigger they are due: as long as ours took to go live.
        floor = measure(emulator, "floor", many_waits, cap=1.0 + (many["all_live_after_s"] or 0.0))
        note(f"baseline: {waits} triggers, one socket each (at most {opts.baseline_cap:g} s after the burst)")
        theirs = measure(emulator, "baseline", waits, cap=opts.baseline_cap)
    emit(
        {
            **ours,
            "many_projects": projects,
            **{f"many_projects_{key}": value for key, value in many.items()},
            "floor_waits": floor["waits"],
            "floor_peak_rss_mb": floor["peak_rss_mb"],
            "floor_last_event_after_due_ms": floor["last_event_after_last_finish_ms"],
            "floor_loop_lag_p99_ms": floor["loop_lag_p99_ms"],
            "floor_loop_lag_max_ms": floor["loop_lag_max_ms"],
            "floor_full_collections_ms": floor["full_collections_ms"],
            "baseline_max_sockets": theirs["max_sockets"],
            "baseline_peak_rss_mb": theirs["peak_rss_mb"],
            "baseline_rss_all_live_mb": theirs["rss_all_live_mb"],
            "baseline_waits": theirs["waits"],
            "baseline_all_live_after_s": theirs["all_live_after_s"],
            "baseline_last_event_after_last_finish_ms": theirs["last_event_after_last_finish_ms"],
            "baseline_loop_lag_p99_ms": theirs["loop_lag_p99_ms"],
        }
    )


if __name__ == "__main__":
    main()
