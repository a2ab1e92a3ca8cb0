"""Each concrete operator against the emulator: its call, its result, bad input refused before any job starts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators.data import (
    EdgeImpulseBatchEditLabelsOperator,
    EdgeImpulseUploadSamplesOperator,
)
from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from airflow_provider_edgeimpulse.operators.model_testing import EdgeImpulseModelTestingOperator
from airflow_provider_edgeimpulse.operators.training import (
    EdgeImpulseGenerateFeaturesOperator,
    EdgeImpulseRetrainOperator,
    EdgeImpulseTrainOperator,
)
from airflow_provider_edgeimpulse.operators.tuner import (
    EdgeImpulseSetTunerPrimaryOperator,
    EdgeImpulseStartEONTunerOperator,
)
from tests.operators.fakes import make_context


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def started(em: Any) -> list[str]:
    return [str(j["category"]) for j in em.jobs()]


def test_retrain(em):
    result = EdgeImpulseRetrainOperator(task_id="t").execute(make_context())
    assert result["success"] is True
    assert len(em.jobs()) == 1


ANOMALY_PARAMS = {"axes": [0, 1, 2], "minimumConfidenceRating": 0.3}


@pytest.mark.parametrize(
    ("block", "kind", "params"),
    [("Classifier", "keras", {"trainingCycles": 3}), ("Anomaly detection", "anomaly", ANOMALY_PARAMS)],
)
def test_train_picks_the_endpoint_from_the_block_type(em, block, kind, params):
    result = EdgeImpulseTrainOperator(task_id="t", learn_block=block, training_params=params).execute(make_context())
    assert result["success"] is True
    routes = em.requests()["by_route"]
    assert any(f"jobs/train/{kind}/" in route for route in routes), routes


def test_an_anomaly_block_without_its_required_parameters_starts_nothing(em):
    with pytest.raises(ValueError, match="must have axes and minimumConfidenceRating") as err:
        EdgeImpulseTrainOperator(
            task_id="t", learn_block="Anomaly detection", training_params={"trainingCycles": 3}
        ).execute(make_context())
    assert "Anomaly detection" in str(err.value) and "trainingCycles" in str(err.value)
    assert em.jobs() == []


def test_train_unknown_block_lists_the_known_ones_and_starts_nothing(em):
    with pytest.raises(ValueError, match="Classifier") as err:
        EdgeImpulseTrainOperator(task_id="t", learn_block="Nope").execute(make_context())
    assert "Nope" in str(err.value)
    assert em.jobs() == []


def test_train_failure_shows_the_log_tail(em):
    em.configure(job_outcome="failure")
    with pytest.raises(EdgeImpulseJobFailed, match="emulated failure"):
        EdgeImpulseTrainOperator(task_id="t", learn_block_id=4).execute(make_context())


def test_generate_features_by_dsp_block_name(em):
    result = EdgeImpulseGenerateFeaturesOperator(task_id="t", dsp_block="Spectral features").execute(make_context())
    assert result["success"] is True


def test_model_testing_returns_accuracy_and_per_label_figures(em):
    result = EdgeImpulseModelTestingOperator(task_id="t").execute(make_context())
    assert 0 < result["accuracy"] <= 1
    assert set(result["per_label"]) >= {"idle", "wave"}


def test_model_testing_below_min_accuracy_fails_after_pushing_the_result(em):
    context = make_context()
    with pytest.raises(Exception, match="below"):
        EdgeImpulseModelTestingOperator(task_id="t", min_accuracy=0.9999).execute(context)
    assert "model_testing" in context["ti"].xcoms


def test_build_downloads_the_artifact_with_its_checksum(em, tmp_path):
    result = EdgeImpulseBuildDeploymentOperator(
        task_id="t", deployment_format="zip", engine="tflite-eon", output_path=str(tmp_path) + "/"
    ).execute(make_context())
    path = Path(result["path"])
    assert zipfile.is_zipfile(path)
    assert path.stat().st_size == result["size"]
    assert len(result["sha256"]) == 64
    assert result["deploymentVersion"] == 1


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"deployment_format": "floppy-disk"}, "floppy-disk"),
        ({"deployment_format": "zip", "engine": "abacus"}, "abacus"),
    ],
)
def test_build_refuses_an_unknown_format_or_engine_before_building(em, tmp_path, kwargs, named):
    with pytest.raises(ValueError, match=named):
        EdgeImpulseBuildDeploymentOperator(task_id="t", output_path=str(tmp_path), **kwargs).execute(make_context())
    assert em.jobs() == []


def test_tuner_start_then_adopt_the_best_trial(em):
    run_id = EdgeImpulseStartEONTunerOperator(
        task_id="t", target_device="cortex-m4f-80mhz", target_latency=100, tuning_max_trials=2
    ).execute(make_context())
    assert isinstance(run_id, int)
    em.finish_job(run_id, True)
    result = EdgeImpulseSetTunerPrimaryOperator(
        task_id="adopt", trial_id="best", tuner_coordinator_job_id=run_id, metric="accuracy"
    ).execute(make_context())
    assert result["success"] is True
    assert result["trial_id"].startswith(f"trial_{run_id}_")


def test_adopt_best_with_an_unknown_metric_starts_nothing(em):
    run_id = EdgeImpulseStartEONTunerOperator(
        task_id="t", target_device="cortex-m4f-80mhz", target_latency=100
    ).execute(make_context())
    em.finish_job(run_id, True)
    before = len(em.jobs())
    with pytest.raises(ValueError, match="smiles"):
        EdgeImpulseSetTunerPrimaryOperator(
            task_id="adopt", trial_id="best", tuner_coordinator_job_id=run_id, metric="smiles", mode="max"
        ).execute(make_context())
    assert len(em.jobs()) == before


def test_batch_relabel_small_selection_is_done_at_once(em):
    result = EdgeImpulseBatchEditLabelsOperator(
        task_id="t", category="training", labels=["wave"], label="waving"
    ).execute(make_context())
    assert result["job_id"] is None
    assert result["affected"] == 4
    assert em.jobs() == []


def test_batch_relabel_big_selection_waits_on_the_job(em):
    em.configure(batch_sync_limit=2)
    result = EdgeImpulseBatchEditLabelsOperator(
        task_id="t", category="training", labels=["wave"], label="waving"
    ).execute(make_context())
    assert result["job_id"] is not None
    assert len(em.jobs()) == 1


def test_batch_relabel_without_any_filter_is_refused(em):
    with pytest.raises(ValueError, match="allow_all"):
        EdgeImpulseBatchEditLabelsOperator(task_id="t", category="training", label="x").execute(make_context())


def test_create_impulse_from_a_json_file(em, tmp_path):
    definition = json.loads((Path(__file__).parents[2] / "dags" / "impulses" / "gestures.json").read_text())
    path = tmp_path / "impulse.json"
    path.write_text(json.dumps(definition))
    impulse_id = EdgeImpulseCreateImpulseOperator(task_id="t", definition=str(path)).execute(make_context())
    assert isinstance(impulse_id, int)


def test_create_impulse_refuses_a_definition_without_blocks(em):
    with pytest.raises(ValueError, match="learnBlocks"):
        EdgeImpulseCreateImpulseOperator(task_id="t", definition={"inputBlocks": [], "dspBlocks": []}).execute(
            make_context()
        )


def test_upload_globs_and_reports_sample_ids(em, tmp_path):
    for n in range(3):
        (tmp_path / f"idle.{n}.json").write_text('{"payload": {"values": [[1]]}}')
    result = EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(tmp_path / "*.json")).execute(make_context())
    assert result["uploaded"] == 3
    assert len(result["sample_ids"]) == 3


def test_upload_with_no_matching_file_fails_before_sending(em, tmp_path):
    with pytest.raises(ValueError, match="paths"):
        EdgeImpulseUploadSamplesOperator(task_id="t", paths=str(tmp_path / "*.wav")).execute(make_context())
    assert em.requests()["total"] == 0


def test_templated_fields_render(em):
    from airflow.providers.common.compat.sdk import DAG

    with DAG("render_check", schedule=None):
        op = EdgeImpulseTrainOperator(task_id="t", learn_block="{{ params.block }}", params={"block": "Classifier"})
    op.render_template_fields({"params": {"block": "Classifier"}})
    assert op.learn_block == "Classifier"
