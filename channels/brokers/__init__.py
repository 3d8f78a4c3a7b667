"""Broker backends: in-process (one server) and Redis (many), behind one interface; channels/backend.py picks one."""

from __future__ import annotations

from channels.brokers.base import Broker, BrokerListener, Delivery, Outgoing

__all__ = ["Broker", "BrokerListener", "Delivery", "Outgoing"]
