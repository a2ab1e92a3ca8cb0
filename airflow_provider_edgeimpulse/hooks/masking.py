"""
Keep secrets out of what we show: register them with Airflow's masker (workers and the triggerer alike) and
scrub them from any text a server sends back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError


def mask_secrets(values: Iterable[str | None]) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    for value in values:
        if value:
            mask_secret(value)


async def amask_secrets(values: Iterable[str | None]) -> None:
    """
    Mask without the synchronous supervisor round-trip where Airflow offers an async one.

    The sync ``mask_secret`` talks to the supervisor with a blocking call, which deadlocks when another
    async call is in flight on the triggerer's event loop.
    """
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        mask_secrets(values)
        return
    for value in values:
        if value:
            await amask_secret(value)


REDACTED = "***"


def _forms(secret: str) -> set[str]:
    """How a secret may come back in an echo: as sent, escaped in JSON, percent-encoded in a URL or form."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """
    ``text`` with every secret (and its JSON-escaped and percent-encoded forms) replaced by ``***``.

    The one scrubber of both transports: whatever a server echoes back (an error body quoting our headers or
    the login body) passes through here before it can reach an exception text, a trigger event or an XCom.
    """
    forms = {form for secret in secrets if secret for form in _forms(secret)}
    # Longest first so that a secret containing another is replaced whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def scrub_error(err: EdgeImpulseAPIError, secrets: Iterable[str | None]) -> EdgeImpulseAPIError:
    """The same error with every secret scrubbed from its message and its ``error`` text."""
    values = [s for s in secrets if s]
    message = scrub(str(err), values)
    error = scrub(err.error, values) if err.error else err.error
    if message == str(err) and error == err.error:
        return err
    return EdgeImpulseAPIError(message, status=err.status, method=err.method, path=err.path, error=error)
