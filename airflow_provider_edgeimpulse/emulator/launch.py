"""How the demo and the benchmarks start the emulator as a process of its own."""

from __future__ import annotations

import os
import shlex
import sys

# The command before the emulator's own arguments; a test suite sets it to a launcher that checks the traffic
# against Edge Impulse's OpenAPI definition.
COMMAND_VAR = "EI_EMULATOR_COMMAND"


def emulator_command() -> list[str]:
    """``EI_EMULATOR_COMMAND`` when set, else this interpreter running the emulator's command line."""
    default = [sys.executable, "-m", "airflow_provider_edgeimpulse.emulator"]
    return shlex.split(os.environ.get(COMMAND_VAR, "")) or default
