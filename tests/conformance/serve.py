"""
``python -m tests.conformance.serve --violations FILE <the emulator's own arguments>``: the emulator's command line
(``python -m airflow_provider_edgeimpulse.emulator``) with the OpenAPI conformance check around every request.

For an emulator that runs as a process of its own (an end-to-end stack's). Each violation is written to FILE as
one JSON line the moment it is found, and the count of exchanges checked as the emulator stops;
``TrafficCheck.follow`` reads them into the test suite's check, which fails the test they belong to. It runs on the
test suite's interpreter, whichever Airflow a stack uses: the emulator needs no Airflow, the check needs
openapi-core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from airflow_provider_edgeimpulse.emulator.__main__ import parse_args, serve
from airflow_provider_edgeimpulse.emulator.launch import COMMAND_VAR
from tests.conformance.traffic import TRAFFIC, Violation

REPO = Path(__file__).resolve().parents[2]


def launcher(violations: Path) -> list[str]:
    """The command that starts a checked emulator (its own arguments follow); the suite's check follows the file."""
    TRAFFIC.follow(violations)
    return [sys.executable, "-m", "tests.conformance.serve", "--violations", str(violations)]


def launcher_env(violations: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` for a program that starts the emulator with ``emulator_command()`` (the demo, a benchmark)."""
    python_path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return {**env, COMMAND_VAR: shlex.join(launcher(violations)), "PYTHONPATH": python_path}


def _writer(out: TextIO) -> Callable[[Violation], None]:
    def write(violation: Violation) -> None:
        out.write(json.dumps({"violation": asdict(violation)}) + "\n")
        out.flush()

    return write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.serve", add_help=False)
    parser.add_argument("--violations", type=Path, required=True, help="the JSON-lines file to append to")
    ours, emulator_args = parser.parse_known_args(argv)
    config = parse_args(emulator_args)
    with ours.violations.open("a", encoding="utf-8") as out:
        TRAFFIC.sink = _writer(out)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(config, (TRAFFIC.middleware,)))
        finally:
            out.write(json.dumps(TRAFFIC.counts()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
