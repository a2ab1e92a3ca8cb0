"""
Where a redirect may take a request, and what it may carry there: the one rule of both transports.

Neither ``requests`` nor ``aiohttp`` knows which of our headers are credentials (``requests`` strips only
``Authorization`` on a cross-host redirect, aiohttp nothing), so both are told not to follow redirects and
follow them here instead. Credentials (``x-api-key``, ``x-jwt-token``, the ``jwt`` cookie) travel only to the
origin (scheme, host, port) of the request they were given for: Studio's for Studio, the ingestion service's for
uploads. A redirect anywhere else, including from https to http on the same host, is followed without them,
and once dropped they stay dropped for the rest of the chain. ``/api-login`` is never redirected: its body is
the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CREDENTIAL_HEADERS = frozenset({"x-api-key", "x-jwt-token"})
# Headers that describe a body: gone with the body when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the port made explicit, the host lower-cased."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def shown_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL for a message: no user info, path or query (signed URLs carry keys)."""
    scheme, host, port = origin_of(url)
    if ":" in host:
        host = f"[{host}]"
    shown_port = "" if port == _DEFAULT_PORTS.get(scheme) else f":{port}"
    return f"{scheme}://{host}{shown_port}"


@dataclass(frozen=True)
class Hop:
    """The next request of a redirect chain."""

    method: str
    url: str
    keep_body: bool
    keep_credentials: bool


def next_hop(
    *,
    method: str,
    url: str,
    status: int,
    location: str,
    home: str,
    credentials: bool,
    hops: int,
    max_redirects: int,
    display_path: str,
) -> Hop:
    """
    Where the redirect ``status``/``location`` answered to ``method url`` leads, or ``EdgeImpulseAPIError``.

    ``home`` is the URL the credentials were given for, ``credentials`` whether they are still carried, ``hops``
    how many redirects were followed already.
    """
    if hops >= max_redirects:
        raise EdgeImpulseAPIError(
            f"Edge Impulse {method} {display_path}: more than {max_redirects} redirects; not followed further",
            status=status,
            method=method,
            path=display_path,
        )
    target = urljoin(url, location.strip())
    if urlsplit(target).scheme.lower() not in _DEFAULT_PORTS or not urlsplit(target).hostname:
        raise EdgeImpulseAPIError(
            f"Edge Impulse {method} {display_path} answered HTTP {status} with a redirect that is not to an "
            "http(s) URL; not followed",
            status=status,
            method=method,
            path=display_path,
        )
    # What browsers and requests do: 303 always, and 301/302 of a POST, become a GET without a body.
    to_get = (status == 303 and method.upper() != "HEAD") or (status in (301, 302) and method.upper() == "POST")
    return Hop(
        method="GET" if to_get else method,
        url=target,
        keep_body=not to_get,
        keep_credentials=credentials and origin_of(target) == origin_of(home),
    )


def refuse_login_redirect(status: int, location: str | None, url: str) -> EdgeImpulseAPIError:
    """The error of a redirect answered to ``/api-login``, which is never followed (its body is the password)."""
    where = shown_origin(urljoin(url, location.strip())) if location else "nowhere"
    return EdgeImpulseAPIError(
        f"Edge Impulse POST /api-login answered HTTP {status}, a redirect to {where}; a login is never redirected, "
        f"so the password was sent to {shown_origin(url)} only (is the Studio URL of the connection right?)",
        status=status,
        method="POST",
        path="/api-login",
    )


def without_credentials(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def without_body_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}


@dataclass(frozen=True)
class Outgoing:
    """One request of a redirect chain: what is sent, and where."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


class RedirectChain:
    """
    The requests one call makes through the redirects it is answered with, under ``next_hop``'s rule.

    ``request`` is what to send next. Both transports run the same loop: send ``request``; if ``follow`` says
    the answer is a redirect to follow, send the new ``request``, else the answer is the call's. Credentials
    are dropped for good at the first hop to another origin; ``follow=False`` (a login) refuses any redirect.
    """

    def __init__(self, first: Outgoing, *, display_path: str, max_redirects: int, follow: bool = True) -> None:
        self.request = first
        self._home = first.url
        self._display_path = display_path
        self._max_redirects = max_redirects
        self._follow = follow
        self._hops = 0
        self._carry = True

    def follow(self, status: int, location: str | None, answered_url: str) -> bool:
        """Whether the answer is a redirect to follow (``request`` is then the next hop); raises where refused."""
        if status not in REDIRECT_STATUSES or location is None:
            return False
        sent = self.request
        if not self._follow:
            raise refuse_login_redirect(status, location, sent.url)
        hop = next_hop(
            method=sent.method,
            url=answered_url,
            status=status,
            location=location,
            home=self._home,
            credentials=self._carry,
            hops=self._hops,
            max_redirects=self._max_redirects,
            display_path=self._display_path,
        )
        self._hops += 1
        request = replace(sent, method=hop.method, url=hop.url, params={})
        if not hop.keep_body:
            request = replace(request, json=None, data=None, headers=without_body_headers(request.headers))
        if not hop.keep_credentials:
            self._carry = False
            request = replace(request, headers=without_credentials(request.headers), cookies={})
        self.request = request
        return True
