"""The hot-path measurement pieces: the histogram and the timestamp parser."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.telemetry import LATENCY_BUCKETS, ROUND_TRIP_BUCKETS, Histogram, epoch_seconds


def test_histogram_puts_bounds_in_their_own_bucket_and_sums() -> None:
    histogram = Histogram([0.1, 1.0, 0.5])
    assert histogram.bounds == (0.1, 0.5, 1.0)
    for value in (0.0, 0.1, 0.2, 0.5, 0.7, 1.0, 3.0):
        histogram.observe(value)
    # Upper bounds are inclusive ("le"), as Prometheus defines them.
    assert histogram.cumulative() == [(0.1, 2), (0.5, 4), (1.0, 6), (math.inf, 7)]
    assert histogram.count == 7
    assert histogram.sum == pytest.approx(5.5)


def test_histogram_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="bucket"):
        Histogram([])


@pytest.mark.parametrize("bounds", [LATENCY_BUCKETS, ROUND_TRIP_BUCKETS])
def test_default_buckets_are_sorted_and_distinct(bounds: tuple[float, ...]) -> None:
    assert list(bounds) == sorted(set(bounds))


@given(st.lists(st.floats(min_value=0, max_value=100), max_size=50))
def test_cumulative_counts_match_a_direct_count(values: list[float]) -> None:
    histogram = Histogram(LATENCY_BUCKETS)
    for value in values:
        histogram.observe(value)
    for bound, count in histogram.cumulative():
        assert count == sum(1 for v in values if v <= bound)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-07-24T07:56:53.639713735Z", datetime(2024, 7, 24, 7, 56, 53, 639714, UTC)),
        ("2024-07-24T07:56:53Z", datetime(2024, 7, 24, 7, 56, 53, tzinfo=UTC)),
        ("2024-07-24T07:56:53.5Z", datetime(2024, 7, 24, 7, 56, 53, 500000, UTC)),
        ("2024-07-24T09:56:53.25+02:00", datetime(2024, 7, 24, 7, 56, 53, 250000, UTC)),
        ("2024-12-31T23:59:60Z", datetime(2025, 1, 1, tzinfo=UTC)),  # a leap second
    ],
)
def test_epoch_seconds(text: str, expected: datetime) -> None:
    assert epoch_seconds(text) == pytest.approx(expected.timestamp(), abs=1e-6)
    assert epoch_seconds(text.encode()) == pytest.approx(expected.timestamp(), abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2024-07-24T07:56:-infZ",
        "2024-07-24T07:56:nanZ",
        "2024-07-24T07:56:5e9Z",
        "2024-13-45T99:99:99Z",
        "xxxx-07-24T07:56:53Z",
        b"2024-07-24T07:56:53\xffZ",
    ],
)
def test_epoch_seconds_refuses_what_is_not_a_timestamp(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        epoch_seconds(text)


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)))
def test_epoch_seconds_agrees_with_datetime(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    text = aware.isoformat().replace("+00:00", "Z")
    assert epoch_seconds(text) == pytest.approx(aware.timestamp(), abs=1e-6)
    shifted = (aware + timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat() + "+05:30"
    assert epoch_seconds(shifted) == pytest.approx(aware.timestamp(), abs=1e-6)
