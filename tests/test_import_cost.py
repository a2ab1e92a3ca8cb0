"""A DAG file that imports our operators and sensors pays for them, not for the HTTP clients behind them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_edgeimpulse"
# Each costs a DAG file tenths of a second to import; they load when a task runs, not when its DAG is parsed.
HEAVY = ("aiohttp", "requests", "tenacity")


def test_importing_every_operator_and_sensor_module_loads_no_http_client() -> None:
    modules = [
        f"airflow_provider_edgeimpulse.{package}.{path.stem}"
        for package in ("operators", "sensors")
        for path in sorted((PACKAGE / package).glob("*.py"))
        if path.stem != "__init__"
    ]
    # What every provider's DAG file imports anyway comes first; only what ours add counts.
    script = (
        "import importlib, json, sys\n"
        "from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator\n"
        "before = set(sys.modules)\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_operators_import_nothing_of_openlineage_and_work_without_it() -> None:
    """Lineage loads only when the OpenLineage provider asks for it; without the provider nothing is missed."""
    modules = [
        f"airflow_provider_edgeimpulse.operators.{path.stem}"
        for path in sorted((PACKAGE / "operators").glob("*.py"))
        if path.stem != "__init__"
    ]
    script = (
        "import importlib, json, sys\n"
        "from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator\n"
        "before = set(sys.modules)\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'openlineage' or name.startswith(('openlineage.', 'airflow.providers.openlineage')):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Absent())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from airflow_provider_edgeimpulse.operators import (\n"
        "    EdgeImpulseBuildDeploymentOperator, EdgeImpulseCreateVersionOperator, EdgeImpulseUploadSamplesOperator)\n"
        "EdgeImpulseUploadSamplesOperator(task_id='u', paths='/tmp/x')\n"
        "EdgeImpulseCreateVersionOperator(task_id='v', description='d', keep_last=2)\n"
        "EdgeImpulseBuildDeploymentOperator(task_id='b', deployment_format='zip', output_path='/tmp/x.zip')\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if 'openlineage' in m)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
