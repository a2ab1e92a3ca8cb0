"""Model testing: classify the test set, then hand downstream the accuracy, overall and per label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.hooks import job_requests
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator, JobRequest
from airflow_provider_edgeimpulse.studio import MODEL_VARIANTS, SAMPLE_CATEGORIES

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

# accuracy block key -> result key; Studio sets only the scores that fit the project's kind of model.
_SCORES = {
    "accuracyScore": "accuracy",
    "balancedAccuracyScore": "balanced_accuracy",
    "anomalyAccuracyScore": "anomaly_accuracy",
    "noAnomalyAccuracyScore": "no_anomaly_accuracy",
    "mseScore": "mse",
}


class EdgeImpulseModelTestingError(AirflowException):
    """Model testing ran, but its accuracy is below ``min_accuracy``."""


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def summarize_model_testing(results: dict[str, Any]) -> dict[str, Any]:
    """The small, XCom-friendly part of ``classify/all/result``: totals, scores and the per-label breakdown."""
    raw_block = results.get("accuracy")
    block: dict[str, Any] = raw_block if isinstance(raw_block, dict) else {}
    total = block.get("totalSummary") or {}
    good, bad = _count(total.get("good")), _count(total.get("bad"))
    per_label: dict[str, dict[str, Any]] = {}
    for label, counts in (block.get("summaryPerClass") or {}).items():
        counts = counts if isinstance(counts, dict) else {}
        label_good, label_bad = _count(counts.get("good")), _count(counts.get("bad"))
        seen = label_good + label_bad
        per_label[str(label)] = {
            "good": label_good,
            "bad": label_bad,
            "total": seen,
            "accuracy": round(label_good / seen, 6) if seen else None,
        }
    summary: dict[str, Any] = {
        "accuracy": round(good / (good + bad), 6) if good + bad else None,
        "good": good,
        "bad": bad,
        "total": good + bad,
        "per_label": per_label,
        "labels": list(block.get("allLabels") or per_label),
        "confusion_matrix": block.get("confusionMatrixValues") or {},
        "variants": list(results.get("availableVariants") or []),
    }
    for key, name in _SCORES.items():
        score = block.get(key)
        if isinstance(score, int | float) and not isinstance(score, bool):
            summary[name] = score  # Studio's own figure wins over the one counted from the totals
    return summary


class EdgeImpulseModelTestingOperator(EdgeImpulseRunJobOperator):
    """
    Classify the test set (``jobs/classify``), then read the results (``classify/all/result``).

    The task resumes on a worker after the job to fetch the results (``completes_in_trigger`` is off).

    :param impulse_id: the impulse to test; the project's default impulse when omitted. Templated.
    :param category: the samples to classify (``testing`` when omitted). Templated.
    :param model_variants: the model variants to classify with, some of ``int8``, ``float32``, ``akida``. Templated.
    :param min_accuracy: fail the task when the accuracy (0..1) is below this; the result is still pushed
        under the XCom key ``model_testing`` first. Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: ``{"job_id", "project_id", "accuracy", "good", "bad", "total", "per_label": {label: {"good",
        "bad", "total", "accuracy"}}, "labels", "confusion_matrix", "variants"}`` plus the other scores Studio
        reports (``balanced_accuracy``, ``mse``, ...). Accuracies are fractions between 0 and 1.
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "impulse_id",
        "category",
        "model_variants",
        "min_accuracy",
    )

    def __init__(
        self,
        *,
        impulse_id: int | str | None = None,
        category: str | None = None,
        model_variants: Sequence[str] | str | None = None,
        min_accuracy: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.impulse_id = impulse_id
        self.category = category
        self.model_variants = model_variants
        self.min_accuracy = min_accuracy

    def _min_accuracy(self) -> float | None:
        return _params.optional_fraction("min_accuracy", self.min_accuracy)

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        impulse_id = _params.optional_int("impulse_id", self.impulse_id, minimum=1)
        category = _params.optional_str("category", self.category, choices=SAMPLE_CATEGORIES)
        variants = _params.optional_str_list("model_variants", self.model_variants)
        unknown = [v for v in variants or [] if v not in MODEL_VARIANTS]
        if unknown:
            raise ValueError(f"model_variants: unknown variant(s) {unknown}; expected some of {list(MODEL_VARIANTS)}")
        self._min_accuracy()
        return job_requests.classify(impulse_id, category, variants or None)

    def job_result(self, hook: EdgeImpulseHook, outcome: dict[str, Any], context: Context) -> Any:
        # Runs on a fresh operator after a deferral: read the (rendered) arguments again, not state from execute.
        impulse_id = _params.optional_int("impulse_id", self.impulse_id, minimum=1)
        summary = summarize_model_testing(hook.get_model_testing_results(impulse_id))
        result = {"job_id": outcome.get("job_id"), "project_id": outcome.get("project_id"), **summary}
        accuracy = result.get("accuracy")
        self.log.info(
            "Model testing: accuracy %s (%s of %s windows right); per label: %s",
            accuracy,
            result["good"],
            result["total"],
            {label: figures["accuracy"] for label, figures in result["per_label"].items()},
        )
        threshold = self._min_accuracy()
        if threshold is not None and (accuracy is None or accuracy < threshold):
            context["ti"].xcom_push(key="model_testing", value=result)
            raise EdgeImpulseModelTestingError(
                f"Model testing accuracy {accuracy} is below min_accuracy {threshold} (job {outcome.get('job_id')})"
            )
        return result
