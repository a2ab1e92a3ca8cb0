"""EmulatorServer inside a running loop, EmulatorThread, create_app, and the pytest plugin's wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import aiohttp

from airflow_provider_edgeimpulse.emulator import EmulatorConfig, EmulatorServer, EmulatorThread, create_app
from airflow_provider_edgeimpulse.emulator.state import EmulatorState


async def test_server_in_the_current_loop() -> None:
    async with EmulatorServer(EmulatorConfig(port=0, job_duration=0.05)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession(headers={"x-api-key": "ei_emulator_key"}) as client:
            async with client.post(f"{server.url}/v1/api/1/jobs/evaluate") as response:
                job_id = (await response.json())["id"]
            job = server.state.jobs.jobs[job_id]
            assert job.task is not None
            await job.task
            async with client.get(f"{server.url}/v1/api/1/jobs/{job_id}/status") as response:
                assert (await response.json())["job"]["finishedSuccessful"] is True
    assert server.state.jobs.jobs == {}  # stop() cleared running state


async def test_stop_with_a_job_still_running() -> None:
    server = EmulatorServer(EmulatorConfig(port=0, job_duration=None))
    await server.start()
    async with (
        aiohttp.ClientSession(headers={"x-api-key": "ei_emulator_key"}) as client,
        client.post(f"{server.url}/v1/api/1/jobs/evaluate") as response,
    ):
        assert response.status == 200
    await server.stop()


def test_create_app_exposes_the_state() -> None:
    app = create_app(EmulatorConfig(project_id=5))
    state = app["state"]
    assert isinstance(state, EmulatorState)
    assert state.project.id == 5
    assert state.ping_interval_ms == 25000 and state.ping_timeout_ms == 20000


def test_thread_context_manager() -> None:
    with EmulatorThread(EmulatorConfig(port=0)) as server:
        import requests

        body = requests.get(f"{server.url}/_emulator/health", timeout=10).json()
        assert body == {"ok": True, "project_id": 1}
        assert server.state.project.id == 1
    server.stop()  # idempotent


def test_fixture_sets_the_airflow_connection(edgeimpulse_emulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"])
    assert conn == {
        "conn_type": "edgeimpulse",
        "host": edgeimpulse_emulator.url,
        "password": "ei_emulator_key",
        "extra": {"project_id": 1, "ingestion_host": edgeimpulse_emulator.url},
    }
    assert edgeimpulse_emulator.conn_id == "edgeimpulse_default"
    jwt = json.loads(edgeimpulse_emulator.connection_json("jwt"))
    assert (jwt["login"], jwt["password"], jwt["extra"]["auth_type"]) == ("emulator", "emulator", "jwt")


def test_plugin_and_package_import_without_aiohttp() -> None:
    code = (
        "import sys; import airflow_provider_edgeimpulse.emulator.pytest_plugin, airflow_provider_edgeimpulse.emulator;"
        "from airflow_provider_edgeimpulse.emulator import EmulatorConfig;"
        "heavy = [m for m in ('aiohttp', 'requests', 'edgeimpulse_api') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_plugin_is_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("edgeimpulse_emulator") == "airflow_provider_edgeimpulse.emulator.pytest_plugin"
