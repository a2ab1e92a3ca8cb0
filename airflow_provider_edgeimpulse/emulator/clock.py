"""Wall-clock helpers: Studio speaks ISO 8601 UTC with milliseconds and a ``Z``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Monotonic:
    """Hands out strictly increasing timestamps, so records created in one burst still sort by creation."""

    def __init__(self) -> None:
        self._last: datetime | None = None

    def now(self) -> datetime:
        # Whole milliseconds apart, because that is the precision the ISO strings carry.
        moment = utcnow()
        if self._last is not None and moment < self._last + timedelta(milliseconds=1):
            moment = self._last + timedelta(milliseconds=1)
        self._last = moment
        return moment
