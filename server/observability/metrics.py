"""Prometheus metrics of one process, served as text at `/metrics`.

Each app has its own registry, so that several apps in one test process never clash.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool

from channels.hub import Hub
from channels.relay import Relay
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


class _RealtimeCollector(Collector):
    """Reads counters the realtime layer keeps itself, so that its hot path touches no metric object."""

    def __init__(self, hub: Hub, relay: Relay) -> None:
        self._hub = hub
        self._relay = relay

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "ws_events_delivered", "Event frames queued to subscribers.", value=self._hub.delivered
        )
        yield CounterMetricFamily(
            "events_published", "Outbox events published to the broker.", value=self._relay.published
        )
        yield GaugeMetricFamily(
            "outbox_lag_seconds", "Age of the oldest unpublished outbox event.", value=self._relay.lag_s
        )


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

        # The realtime layer.
        self.connections = Gauge(
            "ws_connections",
            "Open device and user WebSocket connections by device kind.",
            ["kind"],
            registry=self.registry,
        )
        self.commands = Counter(
            "ws_commands_total",
            "Commands by type and outcome (ok or an error code).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.command_latency = Histogram(
            "ws_command_duration_seconds",
            "Time from a command frame to its reply.",
            ["command"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.send_queue_drops = Counter(
            "ws_send_queue_overflows_total",
            "Connections closed with 4008 because their unsent frames passed the send buffer bound.",
            registry=self.registry,
        )

        self.handshakes_refused_busy = Counter(
            "ws_handshakes_refused_busy_total",
            "Sockets sent away with 1013 and a retry hint because WS_MAX_HANDSHAKES hellos were in progress.",
            registry=self.registry,
        )

    def watch_realtime(self, hub: Hub, relay: Relay) -> None:
        """Export the hub's and the relay's own counters at scrape time."""
        self.registry.register(_RealtimeCollector(hub, relay))
