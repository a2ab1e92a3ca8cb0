"""A local Edge Impulse Studio (REST, Socket.IO and ingestion) for offline tests and demos.

Run it with ``edgeimpulse-emulator`` (or ``python -m airflow_provider_edgeimpulse.emulator``), in a loop with
``EmulatorServer``, on a thread with ``EmulatorThread``, or in pytest through the ``edgeimpulse_emulator`` fixture.

What a client can count on:
- REST under ``/v1`` (auth: ``x-api-key``, ``x-jwt-token`` or the ``jwt`` cookie), ingestion at
  ``/api/{training|testing|anomaly|split}/files``, Socket.IO at ``/socket.io/``, control API at ``/_emulator``.
- The seeded project: impulse 1 with input block 1, DSP block 3 (spectral-analysis), Keras learn block 4 and
  anomaly block 5; 12 training and 6 testing samples labelled idle/updown/wave (sample ids 1-18).
- Errors are ``{"success": false, "error": ...}`` with a non-2xx status: 401 auth, 404 unknown project, job
  ("No job with this ID found"), sample, block, trial or deployment, 400 invalid input (including cancelling a
  finished job: "Unknown job ID ..."). Injected faults can also answer 200 with ``success: false``.
- Job stdout is newest line first; the last lines of a failed job say why ("ERROR: ..." then
  "Job failed (see above)"); a successful job ends with "Job completed"; a cancelled one with "Job was cancelled".

The public names load lazily: pytest imports the plugin module of this package on every run, and DAG files may
import the provider often, so importing the package must not pull in aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from airflow_provider_edgeimpulse.emulator.app import create_app
    from airflow_provider_edgeimpulse.emulator.server import EmulatorServer, EmulatorThread
    from airflow_provider_edgeimpulse.emulator.state import EmulatorState

__all__ = ["EmulatorConfig", "EmulatorServer", "EmulatorState", "EmulatorThread", "create_app"]

_LAZY = {
    "create_app": "airflow_provider_edgeimpulse.emulator.app",
    "EmulatorServer": "airflow_provider_edgeimpulse.emulator.server",
    "EmulatorThread": "airflow_provider_edgeimpulse.emulator.server",
    "EmulatorState": "airflow_provider_edgeimpulse.emulator.state",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
