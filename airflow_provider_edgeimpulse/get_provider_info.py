"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_edgeimpulse import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-edgeimpulse",
        "name": "Edge Impulse",
        "description": "Run Edge Impulse Studio work (ingest, relabel, train, tune, test, deploy) from Airflow.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "edgeimpulse",
                "hook-class-name": "airflow_provider_edgeimpulse.hooks.edgeimpulse.EdgeImpulseHook",
            }
        ],
    }
