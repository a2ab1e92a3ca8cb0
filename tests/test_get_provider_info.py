"""The provider metadata: valid against Airflow's schemas, and found by Airflow's providers manager."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_edgeimpulse.get_provider_info import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent


def _schema(name: str) -> dict[str, Any]:
    return json.loads((AIRFLOW_DIR / name).read_text())


def test_valid_against_provider_info_schema() -> None:
    jsonschema.validate(get_provider_info(), _schema("provider_info.schema.json"))


def test_connection_type_valid_against_provider_yaml_schema() -> None:
    # provider_info.schema.json does not describe conn-fields/ui-field-behaviour; provider.yaml's schema does.
    item_schema = _schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    for conn_type in get_provider_info()["connection-types"]:
        jsonschema.validate(conn_type, item_schema)


def test_ui_field_behaviour_valid_for_the_form() -> None:
    behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    customized = {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    jsonschema.validate(customized, _schema("customized_form_field_behaviours.schema.json"))


def test_conn_fields_content() -> None:
    conn_type = get_provider_info()["connection-types"][0]
    assert conn_type["connection-type"] == "edgeimpulse"
    fields = conn_type["conn-fields"]
    assert set(fields) == {
        "project_id",
        "auth_type",
        "api_key",
        "ingestion_host",
        "timeout",
        "allow_insecure_http",
        "max_response_mib",
    }
    assert fields["allow_insecure_http"]["schema"]["default"] is False
    assert fields["auth_type"]["schema"]["enum"] == ["api_key", "jwt", "jwt_cookie"]
    assert fields["api_key"]["schema"]["format"] == "password"
    assert {"schema", "port", "extra"} <= set(conn_type["ui-field-behaviour"]["hidden-fields"])


def test_secret_extras_are_masked_by_key_name() -> None:
    """Airflow's REST API hides extras by key name only: every password-format field must have such a name."""
    from airflow.providers.common.compat.sdk import redact

    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    for name, field in fields.items():
        if field["schema"].get("format") == "password":
            assert redact("value", name) == "***", f"extra {name!r} is secret but its name is not masked"


def test_hooks_and_module_paths_import() -> None:
    import importlib

    info = get_provider_info()
    for hook in info["hooks"]:
        assert hook["integration-name"] == "Edge Impulse"
        for module in hook["python-modules"]:
            importlib.import_module(module)
    module, _, cls = info["connection-types"][0]["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), cls).conn_type == "edgeimpulse"


def test_providers_manager_finds_hook_and_connection_type() -> None:
    # A fresh interpreter: ProvidersManager is a process-wide singleton, other tests must not shape it.
    script = """
import json, warnings
warnings.simplefilter("ignore")
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
hook = pm.hooks.get("edgeimpulse")
widgets = sorted(k for k in pm.connection_form_widgets if k.startswith("extra__edgeimpulse__"))
print(json.dumps({
    "provider": "airflow-provider-edgeimpulse" in pm.providers,
    "hook_class": hook.hook_class_name if hook else None,
    "conn_id_attr": hook.connection_id_attribute_name if hook else None,
    "hook_name": hook.hook_name if hook else None,
    "testable": hook.connection_testable if hook else None,
    "widgets": widgets,
    "sensitive": [k for k in widgets if pm.connection_form_widgets[k].is_sensitive],
    "behaviour": pm.field_behaviours.get("edgeimpulse"),
}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["provider"] is True
    assert found["hook_class"] == "airflow_provider_edgeimpulse.hooks.edgeimpulse.EdgeImpulseHook"
    assert found["conn_id_attr"] == "edgeimpulse_conn_id"
    assert found["hook_name"] == "Edge Impulse"
    assert found["testable"] is True
    assert found["widgets"] == [
        f"extra__edgeimpulse__{name}"
        for name in sorted(
            [
                "allow_insecure_http",
                "api_key",
                "auth_type",
                "ingestion_host",
                "max_response_mib",
                "project_id",
                "timeout",
            ]
        )
    ]
    assert found["sensitive"] == ["extra__edgeimpulse__api_key"]
    assert found["behaviour"]["relabeling"]["host"] == "Studio URL"


@pytest.mark.parametrize("command", ["hooks", "list"])
def test_airflow_providers_cli_lists_us(command: str, tmp_path: Path) -> None:
    airflow_bin = Path(sys.executable).parent / "airflow"
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [str(airflow_bin), "providers", command, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("airflow_provider_edgeimpulse" if command == "hooks" else "airflow-provider-edgeimpulse") in result.stdout


def test_every_declared_module_imports_and_the_link_exists():
    import importlib

    from airflow_provider_edgeimpulse.get_provider_info import get_provider_info

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for link in info["extra-links"]:
        module, _, name = link.rpartition(".")
        assert getattr(importlib.import_module(module), name).name == "Edge Impulse Studio"


def test_airflow_lists_the_triggers_and_the_extra_link(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    triggers = subprocess.run([airflow, "providers", "triggers"], env=env, capture_output=True, text=True, timeout=120)
    for module in ("job", "job_watch", "tuner", "new_samples"):
        assert f"airflow_provider_edgeimpulse.triggers.{module}" in triggers.stdout, triggers.stderr[-2000:]
    links = subprocess.run([airflow, "providers", "links"], env=env, capture_output=True, text=True, timeout=120)
    assert "airflow_provider_edgeimpulse.links.EdgeImpulseStudioLink" in links.stdout, links.stderr[-2000:]
