"""
Edge Impulse operators.

The names below load on first use: DAG files import this package on every parse, and each operator module
pulls in Airflow's operator machinery, so nothing is imported until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.operators.data import (
        EdgeImpulseBatchEditLabelsOperator,
        EdgeImpulseUploadSamplesOperator,
    )
    from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
    from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
    from airflow_provider_edgeimpulse.operators.job import EdgeImpulseRunJobOperator
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

_PACKAGE = "airflow_provider_edgeimpulse.operators"
_LAZY = {
    "EdgeImpulseRunJobOperator": "job",
    "EdgeImpulseRetrainOperator": "training",
    "EdgeImpulseTrainOperator": "training",
    "EdgeImpulseGenerateFeaturesOperator": "training",
    "EdgeImpulseModelTestingOperator": "model_testing",
    "EdgeImpulseBuildDeploymentOperator": "deployment",
    "EdgeImpulseStartEONTunerOperator": "tuner",
    "EdgeImpulseSetTunerPrimaryOperator": "tuner",
    "EdgeImpulseBatchEditLabelsOperator": "data",
    "EdgeImpulseUploadSamplesOperator": "data",
    "EdgeImpulseCreateImpulseOperator": "impulse",
}

__all__ = [
    "EdgeImpulseBatchEditLabelsOperator",
    "EdgeImpulseBuildDeploymentOperator",
    "EdgeImpulseCreateImpulseOperator",
    "EdgeImpulseGenerateFeaturesOperator",
    "EdgeImpulseModelTestingOperator",
    "EdgeImpulseRetrainOperator",
    "EdgeImpulseRunJobOperator",
    "EdgeImpulseSetTunerPrimaryOperator",
    "EdgeImpulseStartEONTunerOperator",
    "EdgeImpulseTrainOperator",
    "EdgeImpulseUploadSamplesOperator",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{_PACKAGE}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
