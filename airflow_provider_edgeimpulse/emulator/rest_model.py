"""What Studio knows about the trained model: accuracy per variant and the Keras block's on-device figures."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_edgeimpulse.emulator.clock import iso
from airflow_provider_edgeimpulse.emulator.errors import not_found
from airflow_provider_edgeimpulse.emulator.model import VARIANT_ACCURACY_OFFSET
from airflow_provider_edgeimpulse.emulator.rest_data import classify_result
from airflow_provider_edgeimpulse.emulator.rest_jobs import learn_block_of
from airflow_provider_edgeimpulse.emulator.rest_project import check_impulse_id
from airflow_provider_edgeimpulse.emulator.web_util import ok, state_of


async def classify_metrics(request: web.Request) -> web.Response:
    """``MetricsAllVariantsResponse``: the accuracy of the last model testing, per variant it covered."""
    check_impulse_id(request)
    project = state_of(request).project
    if not project.classified:
        raise not_found("No model testing results yet, run a classify job first")
    result = classify_result(project)
    accuracy = result["accuracy"]["accuracyScore"]
    metrics = [
        {"variant": variant, "accuracy": project.model.variant_accuracy(accuracy, variant)}
        for variant in result["availableVariants"]
    ]
    return ok({"metrics": metrics})


async def keras_metadata(request: web.Request) -> web.Response:
    """``KerasModelMetadataResponse`` in the generated client's shape (it also requires ``thresholds``)."""
    block = learn_block_of(request, ("keras",))
    project = state_of(request).project
    if not project.impulse_complete or project.model_trained is None:
        raise not_found(f"Learn block {block['id']} has no trained model yet, train it first")
    summary = classify_result(project)["accuracy"]
    labels: list[str] = summary["allLabels"]
    matrix = [[float(summary["confusionMatrixValues"][a].get(p, 0)) for p in labels] for a in labels]
    accuracy = summary["accuracyScore"]
    exclude_labels = request.query.get("excludeLabels") == "true"
    metrics: list[dict[str, Any]] = [
        {
            "type": variant,
            "loss": round(1.0 - accuracy, 4),
            "accuracy": project.model.variant_accuracy(accuracy, variant),
            "confusionMatrix": matrix,
            "report": {},
            "onDevicePerformance": project.model.on_device_performance(variant),
            "visualization": "featureExplorer",
            "isSupportedOnMcu": True,
            "additionalMetrics": [],
        }
        for variant in VARIANT_ACCURACY_OFFSET
    ]
    return ok(
        {
            "created": iso(project.model_trained),
            "layers": [
                {
                    "input": {"shape": 33, "name": "x_input:0", "type": "<dtype: 'float32'>"},
                    "output": {"shape": 20, "name": "dense/Relu:0", "type": "<dtype: 'float32'>"},
                },
                {
                    "input": {"shape": 20, "name": "dense/Relu:0", "type": "<dtype: 'float32'>"},
                    "output": {"shape": len(labels), "name": "y_pred/Softmax:0", "type": "<dtype: 'float32'>"},
                },
            ],
            "classNames": labels,
            "labels": [] if exclude_labels else labels,
            "availableModelTypes": list(VARIANT_ACCURACY_OFFSET),
            "recommendedModelType": "int8",
            "modelValidationMetrics": metrics,
            "hasTrainedModel": True,
            "mode": "classification",
            "imageInputScaling": "0..1",
            "thresholds": [],
        }
    )


def add_routes(app: web.Application) -> None:
    base = r"/v1/api/{projectId:\d+}"
    app.router.add_get(f"{base}/classify/all/metrics", classify_metrics)
    app.router.add_get(base + r"/training/keras/{learnId:\d+}/metadata", keras_metadata)
