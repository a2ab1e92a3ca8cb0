"""The sensor inside real Airflow task runs (dag.test): Task SDK Variables, XCom, inline triggerer."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from airflow_provider_edgeimpulse.new_samples import watermark as wm
from tests.airflow_compat import xcom
from tests.samples_util import sample_ids, upload


def variable(key: str) -> Any:
    """Straight from the metadata DB: Variable.get would share dag.test()'s in-process task comms (one thread only)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(Variable).where(Variable.key == key)).first()
        return row.val if row is not None else None


def delete_variable(key: str) -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(Variable).where(Variable.key == key))


def upload_when_watching(em: Any, key: str, count: int) -> tuple[threading.Thread, list[int]]:
    """Upload once the sensor's first check has stored the watermark: the data lands while it waits."""
    ids: list[int] = []

    def run() -> None:
        deadline = time.monotonic() + 60
        while variable(key) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        ids.extend(upload(em, count))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, ids


@pytest.mark.parametrize("which", ["poke", "deferred"])
def test_sensor_runs_in_a_dag_and_keeps_its_watermark_in_a_variable(airflow_db, edgeimpulse_emulator, which):
    from tests.dags import new_samples_dags as dags

    em = edgeimpulse_emulator
    dag = dags.poke_dag if which == "poke" else dags.deferred_dag
    key = dags.POKE_WATERMARK_KEY if which == "poke" else dags.DEFERRED_WATERMARK_KEY
    delete_variable(key)
    baseline = max(sample_ids(em))
    try:
        thread, new = upload_when_watching(em, key, 2)
        dag_run = dag.test()
        thread.join(10)
        assert dag_run.state == "success"
        result = xcom(dag_run, "wait_for_data")
        assert result["sample_ids"] == new
        assert result["watermark"]["previous"] == baseline
        assert wm.parse_watermark(key, variable(key)) == max(new)
    finally:
        delete_variable(key)
