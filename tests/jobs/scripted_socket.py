"""Socket events in a fixed order, for the orders a shared socket produced once and the emulator does not."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_edgeimpulse.jobs.hub import HubEvent


class ScriptedSubscription:
    """A subscription that delivers a fixed sequence of socket events, then none."""

    def __init__(self, events: list[Any]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        for event in events:
            self.queue.put_nowait(event)

    async def next(self, timeout: float) -> Any:
        return self.queue.get_nowait() if not self.queue.empty() else None


def early_then_replayed(log_lines: list[str], early: slice) -> list[HubEvent | str]:
    """
    Live lines of the project's room that reach a new socket before it is subscribed, then the subscription's
    replay of the whole log: the early lines come twice, and out of the log's order the first time.
    """
    return [
        *log_lines[early],
        HubEvent("connected"),
        *log_lines,
    ]
