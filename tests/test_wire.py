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
