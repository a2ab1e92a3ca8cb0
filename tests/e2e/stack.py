"""
A real Airflow 3 deployment on this machine, for end-to-end tests: scheduler, dag-processor, triggerer and
api-server as separate processes, plus the Edge Impulse emulator beside them.

Why a real deployment: ``dag.test()`` / ``airflow dags test`` run triggers in-process, so they cannot show that a
deferred task really left its worker slot and that the trigger ran in the triggerer. Only the real thing can.

Choices (each one on purpose):
- SQLite + LocalExecutor in a private, temporary AIRFLOW_HOME: nothing to install, nothing shared with the unit
  tests' ``.airflow-home``. Every process gets a scrubbed environment (no inherited ``AIRFLOW__*``), so what the
  stack runs on is exactly the ``airflow.cfg`` written here (a copy is kept with the logs).
- ``[workers] min_heartbeat_interval = 1``: the Airflow 3.2/3.3 deferral race (apache/airflow #66374, #71580,
  #72716) lets the scheduler drain a worker's stale "success" of the deferring try after a fast trigger already
  moved the task on, and fail it with "state mismatch". A 1 s heartbeat makes the worker report before the trigger
  can fire, for jobs that run a few seconds (the tests' jobs do); a job that ends within a second of the deferral
  can still meet it. Nothing here retries a failed run: the tests see every failure.
- The nightly DAG runs unscheduled here (the Variable ``edgeimpulse_nightly_schedule`` is ``none``): unpausing a
  ``@daily`` DAG would make the scheduler start a scheduled run beside the one a test triggers. The scheduler
  itself keeps creating runs (``use_job_schedule``), as asset-triggered runs need it.
- Auth (SimpleAuthManager, Airflow 3's default): one user ``admin`` with role admin
  (``[core] simple_auth_manager_users``) whose password this harness writes into
  ``[core] simple_auth_manager_passwords_file`` before the api-server starts, so the password is known without
  reading it off a log. REST calls use ``POST /auth/token`` -> bearer token; the UI logs in with the same pair.
- ``[api_auth] jwt_secret`` is shared by all processes: the scheduler signs the tokens its task workers present
  to the api-server's execution API; two random secrets would reject every task.
- ``[core] test_connection = Enabled`` so the UI's Test button and ``POST /api/v2/connections/test`` work.
- The connection ``edgeimpulse_default`` comes from ``AIRFLOW_CONN_EDGEIMPULSE_DEFAULT`` (JSON form).
- ``StackSettings.distributed``: the production shape instead: PostgreSQL and Redis (services.py) under a
  ``CeleryExecutor`` with ``celery_workers`` Celery workers (each its own log-server port), the Celery result
  backend in PostgreSQL. Worker N serves Airflow's default queue and its own, ``celery-worker-N`` (a task's
  ``queue`` pins it to that worker), and reports ``celery-worker-N`` as its host name (``[core]
  hostname_callable``), so a task instance's ``hostname`` in the REST API names the worker that ran it. ``python``
  may be another interpreter (``wheel_venv``: the provider installed from its built wheel), and then no inherited
  PYTHONPATH reaches the stack, so nothing is imported from the work tree.
- Every process starts in its own session (process group). ``stop()`` sends SIGTERM to each group, SIGKILL after
  a bound, and then looks for any process still carrying this stack's marker variable in its environment
  (children that left the group included), kills those and reports them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from tests.conformance.serve import launcher
from tests.e2e.services import PostgresCluster, RedisServer
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
# EI_E2E_ARTIFACTS: another folder, so two e2e runs side by side do not empty each other's evidence.
ARTIFACTS = Path(os.environ.get("EI_E2E_ARTIFACTS") or REPO / "test-artifacts" / "e2e").resolve()
MARKER_VAR = "EDGEIMPULSE_E2E_STACK"
ADMIN_USER = "admin"
EMULATOR_PROJECT_ID = 1
WATCHER_POLL_INTERVAL_S = 2
SQLITE_LOCK_WAIT_S = 60
# Past the SQLite lock wait, so a call that waited on the lock ends with the server's own answer, not the client's.
API_TIMEOUT_S = SQLITE_LOCK_WAIT_S + 30
_DB_ARGS_MODULE = "edgeimpulse_e2e_db_args"  # written into the stack's AIRFLOW_HOME, which is on PYTHONPATH
_HOSTNAME_MODULE = "edgeimpulse_e2e_hostname"  # likewise: ``[core] hostname_callable`` of the Celery workers
_HOSTNAME_VAR = "EDGEIMPULSE_E2E_HOSTNAME"
DEFAULT_QUEUE = "default"  # Airflow's ``[operators] default_queue``
EMULATOR_READY_PREFIX = "Edge Impulse emulator listening on "
# Variables of the calling process that must not leak into the stack: the unit tests' conftest sets several.
_SCRUBBED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "_AIRFLOW", "AIRFLOW_CTX_")
_SCRUBBED_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS")

T = TypeVar("T")


class StackError(RuntimeError):
    """The stack could not start, a component died, or a bounded wait ran out."""


def distinctive_secret(prefix: str) -> str:
    """A secret no log line, table row or message could hold by accident, so finding it anywhere is a leak."""
    return f"{prefix}{secrets.token_hex(12)}"


@dataclass(frozen=True)
class EmulatorCredentials:
    """What the emulator accepts and the ``edgeimpulse_default`` connection presents (``auth_type`` picks which)."""

    auth_type: str = "api_key"
    api_key: str = field(default_factory=lambda: distinctive_secret("ei_e2eKEY"))
    username: str = field(default_factory=lambda: distinctive_secret("e2eUSER"))
    password: str = field(default_factory=lambda: distinctive_secret("e2ePASS"))

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear outside the connection table."""
        if self.auth_type == "api_key":
            return (self.api_key,)
        return (self.password,)

    def connection(self, url: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"project_id": EMULATOR_PROJECT_ID, "ingestion_host": url}
        if self.auth_type == "api_key":
            return {"conn_type": "edgeimpulse", "host": url, "password": self.api_key, "extra": extra}
        return {
            "conn_type": "edgeimpulse",
            "host": url,
            "login": self.username,
            "password": self.password,
            "extra": {**extra, "auth_type": self.auth_type},
        }


@dataclass(frozen=True)
class StackSettings:
    dag_folders: tuple[Path, ...]
    credentials: EmulatorCredentials = field(default_factory=EmulatorCredentials)
    artifacts: Path = ARTIFACTS
    job_duration: float = 5.0
    start_timeout_s: float = 180.0
    stop_timeout_s: float = 20.0
    parallelism: int = 4
    python: Path = field(default_factory=lambda: Path(sys.executable))
    # Folders put first on the stack's PYTHONPATH: the provider installed for this run beside a cached venv of
    # another Airflow version (versions.py).
    python_path: tuple[Path, ...] = ()
    # [triggerer] job_heartbeat_sec and triggerer_health_check_threshold; None keeps Airflow's (5 s, 30 s). Low
    # values let a second triggerer (``start_triggerer``) adopt a stalled one's triggers within seconds.
    triggerer_heartbeat_s: int | None = None
    triggerer_health_check_threshold_s: int | None = None
    # The first triggerer's ``--capacity`` (Airflow's default, 1000, when None).
    triggerer_capacity: int | None = None
    # PostgreSQL + Redis + CeleryExecutor with this many Celery workers of ``celery_concurrency`` slots each.
    distributed: bool = False
    celery_workers: int = 2
    celery_concurrency: int = 4
    # [scheduler] task_instance_heartbeat_timeout (Airflow's 300 s when None): how soon a task whose worker died
    # is failed (and retried).
    task_heartbeat_timeout_s: int | None = None


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's environment
    user: str | None = None  # another OS user to run as (PostgreSQL's server under root)
    killed: bool = False  # by the test (``AirflowStack.kill``): its death is no failure of the stack

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"


def worker_queue(number: int) -> str:
    """The name of Celery worker ``number`` (from 1), of the queue only it serves, and of the host its tasks report."""
    return f"celery-worker-{number}"


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something other than None; a bounded wait that says what it waited for."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value is not None:
                return value
        except StackError:
            raise
        except Exception as err:  # the thing may not be up yet; keep the last reason for the message
            last_error = err
        if time.monotonic() >= deadline:
            reason = f" (last error: {last_error!r})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}{reason}")
        time.sleep(interval)


def bundle_config(dag_folders: Iterable[Path]) -> list[dict[str, Any]]:
    return [
        {
            "name": f"e2e-{index}-{folder.name}",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder)},
        }
        for index, folder in enumerate(dag_folders)
    ]


def never_reuse_trigger_ids(database: Path) -> None:
    """
    Give SQLite's ``trigger`` table AUTOINCREMENT, as a PostgreSQL sequence behaves: ids are never handed out again.

    Without it SQLite gives a new row the highest id plus one, so once the newest trigger is deleted (its task was
    cleared or marked failed), the next deferral gets that trigger's id. The triggerer still knows the old trigger
    by that id: it never starts the new one, and an event the old one fired lands on the new try, which Airflow
    then fails ("finished with state success, but the task instance's state attribute is queued"). Production
    databases do not reuse ids; a test of what happens when a user clears a deferred task must not either.
    """
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
        (table_sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'trigger'").fetchone()
        indexes = [
            row[0]
            for row in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trigger' AND sql IS NOT NULL"
            )
        ]
        # The key constraint sits among the columns (3.3) or last (3.1, 3.2), so with a comma before or after it.
        rewritten = re.sub(
            r"CONSTRAINT trigger_pkey PRIMARY KEY \(id\),|,\s*CONSTRAINT trigger_pkey PRIMARY KEY \(id\)",
            "",
            table_sql.replace("id INTEGER NOT NULL,", "id INTEGER PRIMARY KEY AUTOINCREMENT,", 1),
            count=1,
        )
        if rewritten.count("AUTOINCREMENT") != 1 or "PRIMARY KEY (id)" in rewritten:
            raise StackError(f"the trigger table's schema changed; cannot make its ids unique:\n{table_sql}")
        # Legacy renames leave the other tables' references to "trigger" alone: they point at the new table.
        db.executescript(
            "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; BEGIN;"
            'ALTER TABLE "trigger" RENAME TO trigger_before_autoincrement;'
            f"{rewritten};"
            'INSERT INTO "trigger" SELECT * FROM trigger_before_autoincrement;'
            "DROP TABLE trigger_before_autoincrement;" + "".join(f"{index};" for index in indexes) + "COMMIT;"
        )


class AirflowStack:
    """Start with ``start()`` (or use as a context manager); always ``stop()``, which is idempotent."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.stack_id = uuid.uuid4().hex
        self.home = Path(tempfile.mkdtemp(prefix="edgeimpulse-e2e-home-"))
        self.workdir = Path(tempfile.mkdtemp(prefix="edgeimpulse-e2e-work-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.emulator_url = ""
        self.violations_file: Path | None = None
        self.components: list[Component] = []
        self.leftovers: list[str] = []
        self._token: str | None = None
        self._airflow_version: tuple[int, int] | None = None
        self._stopped = False
        self.timings: dict[str, float] = {}
        self.postgres = PostgresCluster(free_port(), settings.artifacts) if settings.distributed else None
        self.redis = RedisServer(free_port()) if settings.distributed else None

    # -- environment and configuration ---------------------------------------------------------------------------

    @property
    def airflow_bin(self) -> str:
        return str(self.settings.python.with_name("airflow"))

    def connection_json(self) -> str:
        return json.dumps(self.settings.credentials.connection(self.emulator_url))

    def env(self) -> dict[str, str]:
        """The environment of every stack process and of helpers that must see the stack's DB and config."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_SCRUBBED_PREFIXES) and key not in _SCRUBBED_NAMES
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONPATH": os.pathsep.join(
                    p for p in (*map(str, self.settings.python_path), str(self.home), self._inherited_pythonpath()) if p
                ),
                MARKER_VAR: self.stack_id,
                "PYTHONUNBUFFERED": "1",
                # The example DAGs read these at parse time; pinned so a developer's Variables cannot change them.
                "AIRFLOW_VAR_EDGEIMPULSE_DEFERRABLE": "true",
                "AIRFLOW_VAR_EDGEIMPULSE_PROJECT_ID": str(EMULATOR_PROJECT_ID),
                "AIRFLOW_VAR_EDGEIMPULSE_NIGHTLY_SCHEDULE": "none",
                # The new-data watcher's poll interval: seconds here, so an upload starts a run within a test.
                "AIRFLOW_VAR_EDGEIMPULSE_POLL_INTERVAL": str(WATCHER_POLL_INTERVAL_S),
            }
        )
        if self.emulator_url:
            env["AIRFLOW_CONN_EDGEIMPULSE_DEFAULT"] = self.connection_json()
        return env

    def _inherited_pythonpath(self) -> str:
        """The caller's PYTHONPATH, unless the stack runs another interpreter, which must import only its own."""
        return os.environ.get("PYTHONPATH", "") if self.settings.python == Path(sys.executable) else ""

    def _database_config(self) -> dict[str, str]:
        if self.postgres is not None:
            return {"sql_alchemy_conn": self.postgres.sqlalchemy_url}
        return {
            "sql_alchemy_conn": f"sqlite:///{self.home / 'airflow.db'}",
            # Four processes write to one SQLite file: a write may wait on the lock longer than pysqlite's
            # default 5 s, which the api-server would turn into an HTTP 500 for the test.
            "sql_alchemy_connect_args": f"{_DB_ARGS_MODULE}.CONNECT_ARGS",
            "sql_alchemy_connect_args_async": f"{_DB_ARGS_MODULE}.CONNECT_ARGS",
        }

    def _write_config(self) -> None:
        artifacts = self.settings.artifacts
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: self.password}) + "\n")
        cfg = {
            "core": {
                "executor": "CeleryExecutor" if self.settings.distributed else "LocalExecutor",
                "load_examples": "False",
                "dags_folder": str(self.settings.dag_folders[0]),
                "fernet_key": _fernet_key(),
                "parallelism": str(self.settings.parallelism),
                "simple_auth_manager_users": f"{ADMIN_USER}:admin",
                "simple_auth_manager_passwords_file": str(passwords),
                "execution_api_server_url": f"{self.url}/execution/",
                "test_connection": "Enabled",
                "default_task_retries": "0",
            },
            "database": self._database_config(),
            "api": {"host": "127.0.0.1", "port": str(self.port), "base_url": self.url, "workers": "1"},
            "api_auth": {"jwt_secret": secrets.token_urlsafe(32)},
            "workers": {"min_heartbeat_interval": "1"},
            "dag_processor": {"dag_bundle_config_list": json.dumps(bundle_config(self.settings.dag_folders))},
            "logging": {
                "base_log_folder": str(artifacts / "task-logs"),
                "dag_processor_child_process_log_directory": str(artifacts / "dag-processor-logs"),
                # Free ports: two stacks (or a developer's Airflow) on the defaults 8793/8794 would collide.
                "worker_log_server_port": str(free_port()),
                "trigger_log_server_port": str(free_port()),
            },
        }
        triggerer = {
            "job_heartbeat_sec": self.settings.triggerer_heartbeat_s,
            "triggerer_health_check_threshold": self.settings.triggerer_health_check_threshold_s,
        }
        if any(value is not None for value in triggerer.values()):
            cfg["triggerer"] = {key: str(value) for key, value in triggerer.items() if value is not None}
        if self.settings.task_heartbeat_timeout_s is not None:
            cfg["scheduler"] = {
                "task_instance_heartbeat_timeout": str(self.settings.task_heartbeat_timeout_s),
                "task_instance_heartbeat_timeout_detection_interval": "2",
            }
        if self.postgres is not None and self.redis is not None:
            cfg["celery"] = {
                "broker_url": self.redis.url,
                "result_backend": f"db+{self.postgres.sqlalchemy_url.replace('+psycopg2', '')}",
                "worker_concurrency": str(self.settings.celery_concurrency),
            }
        self._write_cfg_file(cfg)

    def _write_cfg_file(self, cfg: dict[str, dict[str, str]]) -> None:
        """``cfg`` as the stack's airflow.cfg (a copy beside the logs), and the modules it names in AIRFLOW_HOME."""
        (self.home / f"{_DB_ARGS_MODULE}.py").write_text(f"CONNECT_ARGS = {{'timeout': {SQLITE_LOCK_WAIT_S}}}\n")
        (self.home / f"{_HOSTNAME_MODULE}.py").write_text(
            f"import os\nfrom airflow.utils.net import getfqdn\n\n\ndef hostname() -> str:\n"
            f"    return os.environ.get({_HOSTNAME_VAR!r}) or getfqdn()\n"
        )
        lines: list[str] = []
        for section, options in cfg.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {value}" for key, value in options.items())
            lines.append("")
        (self.home / "airflow.cfg").write_text("\n".join(lines))
        shutil.copy(self.home / "airflow.cfg", self.settings.artifacts / "airflow.cfg")

    # -- life cycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        artifacts = self.settings.artifacts
        artifacts.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            self._start_emulator()
            self._start_services()
            self._write_config()
            self._migrate()
            capacity = self.settings.triggerer_capacity
            for name, argv in (
                ("api-server", [self.airflow_bin, "api-server", "--host", "127.0.0.1", "--port", str(self.port)]),
                ("scheduler", [self.airflow_bin, "scheduler"]),
                ("dag-processor", [self.airflow_bin, "dag-processor"]),
                ("triggerer", self._triggerer_argv(capacity)),
            ):
                self._spawn(name, argv)
            workers = [self._start_celery_worker(n) for n in range(1, self.settings.celery_workers + 1)]
            self._wait_healthy()
            for worker in workers if self.settings.distributed else []:
                self._wait_celery_worker(worker)
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - began

    def start_triggerer(self, name: str, capacity: int | None = None) -> Component:
        """One more triggerer process beside the running stack (Airflow spreads triggers over all of them)."""
        self._check_alive()
        # Its own log-server port: the first triggerer holds the configured one.
        env = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        return self._spawn(name, self._triggerer_argv(capacity), env=env)

    def _triggerer_argv(self, capacity: int | None) -> list[str]:
        return [self.airflow_bin, "triggerer", *(["--capacity", str(capacity)] if capacity else [])]

    def _start_celery_worker(self, number: int) -> Component | None:
        if not self.settings.distributed:
            return None
        name = worker_queue(number)
        argv = [self.airflow_bin, "celery", "worker", "--celery-hostname", f"{name}@%h"]
        argv += ["--concurrency", str(self.settings.celery_concurrency), "--without-gossip", "--without-mingle"]
        # Airflow's default queue, which any worker may take, and one only this worker serves.
        argv += ["--queues", f"{DEFAULT_QUEUE},{name}"]
        env = {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            # Every worker runs on this one host: the name its task instances report is the worker's own.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{_HOSTNAME_MODULE}.hostname",
            _HOSTNAME_VAR: name,
        }
        return self._spawn(name, argv, env=env)

    def _wait_celery_worker(self, worker: Component | None) -> None:
        if worker is None:
            return

        def ready() -> bool | None:
            self._check_alive()
            return True if re.search(rf"\b{worker.name}@\S+ ready\.", worker.log_tail(100_000)) else None

        wait_until(ready, timeout=self.settings.start_timeout_s, what=f"{worker.name} to be ready", interval=0.5)

    def _start_services(self) -> None:
        """PostgreSQL and Redis for a distributed stack, each its own component (stopped after Airflow)."""
        if self.postgres is None or self.redis is None:
            return
        began = time.monotonic()
        self.postgres.init(self.settings.artifacts / "initdb.log")
        self._spawn("postgres", self.postgres.server_argv(), user=self.postgres.user)
        self._spawn("redis", self.redis.server_argv())
        for service in (self.postgres, self.redis):

            def ready(service: PostgresCluster | RedisServer = service) -> bool | None:
                self._check_alive()
                return service.ready() or None

            wait_until(ready, timeout=60, what=f"{type(service).__name__} to accept connections")
        self.timings["services_s"] = time.monotonic() - began

    def component(self, name: str) -> Component:
        (found,) = [c for c in self.components if c.name == name]
        return found

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to a component's whole process group (a triggerer is a supervisor and its runner)."""
        proc = self.component(name).proc
        if proc is not None:
            os.killpg(proc.pid, sig)

    def kill(self, name: str) -> None:
        """
        SIGKILL a component and everything it started, as when its node is lost, and wait until it is gone.

        Its process group, and the groups its descendants made of their own (Airflow's task supervisor puts each
        task process in a group of its own, so the group alone would leave the task running).
        """
        component = self.component(name)
        assert component.proc is not None
        component.killed = True
        groups = {component.proc.pid} | {stat["pgrp"] for stat in _descendants(component.proc.pid)}
        for pgrp in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgrp, signal.SIGKILL)
        if not _wait_group_gone(component.proc, time.monotonic() + 30):
            raise StackError(f"{name} outlived SIGKILL")

    def owner_of(self, pid: int) -> Component:
        """The component that started process ``pid``, at any depth."""
        by_pid = {c.proc.pid: c for c in self.components if c.proc is not None}
        parents = {stat["pid"]: stat["ppid"] for stat in _proc_stats()}
        current: int | None = pid
        while current:
            if current in by_pid:
                return by_pid[current]
            current = parents.get(current)
        raise StackError(f"process {pid} belongs to no component of the stack")

    def _spawn(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, user: str | None = None
    ) -> Component:
        component = Component(name, argv, self.settings.artifacts / f"{name}.log", env=env or {}, user=user)
        with component.log.open("ab") as log:
            component.proc = subprocess.Popen(
                argv,
                env={**self.env(), **component.env},
                user=user,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches its children too
            )
        self.components.append(component)
        return component

    def _start_emulator(self) -> None:
        """
        The emulator with the OpenAPI conformance check around it, on the test suite's interpreter and work tree
        whatever Airflow the stack runs (the emulator needs no Airflow); the suite's check follows what it finds.
        """
        creds = self.settings.credentials
        self.violations_file = self.settings.artifacts / f"emulator-openapi-{self.stack_id}.jsonl"
        argv = [*launcher(self.violations_file), "--port", "0", "--api-key", creds.api_key]
        argv += ["--username", creds.username, "--password", creds.password]
        argv += ["--job-duration", str(self.settings.job_duration)]
        emulator = self._spawn("emulator", argv, env={"PYTHONPATH": str(REPO)})

        def ready() -> str | None:
            self._check_alive()
            for line in emulator.log.read_text(errors="replace").splitlines():
                if line.startswith(EMULATOR_READY_PREFIX):
                    return line.removeprefix(EMULATOR_READY_PREFIX).strip()
            return None

        self.emulator_url = wait_until(ready, timeout=30, what="the emulator to listen")

    def run_cli(self, args: list[str], log_name: str) -> None:
        """One ``airflow`` command to its end, its output in ``log_name`` beside the logs; a failure raises."""
        log = self.settings.artifacts / log_name
        with log.open("wb") as out:
            result = subprocess.run(
                [self.airflow_bin, *args],
                env=self.env(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(f"airflow {args[0]} {args[1]} failed ({result.returncode}):\n{log.read_text()[-4000:]}")

    def _migrate(self) -> None:
        began = time.monotonic()
        self.run_cli(["db", "migrate"], "db-migrate.log")
        if self.postgres is None:  # PostgreSQL's sequences never reuse an id
            never_reuse_trigger_ids(self.home / "airflow.db")
        self.timings["migrate_s"] = time.monotonic() - began

    def _check_alive(self) -> None:
        for component in self.components:
            if not component.alive() and not component.killed:
                code = component.proc.returncode if component.proc else None
                raise StackError(f"{component.name} exited ({code}); its log ends:\n{component.log_tail()}")

    def _wait_healthy(self) -> None:
        def healthy() -> dict[str, Any] | None:
            self._check_alive()
            response = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
            if response.status_code != 200:
                return None
            health = response.json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if all((health.get(part) or {}).get("status") == "healthy" for part in parts):
                return health
            return None

        wait_until(healthy, timeout=self.settings.start_timeout_s, what="all Airflow components to be healthy")

    def stop(self) -> list[str]:
        """Stop everything this stack started; returns descriptions of processes that outlived their group."""
        if self._stopped:
            return self.leftovers
        self._stopped = True
        began = time.monotonic()
        # Airflow's processes together (the triggerer alone takes ~10 s to wind down), the emulator, which their
        # tasks call, and the services they use after them.
        backing = ("emulator", "postgres", "redis")
        self._stop_groups([c for c in self.components if c.name not in backing])
        self._stop_groups([c for c in self.components if c.name in backing])
        self.leftovers = self._kill_marked_processes()
        for service in (self.postgres, self.redis):
            if service is not None:
                service.remove()
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.timings["stop_s"] = time.monotonic() - began
        return self.leftovers

    def _stop_groups(self, components: list[Component]) -> None:
        """SIGTERM to each process group, SIGKILL to the groups still there after the bound."""
        running = [c.proc for c in components if c.proc is not None]
        for sig, bound in ((signal.SIGTERM, self.settings.stop_timeout_s), (signal.SIGKILL, 10.0)):
            for proc in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)  # start_new_session: the leader's pid is the group id
            deadline = time.monotonic() + bound
            running = [p for p in running if not _wait_group_gone(p, deadline)]
            if not running:
                return

    def _kill_marked_processes(self) -> list[str]:
        found = []
        for pid, cmdline in _marked_processes(MARKER_VAR, self.stack_id):
            found.append(f"{pid} {cmdline}")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if found:
            wait_until(
                lambda: True if not list(_marked_processes(MARKER_VAR, self.stack_id)) else None,
                timeout=10,
                what="leftover stack processes to die",
            )
        return found

    # -- using the stack -----------------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            response = requests.post(
                f"{self.url}/auth/token", json={"username": ADMIN_USER, "password": self.password}, timeout=30
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        """One REST call to the public API (``/api/v2`` + path) as the admin user; the JSON answer."""
        self._check_alive()
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self._rest(requests.request, method, f"/api/v2{path}", expect=expect, headers=headers, **kwargs)

    def _rest(
        self,
        send: Callable[..., requests.Response],
        method: str,
        path: str,
        *,
        expect: int | tuple[int, ...],
        **kwargs: Any,
    ) -> Any:
        """``send`` one call to the stack's ``path``; the JSON answer, or an error naming what came instead."""
        try:
            response = send(method, f"{self.url}{path}", timeout=API_TIMEOUT_S, **kwargs)
        except requests.Timeout:
            # Not a StackError: a poll (``wait_until``) asks again, as it did when the answer timed out.
            raise TimeoutError(f"{method} {path}: no answer in {API_TIMEOUT_S} s\n{self.log_tails()}") from None
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise StackError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def emulator(self, method: str, path: str, **kwargs: Any) -> Any:
        """The emulator's control API (``/_emulator`` + path)."""
        response = requests.request(method, f"{self.emulator_url}/_emulator{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Until the dag-processor has serialized ``dag_id``; fails fast on an import error of any DAG file."""

        def parsed() -> dict[str, Any] | None:
            errors = self.api("GET", "/importErrors").get("import_errors", [])
            if errors:
                details = "\n".join(f"{e.get('filename')}: {e.get('stack_trace', '')[-1500:]}" for e in errors)
                raise StackError(f"DAG import errors while waiting for {dag_id}:\n{details}")
            answer: dict[str, Any] | None = self.api("GET", f"/dags/{dag_id}", expect=(200, 404))
            return answer if answer and "dag_id" in answer else None

        return wait_until(parsed, timeout=timeout, what=f"DAG {dag_id} to be parsed", interval=1.0)

    def run_python(
        self, code: str, *, extra_env: dict[str, str] | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a fresh interpreter that sees the stack's AIRFLOW_HOME, config and metadata DB."""
        return subprocess.run(
            [str(self.settings.python), "-c", code],
            env={**self.env(), **(extra_env or {})},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def airflow_version(self) -> tuple[int, int]:
        """The (major, minor) of the Airflow the stack runs, as its REST API reports it."""
        if self._airflow_version is None:
            major, minor = str(self.api("GET", "/version")["version"]).split(".")[:2]
            self._airflow_version = (int(major), int(minor))
        return self._airflow_version

    def log_tails(self) -> str:
        return "\n".join(f"===== {c.name} =====\n{c.log_tail(2500)}" for c in self.components)


def wheel_venv(folder: Path) -> Path:
    """
    A virtualenv in ``folder`` with the provider installed from its wheel, built here from the work tree; its python.

    Everything else is pinned to what the calling interpreter has (``uv pip freeze``), so both run the same Airflow
    and the install comes from uv's cache. The work tree itself is not importable there: a file the wheel lacks is
    missing for the stack too.
    """
    uv = [str(Path(sys.executable).with_name("uv"))]
    dist, venv = folder / "dist", folder / "venv"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = folder / "install.log"

    def run(argv: list[str]) -> str:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=folder)
        with log.open("a") as out:
            out.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(f"{argv[:4]} failed ({result.returncode}): {result.stderr[-3000:]}")
        return result.stdout

    run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist), str(REPO)])
    (wheel,) = dist.glob("airflow_provider_edgeimpulse-*.whl")
    frozen = run([*uv, "pip", "freeze", "--python", sys.executable])
    # Pins by name only: the work tree's own editable line is neither installable nor wanted.
    pins = [
        line for line in frozen.splitlines() if "==" in line and not line.startswith("airflow-provider-edgeimpulse")
    ]
    (folder / "constraints.txt").write_text("\n".join(pins) + "\n")
    run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    requirements = ["apache-airflow", "apache-airflow-providers-celery", "apache-airflow-providers-postgres"]
    # Object storage on S3 as a deployment reaches it: the Amazon provider's connection, s3fs underneath.
    requirements += ["apache-airflow-providers-amazon", "s3fs", "psycopg2-binary", str(wheel)]
    python = venv / "bin" / "python"
    run([*uv, "pip", "install", "--quiet", "--python", str(python), "-c", "constraints.txt", *requirements])
    return python


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _wait_group_gone(leader: subprocess.Popen[bytes], deadline: float) -> bool:
    pgid = leader.pid
    while True:
        leader.poll()  # reap the leader, or it lingers as a zombie member of the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if _group_only_zombies(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _group_only_zombies(pgid: int) -> bool:
    """Zombies whose parent is gone still count as members until init reaps them; they hold no resources."""
    return not any(stat["pgrp"] == pgid and stat["state"] != "Z" for stat in _proc_stats())


def _proc_stats() -> Iterator[dict[str, Any]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses, so split after the last ")".
        rest = raw[raw.rfind(")") + 2 :].split()
        yield {"pid": int(entry.name), "state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2])}


def _descendants(pid: int) -> list[dict[str, Any]]:
    stats = list(_proc_stats())
    found: list[dict[str, Any]] = []
    parents = {pid}
    while True:
        children = [s for s in stats if s["ppid"] in parents and s not in found]
        if not children:
            return found
        found += children
        parents = {s["pid"] for s in children}


def _marked_processes(var: str, value: str) -> Iterator[tuple[int, str]]:
    """Live processes whose environment carries ``var=value``: everything the stack started, at any depth."""
    needle = f"{var}={value}".encode()
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text()
            if state[state.rfind(")") + 2] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        yield int(entry.name), cmdline[:200]
