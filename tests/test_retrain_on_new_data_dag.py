"""The example DAG edgeimpulse_retrain_on_new_data: shape on Airflow 3, and a full dag.test() run on the emulator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.airflow_compat import xcom
from tests.samples_util import sample_ids, upload

DAGS = Path(__file__).resolve().parent.parent / "dags"
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))  # Airflow puts the DAG folder on sys.path; the example imports its sibling


def load() -> Any:
    import edgeimpulse_retrain_on_new_data as module

    return module


# Airflow 2 has no asset watchers: there the DAG runs hourly with a new-samples sensor at its head instead.
needs_asset_watchers = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="asset watchers arrived in Airflow 3.0")


@needs_asset_watchers
def test_scheduled_on_the_training_data_asset_with_a_new_samples_watcher():
    from airflow.triggers.base import BaseEventTrigger

    from airflow_provider_edgeimpulse.triggers.new_samples import EdgeImpulseNewSamplesTrigger

    module = load()
    dag = module.dag
    asset = module.training_data
    assert asset.uri == "edgeimpulse://1/training-data"
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
        "retrain_test_gate_build.build",
    }
    assert dag.max_active_runs == 1


def test_the_gate_stops_below_the_threshold():
    from airflow.providers.common.compat.sdk import AirflowFailException
    from edgeimpulse_common import check_accuracy

    assert check_accuracy({"accuracy": 0.9}, "0.8") == {"accuracy": 0.9, "threshold": 0.8, "passed": True}
    with pytest.raises(AirflowFailException, match="below the threshold"):
        check_accuracy({"accuracy": 0.5}, 0.8)
    with pytest.raises(AirflowFailException, match="no accuracy"):
        check_accuracy({"accuracy": None}, 0.8)
    with pytest.raises(AirflowFailException, match="between 0 and 1"):
        check_accuracy({"accuracy": 0.9}, "80")


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


def test_dag_test_runs_retrain_test_gate_build_against_the_emulator(airflow_db, edgeimpulse_emulator, tmp_path):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    dag = load().dag
    uploaded = new_training_data(em, dag)
    dag_run = dag.test(run_conf={"output_dir": str(tmp_path)})
    states = _states(dag_run)
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}
    check_new_samples(dag_run, uploaded)
    built = list(tmp_path.rglob("*.zip"))
    assert len(built) == 1, "the deployment was downloaded into <output_dir>/<run_id>/"
    kinds = [j["category"] for j in em.jobs()]
    assert len(kinds) == 3, kinds  # retrain, classify, build


def test_dag_test_stops_at_the_gate_and_builds_nothing(airflow_db, edgeimpulse_emulator, tmp_path):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    dag = load().dag
    uploaded = new_training_data(em, dag)
    dag_run = dag.test(run_conf={"output_dir": str(tmp_path), "accuracy_threshold": 0.99})
    states = _states(dag_run)
    assert dag_run.state == "failed"
    check_new_samples(dag_run, uploaded)
    assert states["retrain_test_gate_build.quality_gate"] == "failed"
    assert states["retrain_test_gate_build.build"] == "upstream_failed"
    assert not list(tmp_path.rglob("*.zip"))


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
