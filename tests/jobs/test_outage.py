"""What a wait reads through (an outage) and what ends it, and the pace of its reads in an outage."""

from __future__ import annotations

import aiohttp
import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.jobs.outage import OUTAGE_CAP_S, OutageWatch, is_transient
from airflow_provider_edgeimpulse.jobs.waiter import WaitSettings


@pytest.mark.parametrize("status", [None, 408, 425, 429, 500, 502, 503, 504])
def test_not_now_answers_and_lost_connections_are_read_through(status):
    assert is_transient(EdgeImpulseAPIError("Edge Impulse GET /x failed", status=status))


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 409, 422])
def test_answers_that_retrying_cannot_change_end_the_wait(status):
    assert not is_transient(EdgeImpulseAPIError("Edge Impulse GET /x failed", status=status))


@pytest.mark.parametrize(
    "err", [aiohttp.ServerDisconnectedError(), ConnectionResetError(), TimeoutError()], ids=lambda e: type(e).__name__
)
def test_transport_failures_are_read_through(err):
    assert is_transient(err)


def test_a_programming_error_is_not_an_outage():
    assert not is_transient(KeyError("job"))


def test_pauses_start_at_the_floor_and_grow_to_the_cap_with_jitter():
    watch = OutageWatch("Edge Impulse job 1", floor=1.0, cap=8.0)
    first = [watch.pause(1) for _ in range(200)]
    late = [watch.pause(20) for _ in range(200)]
    assert min(first) >= 1.0 and max(first) <= 2.0
    assert max(late) <= 8.0 and min(late) >= 4.0
    assert len(set(late)) > 1, "jittered, so waits that failed together do not come back together"


@pytest.mark.parametrize("floor", [float("nan"), -1.0, 0.0])
def test_a_floor_from_bad_settings_is_still_a_pause(floor):
    watch = OutageWatch("Edge Impulse job 1", floor=floor, cap=float("inf"))
    assert watch.pause(1) > 0 and watch.pause(50) <= OUTAGE_CAP_S


@pytest.mark.parametrize(
    ("settings", "pace"),
    [
        (WaitSettings(), (1.0, 60.0)),  # a second at first, a minute at most
        (WaitSettings(safety_interval=1.0, poll_interval=0.2), (0.2, 1.0)),  # a quick wait stays quick
        (WaitSettings(safety_interval=600.0, poll_interval=30.0), (1.0, 60.0)),
    ],
)
def test_a_waits_outage_pace_follows_its_intervals(settings, pace):
    watch = OutageWatch.paced(
        "Edge Impulse job 1", poll_interval=settings.poll_interval, slowest=settings.safety_interval
    )
    assert (watch.floor, watch.cap) == pace
