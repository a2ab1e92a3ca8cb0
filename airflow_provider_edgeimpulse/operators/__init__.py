"""Edge Impulse operators: ``from airflow_provider_edgeimpulse.operators import <name>`` (loaded on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_edgeimpulse.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.operators.data import (
        EdgeImpulseBatchEditLabelsOperator,
        EdgeImpulseUploadSamplesOperator,
    )
    from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
    from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
    from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator
    from airflow_provider_edgeimpulse.operators.model_gate import EdgeImpulseModelGateOperator
    from airflow_provider_edgeimpulse.operators.model_testing import EdgeImpulseModelTestingOperator
    from airflow_provider_edgeimpulse.operators.training import (
        EdgeImpulseGenerateFeaturesOperator,
        EdgeImpulseRetrainOperator,
        EdgeImpulseTrainOperator,
    )
    from airflow_provider_edgeimpulse.operators.tuner import (
        EdgeImpulseSetTunerPrimaryOperator,
        EdgeImpulseStartEONTunerOperator,
    )
    from airflow_provider_edgeimpulse.operators.versions import EdgeImpulseCreateVersionOperator

_LAZY = {
    "EdgeImpulseRunJobOperator": "job",
    "EdgeImpulseRetrainOperator": "training",
    "EdgeImpulseTrainOperator": "training",
    "EdgeImpulseGenerateFeaturesOperator": "training",
    "EdgeImpulseModelTestingOperator": "model_testing",
    "EdgeImpulseModelGateOperator": "model_gate",
    "EdgeImpulseBuildDeploymentOperator": "deployment",
    "EdgeImpulseStartEONTunerOperator": "tuner",
    "EdgeImpulseSetTunerPrimaryOperator": "tuner",
    "EdgeImpulseBatchEditLabelsOperator": "data",
    "EdgeImpulseUploadSamplesOperator": "data",
    "EdgeImpulseCreateImpulseOperator": "impulse",
    "EdgeImpulseCreateVersionOperator": "versions",
}

__all__ = [
    "EdgeImpulseBatchEditLabelsOperator",
    "EdgeImpulseBuildDeploymentOperator",
    "EdgeImpulseCreateImpulseOperator",
    "EdgeImpulseCreateVersionOperator",
    "EdgeImpulseGenerateFeaturesOperator",
    "EdgeImpulseModelGateOperator",
    "EdgeImpulseModelTestingOperator",
    "EdgeImpulseRetrainOperator",
    "EdgeImpulseRunJobOperator",
    "EdgeImpulseSetTunerPrimaryOperator",
    "EdgeImpulseStartEONTunerOperator",
    "EdgeImpulseTrainOperator",
    "EdgeImpulseUploadSamplesOperator",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
