"""The trained model's figures (accuracy per variant, on-device latency/RAM/ROM) and the knob that changes them."""

from __future__ import annotations

import pytest
from edgeimpulse_api.models import KerasModelVariantEnum

from airflow_provider_edgeimpulse.emulator.project import KERAS_BLOCK_ID
from tests.emulator.conftest import Studio

METADATA = f"training/keras/{KERAS_BLOCK_ID}/metadata"


def _retrain(studio: Studio) -> None:
    studio.wait(studio.start("jobs/retrain"))
    studio.wait(studio.start("jobs/classify", params={"category": "testing"}, json={}))


def _metrics(studio: Studio, validate) -> dict[str, float]:
    body = validate("GenericApiResponse", studio.get("classify/all/metrics"))
    assert body.success
    metrics = studio.get("classify/all/metrics").json()["metrics"]
    # MetricsForModelVariant: a variant of KerasModelVariantEnum, an optional number.
    return {KerasModelVariantEnum(m["variant"]).value: m["accuracy"] for m in metrics}


def _device(metadata, variant: str, mcu: str):
    metrics = next(m for m in metadata.model_validation_metrics if m.type.value == variant)
    return next(d for d in metrics.on_device_performance if d.mcu == mcu)


def test_variant_metrics_agree_with_model_testing(studio: Studio, validate) -> None:
    assert studio.get("classify/all/metrics").status_code == 404
    studio.wait(studio.start("jobs/classify", params={"category": "testing"}, json={}))
    accuracy = studio.ok("GET", "classify/all/result")["accuracy"]["accuracyScore"]
    assert _metrics(studio, validate) == {"int8": pytest.approx(accuracy - 0.01), "float32": accuracy}


def test_keras_metadata_has_per_device_and_variant_figures(studio: Studio, validate) -> None:
    metadata = validate("KerasModelMetadataResponse", studio.get(METADATA))
    assert [m.type.value for m in metadata.model_validation_metrics] == ["int8", "float32"]
    assert metadata.class_names == ["idle", "updown", "wave"]
    int8, float32 = (_device(metadata, v, "cortex-m4f-80mhz") for v in ("int8", "float32"))
    assert int8.is_default and int8.has_performance
    assert int8.latency < float32.latency
    assert int8.eon.ram_required < float32.eon.ram_required
    assert int8.eon.rom_required < int8.tflite.rom_required
    assert len({d.mcu for d in metadata.model_validation_metrics[0].on_device_performance}) >= 2
    assert validate("KerasModelMetadataResponse", studio.get(METADATA, params={"excludeLabels": "true"})).labels == []


def test_metadata_of_an_unknown_or_non_keras_block(studio: Studio) -> None:
    assert studio.get("training/keras/99/metadata").status_code == 404
    assert studio.get("training/keras/5/metadata").status_code == 400  # block 5 is the anomaly block


def test_a_retrain_makes_the_model_the_knob_asks_for(emulator, studio: Studio, validate) -> None:
    studio.wait(studio.start("jobs/classify", params={"category": "testing"}, json={}))
    before = _metrics(studio, validate)
    old_device = _device(validate("KerasModelMetadataResponse", studio.get(METADATA)), "int8", "cortex-m4f-80mhz")
    answer = emulator.next_model(
        miss_every=2, wrong_labels=["wave"], variant_accuracy_drop={"int8": 0.2}, size_factor=2, latency_factor=3
    )
    assert answer["next"]["wrong_labels"] == ["wave"]
    assert _metrics(studio, validate) == before  # nothing changes until a training job succeeds
    _retrain(studio)
    per_class = studio.ok("GET", "classify/all/result")["accuracy"]["summaryPerClass"]
    assert per_class["wave"] == {"good": 0, "bad": 2}
    after = _metrics(studio, validate)
    assert after["float32"] < before["float32"]
    assert after["int8"] == pytest.approx(after["float32"] - 0.21)
    device = _device(validate("KerasModelMetadataResponse", studio.get(METADATA)), "int8", "cortex-m4f-80mhz")
    assert device.eon.ram_required == 2 * old_device.eon.ram_required
    assert device.eon.rom_required == 2 * old_device.eon.rom_required
    assert device.latency == pytest.approx(3 * old_device.latency)


def test_a_failed_retrain_keeps_the_model(emulator, studio: Studio, validate) -> None:
    emulator.next_model(miss_every=1)
    emulator.configure(job_outcome="failure")
    studio.wait(studio.start("jobs/retrain"))
    emulator.configure(job_outcome="success")
    studio.wait(studio.start("jobs/classify", params={"category": "testing"}, json={}))
    assert _metrics(studio, validate)["float32"] == pytest.approx(5 / 6, abs=1e-3)


@pytest.mark.parametrize(
    "body",
    [
        {"miss_every": 0},
        {"wrong_labels": "wave"},
        {"variant_accuracy_drop": {"int4": 0.1}},
        {"size_factor": 0},
        {"x": 1},
    ],
)
def test_bad_model_knobs_are_refused(studio: Studio, body) -> None:
    response = studio.post(f"{studio.handle.url}/_emulator/next-model", json=body)
    assert response.status_code == 400
    assert next(iter(body)) in response.json()["error"]
