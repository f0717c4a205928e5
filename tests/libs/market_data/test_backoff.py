from __future__ import annotations

import email.utils

import pytest

from libs.market_data import BackoffPolicy


def test_spec_sequence_without_jitter() -> None:
    policy = BackoffPolicy(base=5, maximum=300, jitter=0)
    assert [policy.delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


def test_jitter_only_shortens_and_stays_within_a_fifth() -> None:
    policy = BackoffPolicy(base=5, maximum=300, jitter=0.2)
    for attempt in range(1, 12):
        ceiling = policy.ceiling(attempt)
        delays = {policy.delay(attempt) for _ in range(200)}
        assert all(0.8 * ceiling <= d <= ceiling for d in delays)
        assert len(delays) > 1  # actually jittered


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert BackoffPolicy(base=1, maximum=30, jitter=0).delay(10_000) == 30


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0}, {"base": 10, "maximum": 5}, {"max_attempts": 0}, {"jitter": 1.0}],
)
def test_bad_policies_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_after_reads_seconds_and_http_dates_and_refuses_the_rest() -> None:
    from libs.market_data.backoff import parse_retry_after

    now = 1_800_000_000.0
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("2.5", now) == 2.5
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("inf", now) is None
    assert parse_retry_after("soon", now) is None
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(date, now) == 7.0
    assert parse_retry_after(email.utils.formatdate(now - 7, usegmt=True), now) == 0.0
