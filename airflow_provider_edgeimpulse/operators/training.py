"""Jobs that (re)build the impulse: retrain everything, train one learn block, generate one DSP block's features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeimpulse import validation as _params
from airflow_provider_edgeimpulse.hooks import job_requests
from airflow_provider_edgeimpulse.operators._blocks import resolve_block
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator, JobRequest

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


class EdgeImpulseRetrainOperator(EdgeImpulseRunJobOperator):
    """
    Retrain the whole impulse (features and every learn block) with its last settings: ``jobs/retrain``.

    :param impulse_id: the impulse to retrain; the project's default impulse when omitted. Templated.

    The common parameters (``edgeimpulse_conn_id``, ``project_id``, ``wait_for_completion``, ``deferrable``,
    ``timeout``, ``safety_interval``, ...) are those of :class:`EdgeImpulseRunJobOperator`.

    :return: the job outcome (``job_id``, ``status``, ``success``, ``finished``, ``log_tail``, ``job``).
    """

    template_fields: Sequence[str] = ("project_id", "timeout", "impulse_id")

    def __init__(self, *, impulse_id: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.impulse_id = impulse_id

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        impulse_id = _params.optional_int("impulse_id", self.impulse_id, minimum=1)
        return job_requests.retrain(impulse_id)


class EdgeImpulseTrainOperator(EdgeImpulseRunJobOperator):
    """
    Train one learn block of the impulse: ``jobs/train/keras/{id}`` or ``jobs/train/anomaly/{id}``.

    The endpoint follows the block's type (``keras*`` or ``anomaly*``), read from the impulse before the job
    starts, so an unknown block fails the task without starting anything.

    :param learn_block: the learn block's name (or title) as shown in Studio. Templated.
    :param learn_block_id: the learn block's id, instead of ``learn_block``. Templated.
    :param training_params: the training request body: for Keras blocks ``trainingCycles``, ``learningRate``, ...
        (all optional); for anomaly blocks ``axes``, ``minimumConfidenceRating``, ``clusterCount``. Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: the job outcome (``job_id``, ``status``, ``success``, ``finished``, ``log_tail``, ``job``).
    """

    template_fields: Sequence[str] = ("project_id", "timeout", "learn_block", "learn_block_id", "training_params")
    template_fields_renderers = {"training_params": "json"}

    def __init__(
        self,
        *,
        learn_block: str | None = None,
        learn_block_id: int | str | None = None,
        training_params: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.learn_block = learn_block
        self.learn_block_id = learn_block_id
        self.training_params = training_params

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        body = _params.optional_dict("training_params", self.training_params) or {}
        block = resolve_block(hook, "learnBlocks", self.learn_block, self.learn_block_id)
        kind = str(block.get("type") or "")
        if kind.startswith("keras"):
            endpoint = "keras"
        elif kind.startswith("anomaly"):
            endpoint = "anomaly"
            body = _anomaly_body(body, block)
        else:
            raise ValueError(
                f"Learn block {block.get('name')!r} (id {block.get('id')}) is of type {kind!r}; this operator trains "
                "keras* and anomaly* blocks only (use EdgeImpulseRetrainOperator to retrain the whole impulse)"
            )
        self.log.info("Training %s learn block %r (id %s)", endpoint, block.get("name"), block.get("id"))
        return job_requests.train(endpoint, int(block["id"]), body)


def _anomaly_body(body: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """Studio's anomaly training request requires ``axes`` and ``minimumConfidenceRating``: check before starting."""
    missing = [key for key in ("axes", "minimumConfidenceRating") if body.get(key) is None]
    if missing:
        raise ValueError(
            f"training_params for anomaly block {block.get('name')!r} (id {block.get('id')}) must have "
            f"{' and '.join(missing)} (axes: the indexes of the DSP features to train on; minimumConfidenceRating: "
            f"a number); got keys {sorted(body)}"
        )
    axes = _params.optional_int_list("training_params.axes", body["axes"])
    rating = _params.optional_number("training_params.minimumConfidenceRating", body["minimumConfidenceRating"])
    return {**body, "axes": axes, "minimumConfidenceRating": rating}


class EdgeImpulseGenerateFeaturesOperator(EdgeImpulseRunJobOperator):
    """
    Generate the features of one DSP block: ``jobs/generate-features``.

    :param dsp_block: the DSP block's name (or title) as shown in Studio. Templated.
    :param dsp_block_id: the DSP block's id, instead of ``dsp_block``. Templated.
    :param calculate_feature_importance: also compute feature importance. Templated.
    :param skip_feature_explorer: skip building the feature explorer (faster on large datasets). Templated.

    Common parameters: see :class:`EdgeImpulseRunJobOperator`.

    :return: the job outcome (``job_id``, ``status``, ``success``, ``finished``, ``log_tail``, ``job``).
    """

    template_fields: Sequence[str] = (
        "project_id",
        "timeout",
        "dsp_block",
        "dsp_block_id",
        "calculate_feature_importance",
        "skip_feature_explorer",
    )

    def __init__(
        self,
        *,
        dsp_block: str | None = None,
        dsp_block_id: int | str | None = None,
        calculate_feature_importance: bool | str | None = None,
        skip_feature_explorer: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dsp_block = dsp_block
        self.dsp_block_id = dsp_block_id
        self.calculate_feature_importance = calculate_feature_importance
        self.skip_feature_explorer = skip_feature_explorer

    def job_request(self, hook: EdgeImpulseHook, context: Context) -> JobRequest:
        importance = _params.optional_bool("calculate_feature_importance", self.calculate_feature_importance)
        skip_explorer = _params.optional_bool("skip_feature_explorer", self.skip_feature_explorer)
        block = resolve_block(hook, "dspBlocks", self.dsp_block, self.dsp_block_id)
        self.log.info("Generating features of DSP block %r (id %s)", block.get("name"), block.get("id"))
        return job_requests.generate_features(int(block["id"]), importance, skip_explorer)
