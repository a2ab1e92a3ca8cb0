"""
Randomized, seeded job waits through a faulty network and a faulty Studio.

EI_CHAOS_WAITS (default 300) and EI_CHAOS_SEED set the size and the seed; `make chaos` runs a long one.
Required: no lost completion, no wrong outcome, no wait past its deadline, REST requests bounded.

Every ``OUTAGE_EVERY``-th batch also meets an outage: Studio answers every request with 429 (``Retry-After: 0``)
and then 503 for longer than any single request's retry budget (``RetryPolicy``: its attempts and backoff add up
to under 8 s), while the batch's jobs end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials
from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking
from airflow_provider_edgeimpulse.jobs.waiter import WaitSettings
from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
from tests.reliability.proxy import FaultProxy, ProxyFaults

WAITS = int(os.environ.get("EI_CHAOS_WAITS", "300"))
SEED = int(os.environ.get("EI_CHAOS_SEED", "20261122"))
BATCH = 25
DEADLINE_S = 40.0
HANG_SLACK_S = 10.0
SETTINGS = WaitSettings(safety_interval=4.0, poll_interval=1.0)
# A wait needs about 3 requests; faults add retries, reconnects and safety checks, never an unbounded number.
MAX_REST_PER_WAIT = 25
WAIT_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="chaos-wait")
OUTAGE_EVERY = 4
OUTAGE_S = (9.0, 14.0)


@dataclass
class Plan:
    job_id: int
    success: bool
    finish_after: float
    path: str


@dataclass
class Tally:
    ok: int = 0
    lost: int = 0
    wrong: int = 0
    hung: int = 0
    errors: int = 0
    socket_drops: int = 0
    outages: int = 0
    outage_s: float = 0.0


def start_job(em: Any) -> int:
    resp = requests.post(
        f"{em.url}/v1/api/{em.project_id}/jobs/retrain", headers={"x-api-key": em.api_key}, json={}, timeout=10
    )
    resp.raise_for_status()
    return int(resp.json()["id"])


def inject_studio_faults(em: Any, rng: random.Random) -> list[str]:
    applied = []
    for _ in range(rng.randint(0, 2)):
        status = rng.choice([429, 500, 502, 503])
        spec: dict[str, Any] = {"status": status, "count": rng.randint(1, 3), "path": rng.choice(["status", "socket"])}
        if status in (429, 503) and rng.random() < 0.5:
            spec["retry_after"] = rng.choice([0, 0.2, 0.5])
        em.fault(**spec)
        applied.append(f"{status}x{spec['count']}@{spec['path']}")
    if rng.random() < 0.3:
        em.fault(refuse_socket_tokens=rng.randint(1, 2))
        applied.append("refuse-tokens")
    return applied


def begin_outage(em: Any, rng: random.Random, tally: Tally) -> None:
    """Every Studio request is answered 429 (Retry-After: 0), then 503, for longer than one request's budget."""
    total = rng.uniform(*OUTAGE_S)
    rate_limited = rng.uniform(1.0, total / 2)
    em.fault(status=429, retry_after=0, duration_s=rate_limited)
    em.fault(status=503, duration_s=total)
    tally.outages += 1
    tally.outage_s += total


async def run_one(plan: Plan, credentials: EdgeImpulseCredentials, conn_id: str) -> dict[str, Any]:
    if plan.path == "trigger":
        trigger = EdgeImpulseJobTrigger(
            job_id=plan.job_id,
            project_id=credentials.project_id or 1,
            edgeimpulse_conn_id=conn_id,
            deadline=time.time() + DEADLINE_S,
            safety_interval=SETTINGS.safety_interval,
            poll_interval=SETTINGS.poll_interval,
            cancel_on_timeout=False,
        )
        gen = trigger.run()
        try:
            event = await anext(gen)
        finally:
            await gen.aclose()
        return {"status": event.payload["status"], "message": event.payload["message"]}
    # Blocking waits get threads of their own: in the default executor they would starve the finishing calls.
    outcome = await asyncio.get_running_loop().run_in_executor(
        WAIT_THREADS,
        functools.partial(
            wait_for_job_blocking,
            credentials,
            credentials.project_id or 1,
            plan.job_id,
            timeout=DEADLINE_S,
            settings=SETTINGS,
        ),
    )
    return {"status": outcome["status"], "message": ""}


async def finish_later(em: Any, plan: Plan) -> float:
    await asyncio.sleep(plan.finish_after)
    await asyncio.to_thread(em.finish_job, plan.job_id, plan.success)
    return time.monotonic()


async def run_batch(
    plans: list[Plan],
    em: Any,
    credentials: EdgeImpulseCredentials,
    conn_id: str,
    rng: random.Random,
    tally: Tally,
    *,
    outage: bool = False,
) -> None:
    started = time.monotonic()
    waits = [asyncio.ensure_future(run_one(p, credentials, conn_id)) for p in plans]
    finishes = [asyncio.ensure_future(finish_later(em, p)) for p in plans]
    if outage:
        await asyncio.sleep(rng.uniform(0.1, 0.8))  # the waits are under way; their jobs end inside the outage
        await asyncio.to_thread(begin_outage, em, rng, tally)
    if rng.random() < 0.5:
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        await asyncio.to_thread(em.fault, drop_sockets=True)
        tally.socket_drops += 1
    done, pending = await asyncio.wait(waits, timeout=DEADLINE_S + HANG_SLACK_S)
    await asyncio.gather(*finishes)
    for task in pending:
        task.cancel()
        tally.hung += 1
    for plan, task in zip(plans, waits, strict=True):
        if task not in done:
            continue
        if task.exception() is not None:
            tally.errors += 1
            print(f"  job {plan.job_id} ({plan.path}): error {task.exception()!r}")
            continue
        status = task.result()["status"]
        expected = "success" if plan.success else "failure"
        if status == expected:
            tally.ok += 1
        elif status in ("timeout", "error"):
            tally.lost += 1
            print(f"  job {plan.job_id} ({plan.path}): lost, {task.result()}")
        else:
            tally.wrong += 1
            print(f"  job {plan.job_id} ({plan.path}): wrong outcome {status}, expected {expected}")
    assert time.monotonic() - started < DEADLINE_S + HANG_SLACK_S + 30


@pytest.fixture
def proxied(edgeimpulse_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    em = edgeimpulse_emulator
    target = urlsplit(em.url)
    proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 80, seed=SEED)
    proxy.start()
    conn = {"conn_type": "edgeimpulse", "host": proxy.url, "password": em.api_key, "extra": {"project_id": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_EDGEIMPULSE_CHAOS", json.dumps(conn))
    yield proxy
    proxy.stop()


async def test_chaos_waits_lose_nothing(edgeimpulse_emulator: Any, proxied: FaultProxy) -> None:
    em = edgeimpulse_emulator
    rng = random.Random(SEED)
    em.configure(job_duration=None, ping_interval_ms=500, ping_timeout_ms=700)
    credentials = EdgeImpulseCredentials(
        studio_url=proxied.url, auth_type=AuthType.API_KEY, api_key=em.api_key, project_id=em.project_id, timeout=5
    )
    tally = Tally()
    fault_log: Counter[str] = Counter()
    started = time.monotonic()
    for first in range(0, WAITS, BATCH):
        size = min(BATCH, WAITS - first)
        proxied.faults = ProxyFaults(
            reset=rng.choice([0, 0.05, 0.15]),
            stall=rng.choice([0, 0.05]),
            cut=rng.choice([0, 0.05, 0.1]),
            stall_seconds=rng.uniform(0.5, 2.0),
            latency_ms=rng.choice([(0, 0), (1, 20), (10, 80)]),
        )
        plans = [
            Plan(
                job_id=await asyncio.to_thread(start_job, em),
                success=rng.random() < 0.5,
                finish_after=rng.uniform(0, 1.5),
                path=rng.choice(["trigger", "blocking"]),
            )
            for _ in range(size)
        ]
        applied = await asyncio.to_thread(inject_studio_faults, em, rng)
        fault_log.update(applied)
        outage = (first // BATCH) % OUTAGE_EVERY == OUTAGE_EVERY - 1
        await run_batch(plans, em, credentials, "edgeimpulse_chaos", rng, tally, outage=outage)
        await asyncio.to_thread(em.clear_faults)
    requests_seen = em.requests()
    rest = requests_seen["total"] - WAITS  # minus the test's own job starts
    elapsed = time.monotonic() - started
    print(
        f"\nchaos seed={SEED} waits={WAITS} ok={tally.ok} lost={tally.lost} wrong={tally.wrong} hung={tally.hung} "
        f"errors={tally.errors} socket_drops={tally.socket_drops} outages={tally.outages} "
        f"({tally.outage_s:.0f}s in all) rest_requests={rest} ({rest / WAITS:.1f}/wait) "
        f"elapsed={elapsed:.0f}s "
        f"proxy={dict(proxied.stats)} studio_faults={dict(fault_log)}"
    )
    assert tally.lost == 0
    assert tally.wrong == 0
    assert tally.hung == 0
    assert tally.errors == 0
    assert tally.ok == WAITS
    assert tally.outages >= min(1, WAITS // (BATCH * OUTAGE_EVERY)), "the run met no outage longer than a budget"
    assert rest <= MAX_REST_PER_WAIT * WAITS
