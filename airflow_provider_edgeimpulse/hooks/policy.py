"""
Request policy shared by the sync hook (requests + tenacity) and the async client (aiohttp).

One place decides what is retried, how long to back off, how a body becomes a result or an
``EdgeImpulseAPIError``, and what the User-Agent says, so both transports behave the same.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from airflow_provider_edgeimpulse import __version__
from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError, cut_error_text

USER_AGENT = f"airflow-provider-edgeimpulse/{__version__}"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_PREVIEW_CHARS = 200


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a bounded budget (attempts and total sleep)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_cap: float = 30.0
    max_total_sleep: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        exp = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(exp / 2, exp)


DEFAULT_RETRY_POLICY = RetryPolicy()


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        when = parsedate_to_datetime(value)
        return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
    except (TypeError, ValueError, IndexError):
        return None


def decode_response(*, status: int, method: str, path: str, text: str) -> dict[str, Any]:
    """
    Turn a response into its JSON object, or raise ``EdgeImpulseAPIError``.

    Edge Impulse reports errors three ways: a non-2xx status with ``{error}``, HTTP 200 with
    ``success: false``, and (behind proxies) a non-JSON page. All three raise here.
    """
    try:
        body: Any = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
        if 200 <= status < 300:
            raise EdgeImpulseAPIError.from_response(
                status=status, method=method, path=path, body=None, text=text
            ) from None
    if not 200 <= status < 300:
        return _raise(status, method, path, body, text)
    if body is not None and not isinstance(body, dict):
        # Valid JSON, just not the object every Studio answer is: say so rather than "not JSON".
        preview = text[:_PREVIEW_CHARS].strip()
        raise EdgeImpulseAPIError(
            f"Edge Impulse {method} {path} answered HTTP {status} with JSON that is not an object "
            f"({type(body).__name__}): {preview!r}",
            status=status,
            method=method,
            path=path,
        )
    if not isinstance(body, dict):
        raise EdgeImpulseAPIError.from_response(status=status, method=method, path=path, body=None, text=text)
    if body.get("success") is False:
        raw_error = body.get("error")
        error = raw_error if isinstance(raw_error, str) else "success: false without an error text"
        raise EdgeImpulseAPIError(
            f"Edge Impulse {method} {path} failed: {cut_error_text(error)}",
            status=status,
            method=method,
            path=path,
            error=error,
        )
    return body


def _raise(status: int, method: str, path: str, body: Any, text: str) -> dict[str, Any]:
    if isinstance(body, dict):
        raise EdgeImpulseAPIError.from_response(status=status, method=method, path=path, body=body)
    raise EdgeImpulseAPIError.from_response(status=status, method=method, path=path, body=None, text=text)
