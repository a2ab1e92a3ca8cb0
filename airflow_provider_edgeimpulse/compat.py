"""Airflow version differences that more than one layer asks about (ground floor: imports nothing of ours)."""

from __future__ import annotations


def can_end_from_trigger() -> bool:
    """Ending a task from the triggerer needs Airflow 3 (``TaskSuccessEvent`` with XComs)."""
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    return bool(AIRFLOW_V_3_0_PLUS)


def object_storage_path_class() -> type:
    """Airflow's ``ObjectStoragePath``: ``airflow.sdk`` on Airflow 3, its ``airflow.io`` twin on 2.11."""
    try:
        from airflow.sdk import ObjectStoragePath
    except ImportError:
        from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    return ObjectStoragePath
