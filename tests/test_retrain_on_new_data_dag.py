"""The example DAG edgeimpulse_retrain_on_new_data: shape on Airflow 3, and a full dag.test() run on the emulator."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.airflow_compat import asset_event_extras, register_assets, xcom
from tests.samples_util import sample_ids, upload

GROUP = "retrain_test_gate_build"
DAGS = Path(__file__).resolve().parent.parent / "dags"
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))  # Airflow puts the DAG folder on sys.path; the example imports its sibling


def load() -> Any:
    """The DAG file parsed afresh (dag.test() keeps a run's conf in the DAG's params)."""
    import importlib

    import edgeimpulse_retrain_on_new_data as module

    return importlib.reload(module)


# Airflow 2 has no asset watchers: there the DAG runs hourly with a new-samples sensor at its head instead.
needs_asset_watchers = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="asset watchers arrived in Airflow 3.0")


@needs_asset_watchers
def test_scheduled_on_the_training_data_asset_with_a_new_samples_watcher():
    from airflow.triggers.base import BaseEventTrigger

    from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesTrigger

    module = load()
    dag = module.dag
    asset = module.training_data
    # Named like the deployment Asset: Studio host, project, what of it.
    assert asset.uri == "edgeimpulse://studio.edgeimpulse.com/project/1/samples/training"
    assert [a.uri for a in dag.timetable.asset_condition.objects] == [asset.uri]
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, EdgeImpulseNewSamplesTrigger)
    classpath, kwargs = watcher.trigger.serialize()
    # What the DAG processor stores and the triggerer rebuilds: it must come back identical.
    assert EdgeImpulseNewSamplesTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*watcher.trigger.serialize())
    assert set(dag.task_ids) == {
        "new_samples",
        "retrain_test_gate_build.retrain",
        "retrain_test_gate_build.test",
        "retrain_test_gate_build.quality_gate",
        "retrain_test_gate_build.version",
        "retrain_test_gate_build.build",
    }
    assert dag.max_active_runs == 1


def _states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}


def new_training_data(em: Any, dag: Any) -> list[int]:
    """
    On Airflow 2, samples for the sensor at the head of the DAG to find, uploaded before the run starts.

    Its watermark is left at the newest sample, as the previous hourly run would have, so exactly these count.
    Airflow 3 has nothing to do here: asset events start the runs, and a manual run needs none.
    """
    if AIRFLOW_V_3_0_PLUS:
        return []
    from airflow_provider_edgeimpulse.new_samples import watermark as wm

    spec = dag.get_task("new_samples").watch_spec()
    wm.VariableWatermarkStore().put(spec.key(spec.project_id), max(sample_ids(em)), "an earlier run")
    return upload(em, 2)


def check_new_samples(dag_run: Any, uploaded: list[int]) -> None:
    if not AIRFLOW_V_3_0_PLUS:
        assert xcom(dag_run, "new_samples")["sample_ids"] == uploaded, "the sensor found exactly the new samples"


def test_dag_test_runs_retrain_test_gate_version_build_against_the_emulator(airflow_db, edgeimpulse_emulator, tmp_path):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    dag = load().dag
    announced_to = dag.get_task(f"{GROUP}.build").outlets[0].uri
    assert announced_to == "edgeimpulse://studio.edgeimpulse.com/project/1/deployment/zip"
    register_assets(announced_to)
    uploaded = new_training_data(em, dag)
    dag_run = dag.test(run_conf={"output_dir": str(tmp_path)})
    states = _states(dag_run)
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}
    check_new_samples(dag_run, uploaded)
    verdict = xcom(dag_run, f"{GROUP}.quality_gate")
    assert verdict["passed"] is True
    assert [c["name"] for c in verdict["checks"]] == [
        "accuracy",
        "latency_ms[cortex-m4f-80mhz/int8/eon]",
        "ram_bytes[cortex-m4f-80mhz/int8/eon]",
        "rom_bytes[cortex-m4f-80mhz/int8/eon]",
    ]
    version = xcom(dag_run, f"{GROUP}.version")
    assert [v.version for v in em.state.project.versions.values()] == [version["version"]] == [1]
    built = list(tmp_path.rglob("*.zip"))
    assert len(built) == 1, "the deployment was downloaded into <output_dir>/<run_id>/"
    build = xcom(dag_run, f"{GROUP}.build")
    assert asset_event_extras(announced_to)[-1] == {
        **asset_event_extras(announced_to)[-1],
        "project_version": 1,
        "sha256": build["sha256"],
        "path": str(built[0]),
    }
    kinds = [j["key"].split("-")[0] for j in em.jobs()]
    assert len(kinds) == 4, kinds  # retrain, classify, version, build


def test_dag_test_stops_at_the_gate_and_builds_nothing(airflow_db, edgeimpulse_emulator, tmp_path):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    dag = load().dag
    uploaded = new_training_data(em, dag)
    dag_run = dag.test(run_conf={"output_dir": str(tmp_path), "accuracy_threshold": 0.99})
    check_stopped_at_the_gate(dag_run, em, tmp_path, ["accuracy"])
    check_new_samples(dag_run, uploaded)


def test_dag_test_stops_a_model_that_got_slower_on_the_device(
    airflow_db, edgeimpulse_emulator, tmp_path, caplog, capsys
):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    em.next_model(latency_factor=20)  # 6 ms on the Cortex-M4F becomes 120 ms
    dag = load().dag
    uploaded = new_training_data(em, dag)
    with caplog.at_level(logging.INFO):
        dag_run = dag.test(run_conf={"output_dir": str(tmp_path), "max_latency_ms": 50})
    verdict = check_stopped_at_the_gate(dag_run, em, tmp_path, ["latency_ms[cortex-m4f-80mhz/int8/eon]"])
    check_new_samples(dag_run, uploaded)
    assert {c["name"]: (c["figure"], c["limit"]) for c in verdict["checks"]}[verdict["failed"][0]] == (120.0, 50.0)
    log = caplog.text + capsys.readouterr().out  # Airflow 3 logs through structlog to the console
    assert "Model gate failed: latency_ms[cortex-m4f-80mhz/int8/eon]" in log
    assert f"to roll back, restore the last good version from Studio's Versions page {em.url}/studio/1/versions" in log


def check_stopped_at_the_gate(dag_run: Any, em: Any, out: Path, failed: list[str]) -> dict[str, Any]:
    """Failed at the gate on its first try for ``failed``: no version made, nothing built."""
    from airflow.utils.session import create_session

    states = _states(dag_run)
    assert dag_run.state == "failed", states
    assert states[f"{GROUP}.quality_gate"] == "failed"
    assert states[f"{GROUP}.version"] == "upstream_failed"
    assert states[f"{GROUP}.build"] == "upstream_failed"
    with create_session() as session:
        (gate,) = [ti for ti in dag_run.get_task_instances(session=session) if ti.task_id == f"{GROUP}.quality_gate"]
        assert gate.try_number == 1, "a missed limit is not retried"
    assert not em.state.project.versions, "no version of a model that failed the gate"
    assert not list(out.rglob("*.zip"))
    verdict = xcom(dag_run, f"{GROUP}.quality_gate", "model_gate")
    assert verdict["passed"] is False and verdict["failed"] == failed
    return dict(verdict)


@needs_asset_watchers
def test_the_first_task_reports_the_samples_behind_the_asset_events():
    from types import SimpleNamespace

    module = load()
    report = module.dag.get_task("new_samples").python_callable
    events = {
        module.training_data: [
            SimpleNamespace(extra={"from_trigger": True, "payload": {"sample_ids": [21, 22], "new_sample_count": 2}}),
            SimpleNamespace(extra={"from_trigger": True, "payload": {"sample_ids": [20], "new_sample_count": 1}}),
        ]
    }
    assert report(triggering_asset_events=events) == {"new_sample_count": 3, "sample_ids": [20, 21, 22]}
    assert report(triggering_asset_events=None) == {"new_sample_count": 0, "sample_ids": []}


def test_without_asset_watchers_the_sensor_heads_an_hourly_schedule(monkeypatch):
    # Airflow 2.11's branch, exercised here by hiding Airflow 3 from the DAG file.
    import importlib

    import airflow.providers.common.compat.sdk as compat

    from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor

    module = load()
    monkeypatch.setattr(compat, "AIRFLOW_V_3_0_PLUS", False)
    try:
        fallback = importlib.reload(module)
        head = fallback.dag.get_task("new_samples")
        assert isinstance(head, EdgeImpulseNewSamplesSensor)
        assert head.mode == "reschedule" and head.soft_fail
        assert fallback.schedule == fallback.FALLBACK_SCHEDULE
        assert head.downstream_task_ids == {"retrain_test_gate_build.retrain"}
    finally:
        monkeypatch.undo()
        importlib.reload(module)
