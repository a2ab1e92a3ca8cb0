"""
A real S3-compatible server for tests and benchmarks: moto's standalone server in its own process on a free
loopback port, reached the way a user reaches S3 or MinIO: an Airflow ``aws`` connection whose extra names the
endpoint, through the Amazon provider's object storage (s3fs underneath).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.ports import free_port

# Starting moto's server imports all of its services: slow on a loaded machine. A guard, not a speed goal.
START_TIMEOUT_S = 120.0
# moto accepts any key pair; these are what the connection carries, and what must never reach a log or XCom.
ACCESS_KEY = "AKIAOBJSTORETEST0001"
SECRET_KEY = "objstore-test-secret-7d1f0c2b9e"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    conn_id: str  # an Airflow connection id unique to this server (Airflow caches stores by connection id)

    def connection_json(self) -> str:
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )

    def client(self) -> Any:
        """A boto3 client for the test's own set-up and checks (never used by the code under test)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"ei-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        answer = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in answer.get("Contents", []))


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's standalone server in a process group of its own, stopped (by its own id) when the block ends."""
    for _attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "MOTO_CALL_RESET_API": "false"},
        )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline and not _answers(endpoint):
            time.sleep(0.2)
        if proc.poll() is None and _answers(endpoint):
            break
        _stop(proc)
    else:
        raise RuntimeError("moto's S3 server did not start on a free loopback port")
    try:
        yield S3Server(endpoint=endpoint, conn_id=f"ei_s3_{port}")
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
