"""
`make demo`: run the example DAG `edgeimpulse_nightly_retrain` end to end with `airflow dags test`, and show what
it did: the model gate's verdict (each check's figure and limit), the project version it made and the build.

Against a local Edge Impulse emulator by default; against Edge Impulse Studio when EDGEIMPULSE_API_KEY is set
(and optionally EDGEIMPULSE_PROJECT_ID). Uses a throw-away AIRFLOW_HOME and leaves no process running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_edgeimpulse.emulator.launch import emulator_command
from airflow_provider_edgeimpulse.emulator.sample_files import write_wave_samples

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "edgeimpulse_nightly_retrain"
BIN = Path(sys.executable).parent
STOP_BOUND_S = 10


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*emulator_command(), "--port", "0", "--job-duration", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "Edge Impulse emulator listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, line.removeprefix(prefix)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_BOUND_S)


def airflow(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, check=False)


def read_xcoms(run_id: str) -> dict[tuple[str, str], Any]:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.utils.session import create_session
    from sqlalchemy import select

    # The XCom table is XComModel on Airflow 3 and XCom on Airflow 2; both load a row's value as plain Python.
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel as model
    else:
        from airflow.models.xcom import XCom as model

    with create_session() as session:
        rows = session.scalars(select(model).where(model.dag_id == DAG_ID, model.run_id == run_id))
        return {(row.task_id, row.key): row.value for row in rows}


def latest_run() -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc())).first()
        if run is None:
            return None, {}
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        return run, states


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="edgeimpulse-demo-"))
    home = work / "airflow-home"
    emulator = None
    try:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_VAR_EDGEIMPULSE_DEFERRABLE": "true",
        }
        if os.environ.get("EDGEIMPULSE_API_KEY"):
            extra: dict[str, Any] = {}
            if os.environ.get("EDGEIMPULSE_PROJECT_ID"):
                extra["project_id"] = os.environ["EDGEIMPULSE_PROJECT_ID"]
                env["AIRFLOW_VAR_EDGEIMPULSE_PROJECT_ID"] = os.environ["EDGEIMPULSE_PROJECT_ID"]
            conn = {"conn_type": "edgeimpulse", "password": os.environ["EDGEIMPULSE_API_KEY"], "extra": extra}
            print("Running against Edge Impulse Studio (EDGEIMPULSE_API_KEY is set)")
        else:
            emulator, url = start_emulator()
            conn = {
                "conn_type": "edgeimpulse",
                "host": url,
                "password": "ei_emulator_key",
                "extra": {"project_id": 1, "ingestion_host": url},
            }
            print(f"Edge Impulse emulator listening on {url}")
        env["AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"] = json.dumps(conn)
        os.environ.update({k: env[k] for k in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER")})
        os.environ["AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"] = env["AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"]
        print(describe_project())

        print("Preparing a throw-away Airflow metadata database ...")
        migrated = airflow(home, env, "db", "migrate")
        if migrated.returncode != 0:
            print(migrated.stdout[-3000:], migrated.stderr[-3000:])
            return 1
        write_wave_samples(work / "samples", 3, tag="demo", device_type="AIRFLOW_DEMO", rows=125)
        conf = {"samples_dir": str(work / "samples"), "output_dir": str(work / "deployments")}
        print(f"Running `airflow dags test {DAG_ID}` (deferrable waits) ...")
        result = airflow(home, env, "dags", "test", DAG_ID, "--conf", json.dumps(conf))
        (work / "dags-test.log").write_text(result.stdout + result.stderr)

        run, states = latest_run()
        xcoms = read_xcoms(run.run_id) if run is not None else {}
        print(summary(run, states, xcoms, time.monotonic() - started))
        if run is None or str(run.state) != "success":
            print(result.stdout[-4000:], result.stderr[-4000:])
            return 1
        return 0
    finally:
        if emulator is not None:
            stop(emulator)
        shutil.rmtree(work, ignore_errors=True)


def describe_project() -> str:
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

    hook = EdgeImpulseHook()
    ok, message = hook.test_connection()
    if not ok:
        raise SystemExit(f"Cannot use the Edge Impulse connection: {message}")
    info = hook.get_project_info()
    project = info.get("project") or {}
    impulse = info.get("impulse") or {}
    return (
        f"Project {project.get('id')}: {project.get('name')!r} (owner {project.get('owner')!r}, "
        f"impulse {'complete' if impulse.get('complete') else 'not complete'})"
    )


def summary(run: Any, states: dict[str, str], xcoms: dict[tuple[str, str], Any], elapsed: float) -> str:
    group = "retrain_test_gate_build"
    lines = ["", f"=== {DAG_ID}: {run.state if run is not None else 'no run'} in {elapsed:.0f} s ==="]
    for task_id, state in sorted(states.items()):
        job_id = xcoms.get((task_id, "job_id"))
        lines.append(f"  {task_id:<38} {state:<10}" + (f" job {job_id}" if job_id is not None else ""))
    uploaded = xcoms.get(("upload_samples", "return_value")) or {}
    if uploaded:
        lines.append(f"  uploaded samples: {uploaded.get('sample_ids')}")
    testing = xcoms.get((f"{group}.test", "return_value")) or {}
    if testing:
        lines.append(f"  model testing accuracy: {testing.get('accuracy'):.2%}")
    # Imported here: importing Airflow reads its configuration, which main() sets first.
    from airflow_provider_edgeimpulse.operators.model_gate import VERDICT_XCOM_KEY

    lines.extend(gate_lines(xcoms.get((f"{group}.quality_gate", VERDICT_XCOM_KEY))))
    version = xcoms.get((f"{group}.version", "return_value")) or {}
    if version:
        lines.append(
            f"  project version made: {version.get('version')} (id {version.get('version_id')}, "
            f"{version.get('description')!r}): {version.get('studio_url')}"
        )
    else:
        lines.append("  project version made: none (the last good version stays as it was)")
    build = xcoms.get((f"{group}.build", "return_value")) or {}
    if build:
        lines.append(
            f"  deployment: {build.get('filename') or Path(str(build.get('path'))).name} "
            f"({build.get('size')} bytes, sha256 {str(build.get('sha256'))[:16]}..., format {build.get('format')}, "
            f"engine {build.get('engine')}, version {build.get('deploymentVersion')})"
        )
    return "\n".join(lines)


def gate_lines(verdict: dict[str, Any] | None) -> list[str]:
    """The model gate's verdict: each check with its figure, its limit and whether it held."""
    if not verdict:
        return ["  model gate: did not run"]
    lines = [f"  model gate: {'passed' if verdict.get('passed') else 'FAILED (' + ', '.join(verdict['failed']) + ')'}"]
    baseline = verdict.get("baseline")
    if baseline:
        shown = f"project version {baseline.get('version')} (accuracy {baseline.get('accuracy')})"
        lines.append(f"    compared with {shown}")
    for check in verdict.get("checks") or []:
        outcome = "pass" if check.get("passed") else "FAIL"
        lines.append(f"    {outcome:<4} {check.get('name'):<42} {check.get('figure')} (limit {check.get('limit')})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
