"""Tests of the backoff arithmetic: full-jitter delays and ``Retry-After`` parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.backoff import backoff_delay, parse_retry_after
from pipeline.config import RetrySettings

SETTINGS = RetrySettings(max_attempts=10, initial_seconds=0.5, max_seconds=10.0)
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SAMPLES = 2000

# backoff_delay: Retry-After -------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (0.0, 0.0),
        (0.02, 0.02),
        (3.0, 3.0),
        (10.0, 10.0),
        (10.5, 10.0),
        (3600.0, 10.0),
        (float("inf"), 10.0),
        (-1.0, 0.0),
    ],
)
@pytest.mark.parametrize("attempt", [1, 2, 9])
def test_backoff_delay_retry_after_honoured_and_capped(
    retry_after: float, expected: float, attempt: int
) -> None:
    delay = backoff_delay(attempt, SETTINGS, retry_after=retry_after, rand=random.Random(0))
    assert delay == expected


def test_backoff_delay_retry_after_draws_no_randomness() -> None:
    rand = random.Random(7)
    backoff_delay(3, SETTINGS, retry_after=1.0, rand=rand)
    assert rand.random() == random.Random(7).random()


# backoff_delay: full jitter -------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        (0, 0.5),
        (1, 0.5),
        (2, 1.0),
        (3, 2.0),
        (4, 4.0),
        (5, 8.0),
        (6, 10.0),
        (7, 10.0),
        (20, 10.0),
        (200, 10.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 20240501])
def test_backoff_delay_full_jitter_within_ceiling(attempt: int, ceiling: float, seed: int) -> None:
    rand = random.Random(seed)
    delays = [backoff_delay(attempt, SETTINGS, rand=rand) for _ in range(SAMPLES)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole range, not just its top: both ends are reached.
    assert min(delays) < ceiling * 0.05
    assert max(delays) > ceiling * 0.95
    # The mean of a uniform draw on [0, ceiling] is ceiling / 2.
    assert abs(sum(delays) / SAMPLES - ceiling / 2) < ceiling * 0.05


def test_backoff_delay_same_seed_same_delays() -> None:
    first = [backoff_delay(a, SETTINGS, rand=random.Random(42)) for a in range(1, 9)]
    second = [backoff_delay(a, SETTINGS, rand=random.Random(42)) for a in range(1, 9)]
    assert first == second
    assert len(set(first)) > 1


def test_backoff_delay_is_uniform_draw_scaled_to_ceiling() -> None:
    expected = random.Random(3).uniform(0.0, 4.0)
    assert backoff_delay(4, SETTINGS, rand=random.Random(3)) == expected


def test_backoff_delay_zero_initial_means_no_wait() -> None:
    settings = RetrySettings(initial_seconds=0.0, max_seconds=5.0)
    rand = random.Random(5)
    assert {backoff_delay(a, settings, rand=rand) for a in range(1, 30)} == {0.0}


def test_backoff_delay_without_rand_uses_module_random() -> None:
    delays = [backoff_delay(3, SETTINGS) for _ in range(200)]
    assert all(0.0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 1


def test_backoff_delay_ceiling_capped_for_any_attempt() -> None:
    rand = random.Random(0)
    delays = [backoff_delay(a, SETTINGS, rand=rand) for a in (1024, 1025, 5000)]
    assert all(0.0 <= d <= SETTINGS.max_seconds for d in delays)


# parse_retry_after ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("0.02", 0.02),
        ("  7 ", 7.0),
        ("120", 120.0),
        ("1e2", 100.0),
        ("-1", 0.0),
        ("-0.5", 0.0),
    ],
)
def test_parse_retry_after_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 12:02:00 GMT", 120.0),
        ("Wed, 01 May 2024 12:00:00 GMT", 0.0),
        ("Wed, 01 May 2024 11:59:00 GMT", 0.0),
        ("Tue, 30 Apr 2024 12:00:00 GMT", 0.0),
        ("Wed, 01 May 2024 14:00:05 +0200", 5.0),
        ("Wed, 01 May 2024 12:00:10 -0000", 10.0),
    ],
    ids=["30s", "2min", "now", "past", "yesterday", "offset-zone", "unknown-zone"],
)
def test_parse_retry_after_http_date(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_http_date_relative_to_aware_now() -> None:
    now = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse_retry_after("Wed, 01 May 2024 12:00:45 GMT", now=now) == 45.0


def test_parse_retry_after_http_date_without_now_uses_clock() -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    header = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 3500.0 < seconds <= 3600.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "3 seconds", "nan", "NaN", "Wed, 99 Foo 2024", "1,5"],
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None
