"""
The services a production-shaped Airflow runs on: a throw-away PostgreSQL cluster and a Redis server, Debian's
packages (scripts/e2e/install_services.sh installs them), each on a free loopback port.

Only the command lines and readiness checks live here; stack.py spawns them like every other component (own
process group, stopped in ``stop()``), so nothing is left running when a test ends.

- PostgreSQL: ``initdb`` into a temporary folder, then the ``postgres`` server itself in the foreground (``pg_ctl
  start`` would detach it into a session of its own, out of the stack's reach). The server refuses to run as root,
  so under root (CI) both run as Debian's ``postgres`` user. Durability is off (``fsync``, ``synchronous_commit``):
  the cluster lives for one test session. Its unix socket sits in the artefacts folder when the path is short
  enough for a socket address, else in the cluster's temporary folder; clients use TCP either way.
- Redis: no persistence (``save ""``, no append-only file), loopback only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "e2e" / "install_services.sh"
DB_USER = "airflow"
DB_NAME = "airflow"
POSTGRES_OS_USER = "postgres"  # Debian's postgresql package creates it
# sun_path holds 108 bytes; the server adds "/.s.PGSQL.<port>" (and ".lock") to the folder.
_MAX_SOCKET_DIR_LEN = 80


class ServiceMissing(RuntimeError):
    """A Debian package the production-shaped stack needs is not installed."""


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH."""
    majors = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for folder in majors:
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    if found:
        return found
    raise ServiceMissing(f"{name} not found: run scripts/e2e/install_services.sh (Debian's postgresql)")


def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceMissing("redis-server not found: run scripts/e2e/install_services.sh (Debian's redis-server)")
    return found


def ensure_services() -> None:
    """Installs the packages when missing and running as root; then fails in CI, and skips elsewhere, if absent."""
    import pytest

    def missing() -> str | None:
        try:
            postgres_bin("initdb")
            redis_bin()
        except ServiceMissing as err:
            return str(err)
        return None

    if missing() and os.geteuid() == 0:
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, timeout=900)
    message = missing()
    if message and os.environ.get("CI"):
        pytest.fail(message)
    if message:
        pytest.skip(message)


def _os_user() -> str | None:
    """Who runs the PostgreSQL programs: ``postgres`` under root (which the server refuses), else ourselves."""
    return POSTGRES_OS_USER if os.geteuid() == 0 else None


@dataclass
class PostgresCluster:
    port: int
    artifacts: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgeimpulse-e2e-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        preferred = self.artifacts / "pg-socket"
        return preferred if len(str(preferred)) <= _MAX_SOCKET_DIR_LEN else self.root / "socket"

    @property
    def user(self) -> str | None:
        return _os_user()

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={DB_USER} dbname={DB_NAME}"

    def init(self, log: Path) -> None:
        """A new cluster whose only role is ``airflow``, trusted on loopback (a throw-away cluster, no password)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            record = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir):
                os.chown(path, record.pw_uid, record.pw_gid)
        argv = [postgres_bin("initdb"), "-D", str(self.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8"]
        argv += ["--no-sync", "--no-instructions"]
        with log.open("ab") as out:
            result = subprocess.run(
                argv, user=self.user, cwd=self.root, stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False
            )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {log.read_text(errors='replace')[-3000:]}")

    def server_argv(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def ready(self) -> bool:
        """Whether the server accepts connections; then the Airflow database is created (once)."""
        import psycopg2

        try:
            psycopg2.connect(self.dsn, connect_timeout=5).close()
            return True
        except psycopg2.OperationalError as err:
            if f'database "{DB_NAME}" does not exist' not in str(err):
                return False
        con = psycopg2.connect(f"host=127.0.0.1 port={self.port} user={DB_USER} dbname=postgres", connect_timeout=5)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{DB_NAME}"')
        finally:
            con.close()
        return True

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.artifacts / "pg-socket").rmdir()


@dataclass
class RedisServer:
    port: int
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgeimpulse-e2e-redis-")))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def server_argv(self) -> list[str]:
        argv = [redis_bin(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
        return [*argv, "--save", "", "--appendonly", "no", "--daemonize", "no"]

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
