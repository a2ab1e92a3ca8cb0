"""``python -m airflow_provider_edgeimpulse.emulator`` / ``edgeimpulse-emulator``: serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from airflow_provider_edgeimpulse.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware


def parse_args(argv: list[str] | None = None) -> EmulatorConfig:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="edgeimpulse-emulator",
        description="A local Edge Impulse Studio (REST, Socket.IO, ingestion) for offline tests and demos.",
    )
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port")
    parser.add_argument("--api-key", default=defaults.api_key)
    parser.add_argument("--project-id", type=int, default=defaults.project_id)
    parser.add_argument("--username", default=defaults.username)
    parser.add_argument("--password", default=defaults.password)
    parser.add_argument(
        "--job-duration",
        type=float,
        default=defaults.job_duration,
        help="seconds a simulated job runs; a negative value means until finished via the control API",
    )
    args = parser.parse_args(argv)
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        project_id=args.project_id,
        username=args.username,
        password=args.password,
        job_duration=None if args.job_duration < 0 else args.job_duration,
    )


async def serve(config: EmulatorConfig, middlewares: Iterable[Middleware] = ()) -> None:
    """Serve until SIGINT or SIGTERM; ``middlewares`` wrap every request (a launcher that watches the traffic)."""
    from airflow_provider_edgeimpulse.emulator.server import EmulatorServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no loop signal handlers
            loop.add_signal_handler(sig, stop.set)
    server = EmulatorServer(config, middlewares)
    url = await server.start()
    print(f"Edge Impulse emulator listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
