"""The job trigger of ``EdgeImpulseJobSensor``: it watches a job it did not start, so nothing of its cancels it."""

from __future__ import annotations

from airflow_provider_edgeimpulse.triggers.job import EdgeImpulseJobTrigger


class EdgeImpulseJobWatchTrigger(EdgeImpulseJobTrigger):
    """
    ``EdgeImpulseJobTrigger`` whose ``on_kill`` leaves the job running (use it with ``cancel_on_timeout=False``).

    The parent cancels the job when a user kills the deferred task: right for the operators, which started it,
    wrong for a sensor watching a job started in Studio or by another DAG. Once the parent takes a
    ``cancel_on_kill`` flag, this class can become a thin alias of it with the flag off (the classpath stays, so
    triggers already in the database keep loading).
    """

    async def on_kill(self) -> None:
        self.log.info("Edge Impulse job %s keeps running: the sensor only watched it", self.job_id)
