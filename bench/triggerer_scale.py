"""
1000 EdgeImpulseJobTrigger runs in one event loop of one process, as a triggerer holds them; the jobs then end
in one burst. Baseline: the same with one socket per wait (every wait gets a hub of its own).

Each side runs in a fresh child process so that its peak RSS (VmHWM) is its own; the child's stdout (the
triggers' log lines, rendered by Airflow's logging as in a triggerer) goes to /dev/null, its figures to a file.
The burst comes from a helper process (see ``_common.FinishBurst``) once every trigger has made its first status
check; "last event after last finish" runs from the moment the last finish request was sent to the moment the
last trigger event was yielded. The emulator broadcasts every job's events to every socket of the project, so
the baseline's burst costs sockets x events; it is given ``--baseline-cap`` seconds and reports how far it got.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from _common import PROJECT_ID, Emulator, FinishBurst, emit, note, parser, peak_rss_mb, rounded, rss_mb

if TYPE_CHECKING:
    from airflow.triggers.base import TriggerEvent

STATUS_ROUTE = "GET /v1/api/{projectId}/jobs/{jobId}/status"


# ------------------------------------------------------------------------------------------ one side (a child)


async def _until_all_checked(emulator: Emulator, waits: int, timeout: float) -> None:
    """Every wait makes one status call once subscribed: when there are ``waits`` of them, all are live."""
    async with asyncio.timeout(timeout):
        while (await asyncio.to_thread(emulator.requests_by_route)).get(STATUS_ROUTE, 0) < waits:
            await asyncio.sleep(0.05)


class Side:
    """What one side has seen so far; readable from any thread, so a stuck event loop can still be reported."""

    def __init__(self, waits: int) -> None:
        self.waits = waits
        self.events: list[tuple[float, str]] = []
        self.peak_sockets = 0
        self.rss_before = rss_mb()
        self.rss_live: float | None = None
        self.live_after: float | None = None
        self.sent: dict[str, float] | None = None

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
        }


async def run_side(url: str, job_ids: list[int], one_socket_per_wait: bool, cap: float, result: Path) -> None:
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
    emulator.use_as_default_connection()
    side = Side(len(job_ids))
    burst = FinishBurst(url, job_ids)

    async def one(job_id: int) -> None:
        trigger = EdgeImpulseJobTrigger(job_id=job_id, project_id=PROJECT_ID)
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
    tasks = [asyncio.create_task(one(job_id)) for job_id in job_ids]
    started = time.monotonic()
    await _until_all_checked(emulator, len(job_ids), timeout=120)
    side.live_after = time.monotonic() - started
    side.rss_live = rss_mb()
    deadline = threading.Timer(cap, give_up)
    deadline.daemon = True  # a side that crashes must exit with its error, not wait for the deadline
    deadline.start()
    burst.fire()
    await asyncio.wait(tasks)
    sampler.cancel()
    side.sent = await asyncio.to_thread(burst.result)
    await asyncio.to_thread(result.write_text, json.dumps(side.figures()))
    os._exit(0)  # the figures are out; tearing down a thousand waits measures nothing


def child_main(url: str, side: str, cap: float, result_path: str) -> None:
    job_ids = [int(j) for j in sys.stdin.read().split()]
    asyncio.run(run_side(url, job_ids, side == "baseline", cap, Path(result_path)))


# ------------------------------------------------------------------------------------------------- the parent


def measure(emulator: Emulator, side: str, waits: int, cap: float) -> dict[str, Any]:
    emulator.reset()
    emulator.configure(job_duration=None)
    job_ids = [emulator.start_job() for _ in range(waits)]
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, __file__, "--side", side, "--url", emulator.url, "--cap", str(cap)]
        child = subprocess.run(
            [*command, "--result", result.name],
            input=" ".join(map(str, job_ids)),
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
    # The parent runs each side in a child process of this same script, with these options.
    args.add_argument("--side", choices=("provider", "baseline"), help=argparse.SUPPRESS)
    args.add_argument("--url", help=argparse.SUPPRESS)
    args.add_argument("--cap", type=float, default=60.0, help=argparse.SUPPRESS)
    args.add_argument("--result", help=argparse.SUPPRESS)
    opts = args.parse_args()
    if opts.side:
        child_main(opts.url, opts.side, opts.cap, opts.result)
        return
    waits = 20 if opts.quick else opts.waits
    with Emulator() as emulator:
        note(f"provider: {waits} triggers, one shared socket")
        ours = measure(emulator, "provider", waits, cap=120.0)
        note(f"baseline: {waits} triggers, one socket each (at most {opts.baseline_cap:g} s after the burst)")
        theirs = measure(emulator, "baseline", waits, cap=opts.baseline_cap)
    emit(
        {
            **ours,
            "baseline_max_sockets": theirs["max_sockets"],
            "baseline_peak_rss_mb": theirs["peak_rss_mb"],
            "baseline_rss_all_live_mb": theirs["rss_all_live_mb"],
            "baseline_waits": theirs["waits"],
            "baseline_all_live_after_s": theirs["all_live_after_s"],
            "baseline_last_event_after_last_finish_ms": theirs["last_event_after_last_finish_ms"],
        }
    )


if __name__ == "__main__":
    main()
