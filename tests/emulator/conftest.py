"""Helpers for the emulator tests: an authenticated Studio client and schema validation with edgeimpulse_api."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_edgeimpulse.emulator.handle import EmulatorHandle


class Studio:
    """A tiny REST client for the emulator, so the tests read like the calls they make."""

    def __init__(self, handle: EmulatorHandle, headers: dict[str, str] | None = None) -> None:
        self.handle = handle
        self.session = requests.Session()
        self.session.headers.update(headers if headers is not None else {"x-api-key": handle.api_key})
        self.base = f"{handle.url}/v1/api/{handle.project_id}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}/{path}" if path else self.base
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True, body
        return body

    def start(self, path: str, **kwargs: Any) -> int:
        body = self.ok("POST", path, **kwargs)
        assert isinstance(body["id"], int)
        return int(body["id"])

    def status(self, job_id: int) -> dict[str, Any]:
        return dict(self.ok("GET", f"jobs/{job_id}/status")["job"])

    def wait(self, job_id: int, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.status(job_id)
            if job.get("finished"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish within {timeout}s")

    def stdout(self, job_id: int, **params: Any) -> list[str]:
        return [line["data"] for line in self.ok("GET", f"jobs/{job_id}/stdout", params=params)["stdout"]]


@pytest.fixture
def emulator(edgeimpulse_emulator: EmulatorHandle) -> EmulatorHandle:
    # Fast jobs by default; tests that need manual control set job_duration=None themselves.
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


@pytest.fixture
def studio(emulator: EmulatorHandle) -> Iterator[Studio]:
    client = Studio(emulator)
    yield client
    client.session.close()


@pytest.fixture
def validate() -> Callable[[str, requests.Response | dict[str, Any]], Any]:
    """Parses a response with Edge Impulse's own generated pydantic model; fails on any shape mismatch.

    The models' own from_dict()/from_json() use construct(), which validates nothing, so this goes through
    pydantic's parse_obj(): required fields, types, enums and nested models are all checked.
    """
    import edgeimpulse_api.models as models

    def check(model_name: str, response: requests.Response | dict[str, Any]) -> Any:
        model = getattr(models, model_name)
        if isinstance(response, requests.Response):
            assert response.status_code == 200, response.text
            assert response.headers["Content-Type"].startswith("application/json")
            data = response.json()
        else:
            data = response
        assert data.get("success") is True, data
        model.from_dict(data)  # the generated client's own path must not choke either
        return model.parse_obj(data)

    return check
