"""Where the job sensor's trigger lived: trigger rows written by earlier versions name this class, so it stays."""

from __future__ import annotations

from typing import Any

from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger


class EdgeImpulseJobWatchTrigger(EdgeImpulseJobTrigger):
    """``EdgeImpulseJobTrigger(cancel_on_kill=False)``: a wait that leaves the job running when its task is killed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "cancel_on_kill": False})
