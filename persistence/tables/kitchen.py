"""Kitchen stations: where a branch's lines are cooked (grill, fryer, drinks, expo), and each order's bumps.

A branch without stations has one kitchen, as always. With stations, every line of an order
is routed to one of them (server/domain/stations.py); a station's display bumps its part
of the order (`order_stations`), and the order is ready when every station with lines has
bumped it, or, where the branch has an expo station, when expo bumps it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, Timestamps, UTCDateTime


class Station(Timestamps, Base):
    """A station of one branch's kitchen, named by a `code` unique in the branch (`grill`); the expo station checks
    and hands over whole orders. Lines whose code the branch has no station for go to its first non-expo station
    by `position` (then id)."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(60))
    is_expo: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        UniqueConstraint("branch_id", "code"),
        CheckConstraint("length(code) >= 1", name="code_not_empty"),
    )


class OrderStation(Base):
    """A station's bump of its part of an order: the row exists while the station is done with it."""

    __tablename__ = "order_stations"

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True, index=True)
    bumped_at: Mapped[datetime] = mapped_column(UTCDateTime())
