"""Everything the emulator remembers, in one object shared by the REST, ingestion, socket and control routes."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_edgeimpulse.emulator.clock import utcnow
from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig
from airflow_provider_edgeimpulse.emulator.faults import FaultBook
from airflow_provider_edgeimpulse.emulator.jobs import Job, JobManager
from airflow_provider_edgeimpulse.emulator.project import ProjectData, seed_project
from airflow_provider_edgeimpulse.emulator.sockets import SocketRegistry


@dataclass
class SocketToken:
    project_id: int
    expires: datetime


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.settings = dataclasses.replace(config)
        self.sockets = SocketRegistry()
        self.jobs = JobManager(self._broadcast, self._job_closed)
        self.faults = FaultBook()
        self.requests: Counter[str] = Counter()
        self.jwt_tokens: dict[str, float] = {}
        self.socket_tokens: dict[str, SocketToken] = {}
        self.refuse_socket_tokens = 0
        self.websockets_blocked = False
        self.api_key_revoked = False
        # More principals besides the configured key: API key -> the one project it opens (scale tests).
        self.principals: dict[str, int] = {}
        self.project: ProjectData = seed_project(config.project_id, config.username)
        self.workdir = tempfile.mkdtemp(prefix="ei-emulator-")

    # -- what emulator/sockets.py relies on ------------------------------------------------------------------
    @property
    def ping_interval_ms(self) -> int:
        return self.settings.ping_interval_ms

    @ping_interval_ms.setter
    def ping_interval_ms(self, value: int) -> None:
        self.settings.ping_interval_ms = value

    @property
    def ping_timeout_ms(self) -> int:
        return self.settings.ping_timeout_ms

    @ping_timeout_ms.setter
    def ping_timeout_ms(self, value: int) -> None:
        self.settings.ping_timeout_ms = value

    def project_for_socket_token(self, token: str) -> int | None:
        if self.refuse_socket_tokens > 0:
            self.refuse_socket_tokens -= 1
            return None
        entry = self.socket_tokens.get(token)
        if entry is None or entry.expires <= utcnow():
            return None
        return entry.project_id

    def job_log(self, project_id: int, job_id: int) -> list[str] | None:
        job = self.jobs.get(project_id, job_id)
        return None if job is None else [line.data for line in job.log]

    def cancel_job(self, project_id: int, job_id: int) -> bool:
        job = self.jobs.get(project_id, job_id)
        return job is not None and self.jobs.cancel(job)

    # -- tokens ----------------------------------------------------------------------------------------------
    def issue_socket_token(self, project_id: int) -> tuple[str, SocketToken]:
        token = secrets.token_hex(24)
        entry = SocketToken(project_id, utcnow() + timedelta(seconds=self.settings.socket_token_ttl_s))
        self.socket_tokens[token] = entry
        return token, entry

    def jwt_valid(self, token: str) -> bool:
        issued = self.jwt_tokens.get(token)
        if issued is None:
            return False
        ttl = self.settings.jwt_ttl_s
        # The TTL is checked at use, so shortening it also expires tokens handed out earlier.
        return ttl is None or time.monotonic() - issued < ttl

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _broadcast(self, project_id: int, event: str, payload: dict[str, Any]) -> None:
        self.sockets.broadcast(project_id, event, payload)

    def _job_closed(self, job: Job) -> None:
        if job.project_id == self.project.id:
            self.project.compute_ms += int((job.compute_time or 0) * 1000)

    async def reset(self) -> None:
        await self.jobs.clear()
        await self.sockets.close_all()
        self.settings = dataclasses.replace(self.config)
        self.faults.clear()
        self.requests.clear()
        self.jwt_tokens.clear()
        self.socket_tokens.clear()
        self.refuse_socket_tokens = 0
        self.websockets_blocked = False
        self.api_key_revoked = False
        self.principals.clear()
        self.project = seed_project(self.config.project_id, self.config.username)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = tempfile.mkdtemp(prefix="ei-emulator-")

    async def shutdown(self) -> None:
        await self.jobs.clear()
        await self.sockets.close_all()
        shutil.rmtree(self.workdir, ignore_errors=True)
