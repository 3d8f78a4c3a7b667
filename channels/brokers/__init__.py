"""Broker backends: in-process (one server) and Redis (many), behind one interface."""

from __future__ import annotations

from channels.brokers.base import Broker, BrokerListener, Delivery, Outgoing

__all__ = ["Broker", "BrokerListener", "Delivery", "Outgoing", "create_broker"]


def create_broker(redis_url: str | None, *, history_size: int, history_ttl_s: int, prefix: str = "kiosk") -> Broker:
    """The Redis broker for a URL, the in-process one for None; Redis is imported only when used."""
    if redis_url is None:
        from channels.brokers.memory import MemoryBroker

        return MemoryBroker(history_size=history_size, history_ttl_s=history_ttl_s)
    from channels.brokers.redis import RedisBroker

    return RedisBroker(redis_url, history_size=history_size, history_ttl_s=history_ttl_s, prefix=prefix)
