"""
What every socket wait shares: relaying a job's log once across replays, confirming an end, batching log records.

The job waiter (``jobs/waiter.py``) and the EON Tuner trigger wait on the same socket events and differ only in
what they read over REST, so these three pieces live here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# A finish event can reach us before REST records the end: look again a few times, soon.
CONFIRM_DELAYS_S = (0.2, 0.5, 1.0, 2.0)
# Lines remembered to recognise a replayed log after a reconnect; a longer log may repeat lines after one.
SEEN_CAP = 20000


async def confirm_end(read: Callable[[], Awaitable[T]], is_over: Callable[[T], bool]) -> T:
    """A finish event is a hint: REST decides, allowing Studio a moment to record the end."""
    state = await read()
    for delay in CONFIRM_DELAYS_S:
        if is_over(state):
            break
        await asyncio.sleep(delay)
        state = await read()
    return state


class LogRelay:
    """
    Hands each line of a job's log to ``on_line`` once, although every (re)subscription replays it from its start.

    Lines the socket delivers before it confirms the subscription are live lines of the project's room: the replay
    that follows repeats them after lines they missed, so until the replay has passed them, a replayed line that
    was not seen is new and the replay goes on.
    """

    # No instance dict: a triggerer holds one relay per wait, and each object is one more for every full garbage
    # collection to scan.
    __slots__ = ("_replay_at", "_sink", "_subscribed", "early", "seen")

    def __init__(self, on_line: Callable[[str], None] | None = None) -> None:
        self._sink = on_line
        self.seen: list[str] = []
        self.early = False
        self._subscribed = False
        self._replay_at: int | None = None

    def expect_replay(self) -> None:
        """The socket (re)subscribed: it replays the log from its start."""
        self._subscribed = True
        self._replay_at = 0

    def end_replay(self) -> None:
        """Lines from now on are new (they come from REST, not from a replay)."""
        self._replay_at = None

    def on_line(self, line: str) -> None:
        """Where each new line goes: to the callable given, unless a subclass has a method of its own."""
        if self._sink is not None:
            self._sink(line)

    def socket_line(self, line: str) -> None:
        if not self._subscribed:
            self.early = True
        self._relay(line)

    def rest_line(self, line: str) -> None:
        self._relay(line)

    def _relay(self, line: str) -> None:
        if self._replay_at is not None:
            if self._replay_at < len(self.seen) and self.seen[self._replay_at] == line:
                self._replay_at += 1
                return
            if not (self.early and self._replay_at < len(self.seen)):
                self._replay_at = None  # past the replay (or the server does not replay): every line is new
            # else: a line from before the early ones, which the socket did not deliver: new, and the replay goes on
        if len(self.seen) < SEEN_CAP:
            self.seen.append(line)
        self.on_line(line)


class _LogOwner(Protocol):
    """A trigger: its ``log`` (Airflow's logger) gets the records."""

    @property
    def log(self) -> Any: ...


class LineBatcher:
    """
    Log lines that arrive together go out as one record of ``prefix``-ed lines, to ``owner.log``. Call it with a line.

    Airflow's log pipeline costs about 70 us a record; a triggerer relaying every line of a thousand waits one by
    one spends its event loop there.
    """

    # The owner, not a bound method of it, and the batcher itself is the callable a wait is handed: a triggerer
    # holds a batcher per wait, and each object is one more for every full garbage collection to scan. The owner's
    # logger is looked up at the first record, so a quiet wait never builds one.
    __slots__ = ("_pending", "owner", "prefix")

    def __init__(self, owner: _LogOwner, prefix: str) -> None:
        self.owner = owner
        self.prefix = prefix
        # No list until a line comes: most waits are quiet.
        self._pending: list[str] | None = None

    def __call__(self, line: str) -> None:
        if self._pending is None:
            self._pending = [line]
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            self._pending.append(line)

    def flush(self) -> None:
        lines, self._pending = self._pending, None
        if lines:
            self.owner.log.info("%s", "\n".join(f"{self.prefix}{line}" for line in lines))
