"""
Turn an Airflow connection into the settings a client needs, for the sync hook and async code alike.

Kept free of I/O and of Airflow's connection lookup so both the worker path (``get_connection``) and the
triggerer path (``get_async_connection``) share one parser and one set of error messages.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseConnectionError
from airflow_provider_edgeimpulse.studio import DEFAULT_STUDIO_URL
from airflow_provider_edgeimpulse.validation import optional_bool
from airflow_provider_edgeimpulse.wire import DEFAULT_WIRE_LIMITS, MIB, WireLimits

DEFAULT_INGESTION_URL = "https://ingestion.edgeimpulse.com"
DEFAULT_TIMEOUT_S = 60.0


class AuthType(str, Enum):
    API_KEY = "api_key"
    JWT = "jwt"
    JWT_COOKIE = "jwt_cookie"


@dataclass(frozen=True, slots=True, weakref_slot=True)
class EdgeImpulseCredentials:
    """Everything needed to talk to one Edge Impulse Studio as one principal. Secrets never show in repr."""

    studio_url: str
    auth_type: AuthType
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    project_id: int | None = None
    ingestion_url: str = DEFAULT_INGESTION_URL
    timeout: float = DEFAULT_TIMEOUT_S
    limits: WireLimits = field(default=DEFAULT_WIRE_LIMITS, repr=False)

    @property
    def api_base(self) -> str:
        """Base of every REST path (``/api/...``, ``/api-login``)."""
        return f"{self.studio_url}/v1"

    @property
    def socket_url(self) -> str:
        """The Socket.IO endpoint on the Studio host (``ws`` for ``http`` hosts, ``wss`` otherwise)."""
        parts = urlsplit(self.studio_url)
        scheme = "ws" if parts.scheme == "http" else "wss"
        return f"{scheme}://{parts.netloc}/socket.io/"

    @property
    def fingerprint(self) -> str:
        """A stable, non-reversible identity of (host, principal) for sharing sockets between waits."""
        principal = self.api_key if self.auth_type is AuthType.API_KEY else f"{self.username}\0{self.password}"
        digest = hashlib.sha256(f"{self.studio_url}\0{self.auth_type.value}\0{principal}".encode())
        return digest.hexdigest()[:16]

    def secrets(self) -> list[str]:
        """The secret values this principal holds, for masking."""
        return [s for s in (self.api_key, self.password) if s]


def is_loopback(hostname: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``: traffic that never leaves the machine (a local emulator)."""
    host = hostname.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(value: str | None, default: str, *, port: int | None = None, field_name: str = "host") -> str:
    """
    Accept ``https://host``, ``host``, ``host:port`` or ``http://127.0.0.1:4810/``; return ``scheme://host[:port]``.

    A host without a scheme gets https, except loopback hosts (a local emulator), which get http. A host with
    user info (``https://user:pass@studio.example``) is refused, naming ``field_name`` but never repeating the value:
    the URL would carry the password into every log line, link, XCom and trigger that shows it.
    """
    raw = (value or "").strip()
    if not raw:
        return default
    # Any "@" at all: a password with a "/" in it would otherwise split the URL before the "@" and show up in the
    # "not a valid URL" message below.
    if "@" in raw:
        raise EdgeImpulseConnectionError(
            f"{field_name} holds a user name or password before '@' (not shown); put the host alone there and the "
            "credentials in the connection's login and password fields"
        )
    if "://" not in raw:
        host_only = raw.split("/")[0]
        bare = host_only.rsplit(":", 1)[0] if host_only.count(":") == 1 else host_only
        scheme = "http" if is_loopback(bare) else "https"
        raw = f"{scheme}://{raw}"
    try:
        parts = urlsplit(raw)
        # Read here, where the error can name the field: a port such as ":abc" would otherwise fail in the first
        # request with a bare "Port could not be cast to integer value".
        parts.port  # noqa: B018
    except ValueError as err:
        raise EdgeImpulseConnectionError(f"Edge Impulse host {value!r} is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EdgeImpulseConnectionError(f"Edge Impulse host {value!r} is not an http(s) URL or host name")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}"


def _parse_project_id(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise EdgeImpulseConnectionError(f"project_id must be a positive integer, got {value!r}")
    try:
        project_id = int(str(value).strip())
    except ValueError:
        raise EdgeImpulseConnectionError(f"project_id must be a positive integer, got {value!r}") from None
    if project_id <= 0:
        raise EdgeImpulseConnectionError(f"project_id must be a positive integer, got {value!r}")
    return project_id


def parse_project_id(value: Any) -> int | None:
    """Validate a project id given by a user (int or numeric string); ``None`` when not given."""
    return _parse_project_id(value)


def _refuse_insecure_http(url: str, field_name: str, allowed: bool) -> None:
    """An explicit ``http://`` host that is not loopback would carry the key in clear text: opt-in only."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not allowed and not is_loopback(parts.hostname or ""):
        raise EdgeImpulseConnectionError(
            f"{field_name} {url!r} is plain http, which would send the API key or password unencrypted; use "
            "https, or set the extra allow_insecure_http to true if this network is trusted"
        )


def _parse_flag(name: str, value: Any) -> bool:
    """An on/off extra; empty (as the form saves an untouched field) is off."""
    try:
        return bool(optional_bool(name, value if value != "" else None))
    except ValueError as err:
        raise EdgeImpulseConnectionError(str(err)) from None


# Connection extras that set a ``WireLimits`` bound: extra -> (field, bytes per unit, unit as said in errors).
_LIMIT_EXTRAS = {
    "max_response_mib": ("max_response_bytes", MIB, "MiB"),
    "max_download_mib": ("max_download_bytes", MIB, "MiB"),
    "max_socket_frame_mib": ("max_frame_bytes", MIB, "MiB"),
    "max_queued_events": ("max_queued_events", 1, "events"),
}


def _parse_limits(extra: dict[str, Any]) -> WireLimits:
    """The ``WireLimits`` of a connection: the defaults, with what its extras set."""
    changes: dict[str, int] = {}
    for name, (field_name, unit, unit_text) in _LIMIT_EXTRAS.items():
        value = extra.get(name)
        if value in (None, ""):
            continue
        try:
            amount = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            amount = math.nan
        if not (math.isfinite(amount) and amount > 0):
            raise EdgeImpulseConnectionError(f"{name} must be a positive number of {unit_text}, got {value!r}")
        changes[field_name] = max(1, int(amount * unit))
    return replace(DEFAULT_WIRE_LIMITS, **changes) if changes else DEFAULT_WIRE_LIMITS


def _check_secret_text(name: str, value: str | None, *, header: bool) -> None:
    """
    Refuse what cannot be sent as typed, naming the field and never the value.

    A control character (often a line break pasted at the end) breaks an HTTP header and, in a password, is
    almost surely not meant. A value sent as a header (the API key) must also be Latin-1, which is what HTTP
    headers can carry; a username and password travel in a JSON body, where any other character is fine.
    """
    if not value:
        return
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        where = "ends with a line break" if value[-1] in "\r\n" else "contains a control character"
        raise EdgeImpulseConnectionError(f"{name} {where} (its value is not shown); remove it")
    if header and not all(ord(c) <= 0xFF for c in value):
        raise EdgeImpulseConnectionError(
            f"{name} contains a character that cannot be sent in an HTTP header (outside Latin-1; its value is "
            "not shown); an Edge Impulse API key is plain ASCII (ei_...)"
        )


def _parse_timeout(value: Any) -> float:
    if value in (None, ""):
        return DEFAULT_TIMEOUT_S
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        raise EdgeImpulseConnectionError(f"timeout must be a positive number of seconds, got {value!r}") from None
    if timeout <= 0:
        raise EdgeImpulseConnectionError(f"timeout must be a positive number of seconds, got {value!r}")
    return timeout


def credentials_from_fields(
    *,
    host: str | None,
    port: int | None = None,
    login: str | None,
    password: str | None,
    extra: dict[str, Any],
    conn_id: str = "?",
) -> EdgeImpulseCredentials:
    """Validate connection fields and extras; every error names the connection and the offending value."""
    raw_auth = str(extra.get("auth_type") or AuthType.API_KEY.value).strip().lower()
    try:
        auth_type = AuthType(raw_auth)
    except ValueError:
        allowed = ", ".join(a.value for a in AuthType)
        raise EdgeImpulseConnectionError(
            f"Connection {conn_id!r}: unknown auth_type {raw_auth!r} (expected one of: {allowed})"
        ) from None
    try:
        studio_url = normalize_base_url(host, DEFAULT_STUDIO_URL, port=port, field_name="host")
        ingestion_url = normalize_base_url(
            extra.get("ingestion_host"), DEFAULT_INGESTION_URL, field_name="ingestion_host"
        )
        insecure_ok = _parse_flag("allow_insecure_http", extra.get("allow_insecure_http"))
        _refuse_insecure_http(studio_url, "host", insecure_ok)
        _refuse_insecure_http(ingestion_url, "ingestion_host", insecure_ok)
        project_id = _parse_project_id(extra.get("project_id"))
        timeout = _parse_timeout(extra.get("timeout"))
        limits = _parse_limits(extra)
    except EdgeImpulseConnectionError as err:
        raise EdgeImpulseConnectionError(f"Connection {conn_id!r}: {err}") from None

    try:
        if auth_type is AuthType.API_KEY:
            key_field = "password (the API key)" if password else "extra api_key"
            secret = password or extra.get("api_key") or None
            if not secret:
                raise EdgeImpulseConnectionError("no API key; put the project API key (ei_...) in the password field")
            _check_secret_text(key_field, str(secret), header=True)
            return EdgeImpulseCredentials(
                studio_url=studio_url,
                auth_type=auth_type,
                api_key=str(secret),
                project_id=project_id,
                ingestion_url=ingestion_url,
                timeout=timeout,
                limits=limits,
            )
        if not login or not password:
            raise EdgeImpulseConnectionError(f"auth_type {auth_type.value!r} needs a username (login) and a password")
        _check_secret_text("login (the username)", login, header=False)
        _check_secret_text("password", password, header=False)
    except EdgeImpulseConnectionError as err:
        raise EdgeImpulseConnectionError(f"Connection {conn_id!r}: {err}") from None
    return EdgeImpulseCredentials(
        studio_url=studio_url,
        auth_type=auth_type,
        username=login,
        password=password,
        project_id=project_id,
        ingestion_url=ingestion_url,
        timeout=timeout,
        limits=limits,
    )


def credentials_from_connection(conn: Any, extra: dict[str, Any] | None = None) -> EdgeImpulseCredentials:
    """Build credentials from an Airflow ``Connection`` (extras may be passed when already decoded)."""
    if extra is None:
        extra = conn.extra_dejson or {}
    return credentials_from_fields(
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        extra=dict(extra),
        conn_id=getattr(conn, "conn_id", None) or "?",
    )
