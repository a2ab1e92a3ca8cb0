"""
What the tests read from Airflow itself, on Airflow 3 and on Airflow 2.11 alike.

The provider hides the differences between the two behind ``airflow.providers.common.compat``; tests that look
into the metadata database (XCom rows, task reschedules) or check Airflow-3-only behaviour have to know which
Airflow they run on.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

AIRFLOW_2 = not AIRFLOW_V_3_0_PLUS
# Airflow 3 can end a deferred task from the triggerer (TaskSuccessEvent carrying XComs); Airflow 2 resumes it on
# a worker with the trigger's event.
ENDS_IN_TRIGGER = bool(AIRFLOW_V_3_0_PLUS)
# Airflow 3.3's task_state_store; before it the job operators keep a running job's id in an Airflow Variable.
HAS_TASK_STATE_STORE = bool(AIRFLOW_V_3_3_PLUS)


def _xcom_model() -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        return XComModel
    from airflow.models.xcom import XCom

    return XCom


def _value(row: Any) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        return XComModel.deserialize_value(row)
    return row.value  # Airflow 2 deserializes the stored bytes as it loads the row


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """One XCom of a DAG run, deserialized, straight from the metadata DB (``None`` when there is none)."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    model = _xcom_model()
    with create_session() as session:
        row = session.scalars(
            select(model).where(
                model.dag_id == dag_run.dag_id,
                model.run_id == dag_run.run_id,
                model.task_id == task_id,
                model.key == key,
            )
        ).first()
        return None if row is None else _value(row)


def xcoms(dag_run: Any) -> list[tuple[str, str, Any]]:
    """Every XCom of a DAG run as ``(task_id, key, value)``."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    model = _xcom_model()
    with create_session() as session:
        rows = session.scalars(select(model).where(model.dag_id == dag_run.dag_id, model.run_id == dag_run.run_id))
        return [(row.task_id, row.key, _value(row)) for row in rows]


def reschedules(dag_run: Any, task_id: str) -> int:
    """How many times a task of a DAG run gave its worker slot back (reschedule-mode sensors)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == task_id)
    if AIRFLOW_V_3_0_PLUS:
        where = [TaskReschedule.ti_id == ti.id]
    else:
        where = [
            TaskReschedule.dag_id == ti.dag_id,
            TaskReschedule.task_id == ti.task_id,
            TaskReschedule.run_id == ti.run_id,
            TaskReschedule.map_index == ti.map_index,
        ]
    with create_session() as session:
        return int(session.scalar(select(func.count()).select_from(TaskReschedule).where(*where)) or 0)


def asset_event_extras(uri: str) -> list[dict[str, Any]]:
    """The extras of the events of the Asset (Airflow 2.11: Dataset) ``uri``, oldest first."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        asset_id = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as Model  # type: ignore[no-redef]

        asset_id = Event.dataset_id
    with create_session() as session:
        rows = session.scalars(
            select(Event).join(Model, Model.id == asset_id).where(Model.uri == uri).order_by(Event.id)
        )
        return [dict(row.extra or {}) for row in rows]


def register_assets(*uris: str) -> None:
    """
    Make the Datasets of ``uris`` known on Airflow 2.11, as its DAG processor would: its dag.test() records an
    outlet's event only for a Dataset already in the database. Airflow 3's dag.test() syncs the DAG's assets.
    """
    if AIRFLOW_V_3_0_PLUS:
        return
    from airflow.models.dataset import DatasetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        known = set(session.scalars(select(DatasetModel.uri).where(DatasetModel.uri.in_(uris))))
        session.add_all(DatasetModel(uri=uri) for uri in uris if uri not in known)
