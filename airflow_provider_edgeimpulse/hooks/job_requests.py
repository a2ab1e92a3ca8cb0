"""
Each job's start call as ``(path, query, body)``: one home for both the hook's typed ``start_*`` methods and the
operators, which build the call at the start of the task and send it later (after re-attaching is ruled out).

No I/O here, and no validation: callers check their arguments first (the operators with errors that name the
field). A ``None`` query value is left out of the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A job's start call, ``(path, query, body)``.
JobRequest = tuple[str, dict[str, Any] | None, Any]


def retrain(impulse_id: int | None = None) -> JobRequest:
    return "jobs/retrain", {"impulseId": impulse_id}, None


def train(kind: str, learn_id: int, params: dict[str, Any] | None = None) -> JobRequest:
    """``kind`` is ``keras`` or ``anomaly``: the learn block's family, which names the endpoint."""
    return f"jobs/train/{kind}/{int(learn_id)}", None, dict(params or {})


def generate_features(
    dsp_id: int, calculate_feature_importance: bool | None = None, skip_feature_explorer: bool | None = None
) -> JobRequest:
    body: dict[str, Any] = {"dspId": int(dsp_id)}
    if calculate_feature_importance is not None:
        body["calculateFeatureImportance"] = calculate_feature_importance
    if skip_feature_explorer is not None:
        body["skipFeatureExplorer"] = skip_feature_explorer
    return "jobs/generate-features", None, body


def classify(
    impulse_id: int | None = None, category: str | None = None, model_variants: Sequence[str] | None = None
) -> JobRequest:
    body: dict[str, Any] = {}
    if model_variants is not None:
        body["modelVariants"] = list(model_variants)
    return "jobs/classify", {"impulseId": impulse_id, "category": category}, body


def evaluate(impulse_id: int | None = None) -> JobRequest:
    return "jobs/evaluate", {"impulseId": impulse_id}, None


def build_deployment(
    format: str, engine: str, model_type: str | None = None, impulse_id: int | None = None
) -> JobRequest:
    body: dict[str, Any] = {"engine": engine}
    if model_type is not None:
        body["modelType"] = model_type
    return "jobs/build-ondevice-model", {"type": format, "impulseId": impulse_id}, body


def optimize(extended_from_job_id: int | None = None) -> JobRequest:
    return "jobs/optimize", {"extendedFromJobId": extended_from_job_id}, None


def set_tuner_primary(trial_id: str, name: str | None = None) -> JobRequest:
    return "jobs/set-tuner-primary-job", {"trialId": str(trial_id)}, ({"name": name} if name is not None else {})


def create_version(
    description: str,
    make_public: bool = False,
    run_model_testing_while_versioning: bool | None = None,
    bucket_id: int | None = None,
) -> JobRequest:
    """``ProjectVersionRequest``; left out, ``runModelTestingWhileVersioning`` is the project's last choice."""
    body: dict[str, Any] = {"description": description, "makePublic": make_public}
    if run_model_testing_while_versioning is not None:
        body["runModelTestingWhileVersioning"] = run_model_testing_while_versioning
    if bucket_id is not None:
        body["bucketId"] = int(bucket_id)
    return "jobs/version", None, body
