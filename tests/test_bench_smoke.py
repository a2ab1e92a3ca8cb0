"""
Every benchmark runs end to end with tiny sizes (``--quick``) and ends with one JSON line holding its figures.

A smoke test, not a timed one: nothing here looks at the numbers. The scripts run side by side to keep this
short, which makes their quick figures meaningless anyway; `make bench` is where they are measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conformance.serve import launcher_env

BENCH = Path(__file__).resolve().parent.parent / "bench"
# Benchmarks that start a real Airflow with its services: their quick run is an end-to-end test
# (tests/e2e/test_bench_on_a_real_stack.py), not a unit test.
ON_A_REAL_STACK = {"task_latency.py"}
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name not in ON_A_REAL_STACK)
# A hang guard, not a time limit on the benchmarks.
HANG_GUARD_S = 300

FIGURES = {
    "wait_latency.py": {"p50_ms", "p99_ms", "baseline_p50_ms", "speedup_p50"},
    "requests_per_wait.py": {"requests_per_wait", "baseline_1s", "baseline_30s"},
    "triggerer_scale.py": {
        "waits",
        "max_sockets",
        "peak_rss_mb",
        "last_event_after_last_finish_ms",
        "baseline_max_sockets",
        "baseline_peak_rss_mb",
        "floor_loop_lag_p99_ms",
    },
    "import_time.py": {"provider_ms", "dbt_cloud_ms", "ratio"},
    "download.py": {"mib_per_s", "curl_mib_per_s", "ratio", "rss_growth_mb", "s3_rss_growth_mb", "s3_bound_mb"},
    "upload.py": {"files_per_s", "baseline_files_per_s", "speedup"},
    "task_latency.py": {
        "p50_s",
        "p99_s",
        "floor_p50_s",
        "p50_over_floor",
        "speedup_vs_poller_60s",
        "ours_request_to_event_p50_s",
        "ours_event_to_success_p50_s",
        "floor_event_to_success_p50_s",
    },
}


def run_quick(script: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        cwd=BENCH.parent,
        env=env,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    # Every emulator the benchmarks start checks its traffic against the OpenAPI definition (tests/conftest.py
    # fails the first test of this module with what they found).
    folder = tmp_path_factory.mktemp("bench-openapi")
    envs = [launcher_env(folder / f"{p.stem}.jsonl", dict(os.environ)) for p in SCRIPTS]
    with ThreadPoolExecutor(max_workers=len(SCRIPTS)) as pool:
        return dict(zip((p.name for p in SCRIPTS), pool.map(run_quick, SCRIPTS, envs), strict=True))


def test_every_named_benchmark_exists():
    assert set(FIGURES) <= {p.name for p in SCRIPTS} | ON_A_REAL_STACK
    assert {p.name for p in BENCH.glob("*.py")} >= ON_A_REAL_STACK


@pytest.mark.parametrize("name", [p.name for p in SCRIPTS])
def test_quick_run_ends_with_its_figures(runs: dict[str, subprocess.CompletedProcess[str]], name: str):
    check_figures(name, runs[name])


def check_figures(name: str, run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 0, f"{name} failed:\n{run.stderr[-3000:]}"
    lines = run.stdout.strip().splitlines()
    assert lines, f"{name} printed nothing on stdout"
    figures = json.loads(lines[-1])
    assert isinstance(figures, dict)
    missing = FIGURES.get(name, set()) - set(figures)
    assert not missing, f"{name} did not report {sorted(missing)}: {figures}"
    if name == "requests_per_wait.py":
        assert set(figures["requests_per_wait"]) == {"5s", "20s", "60s"}
