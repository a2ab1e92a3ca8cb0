"""
Other Airflow versions for the end-to-end stack: a virtualenv per Airflow version, cached outside the clone, and
the provider installed from the wheel built from the work tree for each run.

- The cache (``EI_AIRFLOW_VENVS``, by default ``~/.cache/airflow-provider-edgeimpulse/venvs``) holds one venv per
  Airflow version and hash of ``pyproject.toml``: Airflow and the provider's own dependencies, nothing of the work
  tree. A changed ``pyproject.toml`` (new dependency) makes a new one. Building one takes minutes; reusing one, none.
- Installed with uv and Airflow's constraints file for that version and this Python when it can be fetched
  (``AIRFLOW_CONSTRAINTS_URL``); without network, with plain pins (Airflow's own ``==`` and the provider's ranges).
- The provider goes into a folder of the run's own (``uv pip install --no-deps --target``) that the stack puts on
  PYTHONPATH: the cached venv stays untouched, so two runs of different work trees can share it. Its dist-info
  is there too, so Airflow's providers manager finds the provider's entry point as in an ordinary install.
- Two builders of the same venv (two work trees at once) take turns on a lock file; a venv without its
  ``.complete`` stamp (a build that died) is built again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tomllib

from tests.e2e.stack import REPO, StackError

CACHE = Path(
    os.environ.get("EI_AIRFLOW_VENVS") or Path.home() / ".cache" / "airflow-provider-edgeimpulse" / "venvs"
).expanduser()
AIRFLOW_CONSTRAINTS_URL = "https://raw.githubusercontent.com/apache/airflow/constraints-{version}/constraints-{py}.txt"
CONSTRAINTS_FETCH_TIMEOUT_S = 10
INSTALL_TIMEOUT_S = 1200
# What an Airflow version can do that the tests look at (README, "Airflow versions"): (major, minor) since when.
TASK_STATE_STORE_SINCE = (3, 3)  # before it, a job id waits for the retry in an Airflow Variable
TRIGGER_ON_KILL_SINCE = (3, 3)  # before it, a user's stop of a deferred task only cancels the trigger's coroutine
TASK_OUTPUT_IN_SCHEDULER_LOG_SINCE = (3, 2)  # the LocalExecutor relays what a task prints into the scheduler's log
UV = Path(sys.executable).with_name("uv")
# Without Airflow's constraints file, what an Airflow line needs beside its own ``==`` pin, one file per line
# (``<major>.<minor>.txt``, each saying why): newer releases of its dependencies than it was released with can
# break it. The Makefile installs the 2.11 file into the unit-test venv of Airflow 2.11 too.
PINS_DIR = Path(__file__).with_name("airflow-pins")


@dataclass(frozen=True)
class VersionVenv:
    """Where a stack of one Airflow version runs from: the cached venv's python and the run's provider folder."""

    airflow_version: str
    python: Path
    provider_path: Path
    constraints: str  # "airflow" (its constraints file) or "pins" (no network): said in the run's report


def _run(argv: list[str], log: Path, cwd: Path) -> str:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False, cwd=cwd)
    with log.open("a") as out:
        out.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise StackError(f"{argv[:4]} failed ({result.returncode}); see {log}: {result.stderr[-3000:]}")
    return result.stdout


def build_wheel(dist: Path, log: Path) -> Path:
    """The provider's wheel, built from the work tree into ``dist`` (emptied first)."""
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    _run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist), str(REPO)], log, dist)
    (wheel,) = dist.glob("airflow_provider_edgeimpulse-*.whl")
    return wheel


def _fallback_pins(airflow_version: str) -> tuple[str, ...]:
    pins = PINS_DIR / f"{'.'.join(airflow_version.split('.')[:2])}.txt"
    if not pins.is_file():
        return ()
    lines = (line.strip() for line in pins.read_text().splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def venv_key(airflow_version: str) -> str:
    recipe = (REPO / "pyproject.toml").read_bytes() + "\n".join(_fallback_pins(airflow_version)).encode()
    digest = hashlib.sha256(recipe).hexdigest()[:12]
    return f"airflow-{airflow_version}-py{sys.version_info.major}.{sys.version_info.minor}-{digest}"


def _provider_dependencies() -> list[str]:
    """The provider's runtime requirements but Airflow itself, which the venv pins to its version."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [dep for dep in project["dependencies"] if not dep.replace("_", "-").startswith("apache-airflow>")]


def _fetch_constraints(airflow_version: str, into: Path) -> bool:
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    url = AIRFLOW_CONSTRAINTS_URL.format(version=airflow_version, py=py)
    try:
        with urllib.request.urlopen(url, timeout=CONSTRAINTS_FETCH_TIMEOUT_S) as answer:
            into.write_bytes(answer.read(1_000_000))
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_airflow_venv(airflow_version: str) -> tuple[Path, str]:
    """The python of the cached venv of ``airflow_version`` (built when missing) and how it was pinned."""
    folder = CACHE / venv_key(airflow_version)
    python = folder / "venv" / "bin" / "python"
    stamp = folder / ".complete"
    with _locked(CACHE / f"{folder.name}.lock"):
        if stamp.is_file():
            return python, stamp.read_text().strip()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log = folder / "install.log"
        constraints = folder / "constraints.txt"
        pinned_by = "airflow" if _fetch_constraints(airflow_version, constraints) else "pins"
        _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(folder / "venv")], log, folder)
        argv = [str(UV), "pip", "install", "--quiet", "--python", str(python)]
        argv += ["-c", str(constraints)] if pinned_by == "airflow" else list(_fallback_pins(airflow_version))
        _run([*argv, f"apache-airflow=={airflow_version}", *_provider_dependencies()], log, folder)
        stamp.write_text(pinned_by + "\n")
        return python, pinned_by


def version_venv(airflow_version: str, run_folder: Path) -> VersionVenv:
    """The cached venv of ``airflow_version`` and the provider's wheel installed for this run in ``run_folder``."""
    python, pinned_by = cached_airflow_venv(airflow_version)
    run_folder.mkdir(parents=True, exist_ok=True)
    log = run_folder / "install.log"
    wheel = build_wheel(run_folder / "dist", log)
    provider = run_folder / "provider"
    shutil.rmtree(provider, ignore_errors=True)
    _run([str(UV), "pip", "install", "--quiet", "--no-deps", "--target", str(provider), str(wheel)], log, run_folder)
    return VersionVenv(airflow_version, python, provider, pinned_by)
