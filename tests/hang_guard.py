"""Run a call that might never end (a regression into an endless loop or a stalled read) without hanging the run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest


def run_bounded(call: Callable[[], Any], seconds: float, what: str) -> tuple[Any, BaseException | None]:
    """``call()``'s result and exception, from a daemon thread; fails the test if ``what`` outlives ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{what} was still running after {seconds:g} s")
    return box.get("result"), box.get("error")
