"""EmulatorHandle: what the ``edgeimpulse_emulator`` fixture yields (drives the control API over HTTP)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.emulator.server import EmulatorThread
    from airflow_provider_edgeimpulse.emulator.state import EmulatorState

CONTROL_TIMEOUT_S = 30.0


class EmulatorHandle:
    conn_id = "edgeimpulse_default"

    def __init__(
        self,
        url: str,
        *,
        api_key: str,
        project_id: int,
        username: str,
        password: str,
        state: EmulatorState | None = None,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.project_id = project_id
        self.username = username
        self.password = password
        self._state = state
        self._session = requests.Session()

    @classmethod
    def of(cls, server: EmulatorThread) -> EmulatorHandle:
        """A handle on an emulator running on a thread of this process (its live state included)."""
        config = server.config
        return cls(
            server.url,
            api_key=config.api_key,
            project_id=config.project_id,
            username=config.username,
            password=config.password,
            state=server.state,
        )

    def clone(self) -> EmulatorHandle:
        """Another handle on the same emulator, with its own HTTP session (one per thread)."""
        return EmulatorHandle(
            self.url,
            api_key=self.api_key,
            project_id=self.project_id,
            username=self.username,
            password=self.password,
            state=self._state,
        )

    @property
    def state(self) -> EmulatorState:
        """The live state (same process; read it, change it through the control methods)."""
        if self._state is None:
            raise RuntimeError("this emulator runs in another process; use the control methods")
        return self._state

    def connection_json(self, auth_type: str = "api_key") -> str:
        """An Airflow connection (AIRFLOW_CONN_* JSON form) pointing at the emulator."""
        extra: dict[str, Any] = {"project_id": self.project_id, "ingestion_host": self.url}
        if auth_type == "api_key":
            return json.dumps({"conn_type": "edgeimpulse", "host": self.url, "password": self.api_key, "extra": extra})
        if auth_type not in ("jwt", "jwt_cookie"):
            raise ValueError(f"auth_type must be 'api_key', 'jwt' or 'jwt_cookie', not {auth_type!r}")
        extra["auth_type"] = auth_type
        return json.dumps(
            {
                "conn_type": "edgeimpulse",
                "host": self.url,
                "login": self.username,
                "password": self.password,
                "extra": extra,
            }
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._session.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=CONTROL_TIMEOUT_S)
        if response.status_code >= 400:
            raise RuntimeError(
                f"emulator control {method} /_emulator/{path}: HTTP {response.status_code} {response.text}"
            )
        return response.json()

    def reset(self) -> None:
        self._call("POST", "reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        return dict(self._call("POST", "config", settings)["config"])

    def finish_job(self, job_id: int, success: bool = True) -> dict[str, Any]:
        return dict(self._call("POST", f"jobs/{job_id}/finish", {"success": success})["job"])

    def finish_jobs(self, job_ids: list[int], success: bool = True) -> list[dict[str, Any]]:
        """End several running jobs at one instant: their events leave the emulator together, as in a burst."""
        return list(self._call("POST", "jobs/finish", {"ids": list(job_ids), "success": success})["jobs"])

    def write_job_log(self, job_id: int, data: str, repeat: int = 1, level: str = "info") -> dict[str, Any]:
        """Write one line (``data`` repeated ``repeat`` times) into a running job's log, REST and socket alike."""
        body = {"data": data, "repeat": repeat, "level": level}
        return dict(self._call("POST", f"jobs/{job_id}/log", body)["job"])

    def next_model(self, **profile: Any) -> dict[str, Any]:
        """What the next successful training job makes (see ``emulator/model.py``): worse, bigger or slower."""
        return dict(self._call("POST", "next-model", profile))

    def requests(self) -> dict[str, Any]:
        return dict(self._call("GET", "requests"))

    def fault(self, **spec: Any) -> dict[str, Any]:
        return dict(self._call("POST", "faults", spec)["faults"])

    def add_principal(self, api_key: str, project_id: int) -> None:
        """One more API key, opening project ``project_id`` (its own jobs, tokens and sockets)."""
        self._call("POST", "principals", {"api_key": api_key, "project_id": project_id})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def sockets(self) -> int:
        return int(self._call("GET", "sockets")["open"])

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "jobs")["jobs"])

    def issued_tokens(self) -> dict[str, list[str]]:
        """The JWTs and socket tokens issued since the last reset (``jwts``, ``socket_tokens``)."""
        answer = self._call("GET", "tokens")
        return {"jwts": list(answer["jwts"]), "socket_tokens": list(answer["socket_tokens"])}

    def close(self) -> None:
        self._session.close()
