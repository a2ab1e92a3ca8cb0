"""
How soon a finished Edge Impulse job becomes a finished task, on a real production-shaped Airflow: PostgreSQL,
Redis, CeleryExecutor, scheduler, dag-processor, triggerer and api-server (tests/e2e/stack.py, ``distributed``).

Two deferred tasks, measured one after the other in each round on the same stack, each ending in the triggerer:
- ours: ``EdgeImpulseRetrainOperator`` (deferrable) waits on a job; once its trigger relays the job, the job is
  finished through the emulator's control API after a random 0.2-1.2 s pause. Latency: from just before that
  request is sent to the task instance's ``end_date``.
- Airflow's floor: ``DateTimeSensorAsync`` (``DateTimeTrigger``, ``end_from_trigger``) firing at an instant set in
  the run's conf. Latency: from that instant to the task instance's ``end_date``. Nothing can be faster on this
  Airflow, as it is the same path from a trigger's event to the task's state, with no waiting on a remote side.

A REST poller every 60 s notices a finished job after 30 s on average (before Airflow's own part): the third
comparison. Figures: seconds; p99 of a few dozen samples is close to their maximum.

Where the time goes, per sample, cut where the trigger's log says the trigger yielded (the triggerer writes
"Trigger fired event" there):
- ours: request -> event (the emulator ending the job, the socket's news, the REST read that confirms it: the
  provider's share), event -> task ``success`` (Airflow's share: the trigger runner hands events to its supervisor
  once per pass of a loop that waits 1 s between passes, and the supervisor writes the task's state).
- the floor: instant -> event (``DateTimeTrigger`` checks the clock once a second), event -> task ``success``
  (the same Airflow share as ours).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from _common import REPO, emit, note, parser, percentile, rounded

sys.path.insert(0, str(REPO))  # the stack harness lives with the end-to-end tests: one home

from tests.e2e.runs import run_path, trigger, trigger_logs, trigger_relays, xcom
from tests.e2e.stack import AirflowStack, StackError, StackSettings, wait_until

JOB_DAG, JOB_TASK = "e2e_latency_job", "retrain_deferred"
FLOOR_DAG, FLOOR_TASK = "e2e_latency_floor", "wait_until"
POLLER_INTERVAL_S = 60.0
# The floor's instant is this far after its run starts: the sensor must have deferred by then.
FLOOR_LEAD_S = 12.0
STEP_TIMEOUT_S = 120.0
ARTIFACTS = REPO / "test-artifacts" / "bench-task-latency"
FIRED = "Trigger fired event"  # what Airflow's trigger runner logs, in the trigger's log, when a trigger yields


def task(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return dict(stack.api("GET", f"{run_path(dag_id, run_id)}/taskInstances/{task_id}"))


def ended_at(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> float:
    """The task's end_date (seconds since the epoch) once it succeeded; it must have waited deferred first."""

    def ended() -> float | None:
        ti = task(stack, dag_id, run_id, task_id)
        if ti["state"] in ("failed", "upstream_failed"):
            raise StackError(f"{dag_id}.{task_id} ended {ti['state']}")
        return datetime.fromisoformat(ti["end_date"]).timestamp() if ti["state"] == "success" else None

    return wait_until(ended, timeout=STEP_TIMEOUT_S, what=f"{dag_id}.{task_id} to succeed", interval=0.2)


def deferred(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    def waiting() -> dict[str, Any] | None:
        ti = task(stack, dag_id, run_id, task_id)
        if ti["state"] in ("success", "failed", "upstream_failed"):
            raise StackError(f"{dag_id}.{task_id} ended {ti['state']} before it deferred")
        return ti if ti["state"] == "deferred" and ti.get("trigger") else None

    return wait_until(waiting, timeout=STEP_TIMEOUT_S, what=f"{dag_id}.{task_id} deferred", interval=0.2)


def floor_run(stack: AirflowStack) -> tuple[str, float]:
    """A run of the floor's DAG whose trigger fires ``FLOOR_LEAD_S`` from now; its run id and that instant."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=FLOOR_LEAD_S)
    return trigger(stack, FLOOR_DAG, {"moment": moment.isoformat()}), moment.timestamp()


def fired_at(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> float:
    """When the task's trigger yielded its event (seconds since the epoch), as the triggerer logged it."""

    def logged() -> float | None:
        for log in trigger_logs(stack, dag_id, run_id, task_id, 1):
            for line in log.splitlines():
                if FIRED in line:
                    record = json.loads(line)
                    if record.get("event") == FIRED:
                        return datetime.fromisoformat(record["timestamp"]).timestamp()
        return None

    return wait_until(logged, timeout=STEP_TIMEOUT_S, what=f"{dag_id}.{task_id}'s trigger to log its event")


@dataclass(frozen=True)
class Sample:
    """One task's latency, cut at the trigger's event: ``start`` -> ``fired`` -> the task's ``ended``."""

    start: float
    fired: float
    ended: float

    @property
    def latency(self) -> float:
        return self.ended - self.start

    @property
    def to_event(self) -> float:
        return self.fired - self.start

    @property
    def event_to_success(self) -> float:
        return self.ended - self.fired


def floor_sample(stack: AirflowStack, run_id: str, moment: float) -> Sample | None:
    """
    The floor's latency; None when its sensor was not seen deferred before its instant (a slow start on a loaded
    machine: it then succeeds without a trigger, or its trigger fires at once), which measures something else.
    """

    def started() -> bool | None:
        ti = task(stack, FLOOR_DAG, run_id, FLOOR_TASK)
        if ti["state"] in ("failed", "upstream_failed"):
            raise StackError(f"{FLOOR_DAG}.{FLOOR_TASK} ended {ti['state']}")
        if ti["state"] == "success":
            return False
        return (time.time() < moment) if ti["state"] == "deferred" and ti.get("trigger") else None

    in_time = wait_until(started, timeout=STEP_TIMEOUT_S, what=f"{FLOOR_DAG}.{FLOOR_TASK} deferred", interval=0.2)
    ended = ended_at(stack, FLOOR_DAG, run_id, FLOOR_TASK)
    return Sample(moment, fired_at(stack, FLOOR_DAG, run_id, FLOOR_TASK), ended) if in_time else None


def job_sample(stack: AirflowStack, run_id: str, rng: random.Random) -> Sample:
    deferred(stack, JOB_DAG, run_id, JOB_TASK)

    def relaying() -> int | None:
        job_id = xcom(stack, JOB_DAG, run_id, JOB_TASK, key="job_id")
        return (
            int(job_id) if job_id is not None and trigger_relays(stack, JOB_DAG, run_id, JOB_TASK, 1, job_id) else None
        )

    job_id = wait_until(relaying, timeout=STEP_TIMEOUT_S, what="the job's trigger to relay it", interval=0.2)
    time.sleep(rng.uniform(0.2, 1.2))
    sent_at = time.time()
    stack.emulator("POST", f"/jobs/{job_id}/finish", json={"success": True})
    ended = ended_at(stack, JOB_DAG, run_id, JOB_TASK)
    return Sample(sent_at, fired_at(stack, JOB_DAG, run_id, JOB_TASK), ended)


def p50(values: list[float]) -> float | None:
    return rounded(percentile(values, 50), 3)


def measure(rounds: int) -> dict[str, Any]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # the logs are appended to: only this run's evidence
    ARTIFACTS.mkdir(parents=True)
    settings = StackSettings(
        dag_folders=(REPO / "tests" / "e2e" / "dags",), artifacts=ARTIFACTS, distributed=True, parallelism=16
    )
    stack = AirflowStack(settings)
    ours: list[Sample] = []
    floor: list[Sample] = []
    dropped = 0
    try:
        note("starting PostgreSQL, Redis and Airflow (CeleryExecutor)")
        stack.start()
        stack.emulator("POST", "/config", json={"job_duration": None})
        rng = random.Random(1)
        for number in range(rounds):
            # Both runs start together; their measured moments come one after the other, never at once.
            floor_run_id, moment = floor_run(stack)
            job_run_id = trigger(stack, JOB_DAG)
            measured_floor = floor_sample(stack, floor_run_id, moment)
            ours.append(job_sample(stack, job_run_id, rng))
            mine = ours[-1]
            split = f"ours {mine.latency:.3f} s (event after {mine.to_event:.3f}, then {mine.event_to_success:.3f})"
            if measured_floor is None:
                dropped += 1
                note(f"round {number + 1}/{rounds}: floor dropped (deferred late), {split}")
                continue
            floor.append(measured_floor)
            note(f"round {number + 1}/{rounds}: floor {measured_floor.latency:.3f} s, {split}")
        if not floor:
            raise StackError(f"no floor sample: its sensor never deferred within {FLOOR_LEAD_S} s of its run's start")
    except StackError as err:
        raise SystemExit(f"task_latency: {err}\n{stack.log_tails()}") from None
    finally:
        leftovers = stack.stop()
        if leftovers:
            note(f"processes outlived their group and were killed: {leftovers}")
    latencies, floor_latencies = [s.latency for s in ours], [s.latency for s in floor]
    p50_s, floor_p50 = percentile(latencies, 50), percentile(floor_latencies, 50)
    poller_expected_s = POLLER_INTERVAL_S / 2
    return {
        "samples": rounds,
        "floor_samples_dropped": dropped,
        "p50_s": rounded(p50_s, 3),
        "p99_s": rounded(percentile(latencies, 99), 3),
        "max_s": rounded(max(latencies), 3),
        "floor_p50_s": rounded(floor_p50, 3),
        "floor_p99_s": rounded(percentile(floor_latencies, 99), 3),
        "p50_over_floor": rounded(p50_s / floor_p50 if floor_p50 > 0 else None, 2),
        "poller_60s_expected_s": poller_expected_s,
        "speedup_vs_poller_60s": rounded(poller_expected_s / p50_s if p50_s > 0 else None, 1),
        # Where the time goes (p50 of each part; see the module's docstring).
        "ours_request_to_event_p50_s": p50([s.to_event for s in ours]),
        "ours_event_to_success_p50_s": p50([s.event_to_success for s in ours]),
        "ours_event_to_success_min_s": rounded(min(s.event_to_success for s in ours), 3),
        "ours_event_to_success_max_s": rounded(max(s.event_to_success for s in ours), 3),
        "floor_instant_to_event_p50_s": p50([s.to_event for s in floor]),
        "floor_event_to_success_p50_s": p50([s.event_to_success for s in floor]),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--rounds", type=int, default=20)
    opts = args.parse_args()
    emit(measure(2 if opts.quick else opts.rounds))


if __name__ == "__main__":
    main()
