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
from airflow_provider_edgeimpulse.hooks.masking import scrub, scrub_error
from airflow_provider_edgeimpulse.wire import clamp_seconds

USER_AGENT = f"airflow-provider-edgeimpulse/{__version__}"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_PREVIEW_CHARS = 200
# An error page from a proxy can be large; only its start is shown, so only that much is read.
ERROR_BODY_LIMIT = 64 * 1024
# Bodies are read in pieces of this size, so a bound is noticed within one piece of being passed.
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """
    Exponential backoff with jitter and a bounded budget (attempts and total sleep).

    A server's ``Retry-After`` is honoured within ``[retry_after_floor, retry_after_cap]``: the floor keeps a
    ``Retry-After: 0`` from turning every attempt into one burst inside the same rate-limit window, the cap (and
    ``clamp_seconds``) keeps NaN, infinity or a date years ahead from reaching a timer.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_cap: float = 30.0
    max_total_sleep: float = 60.0
    retry_after_floor: float = 0.25

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before attempt ``attempt + 1`` (``attempt`` counts from 1); always finite."""
        exp = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        backoff = random.uniform(exp / 2, exp)
        if retry_after is None:
            return backoff
        floor = min(self.retry_after_floor, self.retry_after_cap)
        # NaN says nothing: back off as without the header, but not below the floor either.
        return clamp_seconds(retry_after, low=floor, high=self.retry_after_cap, default=max(backoff, floor))


DEFAULT_RETRY_POLICY = RetryPolicy()


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        # May be NaN or infinite: ``RetryPolicy.delay`` clamps it, the one place a wish becomes a sleep.
        return float(value)
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        when = parsedate_to_datetime(value)
        return (when - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def query_value(value: Any) -> str:
    """How a Python value is written in a query string: booleans as ``true``/``false``, lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def clean_query(params: dict[str, Any] | None) -> dict[str, str]:
    return {key: query_value(value) for key, value in (params or {}).items() if value is not None}


def decode_response(*, status: int, method: str, path: str, text: str) -> dict[str, Any]:
    """
    Turn a response into its JSON object, or raise ``EdgeImpulseAPIError``.

    Edge Impulse reports errors three ways: a non-2xx status with ``{error}``, HTTP 200 with
    ``success: false``, and (behind proxies) a non-JSON page. All three raise here.
    """
    try:
        body: Any = json.loads(text) if text.strip() else None
    except RecursionError:
        raise EdgeImpulseAPIError(
            f"Edge Impulse {method} {path} answered HTTP {status} with JSON nested too deeply to read "
            f"({len(text)} characters)",
            status=status,
            method=method,
            path=path,
        ) from None
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


def decode_scrubbed(*, status: int, method: str, path: str, text: str, secrets: list[str]) -> dict[str, Any]:
    """
    ``decode_response``, with every secret scrubbed from the error it raises.

    The body is scrubbed before the error quotes it: the message holds a truncated preview, and a secret cut in
    half there would no longer be found and replaced afterwards. A 2xx body that decodes is returned untouched.
    """
    try:
        return decode_response(status=status, method=method, path=path, text=text)
    except EdgeImpulseAPIError:
        pass
    try:
        decode_response(status=status, method=method, path=path, text=scrub(text, secrets))
    except EdgeImpulseAPIError as err:
        raise scrub_error(err, secrets) from None
    raise EdgeImpulseAPIError(  # pragma: no cover -- only if a secret's removal made the body valid
        f"Edge Impulse {method} {path} answered a body that could not be read", status=status, method=method, path=path
    )


def error_of_body(
    *, status: int, method: str, path: str, raw: bytes, encoding: str | None, secrets: list[str]
) -> EdgeImpulseAPIError:
    """
    The error a non-2xx answer stands for, from at most the first ``ERROR_BODY_LIMIT`` bytes of its body.

    A body that reached the limit was read only in part: a JSON error cut there is a long body, not one that
    "is not JSON", and the message says so.
    """
    text = scrub(raw[:ERROR_BODY_LIMIT].decode(encoding or "utf-8", errors="replace"), secrets)
    try:
        decode_response(status=status, method=method, path=path, text=text)
    except EdgeImpulseAPIError as err:
        if len(raw) >= ERROR_BODY_LIMIT and err.error is None:
            return scrub_error(
                EdgeImpulseAPIError(
                    f"Edge Impulse {method} {path} failed with HTTP {status}; its error body is over "
                    f"{ERROR_BODY_LIMIT // 1024} KiB and was read only in part: {text[:_PREVIEW_CHARS].strip()!r}",
                    status=status,
                    method=method,
                    path=path,
                ),
                secrets,
            )
        return scrub_error(err, secrets)
    return EdgeImpulseAPIError(  # pragma: no cover -- decode_response always raises for non-2xx
        f"Edge Impulse {method} {path} failed with HTTP {status}", status=status, method=method, path=path
    )


def declared_length(value: str | None) -> int | None:
    """A ``Content-Length`` header as a number of bytes, or ``None`` when absent or not a plain number."""
    return int(value) if value is not None and value.strip().isdigit() else None


def too_large(
    *, method: str, path: str, status: int, limit: int, seen: int, declared: int | None
) -> EdgeImpulseAPIError:
    """The error of an answer over ``WireLimits.max_response_bytes``: what, how big, and the limit."""
    if declared is not None and declared > limit:
        size = f"announced {declared} bytes (Content-Length)"
    else:
        size = f"sent more than {limit} bytes ({seen} read before stopping)"
    return EdgeImpulseAPIError(
        f"Edge Impulse {method} {path} answered HTTP {status} with a body too large to read: it {size}, over the "
        f"limit of {limit} bytes (the connection extra max_response_mib raises it)",
        status=status,
        method=method,
        path=path,
    )
