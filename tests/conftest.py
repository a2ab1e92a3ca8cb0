"""Test-wide set-up: a private AIRFLOW_HOME with a migrated metadata database for dag.test() runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_VERSION = version("apache-airflow")
_AIRFLOW_2 = int(_AIRFLOW_VERSION.split(".")[0]) < 3
# Airflow 2 cannot use Airflow 3's metadata database: its home lives in its own venv (`make test-af2`).
_HOME = Path(sys.prefix) / f"airflow-home-{_AIRFLOW_VERSION}" if _AIRFLOW_2 else _REPO / ".airflow-home"
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
if _AIRFLOW_2:
    # Airflow 2's unit-test mode asks for the LocalExecutor, which refuses SQLite; dag.test() runs tasks in-process.
    os.environ.setdefault("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")

import pytest  # noqa: E402
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS  # noqa: E402


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


def _safeguard_callers_in_every_thread() -> None:
    """
    Airflow 2.11's ExecutorSafeguard keeps the callers of ``execute()`` in a thread-local that only the thread
    importing Airflow sets up, so ``execute()`` from any other thread dies with AttributeError. A worker runs its
    task on its main thread; tests also run blocking tasks from others (a retry next to the test, a poking sensor).
    """
    from airflow.models.baseoperator import ExecutorSafeguard

    class Callers(threading.local):
        def __init__(self) -> None:
            self.callers: dict[str, Any] = {}

    ExecutorSafeguard._sentinel = Callers()


if _AIRFLOW_2:
    _safeguard_callers_in_every_thread()


@pytest.fixture(scope="session", autouse=True)
def _variables_without_a_task_state_store(request: pytest.FixtureRequest) -> None:
    """Before Airflow 3.3 a job operator keeps its running job's id in a Variable: any test may need the DB."""
    if not AIRFLOW_V_3_3_PLUS:
        request.getfixturevalue("airflow_db")


@pytest.fixture(scope="session")
def edgeimpulse_emulator_middlewares() -> tuple[Any, ...]:
    """Every emulator of the suite checks its traffic against Edge Impulse's OpenAPI definition."""
    from tests.conformance.traffic import TRAFFIC

    return (TRAFFIC.middleware,)


@pytest.fixture(autouse=True)
def _openapi_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """
    Fails a test during which a request or an answer broke the definition, unless the test is marked
    ``off_spec(reason)``: it sends deliberately bad requests or makes the server misbehave. The emulators of the
    end-to-end stacks run as processes of their own and report through the files ``TRAFFIC`` follows.
    """
    from tests.conformance.traffic import TRAFFIC

    marker = request.node.get_closest_marker("off_spec")
    if marker is not None and not (marker.args and marker.args[0]):
        pytest.fail("off_spec needs a reason")
    # Drained under the exemption of the test before: what an end-to-end stack's emulator found since is read now.
    leftovers = TRAFFIC.drain()
    TRAFFIC.exempt_reason = marker.args[0] if marker is not None else None
    yield
    # Leftovers came in between two tests: stray traffic of the one before, or the start-up of an end-to-end stack
    # this test is the first to use, still told rather than lost.
    found = [f"{violation} (before this test began)" for violation in dict.fromkeys(leftovers)]
    found += [str(violation) for violation in dict.fromkeys(TRAFFIC.drain())]
    if found:
        lines = "\n".join(f"  {violation}" for violation in found)
        pytest.fail(f"traffic off Edge Impulse's OpenAPI definition (tests/conformance/exceptions.py):\n{lines}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.conformance.traffic import TRAFFIC

    late = TRAFFIC.drain()  # an end-to-end stack's count comes as it stops, after the last test
    if TRAFFIC.checked:
        stacks = TRAFFIC.followed_exchanges
        started = "emulator processes the tests started: end-to-end stacks, the demo, the benchmarks"
        by_stacks = f" ({stacks} by {started})" if stacks else ""
        terminalreporter.write_line(
            f"OpenAPI conformance: {sum(TRAFFIC.checked.values())} exchanges of {len(TRAFFIC.checked)} "
            f"(method, route, status) kinds checked in {TRAFFIC.seconds:.1f} s{by_stacks}"
        )
    for violation in dict.fromkeys(late):
        terminalreporter.write_line(
            f"OpenAPI conformance, off the definition after the last test: {violation}", red=True
        )
