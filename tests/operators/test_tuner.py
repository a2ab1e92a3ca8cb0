"""The EON Tuner: configure and start a search; adopt a given trial or the best one by a metric."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from airflow_provider_edgeimpulse.operators.tuner import (
    EdgeImpulseSetTunerPrimaryOperator,
    EdgeImpulseStartEONTunerOperator,
)
from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor
from tests.operators.fakes import make_context
from tests.operators.helpers import MODES, defer, defer_and_resume, fire, job_starts, run_dag, states, xcom

DEVICE = "cortex-m4f-80mhz"
CONFIG_ROUTE = "POST /v1/api/{projectId}/optimize/config"


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def start(**kwargs: Any) -> int:
    kwargs.setdefault("target_device", DEVICE)
    kwargs.setdefault("target_latency", 100)
    return EdgeImpulseStartEONTunerOperator(task_id="start_tuner", **kwargs).execute(make_context())


def finished_run(em: Any, trials: int = 4) -> int:
    """A tuner run that has finished. Emulator trial i: accuracy 0.78 + 0.035 * (3i mod 6), latency 4 + 3i ms."""
    run_id = start(tuning_max_trials=trials, wait_for_completion=True)
    assert em.state.project.tuner_runs[run_id].running is False
    return run_id


def adopt(**kwargs: Any) -> Any:
    kwargs.setdefault("trial_id", "best")
    return EdgeImpulseSetTunerPrimaryOperator(task_id="adopt", **kwargs).execute(make_context())


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_tune_then_adopt_the_lowest_latency_trial_in_a_dag_run(em, mode):
    dag_run = run_dag(f"ei_ops_tuner_{mode}", {"trials": 3, "metric": "latency"})
    assert str(dag_run.state) == "success", states(dag_run)
    run_id = xcom(dag_run, "start_tuner")
    assert isinstance(run_id, int), "the coordinator job id itself, in every mode"
    assert xcom(dag_run, "start_tuner", "studio_url") == f"{em.url}/studio/{em.project_id}/tuner/{run_id}"
    config = em.state.project.optimize_config
    assert (config["targetDevice"], config["targetLatency"], config["tuningMaxTrials"]) == ({"name": DEVICE}, 100, 3)
    adopted = xcom(dag_run, "adopt")
    assert adopted["success"] is True
    assert (adopted["trial_id"], adopted["metric"], adopted["value"]) == (f"trial_{run_id}_0", "latency", 4.0)
    for key in ("trial_id", "metric", "value"):
        assert xcom(dag_run, "adopt", key) == adopted[key]
    assert em.state.project.impulse["name"] == "EON Tuner trial 1"


def test_start_returns_the_run_id_at_once_by_default(em):
    em.configure(job_duration=None)
    context = make_context()
    run_id = EdgeImpulseStartEONTunerOperator(
        task_id="start_tuner",
        target_device={"name": DEVICE, "ram": "65536"},
        target_latency="50",
        tuning_algorithm="bayesian",
        optimize_config={"earlyStopping": True, "name": "nightly"},
        tuner_name="nightly",
    ).execute(context)
    assert context["ti"].xcoms["job_id"] == run_id
    assert context["ti"].xcoms["studio_url"].endswith(f"/tuner/{run_id}")
    (job,) = em.jobs()
    assert (job["id"], job["finished"]) == (run_id, None), "still searching: the sensor waits for it"
    config = em.state.project.optimize_config
    assert config["targetDevice"] == {"name": DEVICE, "ram": 65536}
    assert (config["targetLatency"], config["tuningAlgorithm"], config["earlyStopping"]) == (50, "bayesian", True)


def test_start_deferred_with_wait_resumes_to_return_the_run_id(em):
    op = EdgeImpulseStartEONTunerOperator(
        task_id="start_tuner", target_device=DEVICE, target_latency=100, wait_for_completion=True, deferrable=True
    )
    run_id = defer_and_resume(op, make_context())
    assert run_id == em.jobs()[0]["id"]


def test_without_settings_the_search_keeps_the_studio_config(em):
    em.configure(job_duration=None)
    run_id = EdgeImpulseStartEONTunerOperator(task_id="start_tuner").execute(make_context())
    assert isinstance(run_id, int)
    assert CONFIG_ROUTE not in em.requests()["by_route"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_device": DEVICE}, "needs targetLatency"),
        ({"target_latency": 10}, "needs targetDevice"),
        ({"optimize_config": {"tuningWorkers": 2}}, "needs targetDevice and targetLatency"),
        ({"target_device": DEVICE, "target_latency": 10, "optimize_config": {"targetLatency": 20}}, "contradicts"),
        ({"target_device": DEVICE, "target_latency": "soon"}, "target_latency must be an integer"),
        ({"target_device": DEVICE, "target_latency": 10, "tuning_algorithm": "genetic"}, "tuning_algorithm"),
        ({"target_device": {"ram": 1}, "target_latency": 10}, "target_device must be a device name"),
        ({"target_device": {"name": "m4", "flash": 1}, "target_latency": 10}, "unknown keys \\['flash'\\]"),
        ({"target_device": DEVICE, "target_latency": 10, "optimize_config": "[1]"}, "optimize_config must be a dict"),
        ({"optimize_config": {"targetDevice": DEVICE, "targetLatency": 5}}, "targetDevice'\\] must be a dict"),
    ],
)
def test_bad_tuner_settings_fail_before_anything_is_sent(em, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EdgeImpulseStartEONTunerOperator(task_id="start_tuner", **kwargs).execute(make_context())
    assert em.requests()["total"] == 0


def test_best_by_accuracy_takes_the_first_of_equals(em):
    run_id = finished_run(em)
    result = adopt(tuner_coordinator_job_id=str(run_id))
    # Trials 1 and 3 share the best validation accuracy (0.885): the first one wins.
    assert (result["trial_id"], result["metric"], result["value"]) == (f"trial_{run_id}_1", "accuracy", 0.885)


def test_a_path_takes_its_natural_mode_by_its_last_part_or_needs_one(em):
    run_id = finished_run(em)
    result = adopt(tuner_coordinator_job_id=run_id, metric="devicePerformance.ram")
    assert (result["trial_id"], result["value"]) == (f"trial_{run_id}_0", 6144), "ram: the smallest is best"
    cell = "metrics.validation.float32.confusionMatrix.0.0"
    with pytest.raises(ValueError, match="metric_mode \\('max' or 'min'\\) is required"):
        adopt(tuner_coordinator_job_id=run_id, metric=cell)
    result = adopt(tuner_coordinator_job_id=run_id, metric=cell, metric_mode="max")
    assert (result["trial_id"], result["value"]) == (f"trial_{run_id}_1", pytest.approx(88.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "smiles"}, "metric 'smiles' is unknown"),
        (
            {"metric": "accuracy", "model_variant": "int8"},
            r"variant 'int8'; variants with validation figures: \['float32'\]",
        ),
        ({"metric": "metrics.validation.float32.f1", "metric_mode": "max"}, "no completed EON Tuner trial reports"),
        ({"metric_mode": "sideways"}, "metric_mode must be 'max' or 'min'"),
        ({"model_variant": "int4"}, "model_variant must be one of"),
        ({"trial_id": "trial_nope"}, "is not a trial of EON Tuner run"),
    ],
)
def test_a_choice_that_cannot_be_made_starts_nothing(em, kwargs, message):
    run_id = finished_run(em)
    before = job_starts(em)
    with pytest.raises(ValueError, match=message):
        adopt(tuner_coordinator_job_id=run_id, **kwargs)
    assert job_starts(em) == before


def test_best_needs_the_run_id(em):
    with pytest.raises(ValueError, match="needs tuner_coordinator_job_id"):
        adopt()
    assert em.requests()["total"] == 0


def test_no_completed_trial_is_a_clear_error(em):
    em.configure(tuner_trial_failures=2)
    run_id = finished_run(em, trials=2)
    with pytest.raises(ValueError, match=r"no completed trial.*2 failed"):
        adopt(tuner_coordinator_job_id=run_id)
    assert len(em.jobs()) == 1


def test_best_waits_for_the_search_to_finish_unless_told_otherwise(em):
    em.configure(job_duration=None)
    run_id = start(tuning_max_trials=3)
    with pytest.raises(ValueError, match="still searching"):
        adopt(tuner_coordinator_job_id=run_id)
    with pytest.raises(ValueError, match="no completed trial"):
        adopt(tuner_coordinator_job_id=run_id, require_finished="false")
    assert len(em.jobs()) == 1


def test_an_explicit_trial_is_checked_against_its_run(em):
    em.configure(job_duration=None)
    run_id = start(tuning_max_trials=3)
    with pytest.raises(ValueError, match="is 'running'; only a completed trial"):
        adopt(trial_id=f"trial_{run_id}_0", tuner_coordinator_job_id=run_id)
    em.finish_job(run_id, True)
    em.configure(job_duration=0.2)
    result = adopt(trial_id=f"trial_{run_id}_2", tuner_coordinator_job_id=run_id, impulse_name="chosen")
    assert (result["trial_id"], result["metric"], result["value"]) == (f"trial_{run_id}_2", None, None)
    assert em.state.project.impulse["name"] == "chosen"


def test_the_choice_survives_a_deferral_through_xcom(em):
    run_id = finished_run(em)
    context = make_context()
    op = EdgeImpulseSetTunerPrimaryOperator(
        task_id="adopt", trial_id="best", tuner_coordinator_job_id=run_id, metric="rom", deferrable=True
    )
    trigger = defer(op, context)
    assert trigger.end_task_on_success is False
    event = fire(trigger)
    # The worker that resumes is a fresh operator: it knows the choice only from this try's XComs.
    fresh = EdgeImpulseSetTunerPrimaryOperator(
        task_id="adopt", trial_id="best", tuner_coordinator_job_id=run_id, metric="rom"
    )
    result = fresh.execute_complete(context, event.payload)
    assert (result["trial_id"], result["metric"], result["value"]) == (f"trial_{run_id}_0", "rom", 24576.0)
    assert context["ti"].xcoms["trial_id"] == f"trial_{run_id}_0"


def test_a_failing_adopt_job_fails_with_its_log_tail(em):
    run_id = finished_run(em)
    em.configure(job_outcome="failure")
    context = make_context()
    op = EdgeImpulseSetTunerPrimaryOperator(
        task_id="adopt", trial_id="best", tuner_coordinator_job_id=run_id, deferrable=True
    )
    event = fire(defer(op, context))
    with pytest.raises(EdgeImpulseJobFailed, match=f"Could not apply trial trial_{run_id}_1"):
        op.execute_complete(context, event.payload)


def test_tuner_templated_fields_render(em):
    op = EdgeImpulseSetTunerPrimaryOperator(
        task_id="adopt",
        trial_id="{{ params.trial }}",
        tuner_coordinator_job_id="{{ params.run }}",
        metric="{{ params.metric }}",
        metric_mode="{{ params.mode }}",
        model_variant="{{ params.variant }}",
        require_finished="{{ params.strict }}",
    )
    op.render_template_fields(
        {"params": {"trial": "best", "run": 7, "metric": "loss", "mode": "min", "variant": "int8", "strict": False}}
    )
    rendered = (op.trial_id, op.tuner_coordinator_job_id, op.metric, op.metric_mode, op.model_variant)
    assert (*rendered, op.require_finished) == ("best", "7", "loss", "min", "int8", "False")
    start_op = EdgeImpulseStartEONTunerOperator(task_id="s", optimize_config={"space": "{{ params.space }}"})
    start_op.render_template_fields({"params": {"space": "custom"}})
    assert start_op.optimize_config == {"space": "custom"}


def _best_by_the_sensor(run_id: int, **kwargs: Any) -> dict[str, Any]:
    done = EONTunerStateSensor(task_id="wait", tuner_coordinator_job_id=run_id, **kwargs).poke(make_context())
    assert done.is_done
    return done.xcom_value["best_trial"]


def test_the_sensor_and_the_operator_choose_the_same_trial_by_a_split_path(em):
    """A DAG hands the sensor's best trial to the operator: for one state both must choose the same trial."""
    run_id = finished_run(em)
    by_sensor = _best_by_the_sensor(run_id, metric="test.accuracy")
    result = adopt(tuner_coordinator_job_id=run_id, metric="test.accuracy")
    assert (result["trial_id"], result["value"]) == (by_sensor["trial_id"], by_sensor["value"])
    assert result["trial_id"] == f"trial_{run_id}_1", "trials 1 and 3 share the best test accuracy: the first wins"


def test_a_value_that_is_not_finite_is_never_the_best(em):
    run_id = finished_run(em)
    state_path = f"/optimize/{run_id}/state"
    served = requests.get(
        f"{em.url}/v1/api/{em.project_id}{state_path}", headers={"x-api-key": em.api_key}, timeout=10
    ).json()
    # 1e999 is valid JSON and reads as infinity: Studio's "no figure" must not become the best figure.
    text = json.dumps(served).replace('"accuracy": 0.78,', '"accuracy": 1e999,', 1)
    assert "1e999" in text
    em.fault(status=200, body=text, path=state_path, count=2)
    by_sensor = _best_by_the_sensor(run_id)
    result = adopt(tuner_coordinator_job_id=run_id)
    assert (result["trial_id"], result["value"]) == (by_sensor["trial_id"], by_sensor["value"])
    assert (result["trial_id"], result["value"]) == (f"trial_{run_id}_1", 0.885)


def test_the_old_name_mode_still_chooses_with_a_deprecation_warning(em):
    run_id = finished_run(em)
    with pytest.warns(AirflowProviderDeprecationWarning, match="metric_mode"):
        op = EdgeImpulseSetTunerPrimaryOperator(
            task_id="adopt", trial_id="best", tuner_coordinator_job_id=run_id, metric="accuracy", mode="min"
        )
    assert op.metric_mode == "min"
    result = op.execute(make_context())
    assert (result["trial_id"], result["value"]) == (f"trial_{run_id}_0", 0.78)
    with pytest.warns(AirflowProviderDeprecationWarning), pytest.raises(ValueError, match="disagree"):
        EdgeImpulseSetTunerPrimaryOperator(task_id="adopt", trial_id="best", metric_mode="max", mode="min")


def test_an_int8_run_is_chosen_by_its_int8_figures(em):
    run_id = start(tuning_max_trials=4, optimization_precision="int8", wait_for_completion=True)
    by_sensor = _best_by_the_sensor(run_id)
    result = adopt(tuner_coordinator_job_id=run_id)
    assert (result["trial_id"], result["value"]) == (f"trial_{run_id}_1", 0.875), "int8 loses a point to float32"
    assert (by_sensor["trial_id"], by_sensor["value"]) == (result["trial_id"], result["value"])
    with pytest.raises(ValueError, match=r"variant 'float32'; variants with validation figures: \['int8'\]"):
        adopt(tuner_coordinator_job_id=run_id, model_variant="float32")
    waited = EONTunerStateSensor(task_id="wait", tuner_coordinator_job_id=run_id, model_variant="float32")
    summary = waited.poke(make_context()).xcom_value
    assert summary["best_trial"] is None and "figures: ['int8']" in summary["best_trial_error"]
    assert summary["model_variant"] == "float32"
