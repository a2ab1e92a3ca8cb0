"""Edge Impulse sensors: ``from airflow_provider_edgeimpulse.sensors import <name>`` (loaded on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_edgeimpulse.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.sensors.job import EdgeImpulseJobSensor
    from airflow_provider_edgeimpulse.sensors.new_samples import EdgeImpulseNewSamplesSensor
    from airflow_provider_edgeimpulse.sensors.tuner import EONTunerStateSensor

_LAZY = {
    "EdgeImpulseJobSensor": "job",
    "EONTunerStateSensor": "tuner",
    "EdgeImpulseNewSamplesSensor": "new_samples",
}

__all__ = [
    "EONTunerStateSensor",
    "EdgeImpulseJobSensor",
    "EdgeImpulseNewSamplesSensor",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
