"""
Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Airflow 3.2+ builds the connection form from ``conn-fields`` and ``ui-field-behaviour`` here, without
importing the hook; older Airflow asks the hook's ``get_connection_form_widgets``/``get_ui_field_behaviour``,
which reuse ``UI_FIELD_BEHAVIOUR`` so both stay in step.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_edgeimpulse import __version__

_PACKAGE = "airflow_provider_edgeimpulse"
HOOK_CLASS = f"{_PACKAGE}.hooks.edgeimpulse.EdgeImpulseHook"
OPERATOR_MODULES = (
    "job",
    "training",
    "model_testing",
    "model_gate",
    "deployment",
    "tuner",
    "data",
    "impulse",
    "versions",
)
SENSOR_MODULES = ("job", "tuner", "new_samples")
TRIGGER_MODULES = ("job", "job_watch", "tuner", "new_samples")

# Port is hidden: the Studio URL carries it when needed (http://127.0.0.1:4810). Schema has no meaning here.
# The raw Extra editor is hidden because every extra the provider reads has its own field below.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "extra"],
    "relabeling": {
        "host": "Studio URL",
        "login": "Username (JWT only)",
        "password": "API key or password",
    },
    "placeholders": {
        "host": "https://studio.edgeimpulse.com",
        "login": "only with auth type jwt or jwt_cookie",
        "password": "ei_... project API key (or your password with a JWT auth type)",
    },
}

# Extras. The secret one is named ``api_key`` so that Airflow's REST API masks it by key name too (it masks
# extras by name, not by the ``format: password`` that hides it in the form).
CONN_FIELDS: dict[str, Any] = {
    "project_id": {
        "label": "Project ID",
        "description": "The Edge Impulse project. Optional with an API key (found from the key); needed for JWT.",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "auth_type": {
        "label": "Auth type",
        "description": "api_key: the Password field holds a project API key. jwt / jwt_cookie: log in with "
        "Username and Password and send the session token as the x-jwt-token header or the jwt cookie.",
        "schema": {"type": ["string", "null"], "enum": ["api_key", "jwt", "jwt_cookie"], "default": "api_key"},
    },
    "api_key": {
        "label": "API key",
        "description": "A project API key (ei_...), if you prefer it here rather than in the Password field.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "ingestion_host": {
        "label": "Ingestion URL",
        "description": "The ingestion service for uploads. Default: https://ingestion.edgeimpulse.com",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Request timeout (seconds)",
        "description": "How long to wait for each answer from Edge Impulse. Default: 60.",
        "schema": {"type": ["number", "null"], "minimum": 1, "default": 60},
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "description": "Accept an http:// Studio or ingestion URL that is not this machine (localhost, 127.0.0.0/8, "
        "::1 always are). The API key or password then travels unencrypted: only on a trusted network.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "max_response_mib": {
        "label": "Largest answer (MiB)",
        "description": "A REST answer larger than this is refused rather than read into memory (downloads are not "
        "limited by it). Default: 64.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": 64},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-edgeimpulse",
        "name": "Edge Impulse",
        "description": "Run Edge Impulse Studio work (ingest, relabel, train, tune, test, deploy) from Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Edge Impulse",
                "external-doc-url": "https://docs.edgeimpulse.com/reference/edge-impulse-api",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Edge Impulse",
                "python-modules": ["airflow_provider_edgeimpulse.hooks.edgeimpulse"],
            }
        ],
        "operators": [
            {
                "integration-name": "Edge Impulse",
                "python-modules": [f"{_PACKAGE}.operators.{name}" for name in OPERATOR_MODULES],
            }
        ],
        "sensors": [
            {
                "integration-name": "Edge Impulse",
                "python-modules": [f"{_PACKAGE}.sensors.{name}" for name in SENSOR_MODULES],
            }
        ],
        "triggers": [
            {
                "integration-name": "Edge Impulse",
                "python-modules": [f"{_PACKAGE}.triggers.{name}" for name in TRIGGER_MODULES],
            }
        ],
        "extra-links": [f"{_PACKAGE}.links.EdgeImpulseStudioLink"],
        "connection-types": [
            {
                "connection-type": "edgeimpulse",
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Edge Impulse",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
