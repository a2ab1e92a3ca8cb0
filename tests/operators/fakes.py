"""The slice of an Airflow task context that operators touch when called directly (no scheduler)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.airflow_compat import HAS_TASK_STATE_STORE


def _new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


class RecordingTaskInstance:
    def __init__(self, task_id: str = "task", dag_id: str = "dag", run_id: str | None = None) -> None:
        self.task_id = task_id
        self.dag_id = dag_id
        # Unique: before Airflow 3.3 a job operator's Variable is named after it, and the metadata DB outlives a test.
        self.run_id = run_id or _new_run_id()
        self.map_index = -1
        self.try_number = 1
        self.stats_tags: dict[str, str] = {}
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(key)


class DictStateStore:
    """
    Stands in for Airflow 3.3's task_state_store: survives between 'tries' of one task instance.

    Before 3.3 there is no such store: the provider keeps what must survive a try in an Airflow Variable named
    after the task instance, so every try made with one store is given the same (unique) run id instead.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.run_id = _new_run_id()

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def make_context(ti: RecordingTaskInstance | None = None, store: DictStateStore | None = None) -> dict[str, Any]:
    """The context of one try; tries that share ``store`` are tries of one task instance."""
    store = store if store is not None else DictStateStore()
    ti = ti or RecordingTaskInstance(run_id=store.run_id)
    if HAS_TASK_STATE_STORE:
        return {"ti": ti, "task_state_store": store}
    return {"ti": ti}
