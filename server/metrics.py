"""Prometheus metrics of one process, served as text at `/metrics`.

Each app has its own registry, so that several apps in one test process never clash.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool

from persistence.database import Database


class _PoolCollector(Collector):
    """Reads the database pool's state at scrape time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterable[Metric]:
        """Connections by state, for pools that keep a count (PostgreSQL, and SQLite in a file)."""
        pool = self._db.engine.sync_engine.pool
        # SQLite in memory (StaticPool) or a NullPool has nothing to count: export no series rather than made-up zeros.
        if not isinstance(pool, QueuePool):
            return
        gauge = GaugeMetricFamily("db_pool_connections", "Database pool connections by state.", labels=["state"])
        gauge.add_metric(["checked_out"], pool.checkedout())
        gauge.add_metric(["idle"], pool.checkedin())
        # overflow() counts down from -size while the pool is not full; only the part past size is overflow.
        gauge.add_metric(["overflow"], max(pool.overflow(), 0))
        gauge.add_metric(["size"], pool.size())
        yield gauge


class Metrics:
    """Every metric the server exports."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(db))
