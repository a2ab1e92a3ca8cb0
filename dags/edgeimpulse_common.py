"""
Building blocks the example DAGs share (a plain module: it defines no DAG).

``retrain_test_gate_build`` is the "retrain -> test -> gate -> version -> build" chain as a TaskGroup, used by
``edgeimpulse_retrain_on_new_data`` and ``edgeimpulse_nightly_retrain``; ``pipeline_params`` are the DAG params
its templates read (the gate's limits, versions kept, what to build). ``setting`` reads the few values a DAG needs
while it is parsed (connection id, project id) from Airflow Variables, with defaults that work against the local
emulator.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from typing import Any

DEFAULT_CONN_ID = "edgeimpulse_default"
DEFAULT_ACCURACY_THRESHOLD = 0.6
DEFAULT_DEPLOYMENT_FORMAT = "zip"  # the C++ library
DEFAULT_DEPLOYMENT_ENGINE = "tflite-eon"
DEFAULT_OUTPUT_DIR = os.path.join(tempfile.gettempdir(), "edgeimpulse-deployments")
# The gate's defaults: Studio's default profiling target, limits a small model on it meets with room to spare (a
# Cortex-M4F board with 256 KiB of RAM and 1 MiB of flash keeps half of each for the application).
DEFAULT_MAX_ACCURACY_DROP = 0.05
DEFAULT_TARGET_DEVICE = "cortex-m4f-80mhz"
DEFAULT_MAX_LATENCY_MS = 100
DEFAULT_MAX_RAM_BYTES = 128 * 1024
DEFAULT_MAX_ROM_BYTES = 512 * 1024
GROUP_ID = "retrain_test_gate_build"


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


def pipeline_params() -> dict[str, Any]:
    """
    The run-time settings of the retrain pipeline (DAG params; defaults from the Variables ``edgeimpulse_<name>``),
    which :func:`retrain_test_gate_build` reads through templates.
    """
    from airflow.providers.common.compat.sdk import Param

    def number(name: str, default: float, description: str, **bounds: Any) -> Any:
        return Param(float(setting(name, default)), type="number", description=description, **bounds)

    def whole(name: str, default: int, description: str) -> Any:
        return Param(int(setting(name, default)), type="integer", minimum=1, description=description)

    return {
        "accuracy_threshold": number(
            "accuracy_threshold",
            DEFAULT_ACCURACY_THRESHOLD,
            "gate: the model-testing accuracy (0..1) must be at least this",
            minimum=0,
            maximum=1,
        ),
        "baseline_version": Param(
            str(setting("baseline_version", "last")),
            type="string",
            description="gate: no regression against this project version ('last': the newest; or a version id)",
        ),
        "max_accuracy_drop": number(
            "max_accuracy_drop",
            DEFAULT_MAX_ACCURACY_DROP,
            "gate: how far (0..1) the accuracy may fall below the baseline version's",
            minimum=0,
            maximum=1,
        ),
        "target_device": Param(
            str(setting("target_device", DEFAULT_TARGET_DEVICE)),
            type="string",
            description="gate: the device the budget is for, as Studio names it (its mcu id or display name)",
        ),
        "max_latency_ms": number("max_latency_ms", DEFAULT_MAX_LATENCY_MS, "gate: on-device latency (ms)", minimum=0),
        "max_ram_bytes": whole("max_ram_bytes", DEFAULT_MAX_RAM_BYTES, "gate: on-device RAM (bytes)"),
        "max_rom_bytes": whole("max_rom_bytes", DEFAULT_MAX_ROM_BYTES, "gate: on-device ROM / flash (bytes)"),
        "keep_versions": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="keep only this many newest project versions (never a public one); empty keeps all",
        ),
        "deployment_format": Param(setting("deployment_format", DEFAULT_DEPLOYMENT_FORMAT), type="string"),
        "deployment_engine": Param(setting("deployment_engine", DEFAULT_DEPLOYMENT_ENGINE), type="string"),
        "output_dir": Param(setting("output_dir", DEFAULT_OUTPUT_DIR), type="string"),
    }


def retrain_test_gate_build(
    *,
    conn_id: str,
    deferrable: bool,
    retrain_trigger_rule: str = "all_success",
    build_outlets: list[Any] | None = None,
) -> Any:
    """
    A TaskGroup (create it inside a DAG whose params include :func:`pipeline_params`):

    - ``retrain``: ``EdgeImpulseRetrainOperator`` (the impulse with its last settings).
    - ``test``: ``EdgeImpulseModelTestingOperator`` (classify the test set).
    - ``quality_gate``: ``EdgeImpulseModelGateOperator``: accuracy at least ``accuracy_threshold``, no drop of
      more than ``max_accuracy_drop`` below the ``baseline_version``, and latency, RAM and ROM on
      ``target_device`` within budget. A missed limit fails the task for good (no retry) and logs which check
      failed and how to roll back; nothing after it runs, so the last good version and build stay as they were.
    - ``version``: ``EdgeImpulseCreateVersionOperator``: the model that passed becomes a project version (with
      model testing, so the next run's regression check has its accuracy), ``keep_versions`` newest kept.
    - ``build``: ``EdgeImpulseBuildDeploymentOperator`` into ``<output_dir>/<run_id>/``; each Asset among
      ``build_outlets`` gets an event whose extra names the build and the project version it was made from.

    ``retrain_trigger_rule`` lets an optional step before the group (an upload that may be skipped) not skip the
    retrain. ``conn_id`` and ``deferrable`` are fixed when the DAG is parsed.
    """
    from airflow.providers.common.compat.sdk import TaskGroup

    from airflow_provider_edgeimpulse.operators import (
        EdgeImpulseBuildDeploymentOperator,
        EdgeImpulseCreateVersionOperator,
        EdgeImpulseModelGateOperator,
        EdgeImpulseModelTestingOperator,
        EdgeImpulseRetrainOperator,
    )

    with TaskGroup(group_id=GROUP_ID, tooltip="retrain -> test -> gate -> version -> build") as group:
        retrain = EdgeImpulseRetrainOperator(
            task_id="retrain", edgeimpulse_conn_id=conn_id, deferrable=deferrable, trigger_rule=retrain_trigger_rule
        )
        test = EdgeImpulseModelTestingOperator(task_id="test", edgeimpulse_conn_id=conn_id, deferrable=deferrable)
        gate = EdgeImpulseModelGateOperator(
            task_id="quality_gate",
            edgeimpulse_conn_id=conn_id,
            min_accuracy="{{ params.accuracy_threshold }}",
            baseline_version="{{ params.baseline_version }}",
            max_drop="{{ params.max_accuracy_drop }}",
            device="{{ params.target_device }}",
            max_latency_ms="{{ params.max_latency_ms }}",
            max_ram_bytes="{{ params.max_ram_bytes }}",
            max_rom_bytes="{{ params.max_rom_bytes }}",
            # A Studio hiccup while the figures are read is worth a retry; a missed limit fails without one.
            retries=2,
            retry_delay=timedelta(seconds=30),
        )
        version = EdgeImpulseCreateVersionOperator(
            task_id="version",
            edgeimpulse_conn_id=conn_id,
            description="{{ dag.dag_id }} {{ run_id }}: passed the model gate",
            run_model_testing_while_versioning=True,
            keep_last="{{ params.keep_versions }}",
            deferrable=deferrable,
        )
        build = EdgeImpulseBuildDeploymentOperator(
            task_id="build",
            edgeimpulse_conn_id=conn_id,
            deployment_format="{{ params.deployment_format }}",
            engine="{{ params.deployment_engine }}",
            output_path=os.path.join("{{ params.output_dir }}", "{{ run_id }}", ""),  # trailing separator: a directory
            project_version=f"{{{{ ti.xcom_pull(task_ids='{GROUP_ID}.version')['version'] }}}}",
            deferrable=deferrable,
            outlets=build_outlets or [],
        )
        retrain >> test >> gate >> version >> build
    return group
