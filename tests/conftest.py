"""Test-wide set-up: a private AIRFLOW_HOME with a migrated metadata database for dag.test() runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_HOME = _REPO / ".airflow-home"
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
# dag.test() on Airflow 3 parses DAGs from the configured bundles: the example DAGs and the tests' own DAG files.
_BUNDLES = [
    {"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": str(path)}}
    for name, path in (("examples", _REPO / "dags"), ("tests", _REPO / "tests" / "dags"))
]
os.environ.setdefault("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(_BUNDLES))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# A fixed key: unit-test mode otherwise makes one per process, and encrypted rows a run leaves behind (trigger
# kwargs of an asset watcher) would fail to decrypt in the next one. It protects nothing but test data.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "Zu0GvWwWbKk7jn8AG6Z1kNT9b-XSpFsTZJ9Xr0s5Ttg=")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata database once (about 8 s) for the tests that run DAGs."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".migrated"
    if not marker.exists():
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
        marker.touch()
    return home
