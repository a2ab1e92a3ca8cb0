"""
How much of what a server sends we believe: durations clamped to a sane range, sizes bounded.

The ground floor for both transports (requests and aiohttp) and the socket: a number read from the wire
(``Retry-After``, ``pingInterval``, ``pingTimeout``) passes through ``clamp_seconds`` before it reaches a
timer, because a NaN or an infinity handed to ``asyncio.sleep`` or ``loop.call_later`` breaks the event
loop's timer order and stalls every coroutine on it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
# How long one artefact download may take in all, unless the task says otherwise.
DEFAULT_DOWNLOAD_TIMEOUT_S = 3600.0


def clamp_seconds(value: Any, *, low: float, high: float, default: float) -> float:
    """
    ``value`` as a finite number of seconds within ``[low, high]``.

    Anything that is not a real number (``None``, text, a bool, NaN) gives ``default``; an infinity or a
    value past ``high`` gives ``high``; a negative value or one below ``low`` gives ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        return default
    return min(max(seconds, low), high)


@dataclass(frozen=True)
class WireLimits:
    """
    Upper bounds on what one server may make us hold, far above anything Studio sends.

    ``max_response_bytes`` bounds one REST answer read into memory; ``max_download_bytes`` one deployment
    download, as written to disk or object storage (decoded, so a small gzip answer cannot unpack into a full
    disk); ``max_frame_bytes`` bounds one WebSocket message (a bigger one ends that socket);
    ``max_queued_events`` bounds the events a single wait's subscription buffers before it drops (with a counted
    note) what cannot be coalesced; ``max_redirects`` bounds the redirects one request follows.
    """

    max_response_bytes: int = 64 * MIB
    max_download_bytes: int = 4096 * MIB
    max_frame_bytes: int = 16 * MIB
    max_queued_events: int = 10_000
    max_redirects: int = 5


DEFAULT_WIRE_LIMITS = WireLimits()


class RateLimitedLog:
    """
    At most ``burst`` records of one kind per ``period`` seconds; the rest are counted, not logged.

    For everything a server can make us log once per frame or per event (garbage frames, oversized frames,
    dropped events): a flood costs a few lines, not one per frame. The count of what was held back is
    reported with the first record of that kind in a later period. Kinds are a caller's fixed names, so
    the table stays as small as the code that uses it.
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 5, period: float = 60.0) -> None:
        self.logger = logger
        self.burst = burst
        self.period = period
        self._windows: dict[str, _Window] = {}

    def log(self, level: int, kind: str, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless ``kind`` has had its ``burst`` this period; True when it was logged."""
        now = time.monotonic()
        window = self._windows.get(kind)
        if window is None or now - window.start >= self.period:
            held = window.held if window is not None else 0
            window = self._windows[kind] = _Window(now)
            if held:
                msg += " (and %d more like it before, not logged)"
                args = (*args, held)
        if window.logged >= self.burst:
            window.held += 1
            return False
        window.logged += 1
        self.logger.log(level, msg, *args)
        return True

    def held_back(self, kind: str) -> int:
        """Records of ``kind`` not logged in the current period."""
        window = self._windows.get(kind)
        return 0 if window is None else window.held


@dataclass
class _Window:
    start: float
    logged: int = 0
    held: int = 0
