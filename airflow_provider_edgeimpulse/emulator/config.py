"""Emulator settings: the CLI's values plus the knobs tests turn through ``POST /_emulator/config``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

JOB_OUTCOMES = ("success", "failure")

# Settings that /_emulator/config may change at run time; identity (host, port, key, ...) stays fixed.
RUNTIME_KEYS = (
    "job_duration",
    "job_outcome",
    "deployment_size_bytes",
    "tuner_trials",
    "tuner_trial_failures",
    "jwt_ttl_s",
    "socket_token_ttl_s",
    "ping_interval_ms",
    "ping_timeout_ms",
    "batch_sync_limit",
    "ingestion_max_files",
    "ingestion_max_file_bytes",
    "training_cycles",
)


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 4810
    api_key: str = "ei_emulator_key"
    project_id: int = 1
    username: str = "emulator"
    password: str = "emulator"
    # None: a job runs until POST /_emulator/jobs/{id}/finish (or a cancel).
    job_duration: float | None = 3.0
    job_outcome: str = "success"
    deployment_size_bytes: int = 64 * 1024
    tuner_trials: int = 4
    tuner_trial_failures: int = 0
    # None: JWTs never expire (Studio's are long-lived; tests shorten them to exercise re-login).
    jwt_ttl_s: float | None = None
    socket_token_ttl_s: float = 3600.0
    ping_interval_ms: int = 25000
    ping_timeout_ms: int = 20000
    # Studio relabels small selections inline and hands bigger ones to a job.
    batch_sync_limit: int = 100
    ingestion_max_files: int = 1000
    ingestion_max_file_bytes: int = 100 * 1024 * 1024
    training_cycles: int = 10

    def updated(self, changes: dict[str, Any]) -> EmulatorConfig:
        """A copy with run-time ``changes`` applied; raises ValueError naming the first bad key or value."""
        new = dataclasses.replace(self)
        for key, value in changes.items():
            if key not in RUNTIME_KEYS:
                raise ValueError(f"unknown setting {key!r}; settable: {', '.join(RUNTIME_KEYS)}")
            setattr(new, key, _coerce(key, value))
        return new

    def runtime(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in RUNTIME_KEYS}


_NULLABLE = {"job_duration", "jwt_ttl_s"}
_FLOATS = {"job_duration", "jwt_ttl_s", "socket_token_ttl_s"}


def _coerce(key: str, value: Any) -> Any:
    if value is None:
        if key in _NULLABLE:
            return None
        raise ValueError(f"{key} cannot be null")
    if key == "job_outcome":
        if value not in JOB_OUTCOMES:
            raise ValueError(f"job_outcome must be one of {JOB_OUTCOMES}, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, not {value!r}")
    if value < 0:
        raise ValueError(f"{key} must not be negative")
    if key in _FLOATS:
        return float(value)
    if value != int(value):
        raise ValueError(f"{key} must be an integer")
    return int(value)
