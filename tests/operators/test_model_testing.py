"""Model testing: classify the test set, then the accuracy overall and per label, in every waiting mode."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from airflow_provider_edgeimpulse.operators.model_testing import (
    EdgeImpulseModelTestingError,
    EdgeImpulseModelTestingOperator,
    summarize_model_testing,
)
from tests.operators.fakes import make_context
from tests.operators.helpers import defer, defer_and_resume, fire, job_starts


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def test_deferred_model_testing_resumes_to_fetch_the_results(em):
    context = make_context()
    result = defer_and_resume(
        EdgeImpulseModelTestingOperator(task_id="test", model_variants=["int8", "float32"], deferrable=True), context
    )
    # Emulator: test samples are ids 13-18 and every fifth id is misclassified: sample 15, an "updown".
    assert (result["good"], result["bad"], result["total"]) == (5, 1, 6)
    assert result["accuracy"] == pytest.approx(5 / 6, abs=1e-3)
    assert {label: f["accuracy"] for label, f in result["per_label"].items()} == {
        "idle": 1.0,
        "updown": 0.5,
        "wave": 1.0,
    }
    assert result["job_id"] == context["ti"].xcoms["job_id"]
    assert set(result["per_label"]) == {"idle", "updown", "wave"}
    for figures in result["per_label"].values():
        assert figures["total"] == 2
        assert figures["accuracy"] == figures["good"] / 2
    assert result["labels"] == ["idle", "updown", "wave"]
    assert "Classifying data for float32 model..." in str(em.state.jobs.jobs[result["job_id"]].log)


def test_a_failing_classify_job_fails_with_its_log_tail(em):
    em.configure(job_outcome="failure")
    context = make_context()
    op = EdgeImpulseModelTestingOperator(task_id="test", deferrable=True)
    event = fire(defer(op, context))
    with pytest.raises(EdgeImpulseJobFailed, match="the model could not be loaded"):
        op.execute_complete(context, event.payload)
    assert "model_testing" not in context["ti"].xcoms


def test_the_threshold_fails_the_task_after_the_results_are_pushed(em):
    context = make_context()
    with pytest.raises(EdgeImpulseModelTestingError, match=r"below min_accuracy 0\.9"):
        EdgeImpulseModelTestingOperator(task_id="test", min_accuracy="0.9").execute(context)
    assert context["ti"].xcoms["model_testing"]["bad"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_variants": ["int4"]}, "int4"),
        ({"model_variants": "['int8', 3]"}, "model_variants"),
        ({"category": "holdout"}, "category must be one of"),
        ({"impulse_id": "first"}, "impulse_id"),
        ({"min_accuracy": 80}, "fraction between 0 and 1"),
        ({"min_accuracy": "high"}, "min_accuracy must be a number"),
    ],
)
def test_bad_arguments_fail_before_any_job(em, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EdgeImpulseModelTestingOperator(task_id="test", **kwargs).execute(make_context())
    assert job_starts(em) == 0


def test_templated_fields_render_and_are_coerced(em):
    op = EdgeImpulseModelTestingOperator(
        task_id="test", model_variants="{{ params.variants }}", min_accuracy="{{ params.gate }}", category="testing"
    )
    op.render_template_fields({"params": {"variants": ["float32"], "gate": 0.5}})
    assert op.model_variants == "['float32']"
    assert op.min_accuracy == "0.5"
    result = op.execute(make_context())
    assert result["accuracy"] > 0.5


def test_the_summary_prefers_studios_scores_and_tolerates_missing_parts():
    summary = summarize_model_testing(
        {
            "accuracy": {
                "totalSummary": {"good": 9, "bad": 1},
                "summaryPerClass": {"a": {"good": 9, "bad": 0}, "b": {"good": 0, "bad": 1}, "c": {}},
                "accuracyScore": 0.87,
                "mseScore": 0.2,
            }
        }
    )
    assert summary["accuracy"] == 0.87
    assert summary["mse"] == 0.2
    assert summary["per_label"]["c"] == {"good": 0, "bad": 0, "total": 0, "accuracy": None}
    assert summary["labels"] == ["a", "b", "c"]
    empty = summarize_model_testing({})
    assert empty["accuracy"] is None
    assert empty["per_label"] == {}
