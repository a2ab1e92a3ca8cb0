"""The redirect rule itself, for the cases a loopback server cannot show: https, default ports, odd locations."""

from __future__ import annotations

import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.redirects import next_hop, shown_origin

HOME = "https://studio.example/v1/api/1/jobs/5/status"


def hop(location: str, status: int = 302, method: str = "GET", credentials: bool = True, hops: int = 0):
    return next_hop(
        method=method,
        url=HOME,
        status=status,
        location=location,
        home=HOME,
        credentials=credentials,
        hops=hops,
        max_redirects=5,
        display_path="/api/1/jobs/5/status",
    )


@pytest.mark.parametrize(
    ("location", "keeps"),
    [
        ("/v1/moved", True),
        ("https://studio.example:443/v1/moved", True),  # the default port, written out
        ("https://STUDIO.example/v1/moved", True),
        ("http://studio.example/v1/moved", False),  # a downgrade to plain http
        ("https://studio.example:8443/v1/moved", False),
        ("https://studio.example.evil/v1/moved", False),
        ("//cdn.example/firmware.zip", False),
    ],
)
def test_credentials_follow_only_to_the_same_origin(location: str, keeps: bool) -> None:
    assert hop(location).keep_credentials is keeps


def test_credentials_once_dropped_stay_dropped_even_at_home() -> None:
    assert hop("/v1/moved", credentials=False).keep_credentials is False


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [
        (301, "POST", ("GET", False)),
        (302, "POST", ("GET", False)),
        (303, "POST", ("GET", False)),
        (303, "GET", ("GET", False)),
        (307, "POST", ("POST", True)),
        (308, "POST", ("POST", True)),
        (301, "GET", ("GET", True)),
        (303, "HEAD", ("HEAD", True)),
    ],
)
def test_method_and_body_across_a_redirect(status: int, method: str, expected: tuple[str, bool]) -> None:
    step = hop("/v1/moved", status=status, method=method)
    assert (step.method, step.keep_body) == expected


@pytest.mark.parametrize("location", ["ftp://files.example/x", "javascript:alert(1)", "file:///etc/passwd", "http://"])
def test_a_redirect_to_anything_but_http_is_refused(location: str) -> None:
    with pytest.raises(EdgeImpulseAPIError, match="not to an http\\(s\\) URL"):
        hop(location)


def test_the_chain_is_bounded() -> None:
    assert hop("/v1/moved", hops=4).url == "https://studio.example/v1/moved"
    with pytest.raises(EdgeImpulseAPIError, match="more than 5 redirects"):
        hop("/v1/moved", hops=5)


def test_shown_origin_hides_user_info_path_and_query() -> None:
    assert shown_origin("https://u:p@cdn.example:443/a/b?X-Signature=s3cr3t") == "https://cdn.example"
    assert shown_origin("http://[::1]:4810/x") == "http://[::1]:4810"
