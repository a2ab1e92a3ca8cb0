"""jobs/tuner.py: reading EON Tuner states (hand-made, and the emulator's own), picking the best trial, the summary."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from airflow_provider_edgeimpulse.jobs import tuner


def keras(accuracy: float, loss: float) -> dict[str, Any]:
    """A KerasModelMetadataMetrics block as Studio sends it: scalars plus bulky tables."""
    return {
        "type": "float32",
        "accuracy": accuracy,
        "loss": loss,
        "confusionMatrix": [[90.0, 10.0], [5.0, 95.0]],
        "report": {"0": {"precision": 0.9}},
        "onDevicePerformance": [{"mcu": "cortex-m4f-80mhz", "latency": 4.0}],
        "profilingJobId": 99,
        "isSupportedOnMcu": True,
    }


def trial(trial_id: Any, status: Any, **metrics: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": trial_id, "name": f"trial {trial_id}", "status": status, "blocks": [], "impulse": {}}
    if metrics:
        body["metrics"] = {
            "validation": {"float32": keras(metrics["acc"], metrics["loss"])},
            "test": {"float32": keras(metrics["test_acc"], 1 - metrics["test_acc"])},
        }
        if "int8_acc" in metrics:
            body["metrics"]["validation"]["int8"] = keras(metrics["int8_acc"], 0.5)
        body["devicePerformance"] = {"latency": metrics["latency"], "ram": 1000, "rom": 5000}
    return body


def state(*trials: dict[str, Any], running: Any = False, **extra: Any) -> dict[str, Any]:
    return {
        "success": True,
        "config": {"targetLatency": 100},
        "status": {"numCompletedTrials": 2, "numFailedTrials": 1, "status": "completed"},
        "tunerJobIsRunning": running,
        "trials": list(trials),
        "tunerCoordinatorJobId": 12,
        "tunerJobId": 13,
        **extra,
    }


RUN = state(
    trial("a", "completed", acc=0.80, loss=0.30, test_acc=0.90, latency=9, int8_acc=0.79),
    trial("b", "completed", acc=0.92, loss=0.20, test_acc=0.85, latency=4, int8_acc=0.95),
    trial("c", "failed"),
    trial("d", "completed", acc=0.92, loss=0.25, test_acc=0.70, latency=7),
)


@pytest.mark.parametrize(
    ("metric", "mode", "expected"),
    [
        ("accuracy", "max", ("b", 0.92)),  # b and d tie: the first one wins
        ("loss", "min", ("b", 0.20)),
        ("accuracy", "min", ("a", 0.80)),
        ("test_accuracy", "max", ("a", 0.90)),
        ("test.accuracy", "max", ("a", 0.90)),
        ("validation.loss", "max", ("a", 0.30)),
        ("validation.int8.accuracy", "max", ("b", 0.95)),
        ("metrics.validation.int8.accuracy", "max", ("b", 0.95)),
        ("metrics.test.accuracy", "min", ("d", 0.70)),
        ("latency", "min", ("b", 4.0)),
        ("devicePerformance.latency", "max", ("a", 9.0)),
    ],
)
def test_best_trial_by_name_and_by_path(metric, mode, expected):
    assert tuner.best_trial(RUN, metric, mode) == expected


def test_the_runs_precision_picks_the_variant_unless_the_path_names_one():
    int8_run = copy.deepcopy(RUN)
    int8_run["config"]["optimizationPrecision"] = "int8"
    # d has no int8 metrics, so it drops out; b has the best int8 accuracy.
    assert tuner.best_trial(int8_run, "accuracy", "max") == ("b", 0.95)
    assert tuner.best_trial(int8_run, "validation.float32.accuracy", "max") == ("b", 0.92)
    assert tuner.best_trial(RUN, "accuracy", "max", variant="int8") == ("b", 0.95)


@pytest.mark.parametrize(
    ("bad_state", "metric", "mode", "match"),
    [
        (state(trial("c", "failed"), trial("e", "pending")), "accuracy", "max", "no completed trial"),
        (RUN, "test.f1", "max", r"no completed EON Tuner trial reports the metric 'test.f1'.*validation\.float32"),
        (RUN, "acuracy", "max", "metric 'acuracy' is unknown"),
        (RUN, "validation..loss", "min", "empty part"),
        (RUN, "", "max", "non-empty"),
        (RUN, "accuracy", "biggest", "metric_mode must be 'max' or 'min'"),
        (RUN, "validation.f1", None, "metric_mode .* is required"),
    ],
)
def test_best_trial_says_why_there_is_no_answer(bad_state, metric, mode, match):
    with pytest.raises(ValueError, match=match):
        tuner.best_trial(bad_state, metric, mode)


def test_values_that_are_not_numbers_never_win():
    odd = state(
        {"id": "nan", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": float("nan")}}}},
        {"id": "inf", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": float("inf")}}}},
        {"id": "bool", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": True}}}},
        {"id": "text", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": "0.99"}}}},
        {"id": "ok", "status": "completed", "metrics": {"validation": {"float32": {"accuracy": 0.5}}}},
        {"id": None, "status": "completed", "metrics": {"validation": {"float32": {"accuracy": 0.99}}}},
    )
    assert tuner.best_trial(odd, "accuracy", "max") == ("ok", 0.5)


def test_a_variant_without_figures_names_the_variants_that_have_them():
    int8_only = state(
        {"id": "a", "status": "completed", "metrics": {"validation": {"int8": keras(0.7, 0.3)}}},
        {"id": "b", "status": "completed", "metrics": {"validation": {"akida": keras(0.6, 0.4)}}},
    )
    with pytest.raises(ValueError, match=r"validation figures: \['int8', 'akida'\].*'validation.int8.loss'"):
        tuner.best_trial(int8_only, "loss", "min", variant="float32")
    assert tuner.best_trial(int8_only, "validation.int8.loss", "min", variant="float32") == ("a", 0.3)
    with pytest.raises(ValueError, match="model_variant must be one of"):
        tuner.best_trial(RUN, "accuracy", "max", variant="fp16")


def test_natural_modes_and_required_ones():
    assert tuner.resolve_mode("accuracy", None) == "max"
    assert tuner.resolve_mode("test.loss", None) == "min"
    assert tuner.resolve_mode("rom", None) == "min"
    assert tuner.resolve_mode("loss", " MAX ") == "max"
    with pytest.raises(ValueError, match="required"):
        tuner.resolve_mode("validation.f1", None)


def test_summary_of_a_run_with_unknown_enums_does_not_crash():
    weird = {
        "tunerJobIsRunning": False,
        "status": {"status": "brand-new-status", "numCompletedTrials": 2, "numMysteryThings": 7, "note": "x"},
        "trials": [
            trial("a", "completed", acc=0.8, loss=0.2, test_acc=0.7, latency=3),
            trial("b", "quantum"),
            trial("c", None),
            trial("d", 42),
            "not a trial",
            trial("e", "completed", acc=0.9, loss=0.1, test_acc=0.6, latency=5),
        ],
        "workers": [{"workerId": "w", "status": "hibernating"}],
        "projectDataType": "smell",
        "tuningAlgorithm": "telepathy",
    }
    summary = tuner.summarize(weird, "accuracy", "max")
    assert summary["trial_counts"] == {"pending": 0, "running": 0, "completed": 2, "failed": 0, "other": 3}
    assert summary["run_status"] == "brand-new-status"
    assert summary["status_counts"] == {"numCompletedTrials": 2, "numMysteryThings": 7}
    assert [t["status"] for t in summary["trials"]] == ["completed", "quantum", None, "42", "completed"]
    assert summary["best_trial"] == {"trial_id": "e", "value": 0.9, "metric": "accuracy", "mode": "max"}
    assert tuner.run_failure(weird) is None
    assert "3 in other states" in tuner.progress_line(weird)
    json.dumps(summary, allow_nan=False)


@pytest.mark.parametrize("value", [None, "maybe", 0, "false", True])
def test_only_an_explicit_false_means_the_run_is_over(value):
    assert tuner.is_running({"tunerJobIsRunning": value}) is True
    assert tuner.is_running({"tunerJobIsRunning": False}) is False


def test_a_state_without_trials_or_status_is_summarised_too():
    summary = tuner.summarize({"tunerJobIsRunning": True, "trials": "nope", "status": None}, "loss", "min")
    assert summary["trials"] == []
    assert summary["best_trial"] is None
    assert "no completed trial" in summary["best_trial_error"]
    assert summary["running"] is True


def test_summary_content_is_compact():
    summary = tuner.summarize(RUN, "accuracy", "max")
    assert summary["tuner_coordinator_job_id"] == 12
    assert summary["tuner_job_id"] == 13
    assert summary["trial_counts"] == {"pending": 0, "running": 0, "completed": 3, "failed": 1, "other": 0}
    first = summary["trials"][0]
    assert first == {
        "id": "a",
        "name": "trial a",
        "status": "completed",
        "value": 0.8,
        "metrics": {
            "validation": {"float32": {"accuracy": 0.8, "loss": 0.3}, "int8": {"accuracy": 0.79, "loss": 0.5}},
            "test": {"float32": {"accuracy": 0.9, "loss": pytest.approx(0.1)}},
            "devicePerformance": {"latency": 9.0, "ram": 1000.0, "rom": 5000.0},
        },
    }
    assert summary["trials"][2] == {"id": "c", "name": "trial c", "status": "failed", "value": None, "metrics": {}}
    assert "confusionMatrix" not in json.dumps(summary)


@pytest.mark.parametrize(
    ("the_state", "match"),
    [
        (state(trial("a", "failed"), trial("b", "failed"), trial("c", "failed")), "every one of the 3"),
        (
            state(trial("a", "failed"), trial("b", "pending")),
            r"no EON Tuner trial completed \(1 pending, 0 running, 0 completed, 1 failed\)",
        ),
        (state(), "no EON Tuner trial completed"),
        ({**RUN, "jobError": "OOM killed"}, "ended with an error: OOM killed"),
    ],
)
def test_run_failure(the_state, match):
    failure = tuner.run_failure(the_state)
    assert failure is not None
    assert re.search(match, failure), failure


def test_the_emulators_state_reads_as_documented():
    """The emulator's trials: validation and test metrics for float32, devicePerformance latency/ram/rom."""
    from airflow_provider_edgeimpulse.emulator.tuner import DEFAULT_CONFIG, TunerRun

    impulse = {"inputBlocks": [], "dspBlocks": [], "learnBlocks": [{"type": "keras"}]}
    run = TunerRun.create(7, 1, DEFAULT_CONFIG, impulse, trials=4, failures=1)
    for step in run.steps():
        step()
    run.end(True, cancelled=False, reason="")
    emulated = json.loads(json.dumps(run.state_json()))
    summary = tuner.summarize(emulated, "accuracy", "max")
    assert summary["trial_counts"]["completed"] == 3 and summary["trial_counts"]["failed"] == 1
    by_accuracy = max((t for t in run.trials if t.status == "completed"), key=lambda t: t.accuracy)
    assert summary["best_trial"]["trial_id"] == by_accuracy.id
    assert summary["best_trial"]["value"] == by_accuracy.accuracy
    assert set(summary["trials"][0]["metrics"]) == {"validation", "test", "devicePerformance"}
    fastest = min((t for t in run.trials if t.status == "completed"), key=lambda t: t.latency_ms)
    assert tuner.best_trial(emulated, "latency", "min") == (fastest.id, float(fastest.latency_ms))
