"""The slice of an Airflow task context that operators touch when called directly (no scheduler)."""

from __future__ import annotations

from typing import Any


class RecordingTaskInstance:
    def __init__(self, task_id: str = "task", dag_id: str = "dag", run_id: str = "run") -> None:
        self.task_id = task_id
        self.dag_id = dag_id
        self.run_id = run_id
        self.map_index = -1
        self.try_number = 1
        self.stats_tags: dict[str, str] = {}
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(key)


class DictStateStore:
    """Stands in for Airflow 3.3's task_state_store: survives between 'tries' of one task instance."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def make_context(ti: RecordingTaskInstance | None = None, store: DictStateStore | None = None) -> dict[str, Any]:
    return {"ti": ti or RecordingTaskInstance(), "task_state_store": store if store is not None else DictStateStore()}
