"""The deployment gate against the emulator: a good model passes, a retrain made worse fails for each reason."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_edgeimpulse.operators.model_gate import (
    VERDICT_XCOM_KEY,
    EdgeImpulseModelGateError,
    EdgeImpulseModelGateOperator,
    label_f1,
)
from airflow_provider_edgeimpulse.operators.model_testing import EdgeImpulseModelTestingOperator
from airflow_provider_edgeimpulse.operators.training import EdgeImpulseRetrainOperator
from airflow_provider_edgeimpulse.operators.versions import EdgeImpulseCreateVersionOperator
from tests.operators.fakes import make_context

DEVICE = "cortex-m4f-80mhz"
# The seeded model on the emulator: 5 of 6 test samples right (one "updown" wrong); int8 loses 0.01; int8 on the
# Cortex-M4F: 6 ms, 4812 bytes of RAM and 27904 of ROM with EON.
ALL_CHECKS: dict[str, Any] = {
    "min_accuracy": 0.8,
    "min_label_accuracy": 0.5,
    "min_label_f1": 0.6,
    "min_variant_accuracy": {"int8": 0.8, "float32": 0.8},
    "device": DEVICE,
    "max_latency_ms": 10,
    "max_ram_bytes": 8 * 1024,
    "max_rom_bytes": 32 * 1024,
}


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def _test_model() -> None:
    EdgeImpulseModelTestingOperator(task_id="test", model_variants=["int8", "float32"]).execute(make_context())


def _retrain(em: Any, **profile: Any) -> None:
    """A retrain whose model is what ``profile`` asks the emulator for, then model testing on it."""
    em.next_model(**profile)
    EdgeImpulseRetrainOperator(task_id="retrain").execute(make_context())
    _test_model()


def _gate(**checks: Any) -> tuple[dict[str, Any] | None, dict[str, Any], Exception | None]:
    context = make_context()
    try:
        result = EdgeImpulseModelGateOperator(task_id="gate", **checks).execute(context)
    except Exception as err:  # the verdict must have been pushed either way
        return None, context["ti"].xcoms[VERDICT_XCOM_KEY], err
    return result, context["ti"].xcoms[VERDICT_XCOM_KEY], None


def _failed(verdict: dict[str, Any]) -> list[str]:
    return [c["name"] for c in verdict["checks"] if not c["passed"]]


def test_a_good_model_passes_every_check(em):
    _test_model()
    result, verdict, error = _gate(**ALL_CHECKS)
    assert error is None
    assert result == verdict
    assert verdict["passed"] is True and verdict["failed"] == []
    checks = {c["name"]: c for c in verdict["checks"]}
    assert checks["accuracy"] == {
        "name": "accuracy",
        "figure": pytest.approx(5 / 6, abs=1e-4),
        "limit": 0.8,
        "passed": True,
    }
    assert checks["label_accuracy[updown]"]["figure"] == 0.5
    assert checks["variant_accuracy[int8]"]["figure"] == pytest.approx(5 / 6 - 0.01, abs=1e-3)
    assert checks[f"latency_ms[{DEVICE}/int8/eon]"]["figure"] == 6.0
    assert checks[f"ram_bytes[{DEVICE}/int8/eon]"] == {
        "name": f"ram_bytes[{DEVICE}/int8/eon]",
        "figure": 4812.0,
        "limit": 8192.0,
        "passed": True,
    }
    assert len(verdict["checks"]) == 1 + 3 + 3 + 2 + 3
    json.dumps(verdict)  # XCom-friendly


@pytest.mark.parametrize(
    ("profile", "checks", "failing"),
    [
        ({"miss_every": 2}, {"min_accuracy": 0.8}, ["accuracy"]),
        ({"wrong_labels": ["wave"]}, {"min_label_accuracy": {"wave": 0.5, "idle": 0.5}}, ["label_accuracy[wave]"]),
        ({"wrong_labels": ["wave"]}, {"min_label_f1": 0.5}, ["label_f1[wave]"]),
        ({"variant_accuracy_drop": {"int8": 0.3}}, {"min_variant_accuracy": 0.75}, ["variant_accuracy[int8]"]),
        ({"latency_factor": 4}, {"device": DEVICE, "max_latency_ms": 10}, [f"latency_ms[{DEVICE}/int8/eon]"]),
        (
            {"size_factor": 2},
            {"device": "Cortex-M4F 80MHz", "max_ram_bytes": 8192},
            ["ram_bytes[Cortex-M4F 80MHz/int8/eon]"],
        ),
        ({"size_factor": 2}, {"device": DEVICE, "max_rom_bytes": 32768}, [f"rom_bytes[{DEVICE}/int8/eon]"]),
    ],
    ids=["accuracy", "label-accuracy", "label-f1", "variant", "latency", "ram", "rom"],
)
def test_a_worse_retrain_fails_the_gate_for_its_reason(em, profile, checks, failing, caplog, capsys):
    _test_model()
    _, before, error = _gate(**checks)
    assert error is None and before["passed"] is True  # the seeded model passes the same check
    _retrain(em, **profile)
    with caplog.at_level(logging.INFO):
        _, verdict, error = _gate(**checks)
    assert isinstance(error, EdgeImpulseModelGateError)
    assert isinstance(error, AirflowFailException)  # no retries: the figures would not change
    assert verdict["passed"] is False
    assert verdict["failed"] == failing == _failed(verdict)
    assert failing[0] in str(error)
    captured = capsys.readouterr()
    log = caplog.text + captured.out + captured.err  # Airflow 3 logs through structlog to the console
    assert f"Model gate failed: {failing[0]}" in log
    assert "roll back, restore the last good version" in log


def test_float32_budget_and_another_engine(em):
    _, verdict, error = _gate(
        device=DEVICE, device_variant="float32", engine="tflite", max_ram_bytes=10_000, max_latency_ms=25
    )
    assert isinstance(error, EdgeImpulseModelGateError)
    checks = {c["name"]: c for c in verdict["checks"]}
    assert checks[f"ram_bytes[{DEVICE}/float32/tflite]"]["figure"] == 10_240.0
    assert checks[f"latency_ms[{DEVICE}/float32/tflite]"]["passed"] is True


def test_no_regression_against_a_fixed_baseline(em):
    _test_model()
    _, first, _ = _gate(min_accuracy=0.5, min_variant_accuracy=0.5)
    baseline = first["figures"]
    assert set(baseline) == {"accuracy", "label_accuracy", "variant_accuracy"}
    _, same, error = _gate(baseline=baseline, max_drop=0)
    assert error is None and same["passed"]
    _retrain(em, miss_every=3)  # samples 15 and 18 wrong: 4 of 6, "wave" drops to 0.5
    _, verdict, error = _gate(baseline=json.dumps(baseline), max_drop="0.05")
    assert isinstance(error, EdgeImpulseModelGateError)
    assert verdict["failed"] == [
        "regression[accuracy]",
        "regression[label_accuracy][wave]",
        "regression[variant_accuracy][int8]",
        "regression[variant_accuracy][float32]",
    ]
    accuracy = verdict["checks"][0]
    assert accuracy["limit"] == pytest.approx(baseline["accuracy"] - 0.05)
    assert accuracy["figure"] == pytest.approx(4 / 6, abs=1e-4)
    # A drop the author allows passes.
    _, lenient, error = _gate(baseline=baseline, max_drop=0.5)
    assert error is None and lenient["passed"]


def _version(description: str) -> dict[str, Any]:
    return EdgeImpulseCreateVersionOperator(task_id="version", description=description).execute(make_context())


def test_no_regression_against_the_last_version_or_a_given_one(em):
    _test_model()
    good = _version("good model")
    _retrain(em, miss_every=3)  # 4 of 6 right instead of 5 of 6
    _version("worse model")
    _, verdict, error = _gate(baseline_version=str(good["version_id"]), max_drop=0.05)
    assert isinstance(error, EdgeImpulseModelGateError)
    assert verdict["failed"] == ["regression[accuracy]"]
    assert verdict["baseline"] == {
        "version_id": good["version_id"],
        "version": good["version"],
        "accuracy": pytest.approx(5 / 6, abs=1e-3),
    }
    assert verdict["checks"][0]["limit"] == pytest.approx(5 / 6 - 0.05, abs=1e-3)
    # The newest version holds the worse model: measured against it, the model has not regressed.
    _, last, error = _gate(baseline_version="last")
    assert error is None and last["passed"]
    assert last["baseline"]["version"] == good["version"] + 1


def test_last_version_without_any_version_compares_nothing(em):
    _test_model()
    _, verdict, error = _gate(baseline_version="last", min_accuracy=0.5)
    assert error is None and verdict["baseline"] is None
    assert [c["name"] for c in verdict["checks"]] == ["accuracy"]


def test_an_unknown_version_id_is_an_error(em):
    from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError

    _test_model()
    with pytest.raises(EdgeImpulseAPIError, match="no version with id 99"):
        EdgeImpulseModelGateOperator(task_id="gate", baseline_version=99).execute(make_context())


def test_templated_limits_render(em):
    _test_model()
    op = EdgeImpulseModelGateOperator(
        task_id="gate",
        min_accuracy="{{ params.acc }}",
        min_label_accuracy='{"idle": {{ params.acc }}}',
        device=DEVICE,
        max_ram_bytes="{{ params.ram }}",
    )
    op.render_template_fields({"params": {"acc": 0.9, "ram": 4000}})
    context = make_context()
    with pytest.raises(EdgeImpulseModelGateError):
        op.execute(context)
    assert context["ti"].xcoms[VERDICT_XCOM_KEY]["failed"] == ["accuracy", f"ram_bytes[{DEVICE}/int8/eon]"]


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (
            {"min_label_accuracy": {"walk": 0.5}},
            r"unknown label\(s\) \['walk'\]; the project has \['idle', 'updown', 'wave'\]",
        ),
        (
            {"min_variant_accuracy": {"akida": 0.5}},
            r"unknown variant\(s\) \['akida'\]; the project has \['int8', 'float32'\]",
        ),
        (
            {"device": "esp32", "max_ram_bytes": 1},
            r"'esp32' is not among what Studio reports: \['cortex-m4f-80mhz / Cortex-M4F",
        ),
        (
            {"device": DEVICE, "device_variant": "akida", "max_ram_bytes": 1},
            r"device_variant: 'akida' is not among .*int8",
        ),
        ({"baseline": {"label_accuracy": {"walk": 0.5}}}, r"baseline.label_accuracy: unknown name\(s\) \['walk'\]"),
    ],
)
def test_names_studio_does_not_report_are_clear_errors(em, checks, message):
    _test_model()
    with pytest.raises(ValueError, match=message):
        EdgeImpulseModelGateOperator(task_id="gate", **checks).execute(make_context())


def test_a_figure_studio_does_not_send_fails_closed(em):
    _test_model()
    em.fault(status=200, body=json.dumps({"success": True, "metrics": [{"variant": "int8"}]}), path="/metrics")
    _, verdict, error = _gate(min_variant_accuracy=0.5)
    assert isinstance(error, EdgeImpulseModelGateError)
    assert verdict["checks"] == [{"name": "variant_accuracy[int8]", "figure": None, "limit": 0.5, "passed": False}]


def test_f1_from_a_confusion_matrix():
    matrix = {"a": {"a": 2, "b": 0}, "b": {"a": 1, "b": 1}, "c": {"a": 0, "b": 0, "c": 0}}
    assert label_f1(matrix) == {"a": pytest.approx(0.8), "b": pytest.approx(2 / 3), "c": None}
