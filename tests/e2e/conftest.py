"""
One real Airflow stack for the whole end-to-end session (see stack.py), started on first use.

``EI_E2E_DAG_FOLDERS`` (paths joined with ``os.pathsep``) replaces the DAG folders the stack parses; by default
the repo's example DAGs and tests/e2e/dags. Logs, the stack's airflow.cfg, task logs and screenshots land in
test-artifacts/e2e/ (or ``EI_E2E_ARTIFACTS``).

``EI_E2E_AIRFLOW_VERSION`` (an Airflow release, e.g. ``3.1.8``) runs every stack of the session on that Airflow
instead of the work tree's: a cached venv of that version with the provider installed from its wheel (versions.py).
``make test-versions`` runs the tests marked ``versions`` that way, one version after the other.

Each stack's emulator checks its traffic against Edge Impulse's OpenAPI definition (tests/conformance/serve.py):
tests/conftest.py fails the test during which a violation was found, its stack's start-up counting as the first
test that uses it, unless the test is marked ``off_spec(reason)``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.traffic import TRAFFIC
from tests.e2e.stack import ARTIFACTS, REPO, AirflowStack, StackSettings
from tests.e2e.versions import VersionVenv, version_venv

# The example DAGs, and the DAGs only the end-to-end tests use (tests/e2e/dags).
DEFAULT_DAG_FOLDERS = (REPO / "dags", REPO / "tests" / "e2e" / "dags")


def dag_folders() -> tuple[Path, ...]:
    raw = os.environ.get("EI_E2E_DAG_FOLDERS", "")
    folders = tuple(Path(p).resolve() for p in raw.split(os.pathsep) if p) or DEFAULT_DAG_FOLDERS
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise pytest.UsageError(f"EI_E2E_DAG_FOLDERS names folders that do not exist: {missing}")
    return folders


@pytest.fixture(scope="session")
def e2e_artifacts() -> Path:
    """test-artifacts/e2e, emptied at the start of the session so it only holds this run's evidence."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def other_airflow(e2e_artifacts: Path) -> VersionVenv | None:
    """The cached venv of ``EI_E2E_AIRFLOW_VERSION`` with this run's provider wheel, or None for the work tree's."""
    version = os.environ.get("EI_E2E_AIRFLOW_VERSION", "")
    if not version:
        return None
    venv = version_venv(version, e2e_artifacts / "provider-wheel")
    (e2e_artifacts / "airflow-version.json").write_text(json.dumps({**venv.__dict__}, default=str, indent=2) + "\n")
    return venv


def on_airflow(venv: VersionVenv | None) -> dict[str, Any]:
    """The StackSettings fields that run a stack on ``venv`` (nothing for the work tree's Airflow)."""
    return {} if venv is None else {"python": venv.python, "python_path": (venv.provider_path,)}


def running_stack(
    settings: StackSettings, make: Callable[[StackSettings], AirflowStack] = AirflowStack
) -> Iterator[AirflowStack]:
    """A started stack for a fixture to yield from; stopped afterwards, and no process of it may outlive that."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the stack harness reads /proc to prove every process it started is gone")
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    stack = make(settings)
    try:
        stack.start()
        yield stack
    finally:
        leftovers = stack.stop()
        (settings.artifacts / "stack-timings.json").write_text(json.dumps(stack.timings, indent=2) + "\n")
    # After everything is down: a process that outlived its process group is a harness bug worth failing on.
    assert not leftovers, f"processes outlived their process group and were killed: {leftovers}"
    # The emulator's conformance check (tests/conftest.py fails each test with what it found during it): what came
    # after the last test, and the count of exchanges it checked, written as it stopped.
    late = [str(violation) for violation in dict.fromkeys(TRAFFIC.drain())]
    assert not late, "traffic off Edge Impulse's OpenAPI definition after the last test:\n" + "\n".join(late)


@pytest.fixture(scope="session")
def airflow_stack(e2e_artifacts: Path, other_airflow: VersionVenv | None) -> Iterator[AirflowStack]:
    settings = StackSettings(dag_folders=dag_folders(), artifacts=e2e_artifacts, **on_airflow(other_airflow))
    yield from running_stack(settings)
