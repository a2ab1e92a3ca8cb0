"""Edge Impulse triggers: ``from airflow_provider_edgeimpulse.triggers import <name>`` (loaded on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_edgeimpulse.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger
    from airflow_provider_edgeimpulse.triggers.job_watch import EdgeImpulseJobWatchTrigger
    from airflow_provider_edgeimpulse.triggers.new_samples import (
        EdgeImpulseNewSamplesSensorTrigger,
        EdgeImpulseNewSamplesTrigger,
    )
    from airflow_provider_edgeimpulse.triggers.tuner import EONTunerStateTrigger

_LAZY = {
    "EdgeImpulseJobTrigger": "job",
    "EdgeImpulseJobWatchTrigger": "job_watch",
    "EONTunerStateTrigger": "tuner",
    "EdgeImpulseNewSamplesTrigger": "new_samples",
    "EdgeImpulseNewSamplesSensorTrigger": "new_samples",
}

__all__ = [
    "EONTunerStateTrigger",
    "EdgeImpulseJobTrigger",
    "EdgeImpulseJobWatchTrigger",
    "EdgeImpulseNewSamplesSensorTrigger",
    "EdgeImpulseNewSamplesTrigger",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
