"""What one HTTP client did: requests, retries, throttling, failures, requests in flight and a
latency histogram; the pass report and ``/metrics`` read it."""

from __future__ import annotations

import bisect

import msgspec

__all__ = ["LATENCY_BUCKETS", "HttpStats"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the request latency histogram; one more bucket holds the rest."""


class HttpStats(msgspec.Struct):
    """What one client did; feeds the pass report and metrics."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    failures: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    latency_counts: list[int] = msgspec.field(
        default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1)
    )
    """Requests per latency bucket (not cumulative); the last one is above every bound."""
    latency_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def copy(self) -> HttpStats:
        return msgspec.structs.replace(self, latency_counts=list(self.latency_counts))
