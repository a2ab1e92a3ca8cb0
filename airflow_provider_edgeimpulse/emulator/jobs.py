"""Simulated Studio jobs: an asyncio task per job that writes log lines, then finishes.

A job is a list of steps; each step returns log lines (a step may also move other state, as the EON Tuner's do).
With a duration the steps are spread evenly over it. Without one (``job_duration: null``) only the first step
runs and the job waits for ``POST /_emulator/jobs/{id}/finish`` or a cancel; a successful finish runs the
remaining steps at once, so the log reads the same either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_edgeimpulse.emulator.clock import Monotonic, iso

Step = Callable[[], list[str]]
Broadcast = Callable[[int, str, dict[str, Any]], None]

LOG_LEVELS = ("error", "warn", "info", "debug")


def lines(*texts: str) -> Step:
    return lambda: list(texts)


@dataclass
class LogLine:
    created: datetime
    data: str
    level: str = "info"

    def to_json(self) -> dict[str, Any]:
        return {"created": iso(self.created), "data": self.data, "logLevel": self.level}


@dataclass
class Job:
    id: int
    project_id: int
    category: str
    category_key: str
    key: str
    created: datetime
    steps: Sequence[Step]
    failure_reason: str
    duration: float | None
    outcome_success: bool
    on_success: Callable[[], None] | None = None
    on_end: Callable[[bool], None] | None = None
    started: datetime | None = None
    finished: datetime | None = None
    finished_successful: bool | None = None
    cancelled: bool = False
    next_step: int = 0
    log: list[LogLine] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def compute_time(self) -> float | None:
        if self.finished is None or self.started is None:
            return None
        return round((self.finished - self.started).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "category": self.category,
            "categoryKey": self.category_key,
            "key": self.key,
            "created": iso(self.created),
            "jobNotificationUids": [],
        }
        if self.started is not None:
            body["started"] = iso(self.started)
        if self.finished is not None:
            body["finished"] = iso(self.finished)
            body["finishedSuccessful"] = bool(self.finished_successful)
            body["computeTime"] = self.compute_time
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body

    def control_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "category": self.category,
            "key": self.key,
            "created": iso(self.created),
            "finished": iso(self.finished) if self.finished else None,
            "finishedSuccessful": self.finished_successful,
            "cancelled": self.cancelled,
        }


class JobManager:
    def __init__(self, broadcast: Broadcast, on_close: Callable[[Job], None] | None = None) -> None:
        self._broadcast = broadcast
        self._on_close = on_close
        self._clock = Monotonic()
        self.jobs: dict[int, Job] = {}
        self._next_id = 1

    def start(
        self,
        project_id: int,
        *,
        category: str,
        category_key: str,
        key: str,
        steps: Sequence[Step],
        failure_reason: str,
        duration: float | None,
        outcome_success: bool,
        on_success: Callable[[], None] | None = None,
        on_end: Callable[[bool], None] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        now = self._clock.now()
        job = Job(
            id=self._next_id,
            project_id=project_id,
            category=category,
            category_key=category_key,
            key=key,
            created=now,
            started=now,
            steps=list(steps) or [lines("Job started")],
            failure_reason=failure_reason,
            duration=duration,
            outcome_success=outcome_success,
            on_success=on_success,
            on_end=on_end,
            metadata=metadata or {},
        )
        self._next_id += 1
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"ei-emulator-job-{job.id}")
        return job

    @property
    def next_id(self) -> int:
        """The id the next start() hands out (for jobs whose steps must name their own job)."""
        return self._next_id

    def get(self, project_id: int, job_id: int) -> Job | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.project_id == project_id else None

    def write(self, job: Job, text: str, level: str = "info") -> None:
        job.log.append(LogLine(self._clock.now(), text, level))
        self._broadcast(job.project_id, f"job-data-{job.id}", {"data": text})

    def _run_step(self, job: Job) -> None:
        step = job.steps[job.next_step]
        job.next_step += 1
        for text in step():
            self.write(job, text)

    async def _run(self, job: Job) -> None:
        if job.duration is None:
            self._run_step(job)
            await asyncio.Event().wait()  # until finish()/cancel() cancels this task
            return
        pause = job.duration / len(job.steps)
        while job.next_step < len(job.steps) and job.finished is None:
            self._run_step(job)
            await asyncio.sleep(pause)
        self.finish(job, job.outcome_success)

    def finish(self, job: Job, success: bool) -> bool:
        """Ends a job: effects and last log lines first, then the REST status, then the socket events."""
        if job.finished is not None:
            return False
        if success:
            while job.next_step < len(job.steps):
                self._run_step(job)
            try:
                if job.on_success is not None:
                    job.on_success()
            except Exception as exc:  # an effect that cannot apply fails the job, as Studio would
                success = False
                job.failure_reason = str(exc)
        if success:
            self.write(job, "Job completed")
        else:
            self.write(job, f"ERROR: {job.failure_reason}", "error")
            self.write(job, "Job failed (see above)", "error")
        self._close(job, success)
        return True

    def cancel(self, job: Job) -> bool:
        if job.finished is not None:
            return False
        job.cancelled = True
        self.write(job, "Job was cancelled", "warn")
        self._close(job, False)
        return True

    def _close(self, job: Job, success: bool) -> None:
        if job.on_end is not None:
            job.on_end(success)
        job.finished = self._clock.now()
        job.finished_successful = success
        if self._on_close is not None:
            self._on_close(job)
        self._broadcast(job.project_id, f"job-finished-{job.id}", {"success": success})
        self._broadcast(job.project_id, "job-finished", {"jobId": job.id, "success": success})
        if job.task is not None and job.task is not asyncio.current_task():
            job.task.cancel()

    async def clear(self) -> None:
        """Drops every job without events (reset/shutdown): nobody should hear about jobs that never were."""
        tasks = [job.task for job in self.jobs.values() if job.task is not None and not job.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        # Ids keep counting up across resets, so a client left over from an earlier test cannot mistake
        # a new job for its own.
        self.jobs.clear()
