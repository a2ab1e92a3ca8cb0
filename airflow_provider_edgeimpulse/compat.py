"""Airflow version differences that more than one layer asks about (ground floor: imports nothing of ours)."""

from __future__ import annotations


def can_end_from_trigger() -> bool:
    """Ending a task from the triggerer needs Airflow 3 (``TaskSuccessEvent`` with XComs)."""
    from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS

    return bool(AIRFLOW_V_3_0_PLUS)
