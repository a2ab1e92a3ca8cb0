"""Reading a job's stdout answer, shared by the sync hook and the async client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# The most of one log line relayed to Airflow (task log, log tail, XCom, exception texts). A job can print a line
# of many megabytes (a tensor dumped in full); relaying it whole would bloat the task log, the trigger event and
# the metadata database, so the rest is cut and its size said instead.
MAX_LOG_LINE_CHARS = 8192
# How many of a failed job's last log lines its error message quotes: enough to see why, short enough to read.
ERROR_TAIL_LINES = 20


def bound_line(line: str, limit: int = MAX_LOG_LINE_CHARS) -> str:
    """``line`` itself when short enough; else its first ``limit`` characters and how many more there were."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]} ... [{len(line) - limit} more characters not shown]"


def quoted_tail(lines: Sequence[str]) -> str:
    """The last ``ERROR_TAIL_LINES`` of a job's log as an error message quotes them; ``<no log>`` if none."""
    return "\n".join(list(lines)[-ERROR_TAIL_LINES:]) or "<no log>"


def stdout_lines(data: dict[str, Any]) -> list[str]:
    """
    Log lines of a ``jobs/{id}/stdout`` answer, oldest first, each cut to ``MAX_LOG_LINE_CHARS``.

    Studio lists the newest line first; reversing keeps lines that share a timestamp in their real order, and
    the stable sort by ``created`` then orders the rest whatever order a server used.
    """
    entries = [e for e in data.get("stdout") or [] if isinstance(e, dict)]
    entries.reverse()
    entries.sort(key=lambda e: str(e.get("created") or ""))
    return [bound_line(str(e.get("data", "")).rstrip("\n")) for e in entries]
