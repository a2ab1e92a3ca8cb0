"""
`make demo`: run one Edge Impulse retrain job end to end from the provider's hook.

Against the local emulator by default; against Edge Impulse Studio when EDGEIMPULSE_API_KEY is set
(and optionally EDGEIMPULSE_PROJECT_ID).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _emulator_connection() -> tuple[object, dict[str, object]]:
    from airflow_provider_edgeimpulse.emulator import EmulatorConfig, EmulatorThread

    server = EmulatorThread(EmulatorConfig(port=0, job_duration=3.0))
    url = server.start()
    print(f"Edge Impulse emulator listening on {url}")
    conn = {
        "conn_type": "edgeimpulse",
        "host": url,
        "password": server.config.api_key,
        "extra": {"project_id": server.config.project_id, "ingestion_host": url},
    }
    return server, conn


def _studio_connection() -> dict[str, object]:
    extra: dict[str, object] = {}
    if os.environ.get("EDGEIMPULSE_PROJECT_ID"):
        extra["project_id"] = os.environ["EDGEIMPULSE_PROJECT_ID"]
    return {"conn_type": "edgeimpulse", "password": os.environ["EDGEIMPULSE_API_KEY"], "extra": extra}


def main() -> int:
    server = None
    if os.environ.get("EDGEIMPULSE_API_KEY"):
        conn = _studio_connection()
        print("Running against Edge Impulse Studio (EDGEIMPULSE_API_KEY is set)")
    else:
        server, conn = _emulator_connection()
    os.environ["AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"] = json.dumps(conn)
    try:
        from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

        hook = EdgeImpulseHook()
        ok, message = hook.test_connection()
        print(f"Connection: {message}")
        if not ok:
            return 1
        project = hook.get_project_info()["project"]
        print(f"Project {project['id']}: {project['name']}")
        started = time.monotonic()
        job_id = hook.start_retrain()
        print(f"Started retrain job {job_id}")
        outcome = hook.wait_for_job(job_id, on_log=lambda line: print(f"  [job {job_id}] {line}"))
        elapsed = time.monotonic() - started
        print(f"Job {job_id} finished: {outcome['status']} in {elapsed:.1f} s (finished at {outcome['finished']})")
        return 0 if outcome["success"] else 1
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
