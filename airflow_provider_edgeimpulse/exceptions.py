"""The provider's error model: one API error type, and the error for connection settings that cannot work."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

_BODY_PREVIEW_CHARS = 200
# An ``error`` text from the server is quoted in full up to this size; past it only its start (a server can
# echo a whole request or a stack trace there).
_ERROR_TEXT_CHARS = 2000


def cut_error_text(text: str) -> str:
    """A server's error text as quoted in an exception: whole when short, else its start and its size."""
    if len(text) <= _ERROR_TEXT_CHARS:
        return text
    return f"{text[:_ERROR_TEXT_CHARS]} ... [{len(text) - _ERROR_TEXT_CHARS} more characters not shown]"


class EdgeImpulseAPIError(AirflowException):
    """
    A call to Edge Impulse (Studio or ingestion) did not succeed.

    Raised for a non-2xx status, for HTTP 200 with ``success: false``, and for a body that is not JSON.
    The message names the method, the path (never the query string, which may carry filters but no
    secrets, nor any header) and Edge Impulse's own ``error`` text.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        error: str | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.error = error
        super().__init__(message)

    @classmethod
    def from_response(
        cls, *, status: int, method: str, path: str, body: Any, text: str | None = None
    ) -> EdgeImpulseAPIError:
        """Build the error for a response that failed, from its decoded body or its raw text."""
        error = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            error = body["error"]
        where = f"{method} {path}"
        if error:
            message = f"Edge Impulse {where} failed with HTTP {status}: {cut_error_text(error)}"
        elif text is not None:
            preview = text[:_BODY_PREVIEW_CHARS].strip() or "<empty body>"
            message = f"Edge Impulse {where} answered HTTP {status} with a body that is not JSON: {preview!r}"
        else:
            message = f"Edge Impulse {where} failed with HTTP {status}"
        return cls(message, status=status, method=method, path=path, error=error)

    @property
    def is_unauthorized(self) -> bool:
        return self.status == 401


class EdgeImpulseConnectionError(AirflowException):
    """The connection's settings are missing or invalid (raised before any request is made)."""
