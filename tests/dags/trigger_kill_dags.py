"""
A DAG whose task instances the trigger ``on_kill`` tests put in the states a user's action or a hand-over leaves.

Its tasks do nothing: the tests set their states in the metadata database and ask Airflow's own task-state route.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(
    dag_id="ei_trigger_kill_states", schedule=None, start_date=datetime(2025, 1, 1), catchup=False
) as KILL_STATES_DAG:
    EmptyOperator(task_id="waits")
    EmptyOperator.partial(task_id="mapped_waits").expand_kwargs([{}, {}])
