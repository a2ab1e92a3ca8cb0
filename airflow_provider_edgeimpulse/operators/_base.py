"""What every Edge Impulse operator shares: the connection, the project, the hook, the colour and the Studio link."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_edgeimpulse.hooks.task import EdgeImpulseTaskMixin
from airflow_provider_edgeimpulse.links import STUDIO_URL_XCOM_KEY, EdgeImpulseStudioLink
from airflow_provider_edgeimpulse.studio import DEFAULT_CONN_ID, studio_page_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class EdgeImpulseBaseOperator(EdgeImpulseTaskMixin, BaseOperator):
    """
    A task that talks to Edge Impulse; the job operator builds on it to run a job.

    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    """

    operator_extra_links = (EdgeImpulseStudioLink(),)

    def __init__(
        self,
        *,
        edgeimpulse_conn_id: str = DEFAULT_CONN_ID,
        project_id: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_connection(edgeimpulse_conn_id, project_id)

    def push_studio_url(self, context: Context, page: str) -> str:
        """XCom the Studio page the task worked on, for the "Edge Impulse Studio" button."""
        hook = self.hook
        url = studio_page_url(hook.studio_url, hook.project_id, page)
        context["ti"].xcom_push(key=STUDIO_URL_XCOM_KEY, value=url)
        return url
