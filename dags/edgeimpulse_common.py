"""
Building blocks the example DAGs share (a plain module: it defines no DAG).

``retrain_test_gate_build`` is the "retrain -> test -> quality gate -> build" chain as a TaskGroup, used by
``edgeimpulse_retrain_on_new_data`` and ``edgeimpulse_nightly_retrain``. ``setting`` reads the few values
a DAG needs while it is parsed (connection id, project id) from Airflow Variables, with defaults that work
against the local emulator.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

DEFAULT_CONN_ID = "edgeimpulse_default"
DEFAULT_ACCURACY_THRESHOLD = 0.6
DEFAULT_DEPLOYMENT_FORMAT = "zip"  # the C++ library
DEFAULT_DEPLOYMENT_ENGINE = "tflite-eon"
DEFAULT_OUTPUT_DIR = os.path.join(tempfile.gettempdir(), "edgeimpulse-deployments")


def setting(name: str, default: Any) -> Any:
    """
    The Airflow Variable ``edgeimpulse_<name>``, else ``default``.

    Read at parse time, so keep these few: each parse asks the Variable backend (an ``AIRFLOW_VAR_EDGEIMPULSE_...``
    environment variable answers without a database). A Variable backend that cannot answer (a DAG file
    checked outside Airflow) gives the default rather than a broken DAG.
    """
    from airflow.providers.common.compat.sdk import Variable

    try:
        value = Variable.get(f"edgeimpulse_{name}", None)
    except Exception:
        return default
    return default if value in (None, "") else value


def deployment_asset_of_settings() -> Any:
    """
    The Asset the example pipelines announce their builds to and the firmware DAG is scheduled on:
    ``edgeimpulse://<studio host>/project/<id>/deployment/<format>`` from the Variables ``edgeimpulse_studio_url``,
    ``edgeimpulse_project_id`` and ``edgeimpulse_deployment_format`` (parse time, so both sides name the same one).
    """
    from airflow_provider_edgeimpulse.operators.announce import deployment_asset
    from airflow_provider_edgeimpulse.studio import DEFAULT_STUDIO_URL

    return deployment_asset(
        setting("project_id", 1),
        str(setting("deployment_format", DEFAULT_DEPLOYMENT_FORMAT)),
        str(setting("studio_url", DEFAULT_STUDIO_URL)),
    )


def retrain_test_gate_build(
    *,
    conn_id: str,
    accuracy_threshold: float | str,
    deployment_format: str,
    deployment_engine: str | None,
    output_dir: str,
    deferrable: bool,
    group_id: str = "retrain_test_gate_build",
    retrain_trigger_rule: str = "all_success",
    build_outlets: list[Any] | None = None,
) -> Any:
    """
    A TaskGroup (create it inside a DAG): retrain the impulse, test it, stop below the threshold, build.

    - ``retrain``: ``EdgeImpulseRetrainOperator`` (the impulse with its last settings).
    - ``test``: ``EdgeImpulseModelTestingOperator`` (classify the test set; its result holds ``accuracy``).
    - ``quality_gate``: fails the run (no retry) when the accuracy is below ``accuracy_threshold`` (0..1),
      so nothing is built from a worse model.
    - ``build``: ``EdgeImpulseBuildDeploymentOperator`` into ``<output_dir>/<run_id>/``.

    ``retrain_trigger_rule`` lets an optional step before the group (an upload that may be skipped) not skip the
    retrain; ``build_outlets`` declares the deployment as Assets so downstream DAGs can be scheduled on it.

    String arguments may be templates (``"{{ params.accuracy_threshold }}"``); ``conn_id`` and
    ``deferrable`` are fixed when the DAG is parsed.
    """
    from airflow.providers.common.compat.sdk import TaskGroup, task

    from airflow_provider_edgeimpulse.operators import (
        EdgeImpulseBuildDeploymentOperator,
        EdgeImpulseModelTestingOperator,
        EdgeImpulseRetrainOperator,
    )

    with TaskGroup(group_id=group_id, tooltip="retrain -> test -> quality gate -> build") as group:
        retrain = EdgeImpulseRetrainOperator(
            task_id="retrain", edgeimpulse_conn_id=conn_id, deferrable=deferrable, trigger_rule=retrain_trigger_rule
        )
        test = EdgeImpulseModelTestingOperator(task_id="test", edgeimpulse_conn_id=conn_id, deferrable=deferrable)

        @task(task_id="quality_gate")
        def quality_gate(testing: dict[str, Any], threshold: Any) -> dict[str, Any]:
            return check_accuracy(testing, threshold)

        gate = quality_gate(test.output, accuracy_threshold)
        build = EdgeImpulseBuildDeploymentOperator(
            task_id="build",
            edgeimpulse_conn_id=conn_id,
            deployment_format=deployment_format,
            engine=deployment_engine,
            output_path=os.path.join(output_dir, "{{ run_id }}", ""),  # a trailing separator: a directory
            deferrable=deferrable,
            outlets=build_outlets or [],
        )
        retrain >> test
        gate >> build
    return group


def check_accuracy(testing: dict[str, Any], threshold: Any) -> dict[str, Any]:
    """The gate's decision: pass (the figures for XCom) or ``AirflowFailException``, which skips retries."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    try:
        limit = float(threshold)
    except (TypeError, ValueError):
        raise AirflowFailException(f"accuracy_threshold must be a number between 0 and 1, got {threshold!r}") from None
    if not 0.0 <= limit <= 1.0:
        raise AirflowFailException(f"accuracy_threshold must be between 0 and 1, got {threshold!r}")
    accuracy = testing.get("accuracy") if isinstance(testing, dict) else None
    if not isinstance(accuracy, int | float) or isinstance(accuracy, bool):
        raise AirflowFailException(f"Model testing reported no accuracy; not building (result: {testing!r})")
    if accuracy < limit:
        raise AirflowFailException(
            f"Accuracy {accuracy:.2%} is below the threshold {limit:.2%}: stopping before the build"
        )
    return {"accuracy": accuracy, "threshold": limit, "passed": True}
