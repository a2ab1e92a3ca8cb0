"""Retrain, train one learn block, generate one DSP block's features: deferred, blocking and in dag.test() runs."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from airflow_provider_edgeimpulse.operators.training import (
    EdgeImpulseGenerateFeaturesOperator,
    EdgeImpulseRetrainOperator,
    EdgeImpulseTrainOperator,
)
from tests.airflow_compat import ENDS_IN_TRIGGER
from tests.operators.fakes import make_context
from tests.operators.helpers import MODES, defer, fire, job_starts, run_dag, states, xcom


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_training_dag_renders_every_argument_and_pushes_job_xcoms(em, mode):
    anomaly_params = {"axes": [0, 1, 2], "minimumConfidenceRating": 0.3}
    conf = {"learn_block": "Anomaly detection", "training_params": anomaly_params, "impulse_id": "1"}
    dag_run = run_dag(f"ei_ops_training_{mode}", conf)
    assert str(dag_run.state) == "success", states(dag_run)
    keys = {j["key"] for j in em.jobs()}
    assert keys == {"dsp-3", "anomaly-5", "retrain-1"}, "each task started the job its rendered arguments name"
    for task_id in ("generate_features", "train", "retrain"):
        result = xcom(dag_run, task_id)
        assert result["success"] is True
        assert result["status"] == "success"
        job_id = xcom(dag_run, task_id, "job_id")
        assert job_id == result["job_id"]
        assert xcom(dag_run, task_id, "studio_url") == f"{em.url}/studio/{em.project_id}/jobs/{job_id}"
    # calculate_feature_importance="{{ params.importance }}" rendered to "True" and reached the job.
    assert any("feature importance" in line for line in xcom(dag_run, "generate_features")["log_tail"])


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_a_failing_training_job_fails_the_task_but_keeps_its_job_xcoms(em, mode):
    em.configure(job_outcome="failure")
    dag_run = run_dag(f"ei_ops_failing_{mode}")
    assert states(dag_run) == {"train": "failed"}
    (job,) = em.jobs()
    assert xcom(dag_run, "train", "job_id") == job["id"]
    assert xcom(dag_run, "train", "return_value") is None


def test_retrain_deferred_ends_with_the_outcome(em):
    context = make_context()
    op = EdgeImpulseRetrainOperator(task_id="retrain", impulse_id=1, deferrable=True)
    trigger = defer(op, context)
    event = fire(trigger)
    if ENDS_IN_TRIGGER:
        assert trigger.end_task_on_success is True, "nothing is left to do on a worker after a retrain"
        assert event.xcoms["job_id"] == context["ti"].xcoms["job_id"]
        outcome = event.xcoms["return_value"]
    else:
        assert trigger.end_task_on_success is False, "Airflow 2 cannot end a task from the triggerer"
        outcome = op.execute_complete(context, event.payload)
    assert outcome["success"] is True
    assert outcome["job_id"] == context["ti"].xcoms["job_id"]


def test_a_failing_train_job_fails_with_the_log_tail_after_a_deferral(em):
    em.configure(job_outcome="failure")
    context = make_context()
    op = EdgeImpulseTrainOperator(task_id="train", learn_block_id="4", deferrable=True)
    event = fire(defer(op, context))
    assert event.payload["status"] == "failure"
    with pytest.raises(EdgeImpulseJobFailed, match="Last log lines") as err:
        op.execute_complete(context, event.payload)
    assert "loss became NaN" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of learn_block"),
        ({"learn_block": "Classifier", "learn_block_id": 4}, "exactly one of learn_block"),
        ({"learn_block_id": 99}, "no learn block with that id"),
        ({"learn_block_id": "four"}, "learn_block_id must be an integer"),
        ({"learn_block": "Classifier", "training_params": "[1, 2]"}, "training_params must be a dict"),
        ({"learn_block": "Classifier", "training_params": 5}, "training_params must be a dict"),
    ],
)
def test_bad_training_arguments_fail_before_any_job(em, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EdgeImpulseTrainOperator(task_id="train", **kwargs).execute(make_context())
    assert job_starts(em) == 0


def test_an_unknown_learn_block_name_lists_the_known_names(em):
    with pytest.raises(ValueError, match="learn_block='Classifer'") as err:
        EdgeImpulseTrainOperator(task_id="train", learn_block="Classifer").execute(make_context())
    assert "'Classifier', 'Anomaly detection'" in str(err.value)
    assert job_starts(em) == 0


def test_a_learn_block_is_found_by_its_title_too(em):
    result = EdgeImpulseTrainOperator(task_id="train", learn_block="Classification").execute(make_context())
    assert result["success"] is True
    assert [j["key"] for j in em.jobs()] == ["keras-4"]


def test_a_learn_block_of_another_type_is_refused(em):
    em.state.project.impulse["learnBlocks"].append(  # type: ignore[index]
        {"id": 9, "type": "vlm", "name": "Regressor", "dsp": [3], "title": "Regression"}
    )
    with pytest.raises(ValueError, match="keras\\* and anomaly\\*"):
        EdgeImpulseTrainOperator(task_id="train", learn_block="Regressor").execute(make_context())
    assert job_starts(em) == 0


def test_a_project_without_an_impulse_is_refused(em):
    em.state.project.impulse = None
    with pytest.raises(ValueError, match="has no impulse"):
        EdgeImpulseGenerateFeaturesOperator(task_id="features", dsp_block_id=3).execute(make_context())
    assert job_starts(em) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dsp_block": "MFCC"}, "Known names: 'Spectral features'"),
        ({"dsp_block_id": 3, "calculate_feature_importance": "maybe"}, "calculate_feature_importance"),
        ({"dsp_block_id": 3, "skip_feature_explorer": 2}, "skip_feature_explorer"),
    ],
)
def test_bad_feature_arguments_fail_before_any_job(em, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EdgeImpulseGenerateFeaturesOperator(task_id="features", **kwargs).execute(make_context())
    assert job_starts(em) == 0


def test_generate_features_sends_the_options(em):
    result = EdgeImpulseGenerateFeaturesOperator(
        task_id="features", dsp_block="Spectral features", skip_feature_explorer="true"
    ).execute(make_context())
    assert "Skipping feature explorer" in result["log_tail"]


@pytest.mark.parametrize("impulse_id", ["zero", 0, True])
def test_retrain_refuses_a_bad_impulse_id(em, impulse_id):
    with pytest.raises(ValueError, match="impulse_id"):
        EdgeImpulseRetrainOperator(task_id="retrain", impulse_id=impulse_id).execute(make_context())
    assert job_starts(em) == 0


def test_retrain_of_an_impulse_the_project_lacks_fails_with_studios_error(em):
    with pytest.raises(Exception, match="Impulse 7 not found"):
        EdgeImpulseRetrainOperator(task_id="retrain", impulse_id="7").execute(make_context())
    assert em.jobs() == []
