"""The "Edge Impulse Studio" button on a task: opens the job (or EON Tuner run) the task started."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

# Importable from here, where it was first defined.
from airflow_provider_edgeimpulse.studio import studio_job_url as studio_job_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

STUDIO_URL_XCOM_KEY = "studio_url"


class EdgeImpulseStudioLink(BaseOperatorLink):
    name = "Edge Impulse Studio"

    @property
    def xcom_key(self) -> str:
        # The operator pushes the URL under this key as soon as the job starts, so Airflow 3's UI (which
        # reads the link straight from XCom) and get_link below agree, even for a task that failed.
        return STUDIO_URL_XCOM_KEY

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=STUDIO_URL_XCOM_KEY, ti_key=ti_key) or ""
