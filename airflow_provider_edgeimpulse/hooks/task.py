"""What every Edge Impulse task holds, operator or sensor: the connection, the project and the hook built from them."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook


class EdgeImpulseTaskMixin:
    """
    Mixed into the operator and sensor bases, before Airflow's class: ``edgeimpulse_conn_id`` and ``project_id``
    (set by ``set_connection``), the ``hook`` built from them, and the colour of every Edge Impulse task.
    """

    ui_color = "#4ab6a6"
    edgeimpulse_conn_id: str
    project_id: int | str | None

    def set_connection(self, edgeimpulse_conn_id: str, project_id: int | str | None) -> None:
        self.edgeimpulse_conn_id = edgeimpulse_conn_id
        self.project_id = project_id

    @cached_property
    def hook(self) -> EdgeImpulseHook:
        # Imported here: DAG files import operators and sensors on every parse; the hook pulls in requests and more.
        from airflow_provider_edgeimpulse.hooks.connection import hook_for_task

        return hook_for_task(self.edgeimpulse_conn_id, self.project_id)
