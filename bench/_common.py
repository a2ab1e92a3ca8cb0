"""
Shared plumbing of the benchmarks: the emulator in its own process, its control API, figures as a JSON last line.

The emulator always runs as a separate process (``python -m airflow_provider_edgeimpulse.emulator --port 0``) so
that its CPU time, GIL and memory never count against the process being measured. Nothing heavy is imported at
module level: ``python bench/_common.py finish-burst`` runs as a helper process and must start fast.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_edgeimpulse.emulator.launch import emulator_command

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.hooks.credentials import EdgeImpulseCredentials

REPO = Path(__file__).resolve().parent.parent
API_KEY = "ei_emulator_key"
PROJECT_ID = 1
CONN_ID = "edgeimpulse_default"
START_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"listening on (\S+)")

# The same Airflow settings `make bench` exports, so a script run by hand behaves the same.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


# ------------------------------------------------------------------------------------------------- the emulator


class Emulator:
    """One emulator process on a free loopback port, driven over HTTP (keep-alive, so control calls stay cheap)."""

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    # -- lifecycle

    def spawn(self) -> None:
        """Start the process; :meth:`wait_ready` reads its address (split so that many can start in parallel)."""
        # Kept open for the life of the process (read on failure), closed in stop().
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [*emulator_command(), "--port", "0", "--job-duration", "-1"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO,
        )

    def wait_ready(self) -> str:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = _LISTENING.search(line)
            if match:
                self.url = match.group(1)
                # Keep draining stdout so the emulator can never block on a full pipe.
                threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
                return self.url
        self.stop()
        raise RuntimeError(f"the emulator did not start: {self.stderr_text()[-2000:]}")

    def start(self) -> str:
        self.spawn()
        return self.wait_ready()

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """One JSON request to the emulator; raises on a non-2xx answer."""
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    parts = urlsplit(self.url)
                    self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
                try:
                    self._conn.request(method, path, body=payload, headers=all_headers)
                    response = self._conn.getresponse()
                    text = response.read().decode()
                    break
                except (http.client.HTTPException, ConnectionError):
                    # A keep-alive connection the server closed meanwhile: reconnect once.
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
        if not 200 <= response.status < 300:
            raise RuntimeError(f"emulator {method} {path} answered HTTP {response.status}: {text[:500]}")
        return json.loads(text) if text else None

    def configure(self, **settings: Any) -> None:
        self.call("POST", "/_emulator/config", settings)

    def reset(self) -> None:
        self.call("POST", "/_emulator/reset")

    def finish(self, job_id: int, success: bool = True) -> None:
        self.call("POST", f"/_emulator/jobs/{job_id}/finish", {"success": success})

    def requests_total(self) -> int:
        return int(self.call("GET", "/_emulator/requests")["total"])

    def requests_by_route(self) -> dict[str, int]:
        return dict(self.call("GET", "/_emulator/requests")["by_route"])

    def sockets(self) -> int:
        return int(self.call("GET", "/_emulator/sockets")["open"])

    def start_job(self, path: str = "jobs/retrain", *, project_id: int = PROJECT_ID, api_key: str = API_KEY) -> int:
        """Start a job over plain REST (not through the code under test)."""
        data = self.call("POST", f"/v1/api/{project_id}/{path}", {}, headers={"x-api-key": api_key})
        return int(data["id"])

    def add_principal(self, api_key: str, project_id: int) -> None:
        """One more API key, opening one more project (see the emulator's ``/_emulator/principals``)."""
        self.call("POST", "/_emulator/principals", {"api_key": api_key, "project_id": project_id})

    # -- what the code under test needs

    def credentials(self, timeout: float = 60.0) -> EdgeImpulseCredentials:
        from airflow_provider_edgeimpulse.hooks.credentials import AuthType, EdgeImpulseCredentials

        return EdgeImpulseCredentials(
            studio_url=self.url,
            auth_type=AuthType.API_KEY,
            api_key=API_KEY,
            project_id=PROJECT_ID,
            ingestion_url=self.url,
            timeout=timeout,
        )

    def use_as_default_connection(self) -> None:
        """Point the ``edgeimpulse_default`` Airflow connection (env var form) at this emulator."""
        extra = {"project_id": PROJECT_ID, "ingestion_host": self.url}
        conn = {"conn_type": "edgeimpulse", "host": self.url, "password": API_KEY, "extra": extra}
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)


def start_emulators(count: int) -> list[Emulator]:
    """Start ``count`` emulators in parallel (each import takes about half a second of CPU)."""
    emulators = [Emulator() for _ in range(count)]
    try:
        for emulator in emulators:
            emulator.spawn()
        for emulator in emulators:
            emulator.wait_ready()
    except BaseException:
        for emulator in emulators:
            emulator.stop()
        raise
    return emulators


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


# ------------------------------------------------------------------------------------------ finishing in a burst


class FinishBurst:
    """
    A helper process that finishes many jobs back to back on one keep-alive connection, when told to.

    A separate process, so that sending the burst takes no CPU or GIL from the process whose reaction is measured.
    It starts (and connects) ahead of time; :meth:`fire` only releases it.
    """

    def __init__(self, url: str, job_ids: Sequence[int]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "finish-burst", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(" ".join(str(j) for j in job_ids) + "\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the finish-burst helper did not start")

    def fire(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()

    def result(self, timeout: float = 120.0) -> dict[str, float] | None:
        """
        Wall-clock times (``time.time()``) of the first and the last finish request, as sent; ``None`` when the
        burst did not get through in ``timeout`` seconds (an emulator swamped by the side under test), in
        which case the helper is stopped.
        """
        try:
            out, _ = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            return None
        if self._proc.returncode:
            raise RuntimeError(f"the finish-burst helper failed: {out[-2000:]}")
        return dict(json.loads(out.strip().splitlines()[-1]))


def _finish_burst_main(url: str) -> None:
    job_ids = [int(j) for j in sys.stdin.readline().split()]
    emulator = Emulator()
    emulator.url = url
    emulator.call("GET", "/_emulator/health")  # connect now, not inside the burst
    print("ready", flush=True)
    sys.stdin.readline()
    first = last = time.time()
    for index, job_id in enumerate(job_ids):
        if index == len(job_ids) - 1:
            last = time.time()
        emulator.finish(job_id)
    print(json.dumps({"first_sent": first, "last_sent": last, "done": time.time()}), flush=True)


# --------------------------------------------------------------------------------------------------- measuring


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _status_kib(field: str, pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def rss_mb(pid: int | str = "self") -> float:
    return _status_kib("VmRSS", pid) / 1024.0


def peak_rss_mb(pid: int | str = "self") -> float:
    """The high-water mark of the resident set (VmHWM): what the process needed at its worst moment."""
    return _status_kib("VmHWM", pid) / 1024.0


def reset_peak_rss() -> bool:
    """Start a new high-water mark at the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def emit(figures: dict[str, Any]) -> None:
    """Print the figures as the last line of output: one JSON object, what `make bench` and the smoke test read."""
    sys.stderr.flush()
    print(json.dumps(figures, sort_keys=False), flush=True)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` switch every benchmark has (tiny sizes, for the smoke test)."""
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing, measures nothing")
    return args


def note(text: str) -> None:
    """Progress for a person watching; stderr, so the last line of stdout stays the JSON figures."""
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "finish-burst":
        _finish_burst_main(sys.argv[2])
    else:
        sys.exit("usage: _common.py finish-burst URL   (a helper of the benchmarks, not a benchmark)")
