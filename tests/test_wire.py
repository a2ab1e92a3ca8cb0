import math

import pytest

from airflow_provider_edgeimpulse.wire import clamp_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5.0),
        (2.5, 2.5),
        (math.nan, 7.0),
        (math.inf, 60.0),
        (-math.inf, 0.5),
        (-3, 0.5),
        (10**400, 60.0),
        (None, 7.0),
        ("12", 7.0),
        (True, 7.0),
    ],
)
def test_every_wire_duration_becomes_finite_and_bounded(value, expected):
    got = clamp_seconds(value, low=0.5, high=60.0, default=7.0)
    assert got == expected
    assert math.isfinite(got)


def test_a_flood_of_one_kind_is_logged_a_few_times_and_counted(caplog):
    import logging

    from airflow_provider_edgeimpulse.wire import RateLimitedLog

    logger = logging.getLogger("tests.wire.flood")
    limited = RateLimitedLog(logger, burst=3, period=3600)
    caplog.set_level(logging.WARNING, logger=logger.name)
    logged = [limited.log(logging.WARNING, "garbage", "bad frame %d", n) for n in range(1000)]
    limited.log(logging.WARNING, "other", "another kind")
    assert logged.count(True) == 3
    assert limited.held_back("garbage") == 997
    assert [r.getMessage() for r in caplog.records] == ["bad frame 0", "bad frame 1", "bad frame 2", "another kind"]


def test_what_was_held_back_is_counted_in_the_next_period(caplog):
    import logging

    from airflow_provider_edgeimpulse.wire import RateLimitedLog

    logger = logging.getLogger("tests.wire.period")
    limited = RateLimitedLog(logger, burst=1, period=3600)
    caplog.set_level(logging.WARNING, logger=logger.name)
    limited.log(logging.WARNING, "k", "first")
    limited.log(logging.WARNING, "k", "second")
    limited.period = 0.0  # the period is over
    limited.log(logging.WARNING, "k", "third")
    assert [r.getMessage() for r in caplog.records] == ["first", "third (and 1 more like it before, not logged)"]
