"""
How soon a wait returns after its job ends: the provider's socket-driven wait against a REST poller at 1 s.

For each job: start it, start the wait, let the wait settle (its first look at the job is done), pause a random
0.2-1.2 s (so the finish lands at a random phase of any polling loop), then finish the job through the control
API. The latency runs from just before that finish request is sent to the moment the wait returns, so it
includes the control round trip: a slight overestimate, the same for both sides. Jobs run in concurrent lanes,
one job at a time per lane, as a triggerer would see them; both sides run the same schedule in this process.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp
from _common import API_KEY, PROJECT_ID, Emulator, emit, note, parser, percentile, rounded

from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials
from airflow_provider_edgeimpulse.jobs.waiter import wait_for_job

BASELINE_INTERVAL_S = 1.0  # the official SDK's edgeimpulse.util.poll sleeps 1 s between status calls

# A wait: given a job id and an event to set once it has had its first look, return when the job has ended.
Wait = Callable[[int, asyncio.Event], Awaitable[None]]


def provider_wait(credentials: EdgeImpulseCredentials) -> Wait:
    async def wait(job_id: int, settled: asyncio.Event) -> None:
        # The log replay on subscribing arrives just before the first REST check: the wait is live from then on.
        outcome = await wait_for_job(credentials, PROJECT_ID, job_id, on_log=lambda _line: settled.set())
        if not outcome.success:
            raise RuntimeError(f"job {job_id} ended {outcome.status}")

    return wait


def polling_wait(session: aiohttp.ClientSession, url: str, interval: float) -> Wait:
    async def wait(job_id: int, settled: asyncio.Event) -> None:
        status_url = f"{url}/v1/api/{PROJECT_ID}/jobs/{job_id}/status"
        while True:
            async with session.get(status_url, headers={"x-api-key": API_KEY}) as resp:
                resp.raise_for_status()
                job = (await resp.json())["job"]
            settled.set()
            if job.get("finished"):
                return
            await asyncio.sleep(interval)

    return wait


async def run_side(emulator: Emulator, wait: Wait, jobs: int, lanes: int, seed: int) -> list[float]:
    """Latencies in seconds of ``jobs`` waits spread over ``lanes`` concurrent lanes."""
    rng = random.Random(seed)
    pauses = [rng.uniform(0.2, 1.2) for _ in range(jobs)]
    latencies: list[float] = []

    async with aiohttp.ClientSession() as control:

        async def finish(job_id: int) -> None:
            async with control.post(f"{emulator.url}/_emulator/jobs/{job_id}/finish", json={"success": True}) as r:
                r.raise_for_status()

        async def start() -> int:
            async with control.post(
                f"{emulator.url}/v1/api/{PROJECT_ID}/jobs/retrain", json={}, headers={"x-api-key": API_KEY}
            ) as r:
                r.raise_for_status()
                return int((await r.json())["id"])

        async def lane(indexes: range) -> None:
            for index in indexes:
                job_id = await start()
                settled = asyncio.Event()
                returned_at = 0.0

                async def timed_wait(job_id: int = job_id, settled: asyncio.Event = settled) -> None:
                    nonlocal returned_at
                    await wait(job_id, settled)
                    returned_at = time.perf_counter()

                task = asyncio.create_task(timed_wait())
                async with asyncio.timeout(30):
                    await settled.wait()
                await asyncio.sleep(pauses[index])
                sent_at = time.perf_counter()
                await finish(job_id)
                async with asyncio.timeout(30):
                    await task
                latencies.append(returned_at - sent_at)

        per_lane = [range(i, jobs, lanes) for i in range(lanes)]
        await asyncio.gather(*(lane(r) for r in per_lane))
    return latencies


async def main_async(jobs: int, lanes: int) -> dict[str, float | int | None]:
    with Emulator() as emulator:
        emulator.configure(job_duration=None)
        note(f"provider: {jobs} waits in {lanes} lanes")
        ours = await run_side(emulator, provider_wait(emulator.credentials()), jobs, lanes, seed=1)
        emulator.reset()
        emulator.configure(job_duration=None)
        note(f"baseline: REST poller at {BASELINE_INTERVAL_S:g} s, same schedule")
        async with aiohttp.ClientSession() as session:
            theirs = await run_side(
                emulator, polling_wait(session, emulator.url, BASELINE_INTERVAL_S), jobs, lanes, seed=1
            )
    p50 = percentile(ours, 50) * 1000
    baseline_p50 = percentile(theirs, 50) * 1000
    return {
        "jobs": jobs,
        "lanes": lanes,
        "p50_ms": rounded(p50, 2),
        "p99_ms": rounded(percentile(ours, 99) * 1000, 2),
        "max_ms": rounded(max(ours) * 1000, 2),
        "baseline_p50_ms": rounded(baseline_p50, 2),
        "baseline_p99_ms": rounded(percentile(theirs, 99) * 1000, 2),
        "speedup_p50": rounded(baseline_p50 / p50 if p50 > 0 else None, 1),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--jobs", type=int, default=200)
    args.add_argument("--lanes", type=int, default=20)
    opts = args.parse_args()
    jobs, lanes = (8, 4) if opts.quick else (opts.jobs, opts.lanes)
    emit(asyncio.run(main_async(jobs, lanes)))


if __name__ == "__main__":
    main()
