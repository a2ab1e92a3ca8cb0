"""
Where watermarks live between DAG runs and triggerer restarts: Airflow Variables.

Why a Variable, and not the alternatives:

- ``task_state_store`` (Airflow 3.3) is per task *instance*: a new DAG run starts empty.
- XCom of the previous run (``include_prior_dates``) is lost when that run is cleared or deleted, ties the
  watermark to one DAG's run ordering, and cannot be read by an asset watcher.
- The asset state store (Airflow 3.3) reaches a watcher trigger, but not the shared-stream producer that
  commits the watermark (it is built from the trigger's kwargs alone), and not Airflow 2.11 or 3.0-3.2.
- The last asset event's ``extra`` cannot be read from the triggerer (no such supervisor call in 3.3).

A Variable is readable and writable from a worker (Task SDK), from the triggerer (through its supervisor,
which is why the async path runs the sync call in a thread) and on Airflow 2.11; people can see, fix or
reset it in the UI (delete it to start over from "now"). Its value is JSON ``{"last_sample_id": N, ...}``;
a bare number typed in by hand works too.

Writes only ever move a watermark forward, so a late or repeated commit cannot make old samples new again.
Variables have no compare-and-set: two writers racing on one key (two runs of one sensor at once) could
both act on the same samples; run such DAGs with ``max_active_runs=1``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any, Protocol


class WatermarkStore(Protocol):
    def get(self, key: str) -> int | None: ...

    def put(self, key: str, sample_id: int, note: str) -> None: ...


class VariableWatermarkStore:
    """Watermarks as Airflow Variables (the default)."""

    def get(self, key: str) -> int | None:
        from airflow.providers.common.compat.sdk import Variable

        # Positional default: Airflow 2 calls it default_var, the Task SDK default.
        return parse_watermark(key, Variable.get(key, None))

    def put(self, key: str, sample_id: int, note: str) -> None:
        from airflow.providers.common.compat.sdk import Variable

        value = {"last_sample_id": sample_id, "updated_at": _now(), "updated_by": note}
        Variable.set(key, json.dumps(value), description="Edge Impulse new-samples watermark (highest sample id seen)")


class MemoryWatermarkStore:
    """A dict-backed store: for tests, and for a trigger run outside any Airflow process."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = values if values is not None else {}

    def get(self, key: str) -> int | None:
        return parse_watermark(key, self.values.get(key))

    def put(self, key: str, sample_id: int, note: str) -> None:
        self.values[key] = json.dumps({"last_sample_id": sample_id, "updated_at": _now(), "updated_by": note})


def parse_watermark(key: str, raw: Any) -> int | None:
    """``None`` when unset; a value that is neither ours nor a number is an error, never a silent reset."""
    if raw is None or raw == "":
        return None
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    if isinstance(value, dict):
        value = value.get("last_sample_id")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(
        f'Airflow Variable {key!r} should hold a watermark such as {{"last_sample_id": 123}} or a plain '
        f"sample id, not {raw!r}; fix or delete it (deleting starts over from the newest sample)"
    )


def advance(store: WatermarkStore, key: str, sample_id: int, note: str) -> int:
    """Move the watermark forward to ``sample_id`` (never back); return the watermark now stored."""
    current = store.get(key)
    if current is not None and current >= sample_id:
        return current
    store.put(key, sample_id, note)
    return sample_id


async def aget(store: WatermarkStore, key: str) -> int | None:
    # In the triggerer a Variable call goes through the supervisor; from a thread it cannot block the loop.
    return await asyncio.to_thread(store.get, key)


async def aadvance(store: WatermarkStore, key: str, sample_id: int, note: str) -> int:
    return await asyncio.to_thread(advance, store, key, sample_id, note)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
