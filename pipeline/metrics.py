"""Observability of the long-running service: Prometheus metrics, ``/healthz`` and ``/readyz``.

Counters are not incremented on the hot path: a collector reads, at scrape time, the totals of
finished passes plus the live counters of the running one, the HTTP clients' own statistics
(requests, retries, 429s, a latency histogram) and the channels' depths.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pipeline.config_load import listen_address
from pipeline.errors import PipelineError
from pipeline.flow import Pass
from pipeline.http_stats import LATENCY_BUCKETS, HttpStats
from pipeline.report import PassReport
from pipeline.statistics import PassStatistics
from pipeline.targets.base import Target

__all__ = ["Health", "Metrics", "serve_metrics"]

_OUTCOMES = ("sent", "created", "updated", "unchanged", "dead_lettered", "skipped", "deactivated")


class Health(msgspec.Struct):
    """What ``/readyz`` answers from."""

    config_loaded: bool = False
    store_open: bool = False
    last_status: str | None = None
    last_error: str | None = None
    stopped: dict[str, str] = {}
    """Targets the last pass stopped (a refused or unavailable token, say), with the reason."""
    role: str = "active"
    """``active`` runs the passes; ``standby`` waits for the state another replica holds."""

    def ready(self) -> tuple[bool, str]:
        if not self.config_loaded:
            return False, "configuration not loaded"
        if self.role == "standby":
            return True, "standby: another replica holds the state and runs the passes"
        if not self.store_open:
            return False, "state store not open"
        if self.stopped:
            name, why = sorted(self.stopped.items())[0]
            return False, f"{name} stopped in the last pass: {why}"
        if self.last_status == "aborted":
            return False, f"last pass failed: {self.last_error or 'aborted'}"
        return True, "ready"


class Metrics(Collector):
    """The service's metrics, collected from passes and targets."""

    def __init__(self, targets: Sequence[Target] = ()) -> None:
        self.registry = CollectorRegistry()
        self.targets = list(targets)
        self.current: Pass | None = None
        self.records_read = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.passes: Counter[str] = Counter()
        self.last_duration: float | None = None
        self.last_success: float | None = None
        self.source_stats = HttpStats()
        self.role = "active"
        """This replica's role (see :class:`Health`), a label of ``pipeline_role``."""
        self.registry.register(self)

    def pass_finished(self, finished: Pass, report: PassReport) -> None:
        """Fold a finished pass into the totals."""
        self.records_read += report.source.records
        for name, target in report.targets.items():
            for outcome in _OUTCOMES:
                self.outcomes[name, outcome] += getattr(target, outcome)
        self.passes[report.status] += 1
        self.last_duration = report.seconds
        if report.status in ("ok", "dead_letters"):
            self.last_success = time.time()
        _add(self.source_stats, finished.statistics().source.http)
        if self.current is finished:
            self.current = None

    def collect(self) -> Iterable[Metric]:
        live = self.current.statistics() if self.current is not None else None
        read = CounterMetricFamily("pipeline_records_read", "Records read from the source")
        read.add_metric([], self.records_read + (live.source.records if live else 0))
        yield read
        records = CounterMetricFamily(
            "pipeline_records", "Records per target and outcome", labels=["target", "outcome"]
        )
        counts = {n: t.counts for n, t in live.targets.items()} if live else {}
        for target in self.targets:
            for outcome in _OUTCOMES:
                now = getattr(counts[target.name], outcome) if target.name in counts else 0
                records.add_metric(
                    [target.name, outcome], self.outcomes[target.name, outcome] + now
                )
        yield records
        yield from self._http(live)
        passes = CounterMetricFamily(
            "pipeline_passes", "Passes by how they ended", labels=["status"]
        )
        for status, count in sorted(self.passes.items()):
            passes.add_metric([status], count)
        yield passes
        if self.last_duration is not None:
            yield GaugeMetricFamily(
                "pipeline_pass_duration_seconds", "Duration of the last pass", self.last_duration
            )
        if self.last_success is not None:
            yield GaugeMetricFamily(
                "pipeline_last_success_timestamp_seconds",
                "When the last pass that was not aborted finished",
                self.last_success,
            )
        role = GaugeMetricFamily(
            "pipeline_role", "1 for this replica's role: active or standby", labels=["role"]
        )
        for name in ("active", "standby"):
            role.add_metric([name], 1 if self.role == name else 0)
        yield role
        running = GaugeMetricFamily("pipeline_pass_running", "1 while a pass runs")
        running.add_metric([], 1 if live else 0)
        yield running
        depth = GaugeMetricFamily(
            "pipeline_queue_depth", "Items buffered per channel", labels=["channel"]
        )
        blocked = GaugeMetricFamily(
            "pipeline_queue_blocked_senders",
            "Tasks waiting to send per channel",
            labels=["channel"],
        )
        for stats in live.channels if live else []:
            depth.add_metric([stats.name], stats.buffered)
            blocked.add_metric([stats.name], stats.senders_waiting)
        yield depth
        yield blocked

    def _http(self, live: PassStatistics | None) -> Iterable[Metric]:
        clients: list[tuple[str, HttpStats]] = [(t.name, t.stats) for t in self.targets]
        source = self.source_stats.copy()
        if live is not None:
            _add(source, live.source.http)
        clients.append(("source", source))
        requests = CounterMetricFamily("pipeline_requests", "HTTP requests", labels=["client"])
        retries = CounterMetricFamily("pipeline_retries", "HTTP retries", labels=["client"])
        throttled = CounterMetricFamily("pipeline_throttled", "429 answers", labels=["client"])
        latency = HistogramMetricFamily(
            "pipeline_request_seconds", "HTTP request latency", labels=["client"]
        )
        for name, stats in clients:
            requests.add_metric([name], stats.requests)
            retries.add_metric([name], stats.retries)
            throttled.add_metric([name], stats.throttled)
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*LATENCY_BUCKETS, float("inf")), stats.latency_counts, strict=True
            ):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            latency.add_metric([name], buckets, stats.latency_sum)
        yield from (requests, retries, throttled, latency)


def _add(total: HttpStats, more: HttpStats) -> None:
    total.requests += more.requests
    total.retries += more.retries
    total.throttled += more.throttled
    total.failures += more.failures
    total.latency_sum += more.latency_sum
    for i, count in enumerate(more.latency_counts):
        total.latency_counts[i] += count


def _app(metrics: Metrics, health: Health) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        ready, why = health.ready()
        return web.json_response({"ready": ready, "reason": why}, status=200 if ready else 503)

    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    return app


@asynccontextmanager
async def serve_metrics(listen: str, metrics: Metrics, health: Health) -> AsyncIterator[str]:
    """Serve /metrics, /healthz and /readyz on ``host:port`` while the block runs; yields the
    base URL (port 0 picks a free port).

    Raises:
        ConfigError: ``listen`` is not ``host:port``
            (see :func:`~pipeline.config_load.listen_address`).
        PipelineError: the address cannot be listened on (the port is taken, say).
    """
    host, port = listen_address(listen)
    runner = web.AppRunner(_app(metrics, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "0.0.0.0", port)
    try:
        await site.start()
    except OSError as exc:  # the port is taken, or the host is not this machine's
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise PipelineError(f"cannot listen on {listen} ([metrics] listen): {reason}") from exc
    try:
        server = site._server  # the bound port, when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        shown = f"[{host}]" if ":" in host else host or "127.0.0.1"
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()
