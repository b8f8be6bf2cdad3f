"""Backoff arithmetic (pure): exponential delays with full jitter, and ``Retry-After`` parsing."""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime

from pipeline.config import RetrySettings

__all__ = ["backoff_delay", "parse_retry_after"]


def backoff_delay(
    attempt: int,
    settings: RetrySettings,
    *,
    retry_after: float | None = None,
    rand: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    A server's ``Retry-After`` is honoured as given (capped by ``max_seconds``: the HTTP client
    stops rather than wait less than a longer one asks for); otherwise the
    delay is uniform in ``[0, min(max_seconds, initial_seconds * 2**(attempt-1))]`` (full jitter,
    which spreads retries of many workers best).
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), settings.max_seconds)
    doublings = min(max(attempt - 1, 0), 64)  # past 2**64 every ceiling is max_seconds anyway
    ceiling = min(settings.max_seconds, settings.initial_seconds * 2.0**doublings)
    return (rand or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds (decimals accepted) or an HTTP date; else None."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)
