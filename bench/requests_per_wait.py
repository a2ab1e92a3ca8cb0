"""
REST requests per completed wait, for jobs lasting 5, 20 and 60 s, against pollers at 1 s and at 30 s.

Every (side, duration) pair gets its own emulator process, so its ``/_emulator/requests`` counter holds exactly
that pair's requests; all of them run at the same time (about 90 s, the 30 s poller's last look at a 60 s job).
The counters are read after the jobs have been started, so only the waits' own requests count. The provider's
waits use their defaults: a safety check every 120 s while the socket is live, so none falls inside these jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from _common import API_KEY, PROJECT_ID, Emulator, emit, note, parser, rounded, start_emulators

from airflow_provider_edgeimpulse.jobs.waiter import wait_for_job

DURATIONS_S = (5.0, 20.0, 60.0)
SIDES = ("provider", "baseline_1s", "baseline_30s")
INTERVALS_S = {"baseline_1s": 1.0, "baseline_30s": 30.0}  # edgeimpulse.util.poll; Databricks' default

Wait = Callable[[Emulator, int], Awaitable[None]]


def make_wait(side: str, session: aiohttp.ClientSession, scale: float) -> Wait:
    if side == "provider":

        async def provider(emulator: Emulator, job_id: int) -> None:
            outcome = await wait_for_job(emulator.credentials(), PROJECT_ID, job_id)
            if not outcome.success:
                raise RuntimeError(f"job {job_id} ended {outcome.status}")

        return provider

    interval = INTERVALS_S[side] * scale

    async def poll(emulator: Emulator, job_id: int) -> None:
        url = f"{emulator.url}/v1/api/{PROJECT_ID}/jobs/{job_id}/status"
        while True:
            async with session.get(url, headers={"x-api-key": API_KEY}) as resp:
                resp.raise_for_status()
                if (await resp.json())["job"].get("finished"):
                    return
            await asyncio.sleep(interval)

    return poll


async def run(pairs: dict[tuple[str, float], Emulator], jobs: int, scale: float) -> dict[str, Any]:
    before: dict[tuple[str, float], int] = {}
    job_ids: dict[tuple[str, float], list[int]] = {}
    for (_, duration), emulator in pairs.items():
        emulator.configure(job_duration=duration * scale)
    # Start every job first, then read the counters: starting a job is not part of waiting for it.
    for key, emulator in pairs.items():
        job_ids[key] = [emulator.start_job() for _ in range(jobs)]
    for key, emulator in pairs.items():
        before[key] = emulator.requests_total()
    started = time.monotonic()
    lateness: dict[str, list[float]] = {side: [] for side in SIDES}

    async with aiohttp.ClientSession() as session:

        async def one(key: tuple[str, float], job_id: int) -> None:
            side, duration = key
            await make_wait(side, session, scale)(pairs[key], job_id)
            lateness[side].append(time.monotonic() - started - duration * scale)

        await asyncio.gather(*(one(key, job_id) for key, ids in job_ids.items() for job_id in ids))

    figures: dict[str, Any] = {}
    for side in SIDES:
        figures[side] = {
            f"{duration:g}s": rounded((pairs[(side, duration)].requests_total() - before[(side, duration)]) / jobs, 2)
            for duration in DURATIONS_S
        }
    figures["mean_lateness_s"] = {side: rounded(sum(v) / len(v), 2) for side, v in lateness.items()}
    return figures


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--jobs", type=int, default=3, help="jobs per duration and side")
    opts = args.parse_args()
    # Quick: every duration and interval shrunk 20-fold; the counts keep their shape, not their precision.
    jobs, scale = (1, 0.05) if opts.quick else (opts.jobs, 1.0)
    keys = [(side, duration) for side in SIDES for duration in DURATIONS_S]
    emulators = start_emulators(len(keys))
    try:
        pairs = dict(zip(keys, emulators, strict=True))
        note(f"{jobs} job(s) per duration {', '.join(f'{d * scale:g} s' for d in DURATIONS_S)}, three sides at once")
        figures = asyncio.run(run(pairs, jobs, scale))
    finally:
        for emulator in emulators:
            emulator.stop()
    emit(
        {
            "jobs_per_duration": jobs,
            "requests_per_wait": figures["provider"],
            "baseline_1s": figures["baseline_1s"],
            "baseline_30s": figures["baseline_30s"],
            "mean_lateness_s": figures["mean_lateness_s"],
        }
    )


if __name__ == "__main__":
    main()
