"""
A real Airflow 2.11 deployment on this machine, for end-to-end tests of the provider's pre-Airflow-3 paths:
scheduler, triggerer and webserver (with its REST API v1) as separate processes, plus the emulator beside them.

What differs from the Airflow 3 stack (stack.py), whose process handling, emulator, migration and shutdown this
one reuses:
- Its own interpreter: the cached venv of ``AF2_VERSION`` with the provider from its wheel (versions.py), first on
  the stack's PYTHONPATH. Nothing of the work tree is importable there but the DAG files.
- No dag-processor and no bundles: the scheduler parses ``[core] dags_folder``, one folder. The stack makes it of
  symbolic links to the DAG files it is given (a link per file, so ``edgeimpulse_common`` stays importable from
  the folder Airflow puts on ``sys.path``).
- Auth: the FAB auth manager; the REST API v1 takes HTTP basic auth (``[api] auth_backends``) as user ``admin``,
  created with ``airflow users create`` after the migration.
- ``[api] enable_xcom_deserialize_support``: the API hands an XCom out as the task pushed it (``deserialize`` and
  ``stringify=false``), as Airflow 3's does.
- LocalExecutor on SQLite, which Airflow 2 refuses unless ``_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK``
  is set (as Airflow's own tests do); trigger ids never reused (``never_reuse_trigger_ids``, as for Airflow 3).
- A task process killed by SIGKILL leaves its ``airflow tasks run --local`` supervisor behind, which exits; the
  scheduler then finds the task instance running without a live job ("zombie") and fails it, within
  ``[scheduler] zombie_detection_interval``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

from tests.e2e.stack import (
    ADMIN_USER,
    AirflowStack,
    StackError,
    StackSettings,
    _fernet_key,
    wait_until,
)
from tests.ports import free_port

# The Makefile passes its AF2_VERSION (the one `make venv-af2` installs), so both 2.11 suites run the same release.
AF2_VERSION = os.environ.get("EI_AF2_VERSION") or "2.11.2"
ZOMBIE_DETECTION_INTERVAL_S = 2


def linked_dags_folder(into: Path, dag_files: Iterable[Path]) -> Path:
    """One folder of links to ``dag_files`` (Airflow 2 parses a single ``dags_folder``)."""
    into.mkdir(parents=True, exist_ok=True)
    for path in dag_files:
        link = into / path.name
        if link.exists():
            raise StackError(f"two DAG files named {path.name}: {path} and {link.resolve()}")
        link.symlink_to(path)
    return into


class Airflow2Stack(AirflowStack):
    """
    Airflow 2.11: ``settings.python`` is its interpreter, ``settings.python_path`` the provider's folder, and
    ``settings.dag_folders`` are the files (not folders) the scheduler parses, linked into one dags folder.
    """

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.dags_folder = Path(tempfile.mkdtemp(prefix="edgeimpulse-e2e-af2-dags-"))
        self._session = requests.Session()
        self._session.auth = (ADMIN_USER, self.password)

    def env(self) -> dict[str, str]:
        env = super().env()
        # Airflow 2 refuses LocalExecutor on SQLite; its own test suite sets this to run it anyway.
        env["_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK"] = "1"
        return env

    def _write_config(self) -> None:
        artifacts = self.settings.artifacts
        triggerer = {
            "job_heartbeat_sec": self.settings.triggerer_heartbeat_s,
            "triggerer_health_check_threshold": self.settings.triggerer_health_check_threshold_s,
        }
        cfg: dict[str, dict[str, str]] = {
            "core": {
                "executor": "LocalExecutor",
                "load_examples": "False",
                "dags_folder": str(self.dags_folder),
                "fernet_key": _fernet_key(),
                "parallelism": str(self.settings.parallelism),
                "default_task_retries": "0",
                # Parsing on a loaded two-core machine can take longer than the default 30 s.
                "dagbag_import_timeout": "120",
                "dag_file_processor_timeout": "180",
            },
            "database": self._database_config(),
            "webserver": {
                "base_url": self.url,
                "web_server_host": "127.0.0.1",
                "web_server_port": str(self.port),
                "workers": "1",
                # Shared by the webserver and the log servers it fetches task logs from.
                "secret_key": secrets.token_urlsafe(32),
                # The webserver's monitor of its gunicorn counts worker processes; on a loaded machine a worker
                # still booting looks dead, the monitor starts another and, when the count does not settle within
                # the master timeout, shuts the whole webserver down. Gunicorn restarts a dead worker itself: the
                # monitor starts none (batch size 0) and waits as long as a slow boot takes.
                "worker_refresh_batch_size": "0",
                "web_server_master_timeout": "600",
            },
            "api": {
                "auth_backends": "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth",
                "enable_xcom_deserialize_support": "True",
            },
            "scheduler": {
                "child_process_log_directory": str(artifacts / "dag-processor-logs"),
                "zombie_detection_interval": str(ZOMBIE_DETECTION_INTERVAL_S),
            },
            "logging": {
                "base_log_folder": str(artifacts / "task-logs"),
                "dag_processor_manager_log_location": str(artifacts / "dag-processor-logs" / "manager.log"),
                "worker_log_server_port": str(free_port()),
                "trigger_log_server_port": str(free_port()),
            },
            "triggerer": {key: str(value) for key, value in triggerer.items() if value is not None},
        }
        self._write_cfg_file(cfg)

    def start(self) -> None:
        self.settings.artifacts.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            linked_dags_folder(self.dags_folder, self.settings.dag_folders)
            self._start_emulator()
            self._write_config()
            self._migrate()
            self._create_admin()
            webserver = [self.airflow_bin, "webserver", "--hostname", "127.0.0.1", "--port", str(self.port)]
            for name, argv in (
                ("webserver", [*webserver, "--workers", "1"]),
                ("scheduler", [self.airflow_bin, "scheduler"]),
                ("triggerer", self._triggerer_argv(self.settings.triggerer_capacity)),
            ):
                self._spawn(name, argv)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - began

    def stop(self) -> list[str]:
        leftovers = super().stop()
        shutil.rmtree(self.dags_folder, ignore_errors=True)
        return leftovers

    def _create_admin(self) -> None:
        args = ["users", "create", "--username", ADMIN_USER, "--role", "Admin", "--password", self.password]
        args += ["--firstname", "E2E", "--lastname", "Admin", "--email", "admin@example.invalid"]
        self.run_cli(args, "users-create.log")

    def _wait_healthy(self) -> None:
        def healthy() -> dict[str, Any] | None:
            self._check_alive()
            response = requests.get(f"{self.url}/health", timeout=5)
            if response.status_code != 200:
                return None
            health = response.json()
            parts = ("metadatabase", "scheduler", "triggerer")
            if all((health.get(part) or {}).get("status") == "healthy" for part in parts):
                return health
            return None

        wait_until(healthy, timeout=self.settings.start_timeout_s, what="all Airflow components to be healthy")

    def api(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        """One REST call to the REST API v1 (``/api/v1`` + path) as the admin user; the JSON answer."""
        self._check_alive()
        return self._rest(self._session.request, method, f"/api/v1{path}", expect=expect, **kwargs)
