"""The EON Tuner: configure and start a search; adopt a given trial or the best one by a metric."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from airflow_provider_edgeimpulse.operators.tuner import (
    EdgeImpulseSetTunerPrimaryOperator,
    EdgeImpulseStartEONTunerOperator,
)
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


def test_best_by_a_dotted_path_needs_a_mode(em):
    run_id = finished_run(em)
    with pytest.raises(ValueError, match="mode \\('max' or 'min'\\) is required"):
        adopt(tuner_coordinator_job_id=run_id, metric="devicePerformance.ram")
    result = adopt(tuner_coordinator_job_id=run_id, metric="devicePerformance.ram", mode="max")
    assert (result["trial_id"], result["value"]) == (f"trial_{run_id}_3", 6144 + 3 * 2048)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "smiles"}, "metric 'smiles' is unknown"),
        ({"metric": "accuracy", "model_variant": "int8"}, "for model variant 'int8'.*metrics available"),
        ({"metric": "metrics.validation.float32.f1", "mode": "max"}, "not reported by any completed trial"),
        ({"mode": "sideways"}, "mode must be one of"),
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
    with pytest.raises(ValueError, match=r"no completed trial.*'failed': 2"):
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
        mode="{{ params.mode }}",
        require_finished="{{ params.strict }}",
    )
    op.render_template_fields({"params": {"trial": "best", "run": 7, "metric": "loss", "mode": "min", "strict": False}})
    assert (op.trial_id, op.tuner_coordinator_job_id, op.metric, op.mode, op.require_finished) == (
        "best",
        "7",
        "loss",
        "min",
        "False",
    )
    start_op = EdgeImpulseStartEONTunerOperator(task_id="s", optimize_config={"space": "{{ params.space }}"})
    start_op.render_template_fields({"params": {"space": "custom"}})
    assert start_op.optimize_config == {"space": "custom"}
