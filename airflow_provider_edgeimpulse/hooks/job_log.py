"""Reading a job's stdout answer, shared by the sync hook and the async client."""

from __future__ import annotations

from typing import Any


def stdout_lines(data: dict[str, Any]) -> list[str]:
    """
    Log lines of a ``jobs/{id}/stdout`` answer, oldest first.

    Studio lists the newest line first; reversing keeps lines that share a timestamp in their real order, and
    the stable sort by ``created`` then orders the rest whatever order a server used.
    """
    entries = [e for e in data.get("stdout") or [] if isinstance(e, dict)]
    entries.reverse()
    entries.sort(key=lambda e: str(e.get("created") or ""))
    return [str(e.get("data", "")).rstrip("\n") for e in entries]
